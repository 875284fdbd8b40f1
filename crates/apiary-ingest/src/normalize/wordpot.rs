//! Wordpot (WordPress honeypot): `wordpot.events`.

use super::fields::{self as f};
use super::Result;
use apiary_model::bounded::{MEDIUM, SHORT};
use apiary_model::{HttpRequest, Normalized, RawEvent};
use serde_json::Value;

/// `{plugin, source_ip, source_port, dest_ip, dest_port, user_agent, url}` + plugin extras
/// (`badlogin`: `username, password`; `commonfiles`/`timthumb`: `filename`;
/// `userenumeration`: `author`) → an `http` session with the URL and user agent, `plugin`
/// and the extras in `extra`. `dest_ip` is the WSGI `SERVER_NAME`, so a hostname there is
/// kept as the request's host rather than as an address.
///
/// Fix against mnemosyne: `badlogin` credentials are kept (mnemosyne dropped them).
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let mut s = f::new_session(raw, "wordpot", raw.received_at);
    s.source_ip = Some(f::source_ip(&o, "source_ip")?);
    s.source_port = f::port(&o, "source_port")?;
    s.destination_ip = f::ip(&o, "dest_ip")?;
    s.destination_port = f::port(&o, "dest_port")?;
    s.protocol = Some("http".into());
    let username = f::text(&o, "username", SHORT)?;
    let password = f::text(&o, "password", SHORT)?;
    if username.is_some() || password.is_some() {
        s.details.credentials.push(f::credential(
            username.as_deref().unwrap_or(""),
            password.as_deref().unwrap_or(""),
        ));
    }
    let host = match s.destination_ip {
        Some(_) => None,
        None => f::text_nonempty(&o, "dest_ip", MEDIUM)?,
    };
    s.details.http = Some(HttpRequest {
        path: f::text_nonempty(&o, "url", MEDIUM)?,
        host,
        user_agent: f::text_nonempty(&o, "user_agent", MEDIUM)?,
        ..Default::default()
    });
    s.details.extra = f::extra(vec![
        (
            "plugin",
            f::text_nonempty(&o, "plugin", SHORT)?.map(Value::String),
        ),
        (
            "filename",
            f::text_nonempty(&o, "filename", MEDIUM)?.map(Value::String),
        ),
        (
            "author",
            f::text_nonempty(&o, "author", SHORT)?.map(Value::String),
        ),
    ]);
    f::push_session(out, s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use apiary_model::{Credential, HttpRequest, Session, SessionDetails};
    use serde_json::json;

    #[test]
    fn badlogin() {
        let s = one_session(
            "wordpot.events",
            r#"{"plugin": "badlogin", "username": "admin", "password": "admin123", "source_ip": "198.51.100.7",
 "source_port": "51234", "dest_ip": "203.0.113.5", "dest_port": "80",
 "user_agent": "Mozilla/5.0", "url": "http://203.0.113.5/wp-login.php"}"#,
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
                honeypot: "wordpot".into(),
                channel: "wordpot.events".into(),
                details: SessionDetails {
                    credentials: vec![Credential {
                        username: "admin".into(),
                        password: "admin123".into()
                    }],
                    http: Some(HttpRequest {
                        path: Some("http://203.0.113.5/wp-login.php".into()),
                        user_agent: Some("Mozilla/5.0".into()),
                        ..Default::default()
                    }),
                    extra: Some(json!({"plugin": "badlogin"})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn hostname_destination() {
        let s = one_session(
            "wordpot.events",
            r#"{"plugin": "timthumb", "filename": "timthumb.php", "source_ip": "198.51.100.7", "dest_ip": "blog.example", "dest_port": "8080"}"#,
        );
        assert_eq!(s.destination_ip, None);
        assert_eq!(
            s.details.http.unwrap().host.as_deref(),
            Some("blog.example")
        );
        assert_eq!(s.protocol.as_deref(), Some("http"));
        assert!(s.details.credentials.is_empty());
    }
}
