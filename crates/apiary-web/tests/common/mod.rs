//! Test harness: a real SQLite store in memory, the real router, requests via `oneshot`.
#![allow(dead_code)]

use std::sync::Arc;

use apiary_model::{
    Credential, GeoInfo, HttpRequest, IdsAlert, Normalized, RawEvent, Role, Session, SessionDetails,
};
use apiary_store::{IngestItem, Store};
use apiary_web::auth::{self, AuthConfig};
use apiary_web::{router, AppState};
use axum::body::Body;
use axum::http::{header, Method, Request, Response, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub const ADMIN: &str = "admin@example.org";
pub const ANALYST: &str = "analyst@example.org";
pub const PASSWORD: &str = "correct horse battery";

pub struct App {
    pub state: AppState,
    pub store: Arc<dyn Store>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// Who sends a request.
#[derive(Clone, Debug)]
pub enum As {
    Anon,
    Key(String),
    Cookie { cookie: String, csrf: String },
}

impl App {
    pub async fn new() -> Self {
        let store = apiary_store::open("sqlite::memory:").await.unwrap();
        let state = AppState::with_auth(
            store.clone(),
            Vec::new(),
            AuthConfig::insecure_fast_for_tests(),
        );
        for (email, role) in [(ADMIN, Role::Admin), (ANALYST, Role::Analyst)] {
            let h = auth::hash_password(PASSWORD, &auth::fast_params()).unwrap();
            store.create_user(email, role, &h).await.unwrap();
        }
        Self { state, store }
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp: Response<Body> = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    fn build(
        &self,
        method: Method,
        uri: &str,
        who: &As,
        body: Body,
        ctype: Option<&str>,
        with_csrf_header: bool,
    ) -> Request<Body> {
        let mut b = Request::builder().method(method).uri(uri);
        match who {
            As::Anon => {}
            As::Key(k) => b = b.header(header::AUTHORIZATION, format!("Bearer {k}")),
            As::Cookie { cookie, csrf } => {
                b = b.header(header::COOKIE, cookie.clone());
                if with_csrf_header {
                    b = b.header("x-csrf-token", csrf.clone());
                }
            }
        }
        if let Some(c) = ctype {
            b = b.header(header::CONTENT_TYPE, c);
        }
        b.body(body).unwrap()
    }

    pub async fn get(&self, uri: &str, who: &As) -> Resp {
        self.send(self.build(Method::GET, uri, who, Body::empty(), None, false))
            .await
    }

    /// JSON request; cookie callers send their CSRF header when `csrf`.
    pub async fn json(
        &self,
        method: Method,
        uri: &str,
        who: &As,
        body: serde_json::Value,
        csrf: bool,
    ) -> Resp {
        self.send(self.build(
            method,
            uri,
            who,
            Body::from(body.to_string()),
            Some("application/json"),
            csrf,
        ))
        .await
    }

    /// Form post (the caller puts `csrf=` in the pairs when wanted).
    pub async fn form(&self, uri: &str, who: &As, pairs: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(pairs).unwrap();
        self.send(self.build(
            Method::POST,
            uri,
            who,
            Body::from(body),
            Some("application/x-www-form-urlencoded"),
            false,
        ))
        .await
    }

    /// `POST /auth/login/` with `body` (email, password) as an anonymous caller.
    pub async fn post_login(&self, body: serde_json::Value) -> Resp {
        self.json(Method::POST, "/auth/login/", &As::Anon, body, false)
            .await
    }

    /// `POST /api/sensor/` for the cowrie sensor `s1` on host `h1` (with the CSRF header
    /// when `csrf`).
    pub async fn post_sensor_s1(&self, who: &As, csrf: bool) -> Resp {
        let body = serde_json::json!({"name": "s1", "hostname": "h1", "honeypot": "cowrie"});
        self.json(Method::POST, "/api/sensor/", who, body, csrf)
            .await
    }

    /// Signs in through `POST /auth/login/`.
    pub async fn login(&self, email: &str) -> As {
        let r = self
            .post_login(serde_json::json!({"email": email, "password": PASSWORD}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let set = r
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("apiary_session="))
            .unwrap();
        let cookie = set.split(';').next().unwrap().to_owned();
        let csrf = r.json()["csrf_token"].as_str().unwrap().to_owned();
        As::Cookie { cookie, csrf }
    }

    pub async fn key(&self, email: &str) -> As {
        let (u, _) = self.store.user_with_password(email).await.unwrap().unwrap();
        let (k, _) = auth::create_api_key(&*self.store, u.id, "test")
            .await
            .unwrap();
        As::Key(k)
    }

    pub async fn insert(&self, sessions: Vec<(Session, Vec<u8>)>) {
        let items = sessions
            .into_iter()
            .map(|(s, payload)| IngestItem {
                raw: RawEvent {
                    id: None,
                    channel: s.channel.clone(),
                    ident: s.sensor.clone(),
                    received_at: s.timestamp,
                    payload: Bytes::from(payload),
                },
                outcome: Ok(vec![Normalized::Session(Box::new(s))]),
            })
            .collect();
        self.store.insert_batch(items).await.unwrap();
    }
}

pub fn csrf_of(who: &As) -> String {
    match who {
        As::Cookie { csrf, .. } => csrf.clone(),
        _ => String::new(),
    }
}

/// A plain session `minutes_ago` before now.
pub fn session(minutes_ago: i64, ip: &str, port: u16, honeypot: &str, sensor: &str) -> Session {
    Session {
        timestamp: now_minus(minutes_ago),
        source_ip: Some(ip.parse().unwrap()),
        source_port: Some(40000),
        destination_port: Some(port),
        protocol: Some(if port == 22 { "ssh" } else { "http" }.into()),
        honeypot: honeypot.into(),
        channel: format!("{honeypot}.sessions"),
        sensor: sensor.into(),
        source_geo: Some(GeoInfo {
            country_code: Some("NL".into()),
            asn: Some(64500),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn now_minus(minutes: i64) -> DateTime<Utc> {
    Utc::now() - Duration::minutes(minutes)
}

pub const XSS: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "{{7*7}}",
    "=cmd|'/c calc'!A1",
];

/// A session whose every attacker-controlled field carries `evil`.
pub fn hostile_session(minutes_ago: i64, evil: &str) -> Session {
    let mut s = session(minutes_ago, "203.0.113.66", 23, "cowrie", "hostile-sensor");
    s.protocol = Some(evil.into());
    s.honeypot = "cowrie".into();
    s.source_geo = Some(GeoInfo {
        country_code: Some(evil.chars().take(40).collect()),
        country: Some(evil.into()),
        city: Some(evil.into()),
        as_org: Some(evil.into()),
        asn: Some(64501),
        ..Default::default()
    });
    s.details = SessionDetails {
        credentials: vec![Credential {
            username: evil.into(),
            password: evil.into(),
        }],
        ssh_version: Some(evil.into()),
        http: Some(HttpRequest {
            method: Some(evil.into()),
            path: Some(evil.into()),
            host: Some(evil.into()),
            user_agent: Some(evil.into()),
            headers: vec![(evil.into(), evil.into())],
            body: Some(evil.into()),
        }),
        ids: Some(IdsAlert {
            signature: evil.into(),
            classification: Some(evil.into()),
            ..Default::default()
        }),
        urls: vec![evil.into()],
        commands: vec![evil.into()],
        ..Default::default()
    };
    s
}

/// Every page of the web app (GET).
pub fn pages(ip: &str, session_id: i64) -> Vec<String> {
    vec![
        "/ui/dashboard/".into(),
        "/ui/attacks/".into(),
        "/ui/payloads/".into(),
        format!("/ui/attacker/{ip}/"),
        format!("/ui/session/{session_id}/"),
        "/ui/sensors/".into(),
        "/ui/settings/".into(),
        "/ui/attacks/export.csv".into(),
        "/ui/attacks/export.json".into(),
    ]
}

/// Every GET endpoint of the API.
pub fn api_gets(ip: &str, session_id: i64) -> Vec<String> {
    vec![
        "/api/session/".into(),
        format!("/api/session/{session_id}/"),
        "/api/feed/".into(),
        "/api/top_attackers/".into(),
        format!("/api/attacker_stats/{ip}/"),
        "/api/intel_feed/".into(),
        "/api/intel_feed.csv/".into(),
        "/api/file/".into(),
        "/api/url/".into(),
        "/api/dork/".into(),
        "/api/metadata/".into(),
        "/api/stats/".into(),
        "/api/sensor/".into(),
        "/api/openapi.json".into(),
        "/auth/me/".into(),
    ]
}
