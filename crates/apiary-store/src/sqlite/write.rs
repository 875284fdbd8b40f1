//! The write path: batches, re-normalization and retention.
//!
//! A batch is one IMMEDIATE transaction (taking the write lock up front, so another
//! process cannot make it fail half-way with SQLITE_BUSY on upgrade) using cached
//! statements. Roll-up increments are summed in memory first and written once per
//! (dimension, hour, value) at the end of the transaction.

use std::collections::{HashMap, VecDeque};

use apiary_model::{Dork, FileRecord, Normalized, P0fMetadata, Session, UrlRecord};
use chrono::{DateTime, Utc};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension, TransactionBehavior};

use super::conv::{ip_key, json_err};
use super::credential_terms;
use super::run_counts;
use super::runs;
use super::window;
use crate::hours::{hour_of, us};
use crate::rollups::{origin_of, Dims, Rollups};
use crate::types::{BatchResult, Dimension, IngestItem, RawStatus};
use crate::{Outcome, Result};

const INSERT_RAW: &str =
    "INSERT INTO raw_messages (channel, ident, received_at, payload, status, error)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const INSERT_SESSION: &str = "INSERT INTO sessions (ts, source_ip, source_key, source_port,
         destination_ip, destination_port, protocol, honeypot, channel, sensor, internal,
         country_code, country, city, latitude, longitude, asn, as_org, destination_geo,
         signature, raw_id, details)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
         ?19, ?20, ?21, ?22)";

const INSERT_CREDENTIAL: &str =
    "INSERT INTO credentials (session_id, seq, ts, username, password) VALUES (?1, ?2, ?3, ?4, ?5)";

const UPSERT_FILE: &str =
    "INSERT INTO files (sha512, sha256, sha1, md5, size, content_guess, data, url,
         first_seen, last_seen, count)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 1)
     ON CONFLICT (sha512) DO UPDATE SET
         first_seen = min(first_seen, excluded.first_seen),
         last_seen = max(last_seen, excluded.last_seen),
         count = count + ?10,
         size = CASE WHEN data IS NULL AND excluded.data IS NOT NULL
                     THEN excluded.size ELSE size END,
         data = coalesce(data, excluded.data),
         sha256 = CASE WHEN sha256 = '' THEN excluded.sha256 ELSE sha256 END,
         sha1 = CASE WHEN sha1 = '' THEN excluded.sha1 ELSE sha1 END,
         md5 = CASE WHEN md5 = '' THEN excluded.md5 ELSE md5 END,
         content_guess = coalesce(excluded.content_guess, content_guess),
         url = coalesce(url, excluded.url)";

const UPSERT_URL: &str =
    "INSERT INTO urls (url, first_seen, last_seen, count) VALUES (?1, ?2, ?2, 1)
     ON CONFLICT (url) DO UPDATE SET
         first_seen = min(first_seen, excluded.first_seen),
         last_seen = max(last_seen, excluded.last_seen),
         count = count + ?3
     RETURNING id";

const INSERT_URL_FILE: &str =
    "INSERT INTO url_files (url_id, sha512) VALUES (?1, ?2) ON CONFLICT DO NOTHING";

const UPSERT_DORK: &str =
    "INSERT INTO dorks (content, kind, first_seen, last_seen, count) VALUES (?1, ?2, ?3, ?3, 1)
     ON CONFLICT (content, kind) DO UPDATE SET
         first_seen = min(first_seen, excluded.first_seen),
         last_seen = max(last_seen, excluded.last_seen),
         count = count + ?4";

const UPSERT_METADATA: &str =
    "INSERT INTO p0f_metadata (ip, os, app, link, uptime, first_seen, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
     ON CONFLICT (ip) DO UPDATE SET
         os = coalesce(excluded.os, os),
         app = coalesce(excluded.app, app),
         link = coalesce(excluded.link, link),
         uptime = coalesce(excluded.uptime, uptime),
         first_seen = min(first_seen, excluded.first_seen),
         updated_at = max(updated_at, excluded.updated_at)";

/// Interns a destination geolocation (JSON) in `geo_places`; sessions store its id.
const UPSERT_PLACE: &str = "INSERT INTO geo_places (geo) VALUES (?1)
     ON CONFLICT (geo) DO UPDATE SET geo = excluded.geo RETURNING id";

const TOUCH_SENSOR: &str = "UPDATE sensors SET last_seen = ?2
     WHERE ident = ?1 AND (last_seen IS NULL OR last_seen < ?2)";

const BUMP_COUNTER: &str = "UPDATE counters SET value = value + ?2 WHERE name = ?1";

/// Writes the increments to the hourly roll-ups and the sliding window, which first
/// moves to `now_hour` (on the roll-up file, see [`super::rollup_db`]).
///
/// One cached single-row upsert per row: a multi-row upsert statement is about 1.5-2.5
/// times slower per row here, as SQLite keeps a statement journal for it (pages copied
/// before each first change, in case the statement must roll back on its own).
pub(super) fn flush(rollups: Rollups, c: &Connection, now_hour: i64) -> Result<()> {
    let w = window::advance(c, now_hour)?;
    let mut win = window::Adder::new(w);
    let mut hourly = c.prepare_cached(
        "INSERT INTO rollup_hourly (dim, hour, value, count) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (dim, hour, value) DO UPDATE SET count = count + excluded.count",
    )?;
    for (dim, hour, value, n) in rollups.into_changes() {
        win.add(dim, hour, &value, n);
        hourly.execute(params![dim, hour, value, n])?;
    }
    win.finish(c)
}

/// What a session needs besides its model value, computed before the write lock is taken:
/// JSON, address text and keys.
pub(super) struct SessionPrep {
    source_ip: Option<String>,
    source_key: Option<[u8; 16]>,
    destination_ip: Option<String>,
    destination_geo: Option<String>,
    details: String,
}

/// Everything of a batch that does not need the database: per-session preparations in
/// record order, and the summed roll-up increments.
pub(super) struct Prepared {
    sessions: VecDeque<SessionPrep>,
    rollups: Rollups,
}

fn prep_session(s: &Session) -> Result<SessionPrep> {
    Ok(SessionPrep {
        source_ip: s.source_ip.map(|ip| ip.to_string()),
        source_key: s.source_ip.map(ip_key),
        destination_ip: s.destination_ip.map(|ip| ip.to_string()),
        destination_geo: s
            .destination_geo
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?,
        details: serde_json::to_string(&s.details).map_err(json_err)?,
    })
}

/// Prepares the sessions among `records` and counts them (+1) in `rollups`.
fn prep_records(
    channel: &str,
    ident: &str,
    records: &[Normalized],
    out: &mut Vec<SessionPrep>,
    rollups: &mut Rollups,
) -> Result<()> {
    for r in records {
        let Normalized::Session(s) = r else { continue };
        let p = prep_session(s)?;
        let (channel, sensor) = origin_of(s, channel, ident);
        rollups.new_session(s, channel, sensor, p.source_ip.as_deref());
        out.push(p);
    }
    Ok(())
}

/// The CPU part of [`insert_batch`]: run it before taking the writer lock.
pub(super) fn prepare(batch: &[IngestItem]) -> Result<Prepared> {
    let mut sessions = Vec::with_capacity(batch.len());
    let mut rollups = Rollups::default();
    for item in batch {
        if let Ok(records) = &item.outcome {
            prep_records(
                &item.raw.channel,
                &item.raw.ident,
                records,
                &mut sessions,
                &mut rollups,
            )?;
        }
    }
    Ok(Prepared {
        sessions: sessions.into(),
        rollups,
    })
}

/// Cached statements of one write transaction.
struct Writer<'c> {
    conn: &'c Connection,
    /// Sessions up to `terms.merged` have their credential terms merged (see
    /// [`credential_terms`]); a new session with a lower id (SQLite reuses the highest id
    /// after it is deleted) gets its terms directly.
    terms: credential_terms::State,
    raw: CachedStatement<'c>,
    session: CachedStatement<'c>,
    credential: CachedStatement<'c>,
    file: CachedStatement<'c>,
    url: CachedStatement<'c>,
    url_file: CachedStatement<'c>,
    dork: CachedStatement<'c>,
    metadata: CachedStatement<'c>,
    place: CachedStatement<'c>,
    /// `geo_places` ids of the destination geolocations seen in this transaction (a few
    /// per batch: one per sensor address). Not kept across transactions: an id from one
    /// that rolled back would point nowhere.
    places: HashMap<String, i64>,
    /// Preparations of the sessions still to insert, in record order.
    preps: VecDeque<SessionPrep>,
    rollups: Rollups,
    sessions: i64,
    credentials: i64,
    side: u64,
    /// Ids of the sessions inserted, in order.
    session_ids: Vec<i64>,
    /// Time spans of the runs the inserted sessions fall in.
    runs: runs::Spans,
}

/// Where the records of one raw message come from.
struct Origin<'a> {
    raw_id: i64,
    channel: &'a str,
    ident: &'a str,
    received_at: i64,
    /// Count a new sighting of side records (0 when re-normalizing a message that
    /// already counted once).
    side_increment: i64,
}

impl<'c> Writer<'c> {
    fn new(c: &'c Connection, prepared: Prepared) -> Result<Self> {
        Ok(Self {
            conn: c,
            terms: credential_terms::State::read(c)?,
            raw: c.prepare_cached(INSERT_RAW)?,
            session: c.prepare_cached(INSERT_SESSION)?,
            credential: c.prepare_cached(INSERT_CREDENTIAL)?,
            file: c.prepare_cached(UPSERT_FILE)?,
            url: c.prepare_cached(UPSERT_URL)?,
            url_file: c.prepare_cached(INSERT_URL_FILE)?,
            dork: c.prepare_cached(UPSERT_DORK)?,
            metadata: c.prepare_cached(UPSERT_METADATA)?,
            place: c.prepare_cached(UPSERT_PLACE)?,
            places: HashMap::new(),
            preps: prepared.sessions,
            rollups: prepared.rollups,
            sessions: 0,
            credentials: 0,
            side: 0,
            session_ids: Vec::new(),
            runs: runs::Spans::default(),
        })
    }

    fn records(&mut self, o: &Origin<'_>, records: &[Normalized]) -> Result<()> {
        for r in records {
            match r {
                Normalized::Session(s) => self.session(o, s)?,
                Normalized::File(f) => self.file(o, f)?,
                Normalized::Url(u) => self.url(o, u)?,
                Normalized::Dork(d) => self.dork(o, d)?,
                Normalized::Metadata(m) => self.metadata(o, m)?,
            }
        }
        Ok(())
    }

    /// Inserts a session prepared (and counted in the roll-ups) by [`prep_records`].
    fn session(&mut self, o: &Origin<'_>, s: &Session) -> Result<()> {
        let p = self.preps.pop_front().ok_or_else(|| {
            crate::StoreError::Other("internal: session inserted without preparation".into())
        })?;
        let (channel, sensor) = origin_of(s, o.channel, o.ident);
        let ts = us(s.timestamp);
        let geo = s.source_geo.as_ref();
        let place = p.destination_geo.map(|g| self.place_id(g)).transpose()?;
        let id = self.session.insert(params![
            ts,
            p.source_ip,
            p.source_key.as_ref().map(|k| &k[..]),
            s.source_port,
            p.destination_ip,
            s.destination_port,
            s.protocol,
            s.honeypot,
            channel,
            sensor,
            s.internal,
            geo.and_then(|g| g.country_code.as_deref()),
            geo.and_then(|g| g.country.as_deref()),
            geo.and_then(|g| g.city.as_deref()),
            geo.and_then(|g| g.latitude),
            geo.and_then(|g| g.longitude),
            geo.and_then(|g| g.asn),
            geo.and_then(|g| g.as_org.as_deref()),
            place,
            s.details.ids.as_ref().map(|a| a.signature.as_str()),
            o.raw_id,
            p.details,
        ])?;
        self.sessions += 1;
        self.session_ids.push(id);
        self.runs.add(id, ts);
        for (seq, cr) in s.details.credentials.iter().enumerate() {
            self.credential
                .execute(params![id, seq as i64, ts, cr.username, cr.password])?;
            self.credentials += 1;
        }
        if id <= self.terms.merged {
            credential_terms::insert_direct(self.conn, id, ts, &s.details.credentials)?;
        }
        Ok(())
    }

    /// The `geo_places` id of `geo` (JSON), interned on first sight.
    fn place_id(&mut self, geo: String) -> Result<i64> {
        if let Some(&id) = self.places.get(&geo) {
            return Ok(id);
        }
        let id = self.place.query_row([&geo], |r| r.get(0))?;
        self.places.insert(geo, id);
        Ok(id)
    }

    fn file(&mut self, o: &Origin<'_>, f: &FileRecord) -> Result<()> {
        if f.sha512.is_empty() {
            // A normalizer bug must not fail (and endlessly retry) the whole batch.
            tracing::debug!(raw_id = o.raw_id, "file record without sha512 skipped");
            return Ok(());
        }
        self.file.execute(params![
            f.sha512.to_ascii_lowercase(),
            f.sha256.to_ascii_lowercase(),
            f.sha1.to_ascii_lowercase(),
            f.md5.to_ascii_lowercase(),
            f.size as i64,
            f.content_guess,
            f.data,
            f.url,
            o.received_at,
            o.side_increment,
        ])?;
        self.side += 1;
        Ok(())
    }

    fn url(&mut self, o: &Origin<'_>, u: &UrlRecord) -> Result<()> {
        if u.url.is_empty() {
            return Ok(());
        }
        let id: i64 = self
            .url
            .query_row(params![u.url, o.received_at, o.side_increment], |r| {
                r.get(0)
            })?;
        for sha in &u.file_sha512 {
            self.url_file
                .execute(params![id, sha.to_ascii_lowercase()])?;
        }
        self.side += 1;
        Ok(())
    }

    fn dork(&mut self, o: &Origin<'_>, d: &Dork) -> Result<()> {
        if d.content.is_empty() {
            return Ok(());
        }
        self.dork
            .execute(params![d.content, d.kind, o.received_at, o.side_increment])?;
        self.side += 1;
        Ok(())
    }

    fn metadata(&mut self, o: &Origin<'_>, m: &P0fMetadata) -> Result<()> {
        if m.ip.is_empty() {
            return Ok(());
        }
        self.metadata
            .execute(params![m.ip, m.os, m.app, m.link, m.uptime, o.received_at])?;
        self.side += 1;
        Ok(())
    }

    /// Logs the roll-up increments (see [`super::rollup_db`]), forgets log rows up to
    /// `applied` and bumps the counters; call once, last, inside the transaction.
    fn finish(self, c: &Connection, raw_delta: i64, applied: i64) -> Result<(u64, u64)> {
        let Writer {
            rollups,
            sessions,
            credentials,
            side,
            runs,
            ..
        } = self;
        runs.save(c)?;
        if !rollups.is_empty() {
            c.prepare_cached("INSERT INTO rollup_log (deltas) VALUES (?1)")?
                .execute([rollups.encode()])?;
        }
        if applied > 0 {
            c.prepare_cached("DELETE FROM rollup_log WHERE id <= ?1")?
                .execute([applied])?;
        }
        let mut bump = c.prepare_cached(BUMP_COUNTER)?;
        for (name, delta) in [
            ("raw_messages", raw_delta),
            ("sessions", sessions),
            ("credentials", credentials),
        ] {
            if delta != 0 {
                bump.execute(params![name, delta])?;
            }
        }
        Ok((sessions.max(0) as u64, side))
    }
}

/// Writes a batch [`prepare`]d beforehand, in one transaction; `applied` is the last
/// roll-up log id known to be applied.
pub(super) fn insert_batch(
    c: &mut Connection,
    batch: &[IngestItem],
    prepared: Prepared,
    applied: i64,
) -> Result<BatchResult> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = BatchResult {
        raw_ids: Vec::with_capacity(batch.len()),
        ..BatchResult::default()
    };
    let mut last_seen: HashMap<&str, i64> = HashMap::new();
    let mut w = Writer::new(&tx, prepared)?;
    for item in batch {
        let raw = &item.raw;
        let received_at = us(raw.received_at);
        let (status, error) = match &item.outcome {
            Ok(_) => (RawStatus::Normalized, None),
            Err(e) => (RawStatus::Error, Some(e.as_str())),
        };
        let raw_id = w.raw.insert(params![
            raw.channel,
            raw.ident,
            received_at,
            &raw.payload[..],
            status.as_str(),
            error
        ])?;
        out.raw_ids.push(raw_id);
        let seen = last_seen.entry(raw.ident.as_str()).or_insert(received_at);
        *seen = (*seen).max(received_at);
        match &item.outcome {
            Ok(records) => {
                let origin = Origin {
                    raw_id,
                    channel: &raw.channel,
                    ident: &raw.ident,
                    received_at,
                    side_increment: 1,
                };
                w.records(&origin, records)?;
            }
            Err(_) => out.errors += 1,
        }
    }
    out.session_ids = std::mem::take(&mut w.session_ids);
    if let Some(&last) = out.session_ids.last() {
        credential_terms::merge_if_due(&tx, w.terms, last)?;
    }
    let (sessions, side) = w.finish(&tx, batch.len() as i64, applied)?;
    out.sessions = sessions;
    out.side_records = side;
    {
        let mut touch = tx.prepare_cached(TOUCH_SENSOR)?;
        for (ident, at) in last_seen {
            touch.execute(params![ident, at])?;
        }
    }
    tx.commit()?;
    Ok(out)
}

/// A stored session's roll-up fields, read back to undo its counts.
struct OldSession {
    id: i64,
    ts: i64,
    honeypot: String,
    sensor: String,
    channel: String,
    destination_port: Option<u16>,
    source_ip: Option<String>,
    country: Option<String>,
    protocol: Option<String>,
    signature: Option<String>,
}

pub(super) fn renormalize_batch(
    c: &mut Connection,
    items: Vec<(i64, Outcome)>,
    applied: i64,
) -> Result<BatchResult> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = BatchResult::default();
    let mut w = Writer::new(
        &tx,
        Prepared {
            sessions: VecDeque::new(),
            rollups: Rollups::default(),
        },
    )?;
    let mut removed_sessions = 0i64;
    let mut removed_credentials = 0i64;
    {
        let mut get_raw = tx.prepare_cached(
            "SELECT channel, ident, received_at, status FROM raw_messages WHERE id = ?1",
        )?;
        let mut old_sessions = tx.prepare_cached(
            "SELECT id, ts, honeypot, sensor, channel, destination_port, source_ip,
                    country_code, protocol, signature
             FROM sessions WHERE raw_id = ?1",
        )?;
        let mut old_credentials =
            tx.prepare_cached("SELECT username, password FROM credentials WHERE session_id = ?1")?;
        let mut delete_credentials =
            tx.prepare_cached("DELETE FROM credentials WHERE session_id = ?1")?;
        let mut delete_sessions = tx.prepare_cached("DELETE FROM sessions WHERE raw_id = ?1")?;
        let mut set_status =
            tx.prepare_cached("UPDATE raw_messages SET status = ?2, error = ?3 WHERE id = ?1")?;

        for (raw_id, outcome) in &items {
            let raw_id = *raw_id;
            let Some((channel, ident, received_at, status)) = get_raw
                .query_row([raw_id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .optional()?
            else {
                continue;
            };
            let old: Vec<OldSession> = old_sessions
                .query_map([raw_id], |r| {
                    Ok(OldSession {
                        id: r.get(0)?,
                        ts: r.get(1)?,
                        honeypot: r.get(2)?,
                        sensor: r.get(3)?,
                        channel: r.get(4)?,
                        destination_port: r.get(5)?,
                        source_ip: r.get(6)?,
                        country: r.get(7)?,
                        protocol: r.get(8)?,
                        signature: r.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            for s in &old {
                let hour = hour_of(s.ts);
                w.rollups.session(
                    &Dims {
                        hour,
                        honeypot: &s.honeypot,
                        sensor: &s.sensor,
                        channel: &s.channel,
                        destination_port: s.destination_port,
                        source_ip: s.source_ip.as_deref(),
                        country: s.country.as_deref(),
                        protocol: s.protocol.as_deref(),
                        signature: s.signature.as_deref(),
                    },
                    -1,
                );
                let creds = old_credentials
                    .query_map([s.id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (u, p) in &creds {
                    w.rollups.credential(hour, u, p, -1);
                }
                credential_terms::delete_for(&tx, "SELECT ?1", params![s.id])?;
                removed_credentials += delete_credentials.execute([s.id])? as i64;
            }
            removed_sessions += delete_sessions.execute([raw_id])? as i64;

            let already_counted = RawStatus::parse(&status) == Some(RawStatus::Normalized);
            match outcome {
                Ok(records) => {
                    let origin = Origin {
                        raw_id,
                        channel: &channel,
                        ident: &ident,
                        received_at,
                        side_increment: i64::from(!already_counted),
                    };
                    let mut preps = Vec::new();
                    prep_records(&channel, &ident, records, &mut preps, &mut w.rollups)?;
                    w.preps.extend(preps);
                    w.records(&origin, records)?;
                    set_status.execute(params![
                        raw_id,
                        RawStatus::Normalized.as_str(),
                        None::<String>
                    ])?;
                }
                Err(e) => {
                    set_status.execute(params![raw_id, RawStatus::Error.as_str(), e])?;
                    out.errors += 1;
                }
            }
            out.raw_ids.push(raw_id);
        }
    }
    if removed_sessions > 0 {
        run_counts::rewritten(&tx)?;
    }
    w.sessions -= removed_sessions;
    w.credentials -= removed_credentials;
    let added = w.sessions + removed_sessions;
    let (_, side) = w.finish(&tx, 0, applied)?;
    out.sessions = added.max(0) as u64;
    out.side_records = side;
    tx.commit()?;
    Ok(out)
}

/// Deletes up to `limit` raw messages received before `t`.
pub(super) fn prune_raw(c: &mut Connection, t: DateTime<Utc>, limit: usize) -> Result<u64> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "DELETE FROM raw_messages WHERE id IN (
             SELECT id FROM raw_messages WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)",
        params![us(t), limit as i64],
    )?;
    tx.execute(BUMP_COUNTER, params!["raw_messages", -(n as i64)])?;
    tx.commit()?;
    Ok(n as u64)
}

/// Deletes up to `limit` sessions before `t` with their credentials: (sessions, credentials).
/// Roll-ups are left alone; whole hours go with [`prune_rollups`].
pub(super) fn prune_sessions(
    c: &mut Connection,
    t: DateTime<Utc>,
    limit: usize,
) -> Result<(u64, u64)> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // The same subquery twice in one transaction selects the same rows (ts order, ties by
    // id); deleting credentials first lets us count them.
    let oldest = "SELECT id FROM sessions WHERE ts < ?1 ORDER BY ts, id LIMIT ?2";
    credential_terms::delete_for(&tx, oldest, params![us(t), limit as i64])?;
    let creds = tx.execute(
        &format!("DELETE FROM credentials WHERE session_id IN ({oldest})"),
        params![us(t), limit as i64],
    )?;
    let sessions = tx.execute(
        &format!("DELETE FROM sessions WHERE id IN ({oldest})"),
        params![us(t), limit as i64],
    )?;
    runs::forget_empty(
        &tx,
        "SELECT run FROM session_runs WHERE min_ts < ?1",
        params![us(t)],
    )?;
    if sessions > 0 {
        run_counts::pruned(&tx, us(t))?;
    }
    tx.execute(BUMP_COUNTER, params!["sessions", -(sessions as i64)])?;
    tx.execute(BUMP_COUNTER, params!["credentials", -(creds as i64)])?;
    tx.commit()?;
    Ok((sessions as u64, creds as u64))
}

/// Deletes up to `limit` roll-up rows of `dim` for hours that ended at or before `t`.
pub(super) fn prune_rollups(
    c: &mut Connection,
    dim: Dimension,
    t: DateTime<Utc>,
    limit: usize,
) -> Result<u64> {
    let mut before = hour_of(us(t));
    if let Some(w) = window::current_hour(c)? {
        // Hours still in the sliding window are subtracted from it when they leave; they
        // must be there then.
        before = before.min(w - window::SPAN);
    }
    let n = c.execute(
        "DELETE FROM rollup_hourly WHERE (dim, hour, value) IN (
             SELECT dim, hour, value FROM rollup_hourly WHERE dim = ?1 AND hour < ?2 LIMIT ?3)",
        params![dim.code(), before, limit as i64],
    )?;
    Ok(n as u64)
}
