//! Apiary's own sensor channels: `apiary.events` and `apiary.heartbeat`.
//!
//! # `apiary.events`, schema version 1
//!
//! One JSON object per attack event, UTF-8:
//!
//! ```json
//! {
//!   "v": 1,
//!   "service": "ssh",
//!   "protocol": "ssh",
//!   "timestamp": "2024-05-01T11:59:58.5Z",
//!   "src_ip": "198.51.100.7", "src_port": 51234,
//!   "dst_ip": "203.0.113.5",  "dst_port": 22,
//!   "transport": "tcp",
//!   "username": "root", "password": "123456",
//!   "credentials": [{"username": "admin", "password": "admin"}],
//!   "ssh_version": "SSH-2.0-Go",
//!   "http": {"method": "GET", "path": "/wp-login.php?x=1", "host": "example.org",
//!            "user_agent": "curl/8.0", "headers": {"accept": "*/*"}, "body": ""},
//!   "commands": ["uname -a"],
//!   "urls": ["http://198.51.100.9/x.sh"],
//!   "ics": {"function_code": 3},
//!   "data": {"anything": "else"}
//! }
//! ```
//!
//! | field | required | type | becomes |
//! |---|---|---|---|
//! | `v` | yes | `1` | other versions are rejected (`BadField v`) |
//! | `service` | yes | string | `extra.service`; the default `protocol` |
//! | `protocol` | no | string | `protocol` (lower-cased) |
//! | `timestamp` | no | RFC 3339 | session time (receipt time if absent, unparseable or > 1 day ahead) |
//! | `src_ip` | yes | string | `source_ip` (`::ffff:` unmapped) |
//! | `src_port`, `dst_port` | no | 1–65535 (number or numeric string) | ports (out of range → absent) |
//! | `dst_ip` | no | string | `destination_ip` |
//! | `transport` | no | `"tcp"` / `"udp"` | `extra.transport` |
//! | `username`, `password` | no | string | one credential (either may be absent: empty string) |
//! | `credentials` | no | list of `{username, password}` or `[u, p]` | more credentials, after the single one |
//! | `ssh_version` | no | string | `ssh_version` |
//! | `http` | no | object; `headers` an object or a list of `[name, value]` | the HTTP request |
//! | `commands`, `urls` | no | lists of strings | `commands`, `urls` |
//! | `ics` | no | any JSON | `ics` (bounded) |
//! | `data` | no | any JSON | `extra.data` (bounded) |
//!
//! The session's honeypot is `apiary`. Unknown fields are ignored (they stay in the raw
//! message), so sensors can add fields without breaking older servers; a new meaning for an
//! existing field needs `v: 2`.
//!
//! # `apiary.heartbeat`, schema version 1
//!
//! `{"v": 1, "sensor": "<uuid>", "hostname": "pot-1", "version": "0.1.0",
//!   "services": ["ssh", "http"], "uptime_s": 3600}`: the sensor is alive. It is not an attack:
//! [`super::normalize`] validates it and yields nothing; the pipeline reads it with
//! [`parse_heartbeat`] for sensor status. Only `v` is required.

use super::fields::{self as f, Obj};
use super::{NormalizeError, Result};
use apiary_model::bounded::{LONG, MAX_ITEMS, MEDIUM, SHORT};
use apiary_model::{HttpRequest, Normalized, RawEvent};
use serde_json::Value;

fn check_version(o: &Obj) -> Result<()> {
    match f::uint(o, "v") {
        Ok(Some(1)) => Ok(()),
        Ok(None) => Err(NormalizeError::MissingField("v")),
        _ => Err(NormalizeError::BadField {
            field: "v",
            reason: "unsupported schema version",
        }),
    }
}

/// Normalizes one `apiary.events` message (schema above).
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    check_version(&o)?;
    let service =
        f::text_nonempty(&o, "service", SHORT)?.ok_or(NormalizeError::MissingField("service"))?;
    // `apiary-sensor` writes `time`; `timestamp` is accepted too.
    let time_key = if f::get(&o, "time").is_some() {
        "time"
    } else {
        "timestamp"
    };
    let ts = f::time_field(&o, time_key, raw.received_at)?;
    let mut s = f::new_session(raw, "apiary", ts);
    s.source_ip = Some(f::source_ip(&o, "src_ip")?);
    s.source_port = f::port(&o, "src_port")?;
    s.destination_ip = f::ip(&o, "dst_ip")?;
    s.destination_port = f::port(&o, "dst_port")?;
    s.protocol = f::text(&o, "protocol", SHORT)?
        .and_then(|p| f::proto_label(&p))
        .or_else(|| f::proto_label(&service));
    let user = f::text(&o, "username", SHORT)?;
    let pass = f::text(&o, "password", SHORT)?;
    if user.is_some() || pass.is_some() {
        s.details.credentials.push(f::credential(
            user.as_deref().unwrap_or(""),
            pass.as_deref().unwrap_or(""),
        ));
    }
    for c in f::credential_list(&o, "credentials")? {
        if s.details.credentials.len() >= MAX_ITEMS {
            break;
        }
        s.details.credentials.push(c);
    }
    s.details.ssh_version = match f::text_nonempty(&o, "ssh_version", SHORT)? {
        Some(v) => Some(v),
        None => f::text_nonempty(&o, "client_version", SHORT)?,
    };
    s.details.logged_in = f::boolean(&o, "logged_in")?;
    if let Some(h) = f::obj_field(&o, "http")? {
        s.details.http = Some(http(h)?);
    }
    s.details.commands = f::text_list(&o, "commands", MEDIUM)?;
    s.details.urls = f::text_list(&o, "urls", MEDIUM)?;
    s.details.ics = f::get(&o, "ics").map(f::bounded_json);
    let transport = f::text_nonempty(&o, "transport", 16)?.map(|t| t.to_ascii_lowercase());
    s.details.extra = f::extra(vec![
        ("service", Some(Value::String(service))),
        ("transport", transport.map(Value::String)),
        ("data", f::get(&o, "data").map(f::bounded_json)),
        // Written by apiary-sensor: event id (for de-duplication), offered SSH keys, the
        // first bytes of unparsed protocols, service-specific fields, connection summary.
        ("id", f::text_nonempty(&o, "id", SHORT)?.map(Value::String)),
        ("keys", f::get(&o, "keys").map(f::bounded_json)),
        (
            "payload_hex",
            f::text_nonempty(&o, "payload_hex", 2 * 512)?.map(Value::String),
        ),
        ("sensor_extra", f::get(&o, "extra").map(f::bounded_json)),
        (
            "closed",
            f::text_nonempty(&o, "closed", 32)?.map(Value::String),
        ),
        ("duration_ms", f::uint(&o, "duration_ms")?.map(Value::from)),
        ("bytes_in", f::uint(&o, "bytes_in")?.map(Value::from)),
    ]);
    f::push_session(out, s);
    Ok(())
}

fn http(h: &Obj) -> Result<HttpRequest> {
    let mut req = HttpRequest {
        method: f::text_nonempty(h, "method", SHORT)?,
        path: f::text_nonempty(h, "path", MEDIUM)?,
        body: f::text_nonempty(h, "body", LONG)?,
        ..Default::default()
    };
    match f::get(h, "headers") {
        None => {}
        Some(Value::Object(m)) => {
            for (name, v) in m.iter().take(MAX_ITEMS) {
                if let Some(v) = f::text_value(v, "http.headers", MEDIUM)? {
                    f::push_header(&mut req, name, &v);
                }
            }
        }
        Some(Value::Array(pairs)) => {
            for p in pairs.iter().take(MAX_ITEMS) {
                let Some([name, value]) = p.as_array().map(Vec::as_slice) else {
                    return Err(NormalizeError::BadField {
                        field: "http.headers",
                        reason: "expected [name, value] pairs",
                    });
                };
                let name = f::text_value(name, "http.headers", SHORT)?.unwrap_or_default();
                let value = f::text_value(value, "http.headers", MEDIUM)?.unwrap_or_default();
                f::push_header(&mut req, &name, &value);
            }
        }
        Some(_) => {
            return Err(NormalizeError::BadField {
                field: "http.headers",
                reason: "expected an object or a list of pairs",
            })
        }
    }
    // Explicit fields win over what the header list said.
    if let Some(host) = f::text_nonempty(h, "host", MEDIUM)? {
        req.host = Some(host);
    }
    if let Some(ua) = f::text_nonempty(h, "user_agent", MEDIUM)? {
        req.user_agent = Some(ua);
    }
    Ok(req)
}

/// What a sensor says about itself in `apiary.heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// Sensor id as the sensor knows it (the hpfeeds ident is the authoritative one).
    pub sensor: Option<String>,
    /// Host name of the sensor machine.
    pub hostname: Option<String>,
    /// Sensor software version.
    pub version: Option<String>,
    /// Services the sensor runs.
    pub services: Vec<String>,
    /// Seconds since the sensor started.
    pub uptime_s: Option<u64>,
}

/// Reads an `apiary.heartbeat` payload (schema in the module docs).
pub fn parse_heartbeat(raw: &RawEvent) -> Result<Heartbeat> {
    let o = f::json_object(raw)?;
    check_version(&o)?;
    Ok(Heartbeat {
        sensor: f::text_nonempty(&o, "sensor", SHORT)?,
        hostname: f::text_nonempty(&o, "hostname", SHORT)?,
        version: f::text_nonempty(&o, "version", SHORT)?,
        services: services(&o)?,
        uptime_s: f::uint(&o, "uptime_s")?,
    })
}

/// `services` as names (`["ssh"]`) or as objects (`[{"name": "ssh", "port": 22}]`, what
/// `apiary-sensor` sends), as `name:port` then.
fn services(o: &Obj) -> Result<Vec<String>> {
    let Some(Value::Array(items)) = f::get(o, "services") else {
        return f::text_list(o, "services", SHORT);
    };
    let mut out = Vec::new();
    for item in items.iter().take(MAX_ITEMS) {
        match item {
            Value::String(s) => out.push(apiary_model::bounded::bounded(s, SHORT)),
            Value::Object(m) => {
                let name = m.get("name").and_then(Value::as_str).unwrap_or("?");
                let name = apiary_model::bounded::bounded(name, SHORT);
                match m.get("port").and_then(Value::as_u64) {
                    Some(p) => out.push(format!("{name}:{p}")),
                    None => out.push(name),
                }
            }
            _ => {
                return Err(NormalizeError::BadField {
                    field: "services",
                    reason: "expected names or {name, port} objects",
                })
            }
        }
    }
    Ok(out)
}

/// `apiary.heartbeat` through [`super::normalize`]: validated, no records.
pub fn heartbeat(raw: &RawEvent) -> Result<()> {
    parse_heartbeat(raw).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use apiary_model::{Credential, Session, SessionDetails};
    use serde_json::json;

    #[test]
    fn full_event() {
        let s = one_session(
            "apiary.events",
            r#"{"v": 1, "service": "http", "protocol": "HTTP", "timestamp": "2024-05-01T11:59:58.5Z",
                "src_ip": "::ffff:198.51.100.7", "src_port": "51234", "dst_ip": "203.0.113.5", "dst_port": 8080,
                "transport": "TCP", "username": "admin", "password": "<script>alert(1)</script>",
                "credentials": [{"username": "root", "password": "root"}, ["a", "b"]],
                "http": {"method": "POST", "path": "/wp-login.php", "headers": [["Host", "example.org"], ["User-Agent", "curl/8.0"]], "body": "log=admin"},
                "commands": ["id"], "urls": ["http://198.51.100.9/x"],
                "ics": {"function_code": 3}, "data": {"note": "x"}, "unknown_future_field": 1}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2024-05-01T11:59:58.5Z"),
                source_ip: ip("198.51.100.7"),
                source_port: Some(51234),
                destination_ip: ip("203.0.113.5"),
                destination_port: Some(8080),
                protocol: Some("http".into()),
                honeypot: "apiary".into(),
                channel: "apiary.events".into(),
                details: SessionDetails {
                    credentials: vec![
                        Credential {
                            username: "admin".into(),
                            password: "<script>alert(1)</script>".into()
                        },
                        Credential {
                            username: "root".into(),
                            password: "root".into()
                        },
                        Credential {
                            username: "a".into(),
                            password: "b".into()
                        },
                    ],
                    http: Some(HttpRequest {
                        method: Some("POST".into()),
                        path: Some("/wp-login.php".into()),
                        host: Some("example.org".into()),
                        user_agent: Some("curl/8.0".into()),
                        headers: vec![
                            ("host".into(), "example.org".into()),
                            ("user-agent".into(), "curl/8.0".into())
                        ],
                        body: Some("log=admin".into()),
                    }),
                    ics: Some(json!({"function_code": 3})),
                    urls: vec!["http://198.51.100.9/x".into()],
                    commands: vec!["id".into()],
                    extra: Some(
                        json!({"service": "http", "transport": "tcp", "data": {"note": "x"}})
                    ),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn minimal_event_and_errors() {
        let s = one_session(
            "apiary.events",
            r#"{"v":1,"service":"Telnet","src_ip":"10.0.0.8","dst_port":23}"#,
        );
        assert_eq!(s.protocol.as_deref(), Some("telnet"));
        assert!(s.internal);
        assert_eq!(s.timestamp, received());
        assert_eq!(
            fail("apiary.events", r#"{"service":"ssh","src_ip":"1.2.3.4"}"#),
            NormalizeError::MissingField("v")
        );
        assert!(matches!(
            fail(
                "apiary.events",
                r#"{"v":2,"service":"ssh","src_ip":"1.2.3.4"}"#
            ),
            NormalizeError::BadField { field: "v", .. }
        ));
        assert_eq!(
            fail("apiary.events", r#"{"v":1,"src_ip":"1.2.3.4"}"#),
            NormalizeError::MissingField("service")
        );
        assert!(matches!(
            fail(
                "apiary.events",
                r#"{"v":1,"service":"ssh","src_ip":"1.2.3.4","http":{"headers":"x"}}"#
            ),
            NormalizeError::BadField {
                field: "http.headers",
                ..
            }
        ));
    }

    #[test]
    fn huge_username_bounded() {
        let p = json!({"v": 1, "service": "ssh", "src_ip": "2001:db8::1", "username": "u".repeat(1 << 20), "password": ""});
        let s = one_session("apiary.events", p.to_string());
        assert_eq!(s.details.credentials[0].username.len(), SHORT);
        assert_eq!(s.source_ip, ip("2001:db8::1"));
        assert!(!s.internal);
    }

    #[test]
    fn heartbeats() {
        assert!(run(
            "apiary.heartbeat",
            r#"{"v":1,"sensor":"abc","hostname":"pot-1","version":"0.1.0","services":["ssh","http"],"uptime_s":3600}"#
        )
        .is_empty());
        assert_eq!(
            parse_heartbeat(&raw(
                "apiary.heartbeat",
                r#"{"v":1,"sensor":"abc","hostname":"pot-1","version":"0.1.0","services":["ssh","http"],"uptime_s":3600}"#
            )),
            Ok(Heartbeat {
                sensor: Some("abc".into()),
                hostname: Some("pot-1".into()),
                version: Some("0.1.0".into()),
                services: vec!["ssh".into(), "http".into()],
                uptime_s: Some(3600),
            })
        );
        assert!(matches!(
            fail("apiary.heartbeat", r#"{"v":1,"uptime_s":-1}"#),
            NormalizeError::BadField {
                field: "uptime_s",
                ..
            }
        ));
    }

    #[test]
    fn what_apiary_sensor_sends() {
        let s = one_session(
            "apiary.events",
            r#"{"v": 1, "id": "b00t-42", "time": "2024-05-01T11:59:58.5Z", "end_time": "2024-05-01T11:59:59Z",
                "service": "ssh", "protocol": "ssh", "transport": "tcp",
                "src_ip": "198.51.100.7", "src_port": 56762, "dst_ip": "203.0.113.5", "dst_port": 22,
                "bytes_in": 1234, "bytes_out": 567, "duration_ms": 812, "closed": "peer",
                "credentials": [{"username": "root", "password": "123456"}],
                "logged_in": false, "client_version": "SSH-2.0-OpenSSH_9.2",
                "keys": ["ssh-ed25519 SHA256:abc"], "extra": {"rdp_cookie": "x"}}"#,
        );
        assert_eq!(s.timestamp, ts("2024-05-01T11:59:58.5Z"));
        assert_eq!(
            s.details.ssh_version.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2")
        );
        assert_eq!(s.details.logged_in, Some(false));
        assert_eq!(s.details.credentials[0].username, "root");
        let extra = s.details.extra.expect("extra");
        assert_eq!(extra["id"], "b00t-42");
        assert_eq!(extra["closed"], "peer");
        assert_eq!(extra["sensor_extra"]["rdp_cookie"], "x");
    }

    #[test]
    fn heartbeat_with_service_objects() {
        let event = raw(
            "apiary.heartbeat",
            br#"{"v": 1, "time": "2024-05-01T11:59:58Z", "boot_id": "b", "version": "0.1.0", "hostname": "h",
                "uptime_s": 120, "interval_s": 60, "services": [{"name": "ssh", "port": 22}, {"name": "http", "port": 80}],
                "connections": {"active": 3}, "spool": {"pending": 0}}"#,
        );
        let hb = parse_heartbeat(&event).unwrap();
        assert_eq!(
            hb.services,
            vec!["ssh:22".to_string(), "http:80".to_string()]
        );
        assert_eq!(hb.hostname.as_deref(), Some("h"));
        assert_eq!(hb.uptime_s, Some(120));
    }
}
