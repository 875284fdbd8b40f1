//! `GET /api/openapi.json`: every API endpoint, from one table.

use axum::Json;
use serde_json::{json, Map, Value};

/// (method, path, summary, query parameters).
pub const ENDPOINTS: &[(&str, &str, &str, &[&str])] = &[
    ("get", "/api/session/", "Sessions, newest first", SESSION_FILTERS),
    ("get", "/api/session/{id}/", "One session with all details", &[]),
    ("get", "/api/feed/", "Raw hpfeeds messages, newest first", &["channel", "ident", "payload", "hours_ago", "limit", "cursor"]),
    ("get", "/api/feed/{id}/", "One raw message", &[]),
    ("get", "/api/top_attackers/", "Busiest (source address, honeypot) pairs by session count (default last 4 h); meta.truncated when a filter the roll-ups cannot narrow made the server stop after 10,000 addresses", AGGREGATE_FILTERS),
    ("get", "/api/attacker_stats/{ip}/", "What one source address did (default last 720 h)", &["hours_ago"]),
    ("get", "/api/intel_feed/", "Busiest (source, honeypot, protocol, port) groups with count and p0f metadata (default last 4 h; pcap and ftpdatalisten sessions left out)", AGGREGATE_FILTERS),
    ("get", "/api/intel_feed.csv/", "intel_feed as TSV: source_ip, count, tags", AGGREGATE_FILTERS),
    ("get", "/api/file/", "Captured files (by ?hash= with content)", &["hash", "limit", "cursor"]),
    ("get", "/api/url/", "URLs seen", &["limit", "cursor"]),
    ("get", "/api/dork/", "Web paths probed", &["limit", "cursor"]),
    ("get", "/api/metadata/", "p0f fingerprints", &["ip", "limit", "cursor"]),
    ("get", "/api/stats/", "Session count and per-hour counts", &["hours_ago"]),
    ("get", "/api/live", "Server-Sent Events: committed sessions as live map events (event `attack`, JSON; `lagged` = events this client lost)", &["honeypot", "sensor", "country"]),
    ("get", "/api/live/history", "Sessions of a window as live map events, oldest first (default last 15 minutes)", &["minutes", "since", "until", "limit", "honeypot", "sensor", "country"]),
    ("get", "/api/sensor/", "Sensors (bare array; secrets for admins only)", &["uuid", "name", "hostname", "ip", "honeypot", "identifier"]),
    ("post", "/api/sensor/", "Register a sensor: {name, hostname, honeypot[, ip]} -> uuid, hpfeeds identifier and secret (admin, or an enrollment token: Authorization: Enrollment <t> or deploy_key; idempotent per token and hostname)", &[]),
    ("get", "/api/sensor/{uuid}/", "One sensor", &[]),
    ("put", "/api/sensor/{uuid}/", "Edit name or hostname (admin)", &[]),
    ("delete", "/api/sensor/{uuid}/", "Delete a sensor and its hpfeeds credentials (admin)", &[]),
    ("post", "/api/sensor/{uuid}/rotate_secret/", "New hpfeeds secret, returned once (admin)", &[]),
    ("get", "/api/deploy/script/", "Deploy scripts at their newest version", &[]),
    ("post", "/api/deploy/token/", "New enrollment token {script, hours?, label?} with the one-line deploy command (admin)", &[]),
    ("post", "/api/deploy/token/{id}/revoke/", "Revoke an enrollment token (admin)", &[]),
    ("get", "/api/openapi.json", "This document", &[]),
    ("post", "/auth/login/", "Sign in with {email, password}; sets the session cookie and returns csrf_token", &[]),
    ("get", "/auth/logout/", "Sign out", &[]),
    ("post", "/auth/logout/", "Sign out", &[]),
    ("get", "/auth/me/", "The signed-in user", &[]),
];

/// The filters of the sessions report and of the aggregate endpoints.
const FILTERS: &[&str] = &[
    "hours_ago",
    "timestamp",
    "since",
    "until",
    "honeypot",
    "source_ip",
    "destination_port",
    "protocol",
    "identifier",
    "country",
    "asn",
    "signature",
    "credential",
    "channel",
];

const SESSION_FILTERS: &[&str] = &concat::<17>(FILTERS, &["q", "limit", "cursor"]);

/// The session filters minus free text and cursor, for the aggregate endpoints.
const AGGREGATE_FILTERS: &[&str] = &concat::<15>(FILTERS, &["limit"]);

/// `a` then `b` as one array, at compile time (`N` must be their total length).
const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    assert!(a.len() + b.len() == N, "concat: N is not the total length");
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    out
}

/// Descriptions of the parameters whose meaning is not obvious from the name.
fn describe(param: &str) -> Option<&'static str> {
    Some(match param {
        "q" => {
            "Free text: sessions with a credential whose username or password equals it \
             (exact, case-sensitive), or whose IDS signature or one of whose URLs contains \
             it (ASCII case-insensitive). Commands, HTTP paths and user agents are not \
             searched. Served from indexes; pages are always full."
        }
        "signature" => "IDS signature contains this text (ASCII case-insensitive)",
        "credential" => "A username or password equal to this text (exact)",
        "source_ip" => "An address or a CIDR network",
        "hours_ago" => "Only the last N hours",
        "limit" => "Rows per page, 1 to 10,000 (default 100)",
        "cursor" => "meta.next_cursor of the previous page",
        _ => return None,
    })
}

/// The OpenAPI 3.0 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, params) in ENDPOINTS {
        let mut parameters: Vec<Value> = params
            .iter()
            .map(|p| {
                let mut v = json!({"name": p, "in": "query", "required": false, "schema": {"type": "string"}});
                if let Some(d) = describe(p) {
                    v["description"] = json!(d);
                }
                v
            })
            .collect();
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            parameters.push(
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = json!({
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "Bad request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "No valid API key or session"},
                "403": {"description": "Needs the admin role, or the CSRF token is missing"},
                "404": {"description": "Not found"},
            },
        });
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Apiary API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "MHN-compatible honeypot API. Lists are {\"data\": [...], \"meta\": {\"size\", \"limit\", \"next_cursor\", \"query\"}}; pass meta.next_cursor as ?cursor= for the next page. limit defaults to 100, at most 10000."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "api_key": {"type": "apiKey", "in": "query", "name": "api_key"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE},
            },
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}},
        },
        "security": [{"bearer": []}, {"api_key": []}, {"session": []}],
    })
}

/// `GET /api/openapi.json` (needs auth like every API endpoint).
pub async fn openapi(_c: crate::auth::Caller) -> Json<Value> {
    Json(document())
}
