//! The write path: batches, re-normalization and retention.

use std::collections::HashMap;
use std::pin::pin;

use apiary_model::{Dork, FileRecord, Normalized, P0fMetadata, Session, UrlRecord};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::json_err;
use super::text::{dec, dec_opt, Jsonb, Txt};
use crate::rollups::{origin_of, Dims, Rollups};
use crate::types::{BatchResult, Dimension, IngestItem, RawStatus};
use crate::{Outcome, Result, StoreError};

/// The hour bucket (hours since the epoch) holding `t`.
pub(super) fn hour_of(t: DateTime<Utc>) -> i64 {
    crate::hours::hour_of(t.timestamp_micros())
}

/// Advisory lock class of the writers' shared-row section (second key: the schema).
const WRITE_LOCK_CLASS: i32 = 0x4150_0002;

/// Queues this transaction behind other writers of the same schema until it ends.
pub(super) async fn lock_writers(tx: &Transaction<'_>) -> Result<()> {
    let st = tx
        .prepare_cached(
            "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))",
        )
        .await?;
    tx.execute(&st, &[&WRITE_LOCK_CLASS]).await?;
    Ok(())
}

/// `n` fresh ids of `sequence`, ascending.
async fn next_ids(tx: &Transaction<'_>, sequence: &str, n: usize) -> Result<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let st = tx
        .prepare_cached(&format!(
            "SELECT nextval('{sequence}') FROM generate_series(1, $1::bigint)"
        ))
        .await?;
    let mut ids: Vec<i64> = tx
        .query(&st, &[&(n as i64)])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// One upsert for every changed (dim, hour, value), in key order, and the same
/// increments in the sliding window, which first moves to the current hour. Call
/// under the writers' lock.
async fn flush(rollups: Rollups, tx: &Transaction<'_>) -> Result<()> {
    let mut rows: Vec<(i16, i64, String, i64)> = rollups
        .into_changes()
        .map(|(dim, hour, value, n)| (dim as i16, hour, super::text::enc(&value).into_owned(), n))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_unstable();
    let w = super::window::advance(tx, hour_of(Utc::now())).await?;
    super::window::add(tx, w, &rows).await?;
    let mut dims = Vec::with_capacity(rows.len());
    let mut hours = Vec::with_capacity(rows.len());
    let mut values = Vec::with_capacity(rows.len());
    let mut counts = Vec::with_capacity(rows.len());
    for (d, h, v, n) in rows {
        dims.push(d);
        hours.push(h);
        values.push(v);
        counts.push(n);
    }
    let st = tx
        .prepare_cached(
            "INSERT INTO rollup_hourly AS r (dim, hour, value, count)
             SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::text[], $4::bigint[])
             ON CONFLICT (dim, hour, md5(value)) DO UPDATE SET count = r.count + excluded.count",
        )
        .await?;
    tx.execute(&st, &[&dims, &hours, &values, &counts]).await?;
    Ok(())
}

/// A session about to be inserted, with what it needs besides its model value.
struct NewSession<'a> {
    s: &'a Session,
    channel: &'a str,
    sensor: &'a str,
    /// Index of its raw message in the batch (insert) or its raw id (re-normalization).
    raw: i64,
    details: Jsonb,
    destination_geo: Option<Jsonb>,
}

/// Prepares the sessions among `records` and counts them (+1) in `rollups`.
fn prep_records<'a>(
    channel: &'a str,
    ident: &'a str,
    raw: i64,
    records: &'a [Normalized],
    out: &mut Vec<NewSession<'a>>,
    rollups: &mut Rollups,
) -> Result<()> {
    for r in records {
        let Normalized::Session(s) = r else { continue };
        let (channel, sensor) = origin_of(s, channel, ident);
        let source_ip = s.source_ip.map(|ip| ip.to_string());
        rollups.new_session(s, channel, sensor, source_ip.as_deref());
        out.push(NewSession {
            s,
            channel,
            sensor,
            raw,
            details: Jsonb::of(&s.details).map_err(json_err)?,
            destination_geo: s
                .destination_geo
                .as_ref()
                .map(Jsonb::of)
                .transpose()
                .map_err(json_err)?,
        });
    }
    Ok(())
}

const SESSION_TYPES: [Type; 22] = [
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::INET,
    Type::INT4,
    Type::INET,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::INT8,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::INT8,
    Type::JSONB,
];

/// Inserts sessions (with `raw` holding raw ids) and their credentials with binary COPY;
/// returns (ids of the sessions, credentials written).
async fn copy_sessions(tx: &Transaction<'_>, news: &[NewSession<'_>]) -> Result<(Vec<i64>, i64)> {
    if news.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let ids = next_ids(tx, "sessions_id_seq", news.len()).await?;
    let sink = tx
        .copy_in(
            "COPY sessions (id, ts, source_ip, source_port, destination_ip, destination_port,
                 protocol, honeypot, channel, sensor, internal, country_code, country, city,
                 latitude, longitude, asn, as_org, destination_geo, signature, raw_id, details)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut w = pin!(BinaryCopyInWriter::new(sink, &SESSION_TYPES));
    for (n, id) in news.iter().zip(&ids) {
        let s = n.s;
        let geo = s.source_geo.as_ref();
        let source_port = s.source_port.map(i32::from);
        let destination_port = s.destination_port.map(i32::from);
        let asn = geo.and_then(|g| g.asn).map(i64::from);
        let row: [&(dyn ToSql + Sync); 22] = [
            id,
            &s.timestamp,
            &s.source_ip,
            &source_port,
            &s.destination_ip,
            &destination_port,
            &Txt::opt(s.protocol.as_deref()),
            &Txt::of(&s.honeypot),
            &Txt::of(n.channel),
            &Txt::of(n.sensor),
            &s.internal,
            &Txt::opt(geo.and_then(|g| g.country_code.as_deref())),
            &Txt::opt(geo.and_then(|g| g.country.as_deref())),
            &Txt::opt(geo.and_then(|g| g.city.as_deref())),
            &geo.and_then(|g| g.latitude),
            &geo.and_then(|g| g.longitude),
            &asn,
            &Txt::opt(geo.and_then(|g| g.as_org.as_deref())),
            &n.destination_geo,
            &Txt::opt(s.details.ids.as_ref().map(|a| a.signature.as_str())),
            &n.raw,
            &n.details,
        ];
        w.as_mut().write(&row).await?;
    }
    w.as_mut().finish().await?;

    let mut creds = 0i64;
    if news.iter().any(|n| !n.s.details.credentials.is_empty()) {
        let sink = tx
            .copy_in(
                "COPY credentials (session_id, seq, ts, username, password)
                 FROM STDIN (FORMAT binary)",
            )
            .await?;
        let types = [
            Type::INT8,
            Type::INT4,
            Type::TIMESTAMPTZ,
            Type::TEXT,
            Type::TEXT,
        ];
        let mut w = pin!(BinaryCopyInWriter::new(sink, &types));
        for (n, id) in news.iter().zip(&ids) {
            for (seq, cr) in n.s.details.credentials.iter().enumerate() {
                let seq = seq as i32;
                w.as_mut()
                    .write(&[
                        id,
                        &seq,
                        &n.s.timestamp,
                        &Txt::of(&cr.username),
                        &Txt::of(&cr.password),
                    ])
                    .await?;
                creds += 1;
            }
        }
        w.as_mut().finish().await?;
    }
    Ok((ids, creds))
}

/// Where the side records of one raw message come from.
struct Origin {
    raw_id: i64,
    received_at: DateTime<Utc>,
    /// Count a new sighting (0 when re-normalizing a message that already counted once).
    side_increment: i64,
}

const UPSERT_FILE: &str = "INSERT INTO files AS f (sha512, sha256, sha1, md5, size,
         content_guess, data, url, first_seen, last_seen, count)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)
     ON CONFLICT (sha512) DO UPDATE SET
         first_seen = LEAST(f.first_seen, excluded.first_seen),
         last_seen = GREATEST(f.last_seen, excluded.last_seen),
         count = f.count + $10,
         size = CASE WHEN f.data IS NULL AND excluded.data IS NOT NULL
                     THEN excluded.size ELSE f.size END,
         data = COALESCE(f.data, excluded.data),
         sha256 = CASE WHEN f.sha256 = '' THEN excluded.sha256 ELSE f.sha256 END,
         sha1 = CASE WHEN f.sha1 = '' THEN excluded.sha1 ELSE f.sha1 END,
         md5 = CASE WHEN f.md5 = '' THEN excluded.md5 ELSE f.md5 END,
         content_guess = COALESCE(excluded.content_guess, f.content_guess),
         url = COALESCE(f.url, excluded.url)";

const UPSERT_URL: &str = "INSERT INTO urls AS u (url, first_seen, last_seen, count)
     VALUES ($1, $2, $2, 1)
     ON CONFLICT (md5(url)) DO UPDATE SET
         first_seen = LEAST(u.first_seen, excluded.first_seen),
         last_seen = GREATEST(u.last_seen, excluded.last_seen),
         count = u.count + $3
     RETURNING id";

const INSERT_URL_FILE: &str =
    "INSERT INTO url_files (url_id, sha512) VALUES ($1, $2) ON CONFLICT DO NOTHING";

const UPSERT_DORK: &str = "INSERT INTO dorks AS d (content, kind, first_seen, last_seen, count)
     VALUES ($1, $2, $3, $3, 1)
     ON CONFLICT (md5(content), md5(kind)) DO UPDATE SET
         first_seen = LEAST(d.first_seen, excluded.first_seen),
         last_seen = GREATEST(d.last_seen, excluded.last_seen),
         count = d.count + $4";

const UPSERT_METADATA: &str = "INSERT INTO p0f_metadata AS m
         (ip, os, app, link, uptime, first_seen, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $6)
     ON CONFLICT (ip) DO UPDATE SET
         os = COALESCE(excluded.os, m.os),
         app = COALESCE(excluded.app, m.app),
         link = COALESCE(excluded.link, m.link),
         uptime = COALESCE(excluded.uptime, m.uptime),
         first_seen = LEAST(m.first_seen, excluded.first_seen),
         updated_at = GREATEST(m.updated_at, excluded.updated_at)";

/// Upserts the side records among `records`; returns how many.
async fn side_records(tx: &Transaction<'_>, o: &Origin, records: &[Normalized]) -> Result<u64> {
    let mut n = 0;
    for r in records {
        let done = match r {
            Normalized::Session(_) => false,
            Normalized::File(f) => file(tx, o, f).await?,
            Normalized::Url(u) => url(tx, o, u).await?,
            Normalized::Dork(d) => dork(tx, o, d).await?,
            Normalized::Metadata(m) => metadata(tx, o, m).await?,
        };
        n += u64::from(done);
    }
    Ok(n)
}

async fn file(tx: &Transaction<'_>, o: &Origin, f: &FileRecord) -> Result<bool> {
    if f.sha512.is_empty() {
        // A normalizer bug must not fail (and endlessly retry) the whole batch.
        tracing::debug!(raw_id = o.raw_id, "file record without sha512 skipped");
        return Ok(false);
    }
    let st = tx.prepare_cached(UPSERT_FILE).await?;
    let lower = |s: &str| super::text::enc(&s.to_ascii_lowercase()).into_owned();
    tx.execute(
        &st,
        &[
            &lower(&f.sha512),
            &lower(&f.sha256),
            &lower(&f.sha1),
            &lower(&f.md5),
            &(f.size as i64),
            &Txt::opt(f.content_guess.as_deref()),
            &f.data.as_deref(),
            &Txt::opt(f.url.as_deref()),
            &o.received_at,
            &o.side_increment,
        ],
    )
    .await?;
    Ok(true)
}

async fn url(tx: &Transaction<'_>, o: &Origin, u: &UrlRecord) -> Result<bool> {
    if u.url.is_empty() {
        return Ok(false);
    }
    let st = tx.prepare_cached(UPSERT_URL).await?;
    let id: i64 = tx
        .query_one(&st, &[&Txt::of(&u.url), &o.received_at, &o.side_increment])
        .await?
        .get(0);
    if !u.file_sha512.is_empty() {
        let st = tx.prepare_cached(INSERT_URL_FILE).await?;
        for sha in &u.file_sha512 {
            let sha = super::text::enc(&sha.to_ascii_lowercase()).into_owned();
            tx.execute(&st, &[&id, &sha]).await?;
        }
    }
    Ok(true)
}

async fn dork(tx: &Transaction<'_>, o: &Origin, d: &Dork) -> Result<bool> {
    if d.content.is_empty() {
        return Ok(false);
    }
    let st = tx.prepare_cached(UPSERT_DORK).await?;
    tx.execute(
        &st,
        &[
            &Txt::of(&d.content),
            &Txt::of(&d.kind),
            &o.received_at,
            &o.side_increment,
        ],
    )
    .await?;
    Ok(true)
}

async fn metadata(tx: &Transaction<'_>, o: &Origin, m: &P0fMetadata) -> Result<bool> {
    if m.ip.is_empty() {
        return Ok(false);
    }
    let st = tx.prepare_cached(UPSERT_METADATA).await?;
    tx.execute(
        &st,
        &[
            &Txt::of(&m.ip),
            &Txt::opt(m.os.as_deref()),
            &Txt::opt(m.app.as_deref()),
            &Txt::opt(m.link.as_deref()),
            &Txt::opt(m.uptime.as_deref()),
            &o.received_at,
        ],
    )
    .await?;
    Ok(true)
}

/// Adds to the exact row counters (one statement).
async fn bump_counters(tx: &Transaction<'_>, raw: i64, sessions: i64, creds: i64) -> Result<()> {
    if raw == 0 && sessions == 0 && creds == 0 {
        return Ok(());
    }
    let st = tx
        .prepare_cached(
            "UPDATE counters SET value = value + CASE name
                 WHEN 'raw_messages' THEN $1::bigint WHEN 'sessions' THEN $2::bigint
                 ELSE $3::bigint END
             WHERE name IN ('raw_messages', 'sessions', 'credentials')",
        )
        .await?;
    tx.execute(&st, &[&raw, &sessions, &creds]).await?;
    Ok(())
}

/// What a failed COMMIT leaves: the error and the result the batch has if it did commit.
pub(super) type CommitFailed = (StoreError, BatchResult);

/// Stores a batch in one transaction. The outer error: nothing was committed; the inner
/// one: COMMIT failed and whether it took effect is unknown (see `unsure`).
pub(super) async fn insert_batch(
    c: &mut deadpool_postgres::Client,
    batch: &[IngestItem],
) -> Result<std::result::Result<BatchResult, CommitFailed>> {
    // The CPU part (JSON, roll-up sums) before a connection is busy with it.
    let mut rollups = Rollups::default();
    let mut news = Vec::new();
    for (i, item) in batch.iter().enumerate() {
        if let Ok(records) = &item.outcome {
            prep_records(
                &item.raw.channel,
                &item.raw.ident,
                i as i64,
                records,
                &mut news,
                &mut rollups,
            )?;
        }
    }
    let tx = c.transaction().await?;
    let raw_ids = next_ids(&tx, "raw_messages_id_seq", batch.len()).await?;
    {
        let sink = tx
            .copy_in(
                "COPY raw_messages (id, channel, ident, received_at, payload, status, error)
                 FROM STDIN (FORMAT binary)",
            )
            .await?;
        let types = [
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::BYTEA,
            Type::TEXT,
            Type::TEXT,
        ];
        let mut w = pin!(BinaryCopyInWriter::new(sink, &types));
        for (item, id) in batch.iter().zip(&raw_ids) {
            let raw = &item.raw;
            let (status, error) = match &item.outcome {
                Ok(_) => (RawStatus::Normalized, None),
                Err(e) => (RawStatus::Error, Some(e.as_str())),
            };
            w.as_mut()
                .write(&[
                    id,
                    &Txt::of(&raw.channel),
                    &Txt::of(&raw.ident),
                    &raw.received_at,
                    &&raw.payload[..],
                    &status.as_str(),
                    &Txt::opt(error),
                ])
                .await?;
        }
        w.as_mut().finish().await?;
    }
    for n in &mut news {
        n.raw = raw_ids[n.raw as usize];
    }
    let (session_ids, creds) = copy_sessions(&tx, &news).await?;
    let sessions = session_ids.len() as i64;
    drop(news);

    // Shared rows from here on: one writer at a time.
    lock_writers(&tx).await?;
    let mut out = BatchResult {
        raw_ids: raw_ids.clone(),
        session_ids,
        sessions: sessions as u64,
        ..BatchResult::default()
    };
    let mut last_seen: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for (item, &raw_id) in batch.iter().zip(&raw_ids) {
        let seen = last_seen
            .entry(item.raw.ident.as_str())
            .or_insert(item.raw.received_at);
        *seen = (*seen).max(item.raw.received_at);
        match &item.outcome {
            Ok(records) => {
                let o = Origin {
                    raw_id,
                    received_at: item.raw.received_at,
                    side_increment: 1,
                };
                out.side_records += side_records(&tx, &o, records).await?;
            }
            Err(_) => out.errors += 1,
        }
    }
    flush(rollups, &tx).await?;
    bump_counters(&tx, batch.len() as i64, sessions, creds).await?;
    let mut seen: Vec<(&str, DateTime<Utc>)> = last_seen.into_iter().collect();
    seen.sort_unstable();
    let idents: Vec<String> = seen
        .iter()
        .map(|(i, _)| super::text::enc(i).into_owned())
        .collect();
    let ats: Vec<DateTime<Utc>> = seen.iter().map(|(_, t)| *t).collect();
    let st = tx
        .prepare_cached(
            "UPDATE sensors s SET last_seen = v.at
             FROM unnest($1::text[], $2::timestamptz[]) AS v(ident, at)
             WHERE s.ident = v.ident AND (s.last_seen IS NULL OR s.last_seen < v.at)",
        )
        .await?;
    tx.execute(&st, &[&idents, &ats]).await?;
    Ok(match tx.commit().await {
        Ok(()) => Ok(out),
        Err(e) => Err((e.into(), out)),
    })
}

/// Whether the raw message `id` is stored.
pub(super) async fn raw_exists(c: &impl GenericClient, id: i64) -> Result<bool> {
    let st = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM raw_messages WHERE id = $1)")
        .await?;
    Ok(c.query_one(&st, &[&id]).await?.get(0))
}

pub(super) async fn renormalize_batch(
    c: &mut deadpool_postgres::Client,
    items: Vec<(i64, Outcome)>,
) -> Result<BatchResult> {
    let tx = c.transaction().await?;
    lock_writers(&tx).await?;
    let mut out = BatchResult::default();
    let mut rollups = Rollups::default();
    let mut removed_sessions = 0i64;
    let mut removed_credentials = 0i64;
    let mut side = 0u64;
    // Raw rows and their outcomes, kept so the new sessions can borrow from them.
    let mut found: Vec<(i64, String, String, &Outcome)> = Vec::new();

    let get_raw = tx
        .prepare_cached(
            "SELECT channel, ident, received_at, status FROM raw_messages WHERE id = $1",
        )
        .await?;
    let old_sessions = tx
        .prepare_cached(
            "SELECT id, ts, honeypot, sensor, channel, destination_port, source_ip,
                    country_code, protocol, signature
             FROM sessions WHERE raw_id = $1",
        )
        .await?;
    let old_credentials = tx
        .prepare_cached(
            "SELECT session_id, username, password FROM credentials WHERE session_id = ANY($1)",
        )
        .await?;
    let delete_credentials = tx
        .prepare_cached("DELETE FROM credentials WHERE session_id = ANY($1)")
        .await?;
    let delete_sessions = tx
        .prepare_cached("DELETE FROM sessions WHERE raw_id = $1")
        .await?;
    let set_status = tx
        .prepare_cached("UPDATE raw_messages SET status = $2, error = $3 WHERE id = $1")
        .await?;

    for (raw_id, outcome) in &items {
        let raw_id = *raw_id;
        let Some(row) = tx.query_opt(&get_raw, &[&raw_id]).await? else {
            continue;
        };
        let channel = dec(row.get(0));
        let ident = dec(row.get(1));
        let received_at: DateTime<Utc> = row.get(2);
        let status: String = row.get(3);

        let old = tx.query(&old_sessions, &[&raw_id]).await?;
        let mut hours: HashMap<i64, i64> = HashMap::new();
        let mut ids = Vec::with_capacity(old.len());
        for r in &old {
            let id: i64 = r.get(0);
            let hour = hour_of(r.get(1));
            hours.insert(id, hour);
            ids.push(id);
            let honeypot = dec(r.get(2));
            let sensor = dec(r.get(3));
            let channel = dec(r.get(4));
            let country = dec_opt(r.get(7));
            let protocol = dec_opt(r.get(8));
            let signature = dec_opt(r.get(9));
            let source_ip = r
                .get::<_, Option<std::net::IpAddr>>(6)
                .map(|ip| ip.to_string());
            rollups.session(
                &Dims {
                    hour,
                    honeypot: &honeypot,
                    sensor: &sensor,
                    channel: &channel,
                    destination_port: r.get::<_, Option<i32>>(5).map(|p| p as u16),
                    source_ip: source_ip.as_deref(),
                    country: country.as_deref(),
                    protocol: protocol.as_deref(),
                    signature: signature.as_deref(),
                },
                -1,
            );
        }
        if !ids.is_empty() {
            for r in tx.query(&old_credentials, &[&ids]).await? {
                let hour = hours[&r.get::<_, i64>(0)];
                rollups.credential(hour, &dec(r.get(1)), &dec(r.get(2)), -1);
            }
            removed_credentials += tx.execute(&delete_credentials, &[&ids]).await? as i64;
        }
        removed_sessions += tx.execute(&delete_sessions, &[&raw_id]).await? as i64;

        let already_counted = RawStatus::parse(&status) == Some(RawStatus::Normalized);
        match outcome {
            Ok(records) => {
                let o = Origin {
                    raw_id,
                    received_at,
                    side_increment: i64::from(!already_counted),
                };
                side += side_records(&tx, &o, records).await?;
                tx.execute(
                    &set_status,
                    &[&raw_id, &RawStatus::Normalized.as_str(), &None::<String>],
                )
                .await?;
            }
            Err(e) => {
                tx.execute(
                    &set_status,
                    &[&raw_id, &RawStatus::Error.as_str(), &Txt::of(e)],
                )
                .await?;
                out.errors += 1;
            }
        }
        found.push((raw_id, channel, ident, outcome));
        out.raw_ids.push(raw_id);
    }

    let mut news = Vec::new();
    for (raw_id, channel, ident, outcome) in &found {
        if let Ok(records) = outcome {
            prep_records(channel, ident, *raw_id, records, &mut news, &mut rollups)?;
        }
    }
    let (added, added_creds) = copy_sessions(&tx, &news).await?;
    let added = added.len() as i64;
    drop(news);
    flush(rollups, &tx).await?;
    bump_counters(
        &tx,
        0,
        added - removed_sessions,
        added_creds - removed_credentials,
    )
    .await?;
    tx.commit().await?;
    out.sessions = added.max(0) as u64;
    out.side_records = side;
    Ok(out)
}

/// Deletes up to `limit` raw messages received before `t`.
pub(super) async fn prune_raw(
    c: &mut deadpool_postgres::Client,
    t: DateTime<Utc>,
    limit: usize,
) -> Result<u64> {
    let tx = c.transaction().await?;
    lock_writers(&tx).await?;
    let st = tx
        .prepare_cached(
            "WITH d AS (DELETE FROM raw_messages WHERE id IN (
                 SELECT id FROM raw_messages WHERE received_at < $1
                 ORDER BY received_at LIMIT $2) RETURNING 1)
             SELECT count(*) FROM d",
        )
        .await?;
    let n: i64 = tx.query_one(&st, &[&t, &(limit as i64)]).await?.get(0);
    bump_counters(&tx, -n, 0, 0).await?;
    tx.commit().await?;
    Ok(n as u64)
}

/// Deletes up to `limit` sessions before `t` with their credentials: (sessions, credentials).
pub(super) async fn prune_sessions(
    c: &mut deadpool_postgres::Client,
    t: DateTime<Utc>,
    limit: usize,
) -> Result<(u64, u64)> {
    let tx = c.transaction().await?;
    lock_writers(&tx).await?;
    let st = tx
        .prepare_cached(
            "WITH s AS (DELETE FROM sessions WHERE id IN (
                     SELECT id FROM sessions WHERE ts < $1 ORDER BY ts, id LIMIT $2)
                 RETURNING id),
             c AS (DELETE FROM credentials WHERE session_id IN (SELECT id FROM s) RETURNING 1)
             SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM c)",
        )
        .await?;
    let row = tx.query_one(&st, &[&t, &(limit as i64)]).await?;
    let (s, cr): (i64, i64) = (row.get(0), row.get(1));
    bump_counters(&tx, 0, -s, -cr).await?;
    tx.commit().await?;
    Ok((s as u64, cr as u64))
}

/// Deletes up to `limit` roll-up rows of `dim` for hours that ended at or before `t`.
pub(super) async fn prune_rollups(
    c: &impl GenericClient,
    dim: Dimension,
    t: DateTime<Utc>,
    limit: usize,
) -> Result<u64> {
    let mut before = hour_of(t);
    if let Some(w) = super::window::current_hour(c).await? {
        // Hours still in the sliding window are subtracted from it when they leave; they
        // must be there then.
        before = before.min(w - crate::window::SPAN);
    }
    let st = c
        .prepare_cached(
            "DELETE FROM rollup_hourly WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM rollup_hourly WHERE dim = $1 AND hour < $2 LIMIT $3))",
        )
        .await?;
    let n = c
        .execute(&st, &[&(dim.code() as i16), &before, &(limit as i64)])
        .await?;
    Ok(n)
}
