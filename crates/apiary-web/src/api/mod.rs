//! The REST API under `/api/`, MHN's paths and shapes: lists are
//! `{"data": [...], "meta": {"size", "limit", "next_cursor", "query"}}`.
//!
//! Differences from MHN, on purpose: every endpoint needs a key or a session; `limit`
//! defaults to 100 (at most 10,000) and `meta.next_cursor` continues; the api_key is never
//! echoed; hpfeeds secrets go to admins only; `attacker_stats` returns real figures.

pub mod auth;
pub mod openapi;
pub mod sensors;

use apiary_model::Session;
use apiary_store::{Cursor, RawQuery, SourceGrouping, StoredRaw, TopSources, TopSourcesQuery};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::ops;
use crate::query::{iso, parse_ip_path, Params, DEFAULT_LIMIT};
use crate::state::AppState;

/// `{"data": [...], "meta": {...}}`.
pub fn list(rows: Vec<Value>, p: &Params, limit: usize, next: Option<Cursor>) -> Json<Value> {
    Json(json!({
        "data": rows,
        "meta": {
            "size": rows.len(),
            "limit": limit,
            "next_cursor": next.map(|c| c.0),
            "query": p.echo(),
        }
    }))
}

/// A session in MHN's shape (plus Apiary's fields); `full` adds details and geo.
pub fn session_json(s: &Session, full: bool) -> Value {
    let geo = s.source_geo.as_ref();
    let mut v = json!({
        "_id": s.id.map(|i| i.to_string()),
        "id": s.id,
        "protocol": s.protocol,
        "source_ip": s.source_ip.map(|i| i.to_string()),
        "source_port": s.source_port,
        "destination_ip": s.destination_ip.map(|i| i.to_string()),
        "destination_port": s.destination_port,
        "honeypot": s.honeypot,
        "timestamp": iso(s.timestamp),
        "identifier": s.sensor,
        "channel": s.channel,
        "internal": s.internal,
        "country_code": geo.and_then(|g| g.country_code.clone()),
        "asn": geo.and_then(|g| g.asn),
    });
    if full {
        v["details"] = serde_json::to_value(&s.details).unwrap_or(Value::Null);
        v["source_geo"] = serde_json::to_value(&s.source_geo).unwrap_or(Value::Null);
        v["destination_geo"] = serde_json::to_value(&s.destination_geo).unwrap_or(Value::Null);
        v["raw_id"] = json!(s.raw_id);
    }
    v
}

/// A payload as JSON: the object if it parses, else text, else hex (MHN's rule).
pub fn payload_json(bytes: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return v;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => Value::String(hex::encode(bytes)),
    }
}

fn raw_json(r: &StoredRaw) -> Value {
    json!({
        "_id": r.event.id.map(|i| i.to_string()),
        "id": r.event.id,
        "ident": r.event.ident,
        "channel": r.event.channel,
        "payload": payload_json(&r.event.payload),
        "timestamp": iso(r.event.received_at),
        "status": r.status.as_str(),
        "error": r.error,
    })
}

/// `GET /api/session/`.
pub async fn sessions(State(st): State<AppState>, _c: Caller, p: Params) -> AppResult<Json<Value>> {
    let page = p.page(DEFAULT_LIMIT)?;
    let limit = page.limit;
    let (rows, next) =
        ops::find_sessions(&*st.store, p.session_filter()?, p.get("q"), page).await?;
    let data = rows.iter().map(|s| session_json(s, false)).collect();
    Ok(list(data, &p, limit, next))
}

fn parse_id(id: &str) -> AppResult<i64> {
    id.parse().map_err(|_| AppError::NotFound)
}

/// `GET /api/session/<id>/`.
pub async fn session(
    State(st): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let s = st
        .store
        .session(parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(session_json(&s, true)))
}

/// `GET /api/feed/`: raw messages, newest first.
pub async fn feed(State(st): State<AppState>, _c: Caller, p: Params) -> AppResult<Json<Value>> {
    let page = p.page(DEFAULT_LIMIT)?;
    let limit = page.limit;
    let since = p.hours_ago(None)?;
    let q = RawQuery {
        channel: p.get("channel").map(str::to_owned),
        ident: p.get("ident").map(str::to_owned),
        text: p.get("payload").map(str::to_owned),
        status: None,
    };
    let (rows, mut next) = st.store.raw_messages(q, page).await?;
    let mut data = Vec::with_capacity(rows.len());
    for r in &rows {
        // Newest first: once one is older than the window, all the rest are too.
        if since.is_some_and(|s| r.event.received_at < s) {
            next = None;
            break;
        }
        data.push(raw_json(r));
    }
    Ok(list(data, &p, limit, next))
}

/// `GET /api/feed/<id>/`.
pub async fn feed_one(
    State(st): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let r = st
        .store
        .raw(parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(raw_json(&r)))
}

/// The busiest (source, group) pairs of the filtered window (default last 4 h), from the
/// store's roll-ups and source index (`Store::top_sources`).
async fn top_sources(
    st: &AppState,
    p: &Params,
    grouping: SourceGrouping,
    exclude_protocols: &[&str],
) -> AppResult<TopSources> {
    let limit = p.page(DEFAULT_LIMIT)?.limit;
    let mut filter = p.session_filter()?;
    if filter.since.is_none() {
        filter.since = p.hours_ago(Some(4))?;
    }
    Ok(st
        .store
        .top_sources(TopSourcesQuery {
            filter,
            grouping,
            exclude_protocols: exclude_protocols.iter().map(|s| (*s).to_owned()).collect(),
            limit,
        })
        .await?)
}

fn aggregate_meta(p: &Params, query: &str, size: usize, truncated: bool) -> Value {
    json!({
        "size": size,
        "query": query,
        "options": p.echo(),
        "truncated": truncated,
    })
}

/// `GET /api/top_attackers/`: `{source_ip, honeypot, count}` by count, default last 4 h.
pub async fn top_attackers(
    State(st): State<AppState>,
    _c: Caller,
    p: Params,
) -> AppResult<Json<Value>> {
    let top = top_sources(&st, &p, SourceGrouping::Honeypot, &[]).await?;
    let data: Vec<Value> = top
        .rows
        .iter()
        .map(|r| json!({"source_ip": r.source_ip.to_string(), "honeypot": r.honeypot, "count": r.count}))
        .collect();
    let meta = aggregate_meta(&p, "top_attackers", data.len(), top.truncated);
    Ok(Json(json!({"data": data, "meta": meta})))
}

type IntelKey = (String, String, String, Option<u16>);

/// MHN's intel feed rows: pcap (p0f) and ftpdatalisten sessions left out; a missing
/// protocol reads "RDP" on port 3389, else "".
async fn intel_rows(st: &AppState, p: &Params) -> AppResult<(Vec<(IntelKey, u64)>, bool)> {
    let top = top_sources(st, p, SourceGrouping::Service, &["pcap", "ftpdatalisten"]).await?;
    let rows = top
        .rows
        .into_iter()
        .map(|r| {
            let proto = match r.protocol {
                Some(x) => x,
                None if r.destination_port == Some(3389) => "RDP".to_owned(),
                None => String::new(),
            };
            (
                (
                    r.source_ip.to_string(),
                    r.honeypot,
                    proto,
                    r.destination_port,
                ),
                r.count,
            )
        })
        .collect();
    Ok((rows, top.truncated))
}

/// `GET /api/intel_feed/`.
pub async fn intel_feed(
    State(st): State<AppState>,
    _c: Caller,
    p: Params,
) -> AppResult<Json<Value>> {
    let (rows, truncated) = intel_rows(&st, &p).await?;
    let mut data = Vec::with_capacity(rows.len());
    for ((ip, hp, proto, port), n) in rows {
        let meta = st.store.metadata_for(&ip).await?;
        data.push(json!({
            "source_ip": ip, "honeypot": hp, "protocol": proto,
            "destination_port": port, "count": n,
            "meta": meta.map(|m| vec![m.metadata]).unwrap_or_default(),
        }));
    }
    let meta = aggregate_meta(&p, "intel_feed", data.len(), truncated);
    Ok(Json(json!({"data": data, "meta": meta})))
}

fn tag_clean(s: &str) -> String {
    s.replace(',', "").replace(['\t', '\r', '\n'], " ")
}

/// `GET /api/intel_feed.csv/`: MHN's TSV `source_ip\tcount\ttags`. Values are guarded
/// against spreadsheet formula injection like the CSV export.
pub async fn intel_feed_csv(
    State(st): State<AppState>,
    _c: Caller,
    p: Params,
) -> AppResult<Response> {
    let (rows, _) = intel_rows(&st, &p).await?;
    let mut out = String::from("source_ip\tcount\ttags\n");
    for ((ip, hp, proto, port), n) in rows {
        let mut tags = vec![tag_clean(&hp)];
        if !proto.is_empty() {
            tags.push(tag_clean(&proto));
        }
        if let Some(port) = port {
            tags.push(format!("port-{port}"));
        }
        if let Some(m) = st.store.metadata_for(&ip).await? {
            for v in [m.metadata.app, m.metadata.os, m.metadata.link]
                .into_iter()
                .flatten()
            {
                tags.push(tag_clean(&v));
            }
        }
        let tags = crate::export::formula_guard(&tags.join(","));
        out.push_str(&format!("{ip}\t{n}\t{tags}\n"));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response())
}

/// `GET /api/attacker_stats/<ip>/`: default window 720 h.
pub async fn attacker_stats(
    State(st): State<AppState>,
    _c: Caller,
    Path(ip): Path<String>,
    p: Params,
) -> AppResult<Json<Value>> {
    let ip = parse_ip_path(&ip)?;
    let since = p.hours_ago(Some(720))?;
    let a = st.store.attacker_stats(ip, since).await?;
    let data = json!({
        "ip": ip.to_string(),
        "count": a.count,
        "ports": a.ports,
        "honeypots": a.honeypots,
        "num_sensors": a.sensors.len(),
        "sensors": a.sensors,
        "first_seen": a.first_seen.map(iso),
        "last_seen": a.last_seen.map(iso),
        "credentials": a.credentials.iter().map(|(c, n)| json!({
            "username": c.username, "password": c.password, "count": n})).collect::<Vec<_>>(),
        "urls": a.urls,
        "commands": a.commands,
    });
    Ok(Json(json!({
        "data": data,
        "meta": {"query": "attacker_stats", "options": p.echo()},
    })))
}

/// `GET /api/file/` (or `?hash=` for one, with its bytes as hex).
pub async fn files(State(st): State<AppState>, _c: Caller, p: Params) -> AppResult<Json<Value>> {
    let page = p.page(DEFAULT_LIMIT)?;
    let limit = page.limit;
    let file_json = |f: &apiary_store::FileRow| {
        json!({
            "_id": f.file.sha512,
            "content_guess": f.file.content_guess,
            "encoding": f.file.data.as_ref().map(|_| "hex"),
            "data": f.file.data.as_ref().map(hex::encode),
            "size": f.file.size,
            "url": f.file.url,
            "hashes": {"md5": f.file.md5, "sha1": f.file.sha1,
                       "sha256": f.file.sha256, "sha512": f.file.sha512},
            "first_seen": iso(f.first_seen), "last_seen": iso(f.last_seen), "count": f.count,
        })
    };
    if let Some(h) = p.get("hash").or_else(|| p.get("hashes")) {
        let rows: Vec<Value> = st.store.file(h).await?.iter().map(file_json).collect();
        return Ok(list(rows, &p, limit, None));
    }
    let (rows, next) = st.store.files(page).await?;
    let rows = rows
        .iter()
        .map(|f| {
            let mut v = file_json(f);
            v["data"] = Value::Null;
            v["encoding"] = Value::Null;
            v
        })
        .collect();
    Ok(list(rows, &p, limit, next))
}

/// `GET /api/url/`.
pub async fn urls(State(st): State<AppState>, _c: Caller, p: Params) -> AppResult<Json<Value>> {
    let page = p.page(DEFAULT_LIMIT)?;
    let limit = page.limit;
    let (rows, next) = st.store.urls(page).await?;
    let rows = rows
        .iter()
        .map(|u| {
            json!({"url": u.url, "extractions": u.file_sha512,
                   "first_seen": iso(u.first_seen), "last_seen": iso(u.last_seen), "count": u.count})
        })
        .collect();
    Ok(list(rows, &p, limit, next))
}

/// `GET /api/dork/`.
pub async fn dorks(State(st): State<AppState>, _c: Caller, p: Params) -> AppResult<Json<Value>> {
    let page = p.page(DEFAULT_LIMIT)?;
    let limit = page.limit;
    let (rows, next) = st.store.dorks(page).await?;
    let rows = rows
        .iter()
        .map(|d| {
            json!({"content": d.content, "type": d.kind, "inurl": (d.kind == "inurl").then_some(&d.content),
                   "firsttime": iso(d.first_seen), "lasttime": iso(d.last_seen), "count": d.count})
        })
        .collect();
    Ok(list(rows, &p, limit, next))
}

/// `GET /api/metadata/` (or `?ip=` for one address).
pub async fn metadata(State(st): State<AppState>, _c: Caller, p: Params) -> AppResult<Json<Value>> {
    let page = p.page(DEFAULT_LIMIT)?;
    let limit = page.limit;
    let row = |m: &apiary_store::MetadataRow| {
        json!({"ip": m.metadata.ip, "os": m.metadata.os, "app": m.metadata.app,
               "link": m.metadata.link, "uptime": m.metadata.uptime, "honeypot": "p0f",
               "timestamp": iso(m.updated_at), "first_seen": iso(m.first_seen)})
    };
    if let Some(ip) = p.get("ip") {
        let rows = st.store.metadata_for(ip).await?.iter().map(row).collect();
        return Ok(list(rows, &p, limit, None));
    }
    let (rows, next) = st.store.metadata(page).await?;
    Ok(list(rows.iter().map(row).collect(), &p, limit, next))
}

/// `GET /api/stats/`: figures of the last `hours_ago` (default 24) hours, for dashboards
/// elsewhere (MHN issue #421).
pub async fn stats(State(st): State<AppState>, _c: Caller, p: Params) -> AppResult<Json<Value>> {
    let now = Utc::now();
    let since = p.hours_ago(Some(24))?.unwrap_or(now - Duration::hours(24));
    let total = st.store.total_sessions(since, now).await?;
    let per_hour = st.store.counts_per_hour(since, now, None).await?;
    Ok(Json(json!({
        "data": {"count": total, "per_hour": per_hour.iter().map(|h| json!({"hour": iso(h.hour), "count": h.count})).collect::<Vec<_>>()},
        "meta": {"query": "stats", "options": p.echo()},
    })))
}
