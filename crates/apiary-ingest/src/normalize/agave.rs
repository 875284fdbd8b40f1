//! Agave-based web honeypots (Drupot, Magenpot): `agave.events` and `drupot.events`.

use super::fields::{self as f, Obj};
use super::Result;
use apiary_model::bounded::{LONG, MAX_ITEMS, MEDIUM, SHORT};
use apiary_model::{HttpRequest, Normalized, RawEvent};
use serde_json::Value;

/// A field under its snake_case name (agave ≥ v0.1.2, what deployed sensors send) or its
/// CamelCase name (what mnemosyne read).
fn pick<'a>(
    o: &'a Obj,
    snake: &'static str,
    camel: &'static str,
) -> (Option<&'a Value>, &'static str) {
    match f::get(o, snake) {
        Some(v) => (Some(v), snake),
        None => (f::get(o, camel), camel),
    }
}

fn pick_text(
    o: &Obj,
    snake: &'static str,
    camel: &'static str,
    max: usize,
) -> Result<Option<String>> {
    match pick(o, snake, camel) {
        (Some(v), name) => Ok(f::text_value(v, name, max)?.filter(|s| !s.is_empty())),
        (None, _) => Ok(None),
    }
}

/// `agave.events`: `{src_ip, src_port, dest_ip, dest_port, protocol ("HTTP/1.1"), agave_app
/// ("Drupot"), agave_username, agave_password, request_json, signature, prev_seen, sensor}`
/// → a session whose honeypot is the lower-cased `agave_app` (`agave` when absent), with the
/// credential of a credential attack and the HTTP request of an HTTP attack.
///
/// Fix against mnemosyne: both key styles are read. mnemosyne only knew CamelCase
/// (`SrcIp`, `SrcPort`, `DestIp`, `DestPort`, `AgaveApp`, `Protocol`), but agave has sent
/// snake_case since v0.1.2, so every real event failed there. `protocol` `HTTP/1.x` is `http`.
pub fn agave(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let app = pick_text(&o, "agave_app", "AgaveApp", SHORT)?
        .map(|a| a.to_ascii_lowercase())
        .unwrap_or_else(|| "agave".into());
    let proto = pick_text(&o, "protocol", "Protocol", SHORT)?.and_then(|p| {
        if p.to_ascii_lowercase().starts_with("http") {
            Some("http".into())
        } else {
            f::proto_label(&p)
        }
    });
    read(raw, &o, &app, proto, out)
}

/// `drupot.events`: the same payload, honeypot `drupot`, protocol `http`.
pub fn drupot(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    read(raw, &o, "drupot", Some("http".into()), out)
}

fn read(
    raw: &RawEvent,
    o: &Obj,
    honeypot: &str,
    protocol: Option<String>,
    out: &mut Vec<Normalized>,
) -> Result<()> {
    let mut s = f::new_session(raw, honeypot, raw.received_at);
    let (v, name) = pick(o, "src_ip", "SrcIp");
    s.source_ip = Some(f::source_ip_value(v, name)?);
    if let (Some(v), name) = pick(o, "src_port", "SrcPort") {
        s.source_port = f::port_value(v, name)?;
    }
    if let (Some(v), name) = pick(o, "dest_ip", "DestIp") {
        s.destination_ip = f::ip_value(v, name)?;
    }
    if let (Some(v), name) = pick(o, "dest_port", "DestPort") {
        s.destination_port = f::port_value(v, name)?;
    }
    s.protocol = protocol;
    let user = pick_text(o, "agave_username", "AgaveUsername", SHORT)?;
    let pass = pick_text(o, "agave_password", "AgavePassword", SHORT)?;
    if user.is_some() || pass.is_some() {
        s.details.credentials.push(f::credential(
            user.as_deref().unwrap_or(""),
            pass.as_deref().unwrap_or(""),
        ));
    }
    if let (Some(v), _) = pick(o, "request_json", "RequestJson") {
        s.details.http = request(v)?;
    }
    s.details.extra = f::extra(vec![
        (
            "signature",
            pick_text(o, "signature", "Signature", MEDIUM)?.map(Value::String),
        ),
        (
            "agave_sensor",
            pick_text(o, "sensor", "Sensor", SHORT)?.map(Value::String),
        ),
    ]);
    f::push_session(out, s);
    Ok(())
}

/// Go's `http.Request` as JSON: `{Method, URL: {Path, RawQuery}, Header: {name: [values]},
/// Body, Host}`; a JSON-encoded string of it is accepted too.
fn request(v: &Value) -> Result<Option<HttpRequest>> {
    let parsed;
    let o = match v {
        Value::Object(m) => m,
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => {
                parsed = m;
                &parsed
            }
            _ => return Ok(None),
        },
        _ => {
            return Err(super::NormalizeError::BadField {
                field: "request_json",
                reason: "expected an object",
            })
        }
    };
    let mut http = HttpRequest {
        method: f::text_nonempty(o, "Method", SHORT)?,
        body: f::text_nonempty(o, "Body", LONG)?,
        ..Default::default()
    };
    if let Some(url) = f::obj_field(o, "URL")? {
        let path = f::text(url, "Path", MEDIUM)?.unwrap_or_default();
        http.path = match f::text_nonempty(url, "RawQuery", MEDIUM)? {
            Some(q) => Some(apiary_model::bounded::truncate(
                format!("{path}?{q}"),
                MEDIUM,
            )),
            None => (!path.is_empty()).then_some(path),
        };
    }
    if let Some(headers) = f::obj_field(o, "Header")? {
        for (name, values) in headers.iter().take(MAX_ITEMS) {
            let values: Vec<&Value> = match values {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for v in values {
                if let Some(v) = f::text_value(v, "Header", MEDIUM)? {
                    f::push_header(&mut http, name, &v);
                }
            }
        }
    }
    if let Some(host) = f::text_nonempty(o, "Host", MEDIUM)? {
        http.host = Some(host);
    }
    Ok(Some(http))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::{Credential, HttpRequest, Session, SessionDetails};
    use serde_json::json;

    #[test]
    fn snake_case_http_attack() {
        let s = one_session(
            "agave.events",
            r#"{"protocol": "HTTP/1.1", "app": "agave", "agave_app": "Drupot", "channel": "agave.events", "sensor": "5d0b-uuid", "dest_port": 80, "dest_ip": "203.0.113.5", "src_port": 51234, "src_ip": "198.51.100.7", "signature": "", "prev_seen": false, "request_json": {"Method": "GET", "URL": {"Scheme": "", "Host": "", "Path": "/user/login", "RawQuery": "q=1"}, "Proto": "HTTP/1.1", "ProtoMajor": 1, "ProtoMinor": 1, "Header": {"User-Agent": ["curl/7.58.0"]}, "Body": "", "TransferEncoding": null, "Host": "203.0.113.5", "PostForm": {}}, "agave_client_version": "v0.1.2"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: received(),
                source_ip: ip("198.51.100.7"),
                source_port: Some(51234),
                destination_ip: ip("203.0.113.5"),
                destination_port: Some(80),
                protocol: Some("http".into()),
                honeypot: "drupot".into(),
                channel: "agave.events".into(),
                details: SessionDetails {
                    http: Some(HttpRequest {
                        method: Some("GET".into()),
                        path: Some("/user/login?q=1".into()),
                        host: Some("203.0.113.5".into()),
                        user_agent: Some("curl/7.58.0".into()),
                        headers: vec![("user-agent".into(), "curl/7.58.0".into())],
                        body: None,
                    }),
                    extra: Some(json!({"agave_sensor": "5d0b-uuid"})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn camel_case_credential_attack() {
        let s = one_session(
            "agave.events",
            r#"{"SrcIp": "198.51.100.7", "SrcPort": "4242", "DestIp": "203.0.113.5", "DestPort": "8080", "AgaveApp": "Magenpot", "Protocol": "HTTP/1.0", "AgaveUsername": "admin", "AgavePassword": "<b>pw</b>"}"#,
        );
        assert_eq!(s.honeypot, "magenpot");
        assert_eq!(s.source_port, Some(4242));
        assert_eq!(s.destination_port, Some(8080));
        assert_eq!(s.protocol.as_deref(), Some("http"));
        assert_eq!(
            s.details.credentials,
            vec![Credential {
                username: "admin".into(),
                password: "<b>pw</b>".into()
            }]
        );
    }

    #[test]
    fn drupot_channel() {
        let s = one_session(
            "drupot.events",
            r#"{"src_ip": "198.51.100.7", "src_port": 1, "dest_port": 8080, "agave_app": "Whatever"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: received(),
                source_ip: ip("198.51.100.7"),
                source_port: Some(1),
                destination_port: Some(8080),
                protocol: Some("http".into()),
                honeypot: "drupot".into(),
                channel: "drupot.events".into(),
                ..Default::default()
            }
        );
        assert_eq!(
            fail("drupot.events", r#"{"dest_port": 80}"#),
            NormalizeError::MissingField("SrcIp")
        );
        assert!(matches!(
            fail(
                "agave.events",
                r#"{"src_ip": "1.2.3.4", "request_json": 3}"#
            ),
            NormalizeError::BadField {
                field: "request_json",
                ..
            }
        ));
    }
}
