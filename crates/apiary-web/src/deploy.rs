//! Deployment: the seeded deploy scripts, enrollment tokens, `GET /deploy/<token>.sh`
//! (the script with the server's address and the token filled in), `GET
//! /deploy/<token>/apiary-sensor` (the sensor binary this server was installed with),
//! enrollment-token registration for `POST /api/sensor/`, and `/api/deploy/`.
//!
//! A deploy URL answers 404 for an unknown, expired or revoked token alike, so the
//! answer does not tell a guesser which tokens once existed.

use std::path::PathBuf;

use apiary_model::Ident;
use apiary_store::{DeployScript, EnrollmentToken, NewEnrollmentToken, Store};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, Utc};
use serde_json::{json, Map, Value};

use crate::auth::{random_token, token_hash, Caller};
use crate::error::{AppError, AppJson, AppResult};
use crate::ops::{self, NewSensor};
use crate::state::AppState;

/// Deployment settings (from the server's `http.public_url`, `hpfeeds.public_host`,
/// `hpfeeds.public_port` and `deploy.sensor_binary`).
#[derive(Debug, Clone, Default)]
pub struct DeployConfig {
    /// Base URL sensors reach the web app at; `None` = `http://<request Host>`.
    pub public_url: Option<String>,
    /// Host sensors reach the broker at; `None` = the public URL's or request's host.
    pub hpfeeds_host: Option<String>,
    /// Port sensors reach the broker at.
    pub hpfeeds_port: u16,
    /// The `apiary-sensor` binary served to sensors; `None` = next to this executable.
    pub sensor_binary: Option<PathBuf>,
}

impl DeployConfig {
    /// The binary `GET /deploy/<token>/apiary-sensor` serves.
    pub fn sensor_binary_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.sensor_binary {
            return Some(p.clone());
        }
        let exe = std::env::current_exe().ok()?;
        Some(exe.parent()?.join("apiary-sensor"))
    }
}

/// hpfeeds channels `apiary-sensor` publishes on (its own events and heartbeat, and its
/// forwarders' channels); sensors registered by a script that installs it may use them all.
pub const SENSOR_CHANNELS: &[&str] = &[
    "apiary.events",
    "apiary.heartbeat",
    "suricata.eve",
    "snort.alert_json",
    "p0f.log",
    "cowrie.events",
    "dionaea.json",
];

/// What the seeded scripts share, written once and put in place of a marker line by
/// [`seed_body`], so every stored script is whole (served as one file, editable on the
/// Deploy page): `# @common@` gets the helpers and registration (Cowrie, Conpot),
/// `# @forwarder-common@` those plus the apiary-sensor forwarder install (Dionaea,
/// Suricata, Snort, p0f); the Apiary sensor's script has its own.
const COMMON: &str = include_str!("../deploy/common.sh");
const FORWARDER: &str = include_str!("../deploy/forwarder.sh");

/// A seeded script's body as stored: the shared parts expanded.
pub fn seed_body(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + COMMON.len() + FORWARDER.len());
    for line in body.split_inclusive('\n') {
        if line.starts_with("# @forwarder-common@") {
            out.push_str(COMMON);
            out.push_str(FORWARDER);
        } else if line.starts_with("# @common@") {
            out.push_str(COMMON);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Scripts created on first start: (name, honeypot, body, notes); bodies go through
/// [`seed_body`].
pub const SEED: &[(&str, &str, &str, &str)] = &[
    (
        "Apiary sensor",
        "apiary",
        include_str!("../../apiary-sensor/deploy/apiary-sensor.sh"),
        "Seeded: apiary-sensor with SSH, Telnet, HTTP, FTP, Redis and MySQL honeypot services.",
    ),
    (
        "Cowrie",
        "cowrie",
        include_str!("../../apiary-sensor/deploy/cowrie.sh"),
        "Seeded: Cowrie from PyPI with its hpfeeds3 output.",
    ),
    (
        "Dionaea",
        "dionaea",
        include_str!("../deploy/dionaea.sh"),
        "Seeded: forwards an existing Dionaea's JSON log with apiary-sensor.",
    ),
    (
        "Conpot",
        "conpot",
        include_str!("../deploy/conpot.sh"),
        "Seeded: Conpot from PyPI with its hpfeeds output.",
    ),
    (
        "Suricata",
        "suricata",
        include_str!("../deploy/suricata.sh"),
        "Seeded: Suricata from the distribution, eve.json forwarded by apiary-sensor.",
    ),
    (
        "Snort",
        "snort",
        include_str!("../deploy/snort.sh"),
        "Seeded: Snort 3 alert_json forwarded by apiary-sensor.",
    ),
    (
        "p0f",
        "p0f",
        include_str!("../deploy/p0f.sh"),
        "Seeded: p0f from the distribution, its log forwarded by apiary-sensor.",
    ),
];

/// Author of the versions the server itself writes.
pub const SEED_AUTHOR: &str = "apiary (seed)";

/// Creates the seeded scripts that do not exist yet (by name) and brings the ones nobody
/// edited up to this release's body (a new version, so the old one stays in the history);
/// returns how many were created or updated. A script whose newest version an admin saved
/// is never overwritten.
pub async fn seed(store: &dyn Store) -> Result<usize, AppError> {
    let have = store.list_deploy_scripts().await?;
    let mut n = 0;
    for (name, honeypot, body, notes) in SEED {
        let body = &seed_body(body);
        if let Some(s) = have.iter().find(|h| h.name == *name) {
            if s.author == SEED_AUTHOR && s.body != *body {
                store
                    .update_deploy_script(s.id, body, notes, SEED_AUTHOR)
                    .await?;
                tracing::info!(
                    script = name,
                    "seeded deploy script updated to this release"
                );
                n += 1;
            }
            continue;
        }
        match store
            .create_deploy_script(name, honeypot, body, notes, SEED_AUTHOR)
            .await
        {
            Ok(_) => n += 1,
            Err(apiary_store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Whether a script installs `apiary-sensor` (and so publishes [`SENSOR_CHANNELS`]).
pub fn installs_sensor(honeypot: &str) -> bool {
    matches!(
        honeypot,
        "apiary" | "suricata" | "snort" | "p0f" | "dionaea"
    )
}

/// Fills the placeholders of a script.
pub fn render(body: &str, server_url: &str, token: &str, hpf_host: &str, hpf_port: u16) -> String {
    body.replace("{{SERVER_URL}}", server_url)
        .replace("{{TOKEN}}", token)
        .replace("{{HPF_HOST}}", hpf_host)
        .replace("{{HPF_PORT}}", &hpf_port.to_string())
}

/// A Host header value that is safe to put into a shell script (letters, digits, `.-:[]`).
fn safe_host(h: &str) -> Option<&str> {
    let ok = !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then_some(h)
}

fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(safe_host)
}

/// The base URL shown in deploy commands and put into scripts.
pub fn server_url(cfg: &DeployConfig, headers: &HeaderMap) -> String {
    if let Some(u) = &cfg.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    format!("http://{}", request_host(headers).unwrap_or("localhost"))
}

fn host_part(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => hostport,
    }
}

/// The broker host sensors are told to connect to.
pub fn hpfeeds_host(cfg: &DeployConfig, headers: &HeaderMap) -> String {
    if let Some(h) = &cfg.hpfeeds_host {
        return h.clone();
    }
    let url = server_url(cfg, headers);
    let rest = url.split_once("://").map_or(url.as_str(), |x| x.1);
    let hostport = rest.split('/').next().unwrap_or(rest);
    host_part(hostport).to_owned()
}

/// The one-line deploy command.
pub fn command(server_url: &str, token: &str) -> String {
    format!("curl -fsSL {server_url}/deploy/{token}.sh | sudo bash")
}

fn plausible_token(t: &str) -> bool {
    t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit())
}

/// The token if it exists and is neither expired nor revoked.
pub async fn valid_token(
    store: &dyn Store,
    token: &str,
) -> Result<Option<EnrollmentToken>, AppError> {
    if !plausible_token(token) {
        return Ok(None);
    }
    Ok(store
        .enrollment_token(&token_hash(token))
        .await?
        .filter(|t| t.is_valid(Utc::now())))
}

/// Creates an enrollment token for a script; returns the token (shown once) and its record.
pub async fn create_token(
    store: &dyn Store,
    script_id: i64,
    hours: i64,
    label: &str,
    created_by: &str,
) -> Result<(String, EnrollmentToken), AppError> {
    if !(1..=24 * 366).contains(&hours) {
        return Err(AppError::BadRequest(
            "Expiry must be 1 hour to 366 days.".into(),
        ));
    }
    let token = random_token();
    let rec = store
        .create_enrollment_token(&NewEnrollmentToken {
            script_id,
            token_hash: token_hash(&token),
            prefix: token.chars().take(8).collect(),
            label: label.to_owned(),
            created_by: created_by.to_owned(),
            expires_at: Utc::now() + Duration::hours(hours),
        })
        .await?;
    tracing::info!(script = script_id, token = %rec.prefix, by = created_by, "enrollment token created");
    Ok((token, rec))
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

/// `GET /deploy/<token>.sh`: the token's script, rendered. No sign-in; the token is the
/// credential.
pub async fn script(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, AppError> {
    let Some(token) = file.strip_suffix(".sh") else {
        return Ok(not_found());
    };
    let Some(t) = valid_token(&*st.store, token).await? else {
        return Ok(not_found());
    };
    let Some(s) = st.store.deploy_script(t.script_id).await? else {
        return Ok(not_found());
    };
    let cfg = &st.deploy;
    let body = render(
        &s.body,
        &server_url(cfg, &headers),
        token,
        &hpfeeds_host(cfg, &headers),
        cfg.hpfeeds_port,
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        body,
    )
        .into_response())
}

/// `GET /deploy/<token>/apiary-sensor`: the sensor binary, streamed.
pub async fn binary(
    State(st): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    if valid_token(&*st.store, &token).await?.is_none() {
        return Ok(not_found());
    }
    let missing = || {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "this server has no apiary-sensor binary to serve; set deploy.sensor_binary or install apiary-sensor next to apiary"})),
        )
            .into_response()
    };
    let Some(path) = st.deploy.sensor_binary_path() else {
        return Ok(missing());
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot serve the sensor binary");
            return Ok(missing());
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let stream = futures::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(n) = len {
        h.insert(header::CONTENT_LENGTH, n.into());
    }
    Ok(resp)
}

/// The enrollment token a registration carries: `Authorization: Enrollment <t>` or MHN's
/// `deploy_key` body field.
pub fn enrollment_from(headers: &HeaderMap, body: &Map<String, Value>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("enrollment"))
        .map(|(_, t)| t.trim().to_owned());
    from_header.or_else(|| {
        body.get("deploy_key")
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

/// One registration at a time, so two concurrent runs of one command make one sensor.
static ENROLL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `POST /api/sensor/` with an enrollment token: registers the sensor once per (token,
/// hostname) — a second call answers with the same sensor and secret, as does a call that
/// names (`uuid`) a sensor this token registered.
pub async fn enroll(
    st: &AppState,
    token: &str,
    body: &Map<String, Value>,
    client_ip: Option<std::net::IpAddr>,
) -> AppResult<Json<Value>> {
    let Some(tok) = valid_token(&*st.store, token).await? else {
        return Err(AppError::unauthorized());
    };
    let script: DeployScript = st
        .store
        .deploy_script(tok.script_id)
        .await?
        .ok_or_else(AppError::unauthorized)?;
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let hostname = field("hostname")
        .ok_or_else(|| AppError::BadRequest("Missing required fields: [hostname].".into()))?;
    let honeypot = field("honeypot").unwrap_or_else(|| script.honeypot.clone());
    let _one = ENROLL.lock().await;
    let existing = match field("uuid") {
        Some(u) if st.store.sensor_enrollment_token(&u).await? == Some(tok.id) => Some(u),
        _ => st.store.enrolled_sensor(tok.id, &hostname).await?,
    };
    if let Some(uuid) = existing {
        if let Some(rec) = st.store.get_sensor(&uuid).await? {
            let ident = st.store.get_ident(&rec.ident).await?;
            st.store
                .record_enrollment(tok.id, &hostname, &uuid, Utc::now())
                .await?;
            tracing::info!(sensor = %uuid, token = %tok.prefix, "sensor re-registered with the same enrollment token");
            return Ok(Json(crate::api::sensors::sensor_json(
                &rec,
                ident.as_ref(),
                true,
            )));
        }
    }
    let base = field("name").unwrap_or_else(|| format!("{hostname}-{honeypot}"));
    let ip = field("ip").or_else(|| client_ip.map(|i| i.to_string()));
    let mut attempt = 0;
    let (rec, mut ident) = loop {
        let name = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}-{}", &ops::new_uuid()[..8])
        };
        let r = ops::create_sensor(
            &*st.store,
            NewSensor {
                name,
                hostname: hostname.clone(),
                honeypot: honeypot.clone(),
                ip: ip.clone(),
            },
        )
        .await;
        match r {
            Err(AppError::Conflict(_)) if attempt < 3 => attempt += 1,
            other => break other?,
        }
    };
    if installs_sensor(&script.honeypot) || installs_sensor(&honeypot) {
        add_channels(&mut ident, SENSOR_CHANNELS);
        st.store.upsert_ident(&ident).await?;
    }
    st.store
        .record_enrollment(tok.id, &hostname, &rec.uuid, Utc::now())
        .await?;
    tracing::info!(sensor = %rec.uuid, token = %tok.prefix, script = %script.name, "sensor enrolled");
    Ok(Json(crate::api::sensors::sensor_json(
        &rec,
        Some(&ident),
        true,
    )))
}

fn add_channels(ident: &mut Ident, channels: &[&str]) {
    for c in channels {
        if !ident.publish.iter().any(|p| p == c) {
            ident.publish.push((*c).to_owned());
        }
    }
}

// ---- /api/deploy/ ----

fn script_json(s: &DeployScript, with_body: bool) -> Value {
    json!({
        "id": s.id, "name": s.name, "honeypot": s.honeypot, "version": s.version,
        "notes": s.notes, "author": s.author,
        "created_at": crate::query::iso(s.created_at), "updated_at": crate::query::iso(s.updated_at),
        "body": if with_body { Some(s.body.as_str()) } else { None },
    })
}

/// `GET /api/deploy/script/`: every script (bodies included).
pub async fn api_scripts(State(st): State<AppState>, _c: Caller) -> AppResult<Json<Value>> {
    let list = st.store.list_deploy_scripts().await?;
    Ok(Json(Value::Array(
        list.iter().map(|s| script_json(s, true)).collect(),
    )))
}

/// `POST /api/deploy/token/`: `{script: name or id, hours?: 24, label?}` → the token (shown
/// once) and the one-line command. Admin only.
pub async fn api_create_token(
    State(st): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    AppJson(body): AppJson<Map<String, Value>>,
) -> AppResult<Json<Value>> {
    c.require_api_write()?;
    let scripts = st.store.list_deploy_scripts().await?;
    let script = match body.get("script") {
        Some(Value::Number(n)) => scripts.iter().find(|s| Some(s.id) == n.as_i64()),
        Some(Value::String(s)) => scripts
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(s) || x.id.to_string() == *s),
        _ => {
            return Err(AppError::BadRequest(
                "\"script\" (name or id) is required.".into(),
            ))
        }
    }
    .ok_or(AppError::NotFound)?;
    let hours = body.get("hours").and_then(Value::as_i64).unwrap_or(24);
    let label = body.get("label").and_then(Value::as_str).unwrap_or("");
    let (token, rec) = create_token(&*st.store, script.id, hours, label, &c.user.email).await?;
    let url = server_url(&st.deploy, &headers);
    Ok(Json(json!({
        "id": rec.id, "token": token, "script": script.name,
        "expires_at": crate::query::iso(rec.expires_at),
        "command": command(&url, &token),
    })))
}

/// `POST /api/deploy/token/<id>/revoke/`. Admin only.
pub async fn api_revoke_token(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
) -> AppResult<Json<Value>> {
    c.require_api_write()?;
    if !st.store.revoke_enrollment_token(id).await? {
        return Err(AppError::NotFound);
    }
    Ok(Json(json!({"revoked": id})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_rendering() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "10.9.0.1:8080".parse().unwrap());
        let cfg = DeployConfig {
            hpfeeds_port: 10000,
            ..Default::default()
        };
        assert_eq!(server_url(&cfg, &h), "http://10.9.0.1:8080");
        assert_eq!(hpfeeds_host(&cfg, &h), "10.9.0.1");
        h.insert(header::HOST, "[2001:db8::1]:80".parse().unwrap());
        assert_eq!(hpfeeds_host(&cfg, &h), "2001:db8::1");
        h.insert(header::HOST, "x$(reboot)".parse().unwrap());
        assert_eq!(server_url(&cfg, &h), "http://localhost");
        let cfg = DeployConfig {
            public_url: Some("https://apiary.example.net/".into()),
            hpfeeds_port: 10000,
            ..Default::default()
        };
        assert_eq!(server_url(&cfg, &h), "https://apiary.example.net");
        assert_eq!(hpfeeds_host(&cfg, &h), "apiary.example.net");
        let out = render(
            "U={{SERVER_URL}} T={{TOKEN}} H={{HPF_HOST}}:{{HPF_PORT}}",
            "http://s",
            "tok",
            "h",
            7,
        );
        assert_eq!(out, "U=http://s T=tok H=h:7");
        for (_, _, body, _) in SEED {
            let body = seed_body(body);
            assert!(!body.contains("@forwarder-common@") && !body.contains("# @common@"));
            if body.contains("install_sensor_forwarder ") {
                assert!(body.contains("install_sensor_forwarder() {"), "expanded");
            }
            // Whole and valid bash as stored (`bash -n` parses without running).
            let out = std::process::Command::new("bash")
                .args(["-n", "-c", &body])
                .output()
                .expect("bash");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for p in [
                "{{SERVER_URL}}",
                "{{TOKEN}}",
                "{{HPF_HOST}}",
                "{{HPF_PORT}}",
            ] {
                assert!(body.contains(p), "seed script lacks {p}");
            }
        }
    }
}
