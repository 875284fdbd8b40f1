//! `cowrie.events`: Cowrie's JSON log (`cowrie.json`), forwarded one line per message.
//!
//! Every line carries `eventid`, `src_ip`, `session`, `timestamp` (RFC 3339) and `sensor`;
//! some add `src_port`, `dst_ip`, `dst_port`, `protocol`. Each interesting event becomes its
//! own session, so one SSH connection yields several; `extra.session` (Cowrie's session id)
//! and `extra.eventid` tie them together:
//!
//! | eventid | session carries |
//! |---|---|
//! | `cowrie.session.connect` | addresses, ports, `protocol` |
//! | `cowrie.login.success` | one credential, `logged_in = true` |
//! | `cowrie.login.failed` | one credential, `logged_in = false` |
//! | `cowrie.command.input` | one command |
//! | `cowrie.client.version` | `ssh_version` |
//! | `cowrie.session.file_download` | the URL, the sha256 (`shasum`); plus a URL record |
//! | `cowrie.session.file_download.failed` | the URL |
//! | `cowrie.session.file_upload` | the sha256 |
//!
//! Everything else (`cowrie.command.failed`, which repeats a `command.input`;
//! `cowrie.client.kex`, `cowrie.client.size`, `cowrie.session.params`,
//! `cowrie.session.closed`, `cowrie.log.closed`, `cowrie.direct-tcpip.*`...) is understood and
//! yields nothing (the raw line is kept).
//!
//! `protocol` is the line's `protocol` when present, else the port table on `dst_port`,
//! else unknown: a login line alone does not say whether it came over SSH or telnet, and
//! guessing `ssh` is the mnemosyne quirk we are fixing.

use super::fields::{self as f};
use super::Result;
use apiary_model::bounded::{MEDIUM, SHORT};
use apiary_model::{Normalized, RawEvent, UrlRecord};
use serde_json::Value;

/// Normalizes one Cowrie JSON log line.
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let eventid =
        f::str_field(&o, "eventid")?.ok_or(super::NormalizeError::MissingField("eventid"))?;
    let eventid = match eventid {
        "cowrie.session.connect"
        | "cowrie.login.success"
        | "cowrie.login.failed"
        | "cowrie.command.input"
        | "cowrie.client.version"
        | "cowrie.session.file_download"
        | "cowrie.session.file_download.failed"
        | "cowrie.session.file_upload" => eventid,
        _ => return Ok(()),
    };
    let ts = f::time_field(&o, "timestamp", raw.received_at)?;
    let mut s = f::new_session(raw, "cowrie", ts);
    s.source_ip = Some(f::source_ip(&o, "src_ip")?);
    s.source_port = f::port(&o, "src_port")?;
    s.destination_ip = f::ip(&o, "dst_ip")?;
    s.destination_port = f::port(&o, "dst_port")?;
    s.protocol = f::text(&o, "protocol", SHORT)?.and_then(|p| f::proto_label(&p));
    let mut url_record = None;
    match eventid {
        "cowrie.login.success" | "cowrie.login.failed" => {
            let u = f::text(&o, "username", SHORT)?.unwrap_or_default();
            let p = f::text(&o, "password", SHORT)?.unwrap_or_default();
            s.details.credentials.push(f::credential(&u, &p));
            s.details.logged_in = Some(eventid == "cowrie.login.success");
        }
        "cowrie.command.input" => {
            s.details.commands.extend(f::text(&o, "input", MEDIUM)?);
        }
        "cowrie.client.version" => {
            s.details.ssh_version = f::text_nonempty(&o, "version", SHORT)?;
        }
        "cowrie.session.file_download"
        | "cowrie.session.file_download.failed"
        | "cowrie.session.file_upload" => {
            if let Some(url) = f::text_nonempty(&o, "url", MEDIUM)? {
                s.details.urls.push(url.clone());
                if eventid == "cowrie.session.file_download" {
                    url_record = Some(UrlRecord {
                        url,
                        file_sha512: Vec::new(),
                    });
                }
            }
            s.details
                .hashes
                .extend(f::str_field(&o, "shasum")?.and_then(f::hash_hex));
        }
        _ => {}
    }
    s.details.extra = f::extra(vec![
        ("eventid", Some(Value::String(eventid.to_string()))),
        ("session", f::text(&o, "session", 64)?.map(Value::String)),
    ]);
    f::push_session(out, s);
    out.extend(url_record.map(Normalized::Url));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::{Credential, Normalized, Session, SessionDetails, UrlRecord};
    use serde_json::json;

    #[test]
    fn connect() {
        let s = one_session(
            "cowrie.events",
            r#"{"eventid":"cowrie.session.connect","src_ip":"198.51.100.7","src_port":51234,"dst_ip":"10.0.0.5","dst_port":2223,"session":"3f2a9c1d0e7b","protocol":"telnet","message":"New connection","sensor":"pot1","timestamp":"2024-05-01T11:59:58.123456Z"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2024-05-01T11:59:58.123456Z"),
                source_ip: ip("198.51.100.7"),
                source_port: Some(51234),
                destination_ip: ip("10.0.0.5"),
                destination_port: Some(2223),
                protocol: Some("telnet".into()),
                honeypot: "cowrie".into(),
                channel: "cowrie.events".into(),
                details: SessionDetails {
                    extra: Some(
                        json!({"eventid": "cowrie.session.connect", "session": "3f2a9c1d0e7b"})
                    ),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn login_attempts() {
        for (id, ok) in [
            ("cowrie.login.success", true),
            ("cowrie.login.failed", false),
        ] {
            let s = one_session(
                "cowrie.events",
                json!({"eventid": id, "username": "root", "password": "<script>x</script>",
                    "src_ip": "::ffff:203.0.113.4", "session": "s1", "timestamp": "2024-05-01T11:00:00Z"})
                .to_string(),
            );
            assert_eq!(
                s,
                Session {
                    timestamp: ts("2024-05-01T11:00:00Z"),
                    source_ip: ip("203.0.113.4"),
                    honeypot: "cowrie".into(),
                    channel: "cowrie.events".into(),
                    details: SessionDetails {
                        credentials: vec![Credential {
                            username: "root".into(),
                            password: "<script>x</script>".into()
                        }],
                        logged_in: Some(ok),
                        extra: Some(json!({"eventid": id, "session": "s1"})),
                        ..Default::default()
                    },
                    ..Default::default()
                }
            );
        }
    }

    #[test]
    fn command_version_download() {
        let s = one_session(
            "cowrie.events",
            r#"{"eventid":"cowrie.command.input","input":"cat /proc/cpuinfo","src_ip":"198.51.100.7","session":"s"}"#,
        );
        assert_eq!(s.details.commands, vec!["cat /proc/cpuinfo".to_string()]);
        let s = one_session(
            "cowrie.events",
            r#"{"eventid":"cowrie.client.version","version":"SSH-2.0-Go","src_ip":"198.51.100.7","session":"s"}"#,
        );
        assert_eq!(s.details.ssh_version.as_deref(), Some("SSH-2.0-Go"));
        let out = run(
            "cowrie.events",
            r#"{"eventid":"cowrie.session.file_download","url":"http://198.51.100.9/x.sh","shasum":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","outfile":"var/lib/cowrie/downloads/e3b0","src_ip":"198.51.100.7","session":"s"}"#,
        );
        assert_eq!(out.len(), 2);
        let Normalized::Session(s) = &out[0] else {
            panic!()
        };
        assert_eq!(s.details.urls, vec!["http://198.51.100.9/x.sh".to_string()]);
        assert_eq!(
            s.details.hashes,
            vec!["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string()]
        );
        assert_eq!(
            out[1],
            Normalized::Url(UrlRecord {
                url: "http://198.51.100.9/x.sh".into(),
                file_sha512: vec![]
            })
        );
    }

    #[test]
    fn ignored_and_errors() {
        for id in [
            "cowrie.client.kex",
            "cowrie.session.closed",
            "cowrie.command.failed",
            "cowrie.log.closed",
        ] {
            assert!(run(
                "cowrie.events",
                json!({"eventid": id, "src_ip": "198.51.100.7"}).to_string()
            )
            .is_empty());
        }
        assert_eq!(
            fail("cowrie.events", r#"{"src_ip":"1.2.3.4"}"#),
            NormalizeError::MissingField("eventid")
        );
        assert_eq!(
            fail("cowrie.events", r#"{"eventid":"cowrie.login.failed"}"#),
            NormalizeError::MissingField("src_ip")
        );
        assert!(matches!(
            fail(
                "cowrie.events",
                r#"{"eventid":"cowrie.login.failed","src_ip":"1.2.3.4","username":{"a":1}}"#
            ),
            NormalizeError::BadField {
                field: "username",
                ..
            }
        ));
    }
}
