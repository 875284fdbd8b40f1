//! The read path. Every listing is a keyset page over an index; dashboard figures come
//! from the hourly roll-ups.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use apiary_model::{Credential, FileRecord, P0fMetadata, RawEvent, Session};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::conv::{day_bounds, day_of, ip_key, net_range};
use super::credential_terms::{CREDENTIAL_IN, HAS_CREDENTIAL};
use super::rows::{SessionRow, SESSION_COLS};
use super::run_counts::{self, RunCounts, Stamp};
use super::runs::{self, RUN};
use crate::hours::{from_us, hour_range, us, HourSlots, HOUR_US};
use crate::like::like_contains;
use crate::paging::page_of;
use crate::ranking::TopSearch;
use crate::schema::{COUNTED_TABLES, ROW_COUNTERS_SQL};
use crate::search::TextPart;
use crate::types::*;
use crate::Result;

type Paged<T> = Result<(Vec<T>, Option<Cursor>)>;

/// A WHERE clause under construction with its positional arguments.
#[derive(Default)]
struct Where {
    sql: String,
    args: Vec<Value>,
}

impl Where {
    fn and(&mut self, cond: &str, args: impl IntoIterator<Item = Value>) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(cond);
        self.args.extend(args);
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn int(v: i64) -> Value {
    Value::Integer(v)
}

/// The part of a day- or run-led index one query reads.
#[derive(Clone, Copy)]
enum Scope {
    /// No day or run (a listing with neither an address, an ASN nor a credential, or a
    /// caller that adds its own run list); a credential is checked per session.
    All,
    /// One day of the credential terms (required with a credential but no source).
    Day(i64),
    /// One run of the run-led indexes (required with a source address or an ASN); a
    /// credential is then checked per session.
    Run(i64),
}

/// The credential condition of `scope`.
fn credential_cond(w: &mut Where, scope: Scope, s: &str) {
    match scope {
        // Over the day-led credential terms.
        Scope::Day(d) => w.and(CREDENTIAL_IN, [int(d), text(s), int(d), text(s), text(s)]),
        Scope::Run(_) | Scope::All => w.and(HAS_CREDENTIAL, [text(s), text(s)]),
    }
}

/// The filter's conditions plus one part of a free-text search, within `scope`.
fn session_where(f: &SessionFilter, scope: Scope, part: Option<TextPart<'_>>) -> Where {
    let mut w = Where::default();
    match part {
        Some(TextPart::Credential(s)) => credential_cond(&mut w, scope, s),
        Some(TextPart::Signature(s)) => w.and(
            "signature IS NOT NULL AND signature LIKE ? ESCAPE '\\'",
            [text(&like_contains(s))],
        ),
        Some(TextPart::Url(s)) => {
            // The first term is the partial index's WHERE, spelled the same so the
            // planner may use it; the JSON is only parsed for sessions with URLs.
            w.and(
                "instr(details, '\"urls\":') > 0 AND EXISTS (SELECT 1 FROM \
                 json_each(sessions.details, '$.urls') j WHERE j.value LIKE ? ESCAPE '\\')",
                [text(&like_contains(s))],
            )
        }
        None => {}
    }
    if let Some(t) = f.since {
        w.and("ts >= ?", [int(us(t))]);
    }
    if let Some(t) = f.until {
        w.and("ts < ?", [int(us(t))]);
    }
    if let Some(s) = &f.sensor {
        w.and("sensor = ?", [text(s)]);
    }
    if let Some(s) = &f.honeypot {
        w.and("honeypot = ?", [text(s)]);
    }
    if let Some(net) = f.source {
        let (lo, hi) = net_range(net);
        if lo == hi {
            w.and("source_key = ?", [Value::Blob(lo.to_vec())]);
        } else {
            w.and(
                "source_key BETWEEN ? AND ?",
                [Value::Blob(lo.to_vec()), Value::Blob(hi.to_vec())],
            );
        }
    }
    if let Some(p) = f.destination_port {
        w.and("destination_port = ?", [int(p.into())]);
    }
    if let Some(s) = &f.protocol {
        w.and("protocol = ?", [text(s)]);
    }
    if let Some(s) = &f.country {
        w.and("country_code = ?", [text(s)]);
    }
    if let Some(a) = f.asn {
        w.and("asn = ?", [int(a.into())]);
    }
    if let Some(s) = &f.signature {
        // IS NOT NULL lets the planner use the partial index of IDS sessions.
        w.and(
            "signature IS NOT NULL AND signature LIKE ? ESCAPE '\\'",
            [text(&like_contains(s))],
        );
    }
    if let Some(s) = &f.credential {
        credential_cond(&mut w, scope, s);
    }
    match scope {
        Scope::All => {}
        Scope::Day(d) => {
            let (lo, hi) = day_bounds(d);
            w.and("ts >= ? AND ts < ?", [int(lo), int(hi)]);
        }
        Scope::Run(r) => w.and(&format!("{RUN} = ?"), [int(r)]),
    }
    if let Some(s) = &f.channel {
        w.and("channel = ?", [text(s)]);
    }
    if let Some(b) = f.internal {
        w.and("internal = ?", [int(b.into())]);
    }
    w
}

pub(super) fn sessions(c: &Connection, f: &SessionFilter, page: &Page) -> Paged<Session> {
    let Some(q) = f.text.as_deref() else {
        return sessions_part(c, f, None, page);
    };
    let mut parts = Vec::with_capacity(3);
    for part in TextPart::all(q) {
        parts.push(sessions_part(c, f, Some(part), page)?);
    }
    Ok(crate::search::merge(parts, page.capped()))
}

fn sessions_part(
    c: &Connection,
    f: &SessionFilter,
    part: Option<TextPart<'_>>,
    page: &Page,
) -> Paged<Session> {
    let limit = page.capped();
    let cursor = page.after.as_ref().map(Cursor::decode).transpose()?;
    let narrowed;
    let f = match part {
        Some(TextPart::Signature(s)) => match signature_hours(c, f, s)? {
            Some(n) => {
                narrowed = n;
                &narrowed
            }
            None => return Ok((Vec::new(), None)),
        },
        _ => f,
    };
    if run_index(f).is_some() {
        return sessions_by_run(c, f, part, cursor, limit);
    }
    let by_day = f.credential.is_some() || matches!(part, Some(TextPart::Credential(_)));
    if !by_day {
        let rows = session_rows(c, f, part, cursor, Scope::All, limit + 1)?;
        return Ok(page_of(rows, limit));
    }
    // By credential: the terms are led by the day, so walk the days newest first until
    // the page is full.
    let Some((lo, hi)) = day_span(c, f.since, f.until, cursor.map(|(ts, _)| ts))? else {
        return Ok((Vec::new(), None));
    };
    let mut rows = Vec::new();
    for day in (lo..=hi).rev() {
        rows.extend(session_rows(
            c,
            f,
            part,
            cursor,
            Scope::Day(day),
            limit + 1 - rows.len(),
        )?);
        if rows.len() > limit {
            break;
        }
    }
    Ok(page_of(rows, limit))
}

/// The run-led index that narrows `f` best: by source address, else by ASN.
fn run_index(f: &SessionFilter) -> Option<&'static str> {
    if f.source.is_some() {
        Some("sessions_source_run")
    } else if f.asn.is_some() {
        Some("sessions_asn_run")
    } else {
        None
    }
}

/// By source address or ASN: those indexes are led by the run, and runs' time spans may overlap
/// (late events, imports), so walk them by newest span end and stop once the page is
/// full with sessions newer than anything the next run can hold.
fn sessions_by_run(
    c: &Connection,
    f: &SessionFilter,
    part: Option<TextPart<'_>>,
    cursor: Option<(i64, i64)>,
    limit: usize,
) -> Paged<Session> {
    let runs = runs::overlapping(
        c,
        f.since.map(us),
        f.until.map(us),
        cursor.map(|(ts, _)| ts),
    )?;
    let mut rows: Vec<((i64, i64), (Session, Cursor))> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        for row in session_rows(c, f, part, cursor, Scope::Run(run.run), limit + 1)? {
            rows.push((row.1.decode()?, row));
        }
        if rows.len() > limit {
            rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
            rows.truncate(limit + 1);
            let oldest_kept = rows[limit].0 .0;
            if runs.get(i + 1).is_none_or(|next| next.max_ts < oldest_kept) {
                break;
            }
        }
    }
    rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
    Ok(page_of(rows.into_iter().map(|(_, r)| r).collect(), limit))
}

/// A signature search reads the partial index of IDS sessions, which holds every IDS
/// session of the window: too slow when the text matches few or none. The signature
/// roll-up knows which hours have a signature containing the text (its rows outlive the
/// sessions they count, see `prune_rollups`), so the filter shrinks to the first and last
/// such hour, and to nothing when there is none.
fn signature_hours(c: &Connection, f: &SessionFilter, s: &str) -> Result<Option<SessionFilter>> {
    let (lo, hi) = match (f.since, f.until) {
        (Some(a), Some(b)) => hour_range(a, b),
        (a, b) => (
            a.map_or(i64::MIN, |t| hour_range(t, t).0),
            b.map_or(i64::MAX, |t| hour_range(t, t).1),
        ),
    };
    let mut st = c.prepare_cached(
        "SELECT min(hour), max(hour) FROM rollup_hourly \
         WHERE dim = ?1 AND hour >= ?2 AND hour < ?3 AND value LIKE ?4 ESCAPE '\\'",
    )?;
    let (first, last): (Option<i64>, Option<i64>) = st.query_row(
        params![Dimension::Signature.code(), lo, hi, like_contains(s)],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(None);
    };
    let hour = |h: i64| DateTime::from_timestamp_micros(h.saturating_mul(HOUR_US));
    let mut out = f.clone();
    if let Some(t) = hour(first) {
        out.since = Some(f.since.map_or(t, |s| s.max(t)));
    }
    if let Some(t) = hour(last.saturating_add(1)) {
        out.until = Some(f.until.map_or(t, |u| u.min(t)));
    }
    Ok(Some(out))
}

/// Up to `n` sessions matching `f` within `scope`, newest first.
fn session_rows(
    c: &Connection,
    f: &SessionFilter,
    part: Option<TextPart<'_>>,
    cursor: Option<(i64, i64)>,
    scope: Scope,
    n: usize,
) -> Result<Vec<(Session, Cursor)>> {
    let mut w = session_where(f, scope, part);
    if let Some((ts, id)) = cursor {
        w.and("(ts, id) < (?, ?)", [int(ts), int(id)]);
    }
    w.args.push(int(n as i64));
    // A run is only worth probing through a run-led index.
    let index = match (scope, run_index(f)) {
        (Scope::Run(_), Some(index)) => format!(" INDEXED BY {index}"),
        _ => String::new(),
    };
    let sql = format!(
        "SELECT {SESSION_COLS} FROM sessions{index}{} ORDER BY ts DESC, id DESC LIMIT ?",
        w.sql
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st
        .query_map(params_from_iter(w.args), SessionRow::read)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|r| {
            let cursor = r.cursor();
            Ok((r.into_session()?, cursor))
        })
        .collect()
}

/// The days (inclusive) that stored sessions in `[since, until]` (and at or before
/// `upto`) can fall on; `None` when there are none.
fn day_span(
    c: &Connection,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    upto: Option<i64>,
) -> Result<Option<(i64, i64)>> {
    // Two statements: SQLite answers a lone MIN or MAX from the ts index in one probe.
    let first: Option<i64> = c
        .prepare_cached("SELECT MIN(ts) FROM sessions")?
        .query_row([], |r| r.get(0))?;
    let last: Option<i64> = c
        .prepare_cached("SELECT MAX(ts) FROM sessions")?
        .query_row([], |r| r.get(0))?;
    let (Some(mut lo), Some(mut hi)) = (first, last) else {
        return Ok(None);
    };
    if let Some(t) = since {
        lo = lo.max(us(t));
    }
    if let Some(t) = until {
        hi = hi.min(us(t));
    }
    if let Some(t) = upto {
        hi = hi.min(t);
    }
    Ok((lo <= hi).then(|| (day_of(lo), day_of(hi))))
}

pub(super) fn session(c: &Connection, id: i64) -> Result<Option<Session>> {
    c.prepare_cached(&format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE id = ?1"
    ))?
    .query_row([id], SessionRow::read)
    .optional()?
    .map(SessionRow::into_session)
    .transpose()
}

const RAW_COLS: &str = "id, channel, ident, received_at, payload, status, error";

fn raw_row(r: &Row<'_>) -> rusqlite::Result<StoredRaw> {
    let status: String = r.get(5)?;
    Ok(StoredRaw {
        event: RawEvent {
            id: Some(r.get(0)?),
            channel: r.get(1)?,
            ident: r.get(2)?,
            received_at: from_us(r.get(3)?),
            payload: Bytes::from(r.get::<_, Vec<u8>>(4)?),
        },
        status: RawStatus::parse(&status).unwrap_or(RawStatus::Pending),
        error: r.get(6)?,
    })
}

pub(super) fn raw(c: &Connection, id: i64) -> Result<Option<StoredRaw>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {RAW_COLS} FROM raw_messages WHERE id = ?1"
    ))?
    .query_row([id], raw_row)
    .optional()?)
}

pub(super) fn raw_messages(c: &Connection, q: &RawQuery, page: &Page) -> Paged<StoredRaw> {
    let limit = page.capped();
    let mut w = Where::default();
    if let Some(ch) = &q.channel {
        w.and("channel = ?", [text(ch)]);
    }
    if let Some(i) = &q.ident {
        w.and("ident = ?", [text(i)]);
    }
    if let Some(s) = q.status {
        w.and("status = ?", [text(s.as_str())]);
    }
    if let Some(t) = &q.text {
        // Blob against blob: a byte search that also works on binary payloads.
        w.and(
            "instr(payload, ?) > 0",
            [Value::Blob(t.as_bytes().to_vec())],
        );
    }
    if let Some(cursor) = &page.after {
        let (_, id) = cursor.decode()?;
        w.and("id < ?", [int(id)]);
    }
    w.args.push(int(limit as i64 + 1));
    let sql = format!(
        "SELECT {RAW_COLS} FROM raw_messages{} ORDER BY id DESC LIMIT ?",
        w.sql
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st
        .query_map(params_from_iter(w.args), raw_row)?
        .map(|r| {
            r.map(|raw| {
                let id = raw.event.id.unwrap_or_default();
                (raw, Cursor::encode(id, id))
            })
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page_of(rows, limit))
}

pub(super) fn raw_for_renormalize(
    c: &Connection,
    f: &RawFilter,
    after_id: i64,
    limit: usize,
) -> Result<Vec<RawEvent>> {
    let mut w = Where::default();
    w.and("id > ?", [int(after_id)]);
    if let Some(ch) = &f.channel {
        w.and("channel = ?", [text(ch)]);
    }
    if let Some(t) = f.since {
        w.and("received_at >= ?", [int(us(t))]);
    }
    if f.only_errors {
        // The first term matches the partial index's WHERE so the planner may use it.
        w.and("status <> 'normalized' AND status = 'error'", []);
    }
    w.args.push(int(limit.clamp(1, Page::MAX) as i64));
    let sql = format!(
        "SELECT {RAW_COLS} FROM raw_messages{} ORDER BY id LIMIT ?",
        w.sql
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st
        .query_map(params_from_iter(w.args), |r| raw_row(r).map(|s| s.event))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn top(
    c: &Connection,
    dim: Dimension,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<(String, u64)>> {
    let (lo, hi) = hour_range(since, until);
    let limit = limit.clamp(1, Page::MAX);
    if let Some(rows) = super::window::top(c, dim, lo, hi, limit)? {
        return Ok(rows);
    }
    // Summed here rather than with GROUP BY: SQLite would feed every (hour, value) row
    // through a sorter; a hash map over the primary-key range scan is several times
    // faster for high-cardinality dimensions (source addresses, passwords).
    let mut st = c.prepare_cached(
        "SELECT value, count FROM rollup_hourly WHERE dim = ?1 AND hour >= ?2 AND hour < ?3",
    )?;
    let mut sums: HashMap<Box<str>, i64> = HashMap::new();
    let mut rows = st.query(params![dim.code(), lo, hi])?;
    while let Some(r) = rows.next()? {
        let value = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        let n: i64 = r.get(1)?;
        match sums.get_mut(value) {
            Some(sum) => *sum += n,
            None => {
                sums.insert(value.into(), n);
            }
        }
    }
    let mut out: Vec<(Box<str>, i64)> = sums.into_iter().filter(|(_, n)| *n > 0).collect();
    // Most frequent first, ties by value (byte order, like SQLite's BINARY collation).
    let order =
        |a: &(Box<str>, i64), b: &(Box<str>, i64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if out.len() > limit {
        out.select_nth_unstable_by(limit - 1, order);
        out.truncate(limit);
    }
    out.sort_unstable_by(order);
    Ok(out
        .into_iter()
        .map(|(v, n)| (v.into_string(), n as u64))
        .collect())
}

pub(super) fn counts_per_hour(
    c: &Connection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    filter: Option<(Dimension, String)>,
) -> Result<Vec<HourCount>> {
    let (lo, hi) = hour_range(since, until);
    let mut slots = HourSlots::new(lo, hi)?;
    let (dim, value) = filter.unwrap_or((Dimension::All, String::new()));
    // One primary-key probe per hour: cheap even for dimensions with many values per hour.
    let mut st = c.prepare_cached(
        "WITH RECURSIVE h(hour) AS (
             SELECT ?3 WHERE ?3 < ?4
             UNION ALL SELECT hour + 1 FROM h WHERE hour + 1 < ?4)
         SELECT h.hour, r.count FROM h
         JOIN rollup_hourly r ON r.dim = ?1 AND r.hour = h.hour AND r.value = ?2",
    )?;
    let mut rows = st.query(params![dim.code(), value, lo, hi])?;
    while let Some(r) = rows.next()? {
        let hour: i64 = r.get(0)?;
        let n: i64 = r.get(1)?;
        slots.set(hour, n);
    }
    Ok(slots.into_counts())
}

pub(super) fn total_sessions(
    c: &Connection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<u64> {
    let (lo, hi) = hour_range(since, until);
    let n: i64 = c
        .prepare_cached(
            "SELECT COALESCE(SUM(count), 0) FROM rollup_hourly
             WHERE dim = ?1 AND hour >= ?2 AND hour < ?3 AND value = ''",
        )?
        .query_row(params![Dimension::All.code(), lo, hi], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// The sessions table read through the run-led source index. Named: without statistics
/// the planner prefers the time index for `ts >= ?` and reads every session since then.
/// Unaliased: SQLite matches the indexed `id >> 16` only when spelled the same.
const SOURCE_INDEX: &str = "sessions INDEXED BY sessions_source_run";

/// Distinct values listed for one attacker.
const STATS_LIST: usize = 100;

pub(super) fn attacker_stats(
    c: &Connection,
    ip: IpAddr,
    since: Option<DateTime<Utc>>,
) -> Result<AttackerStats> {
    let ip = apiary_model::event::canonical_ip(ip);
    let key = ip_key(ip).to_vec();
    let since = since.map_or(i64::MIN, us);
    // One probe of the run-led source index per run that may hold sessions since then.
    let runs = runs::overlapping(c, Some(since), None, None)?;
    if runs.is_empty() {
        return Ok(AttackerStats {
            ip: Some(ip),
            ..AttackerStats::default()
        });
    }
    let scope = format!(
        "{} AND sessions.source_key = ?1 AND sessions.ts >= ?2",
        runs::in_list(&runs)
    );
    // Count, span, ports, honeypots and sensors in one pass over the index entries
    // (every pass probes each run once): a handful of groups, folded here.
    let mut stats = AttackerStats {
        ip: Some(ip),
        ..AttackerStats::default()
    };
    let (mut ports, mut honeypots, mut sensors) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut span: Option<(i64, i64)> = None;
    {
        let mut st = c.prepare(&format!(
            "SELECT destination_port, honeypot, sensor, COUNT(*), MIN(ts), MAX(ts)
             FROM {SOURCE_INDEX} WHERE {scope} GROUP BY 1, 2, 3"
        ))?;
        let mut rows = st.query(params![key, since])?;
        while let Some(r) = rows.next()? {
            if let Some(port) = r.get::<_, Option<u16>>(0)? {
                ports.insert(port);
            }
            honeypots.insert(r.get::<_, String>(1)?);
            sensors.insert(r.get::<_, String>(2)?);
            stats.count += r.get::<_, i64>(3)?.max(0) as u64;
            let (lo, hi): (i64, i64) = (r.get(4)?, r.get(5)?);
            span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    }
    let Some((first, last)) = span else {
        return Ok(stats);
    };
    stats.first_seen = Some(from_us(first));
    stats.last_seen = Some(from_us(last));
    stats.ports = ports.into_iter().collect();
    stats.honeypots = honeypots.into_iter().collect();
    stats.sensors = sensors.into_iter().collect();
    stats.credentials = c
        .prepare(&format!(
            "SELECT c.username, c.password, COUNT(*) AS n
             FROM {SOURCE_INDEX} JOIN credentials c ON c.session_id = sessions.id
             WHERE {scope}
             GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT {STATS_LIST}"
        ))?
        .query_map(params![key, since], |r| {
            Ok((
                Credential {
                    username: r.get(0)?,
                    password: r.get(1)?,
                },
                r.get::<_, i64>(2)? as u64,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // URLs and commands in one pass over the session rows (the other passes read index
    // entries and credentials only); the first STATS_LIST of each in text order.
    let (mut urls, mut commands) = (BTreeSet::new(), BTreeSet::new());
    {
        let mut st = c.prepare(&format!(
            "SELECT json_extract(details, '$.urls'), json_extract(details, '$.commands')
             FROM {SOURCE_INDEX} WHERE {scope}
             AND (instr(details, '\"urls\":') > 0 OR instr(details, '\"commands\":') > 0)"
        ))?;
        let mut rows = st.query(params![key, since])?;
        while let Some(r) = rows.next()? {
            for (i, set) in [(0, &mut urls), (1, &mut commands)] {
                let Some(list) = r.get::<_, Option<String>>(i)? else {
                    continue;
                };
                // Stored by our own serializer: arrays of strings; anything else is skipped.
                let values: Vec<serde_json::Value> =
                    serde_json::from_str(&list).unwrap_or_default();
                for v in values.into_iter().filter_map(|v| match v {
                    serde_json::Value::String(s) => Some(s),
                    _ => None,
                }) {
                    set.insert(v);
                    if set.len() > STATS_LIST {
                        set.pop_last();
                    }
                }
            }
        }
    }
    stats.urls = urls.into_iter().collect();
    stats.commands = commands.into_iter().collect();
    Ok(stats)
}

pub(super) fn top_sources(
    c: &Connection,
    q: &TopSourcesQuery,
    cache: &RunCounts,
) -> Result<TopSources> {
    crate::ranking::check_query(q)?;
    let (mut search, f) = TopSearch::new(q);
    let (Some(since), Some(until)) = (f.since, f.until) else {
        return Ok(TopSources::default());
    };
    // Before the runs are read: a delete after this is seen by the next query.
    let stamp = Stamp::read(c)?;
    cache.sync(&stamp);
    let runs = runs::overlapping(c, Some(us(since)), Some(us(until)), None)?;
    let probe = Probe::new(&f, q, &runs, stamp);
    let (lo, hi) = hour_range(since, until);
    search.cheap_reads(super::window::indexed_values(
        c,
        Dimension::SourceIp,
        lo,
        hi,
    )?);
    loop {
        let candidates = top(c, Dimension::SourceIp, since, until, search.want())?;
        while let Some(ip) = search.next_probe(&candidates) {
            search.add(probe.groups(c, ip, cache)?);
        }
        if let Some(answer) = search.end_round(candidates.len()) {
            return Ok(answer);
        }
    }
}

/// How one `top_sources` query counts a candidate address. Runs that lie inside the
/// window and are sealed (see [`run_counts`]) are counted per run without the window or
/// filter, kept in the cache, and filtered here; the others are counted by the index with
/// the whole filter. Only filters on what the cached groups hold (honeypot, protocol,
/// port, sensor) take the first way.
struct Probe<'a> {
    f: &'a SessionFilter,
    q: &'a TopSourcesQuery,
    stamp: Stamp,
    kept: Vec<runs::Run>,
    /// For the other runs, if any.
    exact: Option<ExactProbe>,
}

type GroupKey = (String, Option<String>, Option<u16>);

impl<'a> Probe<'a> {
    fn new(f: &'a SessionFilter, q: &'a TopSourcesQuery, runs: &[runs::Run], stamp: Stamp) -> Self {
        let cacheable = f.country.is_none()
            && f.asn.is_none()
            && f.signature.is_none()
            && f.credential.is_none()
            && f.channel.is_none()
            && f.internal.is_none()
            && f.text.is_none();
        let (since, until) = (f.since.map(us), f.until.map(us));
        let inside = |r: &runs::Run| {
            since.is_none_or(|s| r.min_ts >= s) && until.is_none_or(|u| r.max_ts < u)
        };
        let (kept, exact): (Vec<runs::Run>, Vec<runs::Run>) = runs
            .iter()
            .partition(|r| cacheable && stamp.sealed(r) && inside(r));
        let exact = (!exact.is_empty()).then(|| ExactProbe::new(f, &exact, q));
        Self {
            f,
            q,
            stamp,
            kept,
            exact,
        }
    }

    fn groups(
        &self,
        c: &Connection,
        ip: IpAddr,
        cache: &RunCounts,
    ) -> Result<Vec<SourceGroupCount>> {
        let key = ip_key(ip);
        let mut sums: HashMap<GroupKey, u64> = HashMap::new();
        let mut missing = Vec::new();
        for run in &self.kept {
            match cache.get(run.run, key) {
                Some(groups) => self.fold(&groups, &mut sums),
                None => missing.push(*run),
            }
        }
        if !missing.is_empty() {
            for (run, groups) in run_groups(c, key, &missing)? {
                self.fold(&groups, &mut sums);
                cache.put(&self.stamp, &run, key, groups);
            }
        }
        if let Some(exact) = &self.exact {
            for g in exact.groups(c, ip, key)? {
                *sums
                    .entry((g.honeypot, g.protocol, g.destination_port))
                    .or_default() += g.count;
            }
        }
        Ok(sums
            .into_iter()
            .map(
                |((honeypot, protocol, destination_port), count)| SourceGroupCount {
                    source_ip: ip,
                    honeypot,
                    protocol,
                    destination_port,
                    count,
                },
            )
            .collect())
    }

    /// Adds the groups of one run that pass the filter, in the query's grouping.
    fn fold(&self, groups: &[run_counts::Group], sums: &mut HashMap<GroupKey, u64>) {
        let (f, q) = (self.f, self.q);
        for g in groups {
            let protocol = g.protocol.as_deref();
            let pass = f.honeypot.as_deref().is_none_or(|h| h == &*g.honeypot)
                && f.sensor.as_deref().is_none_or(|s| s == &*g.sensor)
                && f.protocol.as_deref().is_none_or(|p| Some(p) == protocol)
                && f.destination_port
                    .is_none_or(|p| Some(p) == g.destination_port)
                && protocol.is_none_or(|p| !q.exclude_protocols.iter().any(|x| x == p));
            if !pass {
                continue;
            }
            let key = match q.grouping {
                SourceGrouping::Honeypot => (g.honeypot.to_string(), None, None),
                SourceGrouping::Service => (
                    g.honeypot.to_string(),
                    g.protocol.as_deref().map(str::to_owned),
                    g.destination_port,
                ),
            };
            *sums.entry(key).or_default() += g.count;
        }
    }
}

/// Every session of source `key` in each of `runs`, grouped per run (runs without any
/// included, empty).
fn run_groups(
    c: &Connection,
    key: [u8; 16],
    runs: &[runs::Run],
) -> Result<Vec<(runs::Run, Arc<[run_counts::Group]>)>> {
    let sql = format!(
        "SELECT {RUN}, honeypot, protocol, destination_port, sensor, COUNT(*) \
         FROM {SOURCE_INDEX} WHERE {} AND source_key = ?1 GROUP BY 1, 2, 3, 4, 5",
        runs::in_list(runs)
    );
    let mut per_run: HashMap<i64, Vec<run_counts::Group>> = HashMap::new();
    // The same few names recur in every run: one allocation each.
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    let mut name = |s: String| {
        names
            .entry(s)
            .or_insert_with_key(|k| Arc::from(&**k))
            .clone()
    };
    let mut st = c.prepare_cached(&sql)?;
    let mut rows = st.query([&key[..]])?;
    while let Some(r) = rows.next()? {
        let group = run_counts::Group {
            honeypot: name(r.get(1)?),
            protocol: r.get::<_, Option<String>>(2)?.map(&mut name),
            destination_port: r.get(3)?,
            sensor: name(r.get(4)?),
            count: r.get::<_, i64>(5)?.max(0) as u64,
        };
        per_run.entry(r.get(0)?).or_default().push(group);
    }
    Ok(runs
        .iter()
        .map(|run| {
            let groups = per_run.remove(&run.run).unwrap_or_default();
            (*run, Arc::from(groups))
        })
        .collect())
}

/// The statement counting one source address's groups exactly in the runs a window cuts:
/// one probe of the run-led source index per run. Built once per query; the address is
/// its last parameter.
struct ExactProbe {
    sql: String,
    args: Vec<Value>,
}

impl ExactProbe {
    fn new(f: &SessionFilter, runs: &[runs::Run], q: &TopSourcesQuery) -> Self {
        let cols = match q.grouping {
            SourceGrouping::Honeypot => "honeypot, NULL, NULL",
            SourceGrouping::Service => "honeypot, protocol, destination_port",
        };
        let mut w = session_where(f, Scope::All, None);
        w.and(&runs::in_list(runs), []);
        if !q.exclude_protocols.is_empty() {
            let marks = vec!["?"; q.exclude_protocols.len()].join(", ");
            w.and(
                &format!("(protocol IS NULL OR protocol NOT IN ({marks}))"),
                q.exclude_protocols.iter().map(|p| text(p)),
            );
        }
        w.and("source_key = ?", [Value::Null]);
        // INDEXED BY: with a honeypot or port filter the planner may otherwise pick that
        // index and read all of its sessions in the window once per probed address.
        let sql = format!(
            "SELECT {cols}, COUNT(*) FROM {SOURCE_INDEX}{} GROUP BY 1, 2, 3",
            w.sql
        );
        Self { sql, args: w.args }
    }

    /// The groups of `ip` (whose key is `key`).
    fn groups(&self, c: &Connection, ip: IpAddr, key: [u8; 16]) -> Result<Vec<SourceGroupCount>> {
        // The same text for every address of one query: prepared once, not once per probe
        // (top 10 attackers by honeypot at 12.4M, 138 probes over 73 runs: 27.8 → 25.0 ms
        // median).
        let mut st = c.prepare_cached(&self.sql)?;
        let n = self.args.len();
        for (i, v) in self.args[..n - 1].iter().enumerate() {
            st.raw_bind_parameter(i + 1, v)?;
        }
        st.raw_bind_parameter(n, &key[..])?;
        let mut rows = st.raw_query();
        let mut counts = Vec::new();
        while let Some(r) = rows.next()? {
            counts.push(SourceGroupCount {
                source_ip: ip,
                honeypot: r.get(0)?,
                protocol: r.get(1)?,
                destination_port: r.get(2)?,
                count: r.get::<_, i64>(3)?.max(0) as u64,
            });
        }
        Ok(counts)
    }
}

/// Keyset condition and order shared by the side-record listings.
fn side_page(page: &Page, key: &str) -> Result<(String, Vec<Value>, usize)> {
    let limit = page.capped();
    let mut w = Where::default();
    if let Some(cursor) = &page.after {
        let (k, id) = cursor.decode()?;
        w.and(&format!("({key}, id) < (?, ?)"), [int(k), int(id)]);
    }
    w.args.push(int(limit as i64 + 1));
    Ok((
        format!("{} ORDER BY {key} DESC, id DESC LIMIT ?", w.sql),
        w.args,
        limit,
    ))
}

/// One keyset page of a side table: `select` (`SELECT ... FROM table`) with the keyset
/// condition and order of [`side_page`] on `key` appended.
fn side_list<T>(
    c: &Connection,
    page: &Page,
    key: &str,
    select: &str,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<(T, Cursor)>,
) -> Paged<T> {
    let (tail, args, limit) = side_page(page, key)?;
    let rows = c
        .prepare_cached(&format!("{select}{tail}"))?
        .query_map(params_from_iter(args), row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page_of(rows, limit))
}

const FILE_COLS: &str =
    "id, sha512, sha256, sha1, md5, size, content_guess, url, first_seen, last_seen, count";

fn file_row(r: &Row<'_>) -> rusqlite::Result<(FileRow, Cursor)> {
    let id: i64 = r.get(0)?;
    let last_seen: i64 = r.get(9)?;
    Ok((
        FileRow {
            file: FileRecord {
                sha512: r.get(1)?,
                sha256: r.get(2)?,
                sha1: r.get(3)?,
                md5: r.get(4)?,
                size: r.get::<_, i64>(5)? as u64,
                content_guess: r.get(6)?,
                data: None,
                url: r.get(7)?,
            },
            first_seen: from_us(r.get(8)?),
            last_seen: from_us(last_seen),
            count: r.get::<_, i64>(10)?.max(0) as u64,
        },
        Cursor::encode(last_seen, id),
    ))
}

pub(super) fn files(c: &Connection, page: &Page) -> Paged<FileRow> {
    let select = format!("SELECT {FILE_COLS} FROM files");
    side_list(c, page, "last_seen", &select, file_row)
}

pub(super) fn file(c: &Connection, hash: &str) -> Result<Option<FileRow>> {
    let col = match hash.len() {
        128 => "sha512",
        64 => "sha256",
        40 => "sha1",
        32 => "md5",
        _ => return Ok(None),
    };
    let found = c
        .prepare_cached(&format!(
            "SELECT {FILE_COLS}, data FROM files WHERE {col} = ?1 ORDER BY id LIMIT 1"
        ))?
        .query_row([hash], |r| {
            let (mut row, _) = file_row(r)?;
            row.file.data = r.get(11)?;
            Ok(row)
        })
        .optional()?;
    Ok(found)
}

pub(super) fn urls(c: &Connection, page: &Page) -> Paged<UrlRow> {
    let (tail, args, limit) = side_page(page, "last_seen")?;
    let rows = c
        .prepare_cached(&format!(
            "SELECT id, url, first_seen, last_seen, count FROM urls{tail}"
        ))?
        .query_map(params_from_iter(args), |r| {
            let id: i64 = r.get(0)?;
            let last_seen: i64 = r.get(3)?;
            Ok((
                id,
                UrlRow {
                    url: r.get(1)?,
                    file_sha512: Vec::new(),
                    first_seen: from_us(r.get(2)?),
                    last_seen: from_us(last_seen),
                    count: r.get::<_, i64>(4)?.max(0) as u64,
                },
                Cursor::encode(last_seen, id),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut files =
        c.prepare_cached("SELECT sha512 FROM url_files WHERE url_id = ?1 ORDER BY sha512")?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, mut row, cursor) in rows {
        row.file_sha512 = files
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        out.push((row, cursor));
    }
    Ok(page_of(out, limit))
}

pub(super) fn dorks(c: &Connection, page: &Page) -> Paged<DorkRow> {
    let select = "SELECT id, content, kind, first_seen, last_seen, count FROM dorks";
    side_list(c, page, "last_seen", select, |r| {
        let last_seen: i64 = r.get(4)?;
        Ok((
            DorkRow {
                content: r.get(1)?,
                kind: r.get(2)?,
                first_seen: from_us(r.get(3)?),
                last_seen: from_us(last_seen),
                count: r.get::<_, i64>(5)?.max(0) as u64,
            },
            Cursor::encode(last_seen, r.get(0)?),
        ))
    })
}

const METADATA_COLS: &str = "id, ip, os, app, link, uptime, first_seen, updated_at";

fn metadata_row(r: &Row<'_>) -> rusqlite::Result<(MetadataRow, Cursor)> {
    let updated: i64 = r.get(7)?;
    Ok((
        MetadataRow {
            metadata: P0fMetadata {
                ip: r.get(1)?,
                os: r.get(2)?,
                app: r.get(3)?,
                link: r.get(4)?,
                uptime: r.get(5)?,
            },
            first_seen: from_us(r.get(6)?),
            updated_at: from_us(updated),
        },
        Cursor::encode(updated, r.get(0)?),
    ))
}

pub(super) fn metadata(c: &Connection, page: &Page) -> Paged<MetadataRow> {
    let select = format!("SELECT {METADATA_COLS} FROM p0f_metadata");
    side_list(c, page, "updated_at", &select, metadata_row)
}

pub(super) fn metadata_for(c: &Connection, ip: &str) -> Result<Option<MetadataRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {METADATA_COLS} FROM p0f_metadata WHERE ip = ?1"
    ))?
    .query_row([ip], metadata_row)
    .optional()?
    .map(|(row, _)| row))
}

pub(super) fn table_counts(c: &Connection) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut st = c.prepare_cached(ROW_COUNTERS_SQL)?;
    for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (name, n) = r?;
        out.push((name, n.max(0) as u64));
    }
    for table in COUNTED_TABLES {
        let n: i64 = c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        out.push(((*table).to_owned(), n as u64));
    }
    Ok(out)
}

pub(super) fn database_size(c: &Connection) -> Result<u64> {
    let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok((pages * size).max(0) as u64)
}

/// Pages in use (not on the free list) of the main file and the attached roll-up file.
pub(super) fn space_used(c: &Connection) -> Result<u64> {
    let mut total = 0i64;
    for schema in ["main", super::rollup_db::ALIAS] {
        let pragma = |name: &str| -> Result<i64> {
            Ok(c.query_row(&format!("PRAGMA {schema}.{name}"), [], |r| r.get(0))?)
        };
        total += (pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?;
    }
    Ok(total.max(0) as u64)
}

/// The oldest raw message's receipt or session's time, whichever is older (one index
/// probe each).
pub(super) fn oldest_data(c: &Connection) -> Result<Option<DateTime<Utc>>> {
    let min = |sql: &str| -> Result<Option<i64>> {
        Ok(c.prepare_cached(sql)?.query_row([], |r| r.get(0))?)
    };
    let raw = min("SELECT MIN(received_at) FROM raw_messages")?;
    let session = min("SELECT MIN(ts) FROM sessions")?;
    Ok(raw.into_iter().chain(session).min().map(from_us))
}
