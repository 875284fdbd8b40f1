//! The benchmarks' plain-SQLite reference: the same session rows as the store writes, into
//! a bare `sessions` table (no indexes, no raw table, no roll-ups), so a figure for the
//! store can be set beside what SQLite alone does with the same columns.
//!
//! A bare `raw_messages` table beside it gives the floor of what the issue asks to keep
//! per event (the raw message and its session), also without any index.

use std::net::IpAddr;
use std::path::Path;

use apiary_model::Session;
use rusqlite::{CachedStatement, Connection};

/// Opens (creates) the reference database at `path` with the store's pragmas and a bare
/// `sessions` table of the store's columns.
pub fn open_reference_db(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;
         CREATE TABLE sessions (id INTEGER PRIMARY KEY, ts INTEGER, source_ip TEXT,
             source_key BLOB, source_port INTEGER, destination_ip TEXT, destination_port INTEGER,
             protocol TEXT, honeypot TEXT, channel TEXT, sensor TEXT, internal INTEGER,
             country_code TEXT, country TEXT, city TEXT, latitude REAL, longitude REAL,
             asn INTEGER, as_org TEXT, destination_geo TEXT, signature TEXT, raw_id INTEGER,
             details TEXT);
         CREATE TABLE raw_messages (id INTEGER PRIMARY KEY, channel TEXT, ident TEXT,
             received_at INTEGER, payload BLOB, status TEXT, error TEXT);",
    )?;
    Ok(conn)
}

/// Prepares the insert of one raw message row (the store's columns).
pub fn prepare_insert_raw<'c>(conn: &'c Connection) -> rusqlite::Result<CachedStatement<'c>> {
    conn.prepare_cached(
        "INSERT INTO raw_messages (channel, ident, received_at, payload, status, error)
         VALUES (?1, ?2, ?3, ?4, 'normalized', NULL)",
    )
}

/// Inserts one raw message; returns its id (the session's `raw_id`).
pub fn insert_raw(
    st: &mut CachedStatement<'_>,
    channel: &str,
    ident: &str,
    received_at: i64,
    payload: &[u8],
) -> rusqlite::Result<i64> {
    st.insert(rusqlite::params![channel, ident, received_at, payload])
}

/// Prepares the insert of one session row (cached on the transaction's connection).
pub fn prepare_insert<'c>(conn: &'c Connection) -> rusqlite::Result<CachedStatement<'c>> {
    conn.prepare_cached(
        "INSERT INTO sessions (ts, source_ip, source_key, source_port, destination_ip,
             destination_port, protocol, honeypot, channel, sensor, internal,
             country_code, country, city, latitude, longitude, asn, as_org,
             destination_geo, signature, raw_id, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
             ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
    )
}

/// Inserts `s` as one row with `raw_id`, converting the fields as the store does (the
/// source address also as a 16-byte key, geolocation flattened, details as JSON).
pub fn insert_session(
    st: &mut CachedStatement<'_>,
    s: &Session,
    raw_id: i64,
) -> rusqlite::Result<()> {
    let geo = s.source_geo.as_ref();
    let key = match s.source_ip {
        Some(IpAddr::V4(v4)) => Some(v4.to_ipv6_mapped().octets()),
        Some(IpAddr::V6(v6)) => Some(v6.octets()),
        None => None,
    };
    let details = serde_json::to_string(&s.details).unwrap_or_default();
    let dgeo = s
        .destination_geo
        .as_ref()
        .and_then(|g| serde_json::to_string(g).ok());
    st.execute(rusqlite::params![
        s.timestamp.timestamp_micros(),
        s.source_ip.map(|i| i.to_string()),
        key.as_ref().map(|k| &k[..]),
        s.source_port,
        s.destination_ip.map(|i| i.to_string()),
        s.destination_port,
        s.protocol,
        s.honeypot,
        s.channel,
        s.sensor,
        s.internal,
        geo.and_then(|g| g.country_code.as_deref()),
        geo.and_then(|g| g.country.as_deref()),
        geo.and_then(|g| g.city.as_deref()),
        geo.and_then(|g| g.latitude),
        geo.and_then(|g| g.longitude),
        geo.and_then(|g| g.asn),
        geo.and_then(|g| g.as_org.as_deref()),
        dgeo,
        s.details.ids.as_ref().map(|a| a.signature.as_str()),
        raw_id,
        details,
    ])?;
    Ok(())
}
