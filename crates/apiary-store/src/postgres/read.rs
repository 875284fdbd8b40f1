//! The read path: keyset pages over indexes, dashboard figures from the hourly roll-ups.

use std::collections::HashMap;
use std::net::IpAddr;

use apiary_model::{Credential, FileRecord, GeoInfo, P0fMetadata, RawEvent, Session};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ipnet::IpNet;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::json_err;
use super::text::{dec, dec_opt, enc, Jsonb};
use crate::hours::{from_us, hour_range, us, HourSlots};
use crate::like::like_contains;
use crate::paging::page_of;
use crate::ranking::TopSearch;
use crate::schema::{COUNTED_TABLES, ROW_COUNTERS_SQL};
use crate::search::TextPart;
use crate::types::*;
use crate::Result;

type Paged<T> = Result<(Vec<T>, Option<Cursor>)>;
type Param = Box<dyn ToSql + Sync + Send>;

/// A WHERE clause under construction with its numbered arguments.
#[derive(Default)]
struct Where {
    sql: String,
    args: Vec<Param>,
}

impl Where {
    /// Adds an argument and returns its placeholder (`$n`).
    fn arg(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.args.push(Box::new(v));
        format!("${}", self.args.len())
    }

    fn and(&mut self, cond: &str) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(cond);
    }

    /// `col = value` for attacker-length text: the index holds `left(col, 256)`.
    fn text_eq(&mut self, col: &str, value: &str) {
        let p = self.arg(enc(value).into_owned());
        self.and(&format!(
            "left({col}, 256) = left({p}, 256) AND {col} = {p}"
        ));
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.args
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// An IPv4-mapped IPv6 network as the IPv4 network it covers (sessions store IPv4
/// sources as IPv4; the SQLite backend compares both in the mapped form).
fn unmapped(net: IpNet) -> IpNet {
    let net = net.trunc();
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.network().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}

fn session_where(f: &SessionFilter) -> Where {
    session_where_part(f, None)
}

/// The filter's conditions plus one part of a free-text search.
fn session_where_part(f: &SessionFilter, part: Option<TextPart<'_>>) -> Where {
    let mut w = Where::default();
    match part {
        Some(TextPart::Credential(s)) => {
            // Over the credential hash indexes.
            let p = w.arg(enc(s).into_owned());
            w.and(&format!(
                "id IN (SELECT session_id FROM credentials WHERE username = {p} \
                 UNION SELECT session_id FROM credentials WHERE password = {p})"
            ));
        }
        Some(TextPart::Signature(s)) => {
            let p = w.arg(like_contains(&enc(s)));
            w.and(&format!(
                "signature IS NOT NULL AND signature ILIKE {p} ESCAPE '\\'"
            ));
        }
        Some(TextPart::Url(s)) => {
            // The first term is the partial index's predicate.
            let p = w.arg(like_contains(&enc(s)));
            w.and(&format!(
                "details ? 'urls' AND EXISTS (SELECT 1 FROM \
                 jsonb_array_elements_text(details -> 'urls') u(v) WHERE u.v ILIKE {p} ESCAPE '\\')"
            ));
        }
        None => {}
    }
    if let Some(t) = f.since {
        let p = w.arg(t);
        w.and(&format!("ts >= {p}"));
    }
    if let Some(t) = f.until {
        let p = w.arg(t);
        w.and(&format!("ts < {p}"));
    }
    if let Some(s) = &f.sensor {
        w.text_eq("sensor", s);
    }
    if let Some(s) = &f.honeypot {
        w.text_eq("honeypot", s);
    }
    if let Some(net) = f.source {
        let net = unmapped(net);
        if net.prefix_len() == net.max_prefix_len() {
            let p = w.arg(net.addr());
            w.and(&format!("source_ip = {p}"));
        } else {
            let p = w.arg(net.to_string());
            w.and(&format!("source_ip <<= {p}::text::inet"));
        }
    }
    if let Some(port) = f.destination_port {
        let p = w.arg(i32::from(port));
        w.and(&format!("destination_port = {p}"));
    }
    if let Some(s) = &f.protocol {
        w.text_eq("protocol", s);
    }
    if let Some(s) = &f.country {
        w.text_eq("country_code", s);
    }
    if let Some(a) = f.asn {
        let p = w.arg(i64::from(a));
        w.and(&format!("asn = {p}"));
    }
    if let Some(s) = &f.signature {
        // IS NOT NULL lets the planner use the partial index of IDS sessions.
        let p = w.arg(like_contains(&enc(s)));
        w.and(&format!(
            "signature IS NOT NULL AND signature ILIKE {p} ESCAPE '\\'"
        ));
    }
    if let Some(s) = &f.credential {
        let p = w.arg(enc(s).into_owned());
        w.and(&format!(
            "id IN (SELECT session_id FROM credentials WHERE username = {p} \
             UNION SELECT session_id FROM credentials WHERE password = {p})"
        ));
    }
    if let Some(s) = &f.channel {
        w.text_eq("channel", s);
    }
    if let Some(b) = f.internal {
        let p = w.arg(b);
        w.and(&format!("internal = {p}"));
    }
    w
}

const SESSION_COLS: &str = "id, ts, source_ip, source_port, destination_ip, \
    destination_port, protocol, honeypot, channel, sensor, internal, country_code, country, \
    city, latitude, longitude, asn, as_org, destination_geo, raw_id, details";

fn session_row(r: &Row) -> Result<(Session, Cursor)> {
    let id: i64 = r.get(0);
    let ts: DateTime<Utc> = r.get(1);
    let geo = GeoInfo {
        country_code: dec_opt(r.get(11)),
        country: dec_opt(r.get(12)),
        city: dec_opt(r.get(13)),
        latitude: r.get(14),
        longitude: r.get(15),
        asn: r.get::<_, Option<i64>>(16).map(|a| a as u32),
        as_org: dec_opt(r.get(17)),
    };
    // A session stored with an all-empty GeoInfo reads back as `None`: same meaning.
    let source_geo = (geo != GeoInfo::default()).then_some(geo);
    let session = Session {
        id: Some(id),
        timestamp: ts,
        source_ip: r.get(2),
        source_port: r.get::<_, Option<i32>>(3).map(|p| p as u16),
        destination_ip: r.get(4),
        destination_port: r.get::<_, Option<i32>>(5).map(|p| p as u16),
        protocol: dec_opt(r.get(6)),
        honeypot: dec(r.get(7)),
        channel: dec(r.get(8)),
        sensor: dec(r.get(9)),
        internal: r.get(10),
        source_geo,
        destination_geo: r
            .get::<_, Option<Jsonb>>(18)
            .map(|j| j.parse())
            .transpose()
            .map_err(json_err)?,
        raw_id: r.get(19),
        details: r.get::<_, Jsonb>(20).parse().map_err(json_err)?,
    };
    Ok((session, Cursor::encode(us(ts), id)))
}

pub(super) async fn sessions(
    c: &impl GenericClient,
    f: &SessionFilter,
    page: &Page,
) -> Paged<Session> {
    let Some(q) = f.text.as_deref() else {
        return sessions_part(c, f, None, page).await;
    };
    let mut parts = Vec::with_capacity(3);
    for part in TextPart::all(q) {
        parts.push(sessions_part(c, f, Some(part), page).await?);
    }
    Ok(crate::search::merge(parts, page.capped()))
}

async fn sessions_part(
    c: &impl GenericClient,
    f: &SessionFilter,
    part: Option<TextPart<'_>>,
    page: &Page,
) -> Paged<Session> {
    let limit = page.capped();
    let mut w = session_where_part(f, part);
    if let Some(cursor) = &page.after {
        let (ts, id) = cursor.decode()?;
        let (a, b) = (w.arg(from_us(ts)), w.arg(id));
        w.and(&format!("(ts, id) < ({a}, {b})"));
    }
    let n = w.arg(limit as i64 + 1);
    let sql = format!(
        "SELECT {SESSION_COLS} FROM sessions{} ORDER BY ts DESC, id DESC LIMIT {n}",
        w.sql
    );
    let st = c.prepare_cached(&sql).await?;
    let rows = c
        .query(&st, &w.params())
        .await?
        .iter()
        .map(session_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(page_of(rows, limit))
}

pub(super) async fn session(c: &impl GenericClient, id: i64) -> Result<Option<Session>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE id = $1"
        ))
        .await?;
    c.query_opt(&st, &[&id])
        .await?
        .map(|r| session_row(&r).map(|(s, _)| s))
        .transpose()
}

const RAW_COLS: &str = "id, channel, ident, received_at, payload, status, error";

fn raw_row(r: &Row) -> StoredRaw {
    let status: &str = r.get(5);
    StoredRaw {
        event: RawEvent {
            id: Some(r.get(0)),
            channel: dec(r.get(1)),
            ident: dec(r.get(2)),
            received_at: r.get(3),
            payload: Bytes::from(r.get::<_, Vec<u8>>(4)),
        },
        status: RawStatus::parse(status).unwrap_or(RawStatus::Pending),
        error: dec_opt(r.get(6)),
    }
}

pub(super) async fn raw(c: &impl GenericClient, id: i64) -> Result<Option<StoredRaw>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {RAW_COLS} FROM raw_messages WHERE id = $1"
        ))
        .await?;
    Ok(c.query_opt(&st, &[&id]).await?.map(|r| raw_row(&r)))
}

pub(super) async fn raw_messages(
    c: &impl GenericClient,
    q: &RawQuery,
    page: &Page,
) -> Paged<StoredRaw> {
    let limit = page.capped();
    let mut w = Where::default();
    if let Some(ch) = &q.channel {
        w.text_eq("channel", ch);
    }
    if let Some(i) = &q.ident {
        let p = w.arg(enc(i).into_owned());
        w.and(&format!("ident = {p}"));
    }
    if let Some(s) = q.status {
        let p = w.arg(s.as_str());
        w.and(&format!("status = {p}"));
    }
    if let Some(t) = &q.text {
        // A byte search that also works on binary payloads.
        let p = w.arg(t.as_bytes().to_vec());
        w.and(&format!("position({p}::bytea IN payload) > 0"));
    }
    if let Some(cursor) = &page.after {
        let (_, id) = cursor.decode()?;
        let p = w.arg(id);
        w.and(&format!("id < {p}"));
    }
    let n = w.arg(limit as i64 + 1);
    let sql = format!(
        "SELECT {RAW_COLS} FROM raw_messages{} ORDER BY id DESC LIMIT {n}",
        w.sql
    );
    let st = c.prepare_cached(&sql).await?;
    let rows = c
        .query(&st, &w.params())
        .await?
        .iter()
        .map(|r| {
            let raw = raw_row(r);
            let id = raw.event.id.unwrap_or_default();
            (raw, Cursor::encode(id, id))
        })
        .collect();
    Ok(page_of(rows, limit))
}

pub(super) async fn raw_for_renormalize(
    c: &impl GenericClient,
    f: &RawFilter,
    after_id: i64,
    limit: usize,
) -> Result<Vec<RawEvent>> {
    let mut w = Where::default();
    let p = w.arg(after_id);
    w.and(&format!("id > {p}"));
    if let Some(ch) = &f.channel {
        w.text_eq("channel", ch);
    }
    if let Some(t) = f.since {
        let p = w.arg(t);
        w.and(&format!("received_at >= {p}"));
    }
    if f.only_errors {
        // The first term matches the partial index's predicate.
        w.and("status <> 'normalized' AND status = 'error'");
    }
    let n = w.arg(limit.clamp(1, Page::MAX) as i64);
    let sql = format!(
        "SELECT {RAW_COLS} FROM raw_messages{} ORDER BY id LIMIT {n}",
        w.sql
    );
    let st = c.prepare_cached(&sql).await?;
    Ok(c.query(&st, &w.params())
        .await?
        .iter()
        .map(|r| raw_row(r).event)
        .collect())
}

pub(super) async fn top(
    c: &impl GenericClient,
    dim: Dimension,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<(String, u64)>> {
    let (lo, hi) = hour_range(since, until);
    let limit = limit.clamp(1, Page::MAX);
    if let Some(rows) = super::window::top(c, dim, lo, hi, limit).await? {
        return Ok(rows);
    }
    let limit = limit as i64;
    // Ties by value in byte order (COLLATE "C"), like SQLite's BINARY collation.
    let st = c
        .prepare_cached(
            "SELECT value, SUM(count)::bigint AS n FROM rollup_hourly
             WHERE dim = $1 AND hour >= $2 AND hour < $3
             GROUP BY value HAVING SUM(count) > 0
             ORDER BY n DESC, value COLLATE \"C\" LIMIT $4",
        )
        .await?;
    Ok(c.query(&st, &[&(dim.code() as i16), &lo, &hi, &limit])
        .await?
        .iter()
        .map(|r| (dec(r.get(0)), r.get::<_, i64>(1) as u64))
        .collect())
}

pub(super) async fn top_sources(c: &impl GenericClient, q: &TopSourcesQuery) -> Result<TopSources> {
    crate::ranking::check_query(q)?;
    let (mut search, f) = TopSearch::new(q);
    let (Some(since), Some(until)) = (f.since, f.until) else {
        return Ok(TopSources::default());
    };
    loop {
        let candidates = top(c, Dimension::SourceIp, since, until, search.want()).await?;
        // Several addresses per round trip, more as the search goes on: a top 10 is
        // usually decided by its first dozen candidates, while a filter the roll-up cannot
        // see (honeypot, port) may need thousands (one query each took 2 s at 200,000
        // sessions).
        let mut batch = FIRST_PROBES;
        loop {
            let probes = search.next_probes(&candidates, batch);
            if probes.is_empty() {
                break;
            }
            let ips: Vec<IpAddr> = probes.iter().map(|(ip, _)| *ip).collect();
            let mut groups = source_groups(c, &f, &ips, q).await?;
            for (ip, value) in probes {
                search.add_for(&value, groups.remove(&stored_form(ip)).unwrap_or_default());
            }
            batch = (batch * 2).min(MAX_PROBES_PER_QUERY);
        }
        if let Some(answer) = search.end_round(candidates.len()) {
            return Ok(answer);
        }
    }
}

/// Addresses counted by the first probe query of a round, and at most by one.
const FIRST_PROBES: usize = 16;
const MAX_PROBES_PER_QUERY: usize = 512;

/// An address as `sessions.source_ip` holds it (IPv4 as IPv4).
fn stored_form(ip: IpAddr) -> IpAddr {
    unmapped(IpNet::from(ip)).addr()
}

/// Exact grouped counts of some source addresses over the (source_ip, ts, id) index, by
/// address (in [`stored_form`]).
async fn source_groups(
    c: &impl GenericClient,
    f: &SessionFilter,
    ips: &[IpAddr],
    q: &TopSourcesQuery,
) -> Result<HashMap<IpAddr, Vec<SourceGroupCount>>> {
    let f = SessionFilter {
        source: None,
        ..f.clone()
    };
    let mut w = session_where(&f);
    let list: Vec<IpAddr> = ips.iter().map(|ip| stored_form(*ip)).collect();
    let p = w.arg(list);
    w.and(&format!("source_ip = ANY({p})"));
    if !q.exclude_protocols.is_empty() {
        let list: Vec<String> = q
            .exclude_protocols
            .iter()
            .map(|p| enc(p).into_owned())
            .collect();
        let p = w.arg(list);
        w.and(&format!("(protocol IS NULL OR protocol <> ALL({p}))"));
    }
    let cols = match q.grouping {
        SourceGrouping::Honeypot => "honeypot, NULL::text, NULL::integer",
        SourceGrouping::Service => "honeypot, protocol, destination_port",
    };
    let sql = format!(
        "SELECT source_ip, {cols}, COUNT(*) FROM sessions{} GROUP BY 1, 2, 3, 4",
        w.sql
    );
    let st = c.prepare_cached(&sql).await?;
    // Rows report the address as the caller asked for it (the roll-up's text).
    let asked: HashMap<IpAddr, IpAddr> = ips.iter().map(|ip| (stored_form(*ip), *ip)).collect();
    let mut out: HashMap<IpAddr, Vec<SourceGroupCount>> = HashMap::new();
    for r in c.query(&st, &w.params()).await? {
        let stored: IpAddr = r.get(0);
        let asked = asked.get(&stored).copied().unwrap_or(stored);
        out.entry(stored).or_default().push(SourceGroupCount {
            source_ip: asked,
            honeypot: dec(r.get(1)),
            protocol: dec_opt(r.get(2)),
            destination_port: r.get::<_, Option<i32>>(3).map(|p| p as u16),
            count: r.get::<_, i64>(4).max(0) as u64,
        });
    }
    Ok(out)
}

pub(super) async fn counts_per_hour(
    c: &impl GenericClient,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    filter: Option<(Dimension, String)>,
) -> Result<Vec<HourCount>> {
    let (lo, hi) = hour_range(since, until);
    let mut slots = HourSlots::new(lo, hi)?;
    let (dim, value) = filter.unwrap_or((Dimension::All, String::new()));
    let st = c
        .prepare_cached(
            "SELECT hour, count FROM rollup_hourly
             WHERE dim = $1 AND hour >= $3 AND hour < $4 AND md5(value) = md5($2)
                   AND value = $2",
        )
        .await?;
    let value = enc(&value).into_owned();
    for r in c
        .query(&st, &[&(dim.code() as i16), &value, &lo, &hi])
        .await?
    {
        let hour: i64 = r.get(0);
        let n: i64 = r.get(1);
        slots.set(hour, n);
    }
    Ok(slots.into_counts())
}

pub(super) async fn total_sessions(
    c: &impl GenericClient,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<u64> {
    let (lo, hi) = hour_range(since, until);
    let st = c
        .prepare_cached(
            "SELECT COALESCE(SUM(count), 0)::bigint FROM rollup_hourly
             WHERE dim = $1 AND hour >= $2 AND hour < $3 AND md5(value) = md5('')
                   AND value = ''",
        )
        .await?;
    let n: i64 = c
        .query_one(&st, &[&(Dimension::All.code() as i16), &lo, &hi])
        .await?
        .get(0);
    Ok(n.max(0) as u64)
}

/// Distinct values listed for one attacker.
const STATS_LIST: i64 = 100;

pub(super) async fn attacker_stats(
    c: &impl GenericClient,
    ip: IpAddr,
    since: Option<DateTime<Utc>>,
) -> Result<AttackerStats> {
    let ip = apiary_model::event::canonical_ip(ip);
    // Without a start, `$2 IS NULL` keeps one statement shape; the index probe is the
    // address either way.
    let scope = "source_ip = $1 AND ($2::timestamptz IS NULL OR ts >= $2)";
    let st = c
        .prepare_cached(&format!(
            "SELECT COUNT(*), MIN(ts), MAX(ts) FROM sessions WHERE {scope}"
        ))
        .await?;
    let row = c.query_one(&st, &[&ip, &since]).await?;
    let count: i64 = row.get(0);
    let mut stats = AttackerStats {
        ip: Some(ip),
        count: count as u64,
        first_seen: row.get(1),
        last_seen: row.get(2),
        ..AttackerStats::default()
    };
    if count == 0 {
        return Ok(stats);
    }
    let st = c
        .prepare_cached(&format!(
            "SELECT DISTINCT destination_port FROM sessions
             WHERE {scope} AND destination_port IS NOT NULL ORDER BY 1"
        ))
        .await?;
    stats.ports = c
        .query(&st, &[&ip, &since])
        .await?
        .iter()
        .map(|r| r.get::<_, i32>(0) as u16)
        .collect();
    let strings =
        |rows: Vec<Row>| -> Vec<String> { rows.into_iter().map(|r| dec(r.get(0))).collect() };
    for (col, out) in [
        ("honeypot", &mut stats.honeypots),
        ("sensor", &mut stats.sensors),
    ] {
        let st = c
            .prepare_cached(&format!(
                "SELECT DISTINCT {col} COLLATE \"C\" FROM sessions WHERE {scope} ORDER BY 1"
            ))
            .await?;
        *out = strings(c.query(&st, &[&ip, &since]).await?);
    }
    let st = c
        .prepare_cached(&format!(
            "SELECT c.username, c.password, COUNT(*) AS n
             FROM sessions s JOIN credentials c ON c.session_id = s.id
             WHERE s.source_ip = $1 AND ($2::timestamptz IS NULL OR s.ts >= $2)
             GROUP BY 1, 2 ORDER BY n DESC, c.username COLLATE \"C\", c.password COLLATE \"C\"
             LIMIT {STATS_LIST}"
        ))
        .await?;
    stats.credentials = c
        .query(&st, &[&ip, &since])
        .await?
        .iter()
        .map(|r| {
            (
                Credential {
                    username: dec(r.get(0)),
                    password: dec(r.get(1)),
                },
                r.get::<_, i64>(2) as u64,
            )
        })
        .collect();
    for (key, out) in [("urls", &mut stats.urls), ("commands", &mut stats.commands)] {
        let st = c
            .prepare_cached(&format!(
                "SELECT DISTINCT j COLLATE \"C\" FROM sessions s,
                     jsonb_array_elements_text(s.details -> '{key}') AS j
                 WHERE s.source_ip = $1 AND ($2::timestamptz IS NULL OR s.ts >= $2)
                 ORDER BY 1 LIMIT {STATS_LIST}"
            ))
            .await?;
        *out = strings(c.query(&st, &[&ip, &since]).await?);
    }
    Ok(stats)
}

/// Keyset condition and order shared by the side-record listings.
fn side_page(page: &Page, key: &str) -> Result<(String, Where, usize)> {
    let limit = page.capped();
    let mut w = Where::default();
    if let Some(cursor) = &page.after {
        let (k, id) = cursor.decode()?;
        let (a, b) = (w.arg(from_us(k)), w.arg(id));
        w.and(&format!("({key}, id) < ({a}, {b})"));
    }
    let n = w.arg(limit as i64 + 1);
    Ok((
        format!("{} ORDER BY {key} DESC, id DESC LIMIT {n}", w.sql),
        w,
        limit,
    ))
}

/// One keyset page of a side table: `select` (`SELECT ... FROM table`) with the keyset
/// condition and order of [`side_page`] on `key` appended.
async fn side_list<T>(
    c: &impl GenericClient,
    page: &Page,
    key: &str,
    select: &str,
    row: impl Fn(&Row) -> (T, Cursor),
) -> Paged<T> {
    let (tail, w, limit) = side_page(page, key)?;
    let st = c.prepare_cached(&format!("{select}{tail}")).await?;
    let rows = c.query(&st, &w.params()).await?.iter().map(row).collect();
    Ok(page_of(rows, limit))
}

const FILE_COLS: &str =
    "id, sha512, sha256, sha1, md5, size, content_guess, url, first_seen, last_seen, count";

fn file_row(r: &Row) -> (FileRow, Cursor) {
    let id: i64 = r.get(0);
    let last_seen: DateTime<Utc> = r.get(9);
    (
        FileRow {
            file: FileRecord {
                sha512: dec(r.get(1)),
                sha256: dec(r.get(2)),
                sha1: dec(r.get(3)),
                md5: dec(r.get(4)),
                size: r.get::<_, i64>(5) as u64,
                content_guess: dec_opt(r.get(6)),
                data: None,
                url: dec_opt(r.get(7)),
            },
            first_seen: r.get(8),
            last_seen,
            count: r.get::<_, i64>(10).max(0) as u64,
        },
        Cursor::encode(us(last_seen), id),
    )
}

pub(super) async fn files(c: &impl GenericClient, page: &Page) -> Paged<FileRow> {
    let select = format!("SELECT {FILE_COLS} FROM files");
    side_list(c, page, "last_seen", &select, file_row).await
}

pub(super) async fn file(c: &impl GenericClient, hash: &str) -> Result<Option<FileRow>> {
    let col = match hash.len() {
        128 => "sha512",
        64 => "sha256",
        40 => "sha1",
        32 => "md5",
        _ => return Ok(None),
    };
    let st = c
        .prepare_cached(&format!(
            "SELECT {FILE_COLS}, data FROM files WHERE {col} = $1 ORDER BY id LIMIT 1"
        ))
        .await?;
    Ok(c.query_opt(&st, &[&enc(hash).as_ref()]).await?.map(|r| {
        let (mut row, _) = file_row(&r);
        row.file.data = r.get(11);
        row
    }))
}

pub(super) async fn urls(c: &impl GenericClient, page: &Page) -> Paged<UrlRow> {
    let select = "SELECT id, url, first_seen, last_seen, count,
                    ARRAY(SELECT sha512 FROM url_files f WHERE f.url_id = urls.id
                          ORDER BY sha512 COLLATE \"C\")
             FROM urls";
    side_list(c, page, "last_seen", select, |r| {
        let id: i64 = r.get(0);
        let last_seen: DateTime<Utc> = r.get(3);
        (
            UrlRow {
                url: dec(r.get(1)),
                file_sha512: r.get::<_, Vec<String>>(5).into_iter().map(dec).collect(),
                first_seen: r.get(2),
                last_seen,
                count: r.get::<_, i64>(4).max(0) as u64,
            },
            Cursor::encode(us(last_seen), id),
        )
    })
    .await
}

pub(super) async fn dorks(c: &impl GenericClient, page: &Page) -> Paged<DorkRow> {
    let select = "SELECT id, content, kind, first_seen, last_seen, count FROM dorks";
    side_list(c, page, "last_seen", select, |r| {
        let last_seen: DateTime<Utc> = r.get(4);
        (
            DorkRow {
                content: dec(r.get(1)),
                kind: dec(r.get(2)),
                first_seen: r.get(3),
                last_seen,
                count: r.get::<_, i64>(5).max(0) as u64,
            },
            Cursor::encode(us(last_seen), r.get(0)),
        )
    })
    .await
}

const METADATA_COLS: &str = "id, ip, os, app, link, uptime, first_seen, updated_at";

fn metadata_row(r: &Row) -> (MetadataRow, Cursor) {
    let updated: DateTime<Utc> = r.get(7);
    (
        MetadataRow {
            metadata: P0fMetadata {
                ip: dec(r.get(1)),
                os: dec_opt(r.get(2)),
                app: dec_opt(r.get(3)),
                link: dec_opt(r.get(4)),
                uptime: dec_opt(r.get(5)),
            },
            first_seen: r.get(6),
            updated_at: updated,
        },
        Cursor::encode(us(updated), r.get(0)),
    )
}

pub(super) async fn metadata(c: &impl GenericClient, page: &Page) -> Paged<MetadataRow> {
    let select = format!("SELECT {METADATA_COLS} FROM p0f_metadata");
    side_list(c, page, "updated_at", &select, metadata_row).await
}

pub(super) async fn metadata_for(c: &impl GenericClient, ip: &str) -> Result<Option<MetadataRow>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {METADATA_COLS} FROM p0f_metadata WHERE ip = $1"
        ))
        .await?;
    Ok(c.query_opt(&st, &[&enc(ip).as_ref()])
        .await?
        .map(|r| metadata_row(&r).0))
}

pub(super) async fn table_counts(c: &impl GenericClient) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let st = c.prepare_cached(ROW_COUNTERS_SQL).await?;
    for r in c.query(&st, &[]).await? {
        out.push((r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64));
    }
    for table in COUNTED_TABLES {
        let st = c
            .prepare_cached(&format!("SELECT COUNT(*) FROM {table}"))
            .await?;
        let n: i64 = c.query_one(&st, &[]).await?.get(0);
        out.push(((*table).to_owned(), n as u64));
    }
    Ok(out)
}

/// Bytes the store's tables (with indexes and TOAST) occupy in its schema.
pub(super) async fn database_size(c: &impl GenericClient) -> Result<u64> {
    let st = c
        .prepare_cached(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')",
        )
        .await?;
    let n: i64 = c.query_one(&st, &[]).await?.get(0);
    Ok(n.max(0) as u64)
}

/// The oldest raw message's receipt or session's time, whichever is older.
pub(super) async fn oldest_data(c: &impl GenericClient) -> Result<Option<DateTime<Utc>>> {
    let st = c
        .prepare_cached(
            "SELECT LEAST((SELECT MIN(received_at) FROM raw_messages), \
                          (SELECT MIN(ts) FROM sessions))",
        )
        .await?;
    Ok(c.query_one(&st, &[]).await?.get(0))
}
