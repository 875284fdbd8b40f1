//! Beeswarm hive: `beeswarm.hive`.

use super::fields::{self as f};
use super::Result;
use apiary_model::bounded::MAX_ITEMS;
use apiary_model::{Normalized, RawEvent};

/// `{honey_ip, honey_port, attacker_ip, attacker_source_port, protocol, timestamp,
///   login_attempts: [{username, password, timestamp}], id}` → one session with every login
/// attempt as a credential. `timestamp` is the payload's (naive, taken as UTC).
/// `honeypot` is `beeswarm` (mnemosyne wrote the channel name, `beeswarm.hive`).
pub fn hive(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let ts = f::time_field(&o, "timestamp", raw.received_at)?;
    let mut s = f::new_session(raw, "beeswarm", ts);
    s.source_ip = Some(f::source_ip(&o, "attacker_ip")?);
    s.source_port = f::port(&o, "attacker_source_port")?;
    s.destination_ip = f::ip(&o, "honey_ip")?;
    s.destination_port = f::port(&o, "honey_port")?;
    s.protocol = f::text(&o, "protocol", 64)?.and_then(|p| f::proto_label(&p));
    for attempt in f::array_field(&o, "login_attempts")?.iter().take(MAX_ITEMS) {
        s.details
            .credentials
            .extend(f::credential_value(attempt, "login_attempts")?);
    }
    f::push_session(out, s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::{Credential, Session, SessionDetails};

    #[test]
    fn mnemosyne_sample() {
        let s = one_session(
            "beeswarm.hive",
            r#"{"honey_ip": "111.222.222.111", "attacker_ip": "123.123.123.123",
 "login_attempts": [{"username": "james", "timestamp": "2013-02-20T15:02:25.228523", "password": "bond"},
                    {"username": "a", "timestamp": "2013-02-20T15:02:27.467429", "password": "s"}],
 "honey_port": 23, "timestamp": "2013-02-20T15:02:23.432581", "attacker_source_port": 56982,
 "id": "f2deccc8-0395-488c-87a1-b40850f8aa78", "protocol": "telnet"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2013-02-20T15:02:23.432581Z"),
                source_ip: ip("123.123.123.123"),
                source_port: Some(56982),
                destination_ip: ip("111.222.222.111"),
                destination_port: Some(23),
                protocol: Some("telnet".into()),
                honeypot: "beeswarm".into(),
                channel: "beeswarm.hive".into(),
                details: SessionDetails {
                    credentials: vec![
                        Credential {
                            username: "james".into(),
                            password: "bond".into()
                        },
                        Credential {
                            username: "a".into(),
                            password: "s".into()
                        },
                    ],
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn wrong_types() {
        assert!(matches!(
            fail(
                "beeswarm.hive",
                r#"{"attacker_ip": "1.2.3.4", "login_attempts": [5]}"#
            ),
            NormalizeError::BadField { .. }
        ));
        assert!(matches!(
            fail("beeswarm.hive", r#"{"attacker_ip": 1234}"#),
            NormalizeError::BadField { .. }
        ));
    }
}
