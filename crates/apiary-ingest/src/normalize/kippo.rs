//! Kippo (SSH honeypot, Cowrie's ancestor): `kippo.sessions`.

use super::cowrie::read_session;
use super::fields as f;
use super::Result;
use apiary_model::{Normalized, RawEvent};

/// `{peerIP, peerPort, hostIP, hostPort, loggedin, credentials, version, ttylog}` → one `ssh`
/// session, read like Cowrie's (see [`super::cowrie::sessions`]); no sensor timestamp.
///
/// Fixes against mnemosyne: the successful `loggedin` pair is kept as the last credential and
/// `logged_in` is set (mnemosyne dropped it for kippo only); `hostIP` becomes
/// `destination_ip`; a payload without `credentials` is a session without credentials, not
/// an error. The `ttylog` hex stays in the raw message only.
pub fn sessions(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let mut s = read_session(raw, &o, "kippo", raw.received_at)?;
    s.protocol = Some("ssh".into());
    f::push_session(out, s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use apiary_model::{Credential, Session, SessionDetails};

    #[test]
    fn mnemosyne_sample() {
        let s = one_session(
            "kippo.sessions",
            r#"{"peerIP": "223.5.23.53", "loggedin": ["root", "toor"], "ttylog": "01babadeadbeef", "hostIP": "192.168.6.211",
 "peerPort": 36868, "version": "SSH-2.0-libssh-0.1", "hostPort": 2222, "credentials": [["root", "123muie123"]]}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: received(),
                source_ip: ip("223.5.23.53"),
                source_port: Some(36868),
                destination_ip: ip("192.168.6.211"),
                destination_port: Some(2222),
                protocol: Some("ssh".into()),
                honeypot: "kippo".into(),
                channel: "kippo.sessions".into(),
                details: SessionDetails {
                    credentials: vec![
                        Credential {
                            username: "root".into(),
                            password: "123muie123".into()
                        },
                        Credential {
                            username: "root".into(),
                            password: "toor".into()
                        },
                    ],
                    ssh_version: Some("SSH-2.0-libssh-0.1".into()),
                    logged_in: Some(true),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn no_credentials_is_fine() {
        let s = one_session("kippo.sessions", r#"{"peerIP": "223.5.23.53"}"#);
        assert!(s.details.credentials.is_empty());
        assert_eq!(s.details.logged_in, Some(false));
    }
}
