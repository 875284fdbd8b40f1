//! Per-connection protocol state: waiting for AUTH, then authenticated.
//!
//! Frames in, actions out; no sockets, so every rule in the crate docs is unit-tested here.

use std::sync::Arc;

use bytes::Bytes;
use hpfeeds::Frame;

use crate::auth::{Acl, Authenticator};

/// Suffix of the per-channel join/leave notification channel.
pub const BROKER_SUFFIX: &[u8] = b"..broker";

/// What the connection must do after a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this frame back to the client.
    Reply(Frame),
    /// Relay the publication (the connection has the original frame bytes).
    Publish {
        /// Channel published to.
        channel: Bytes,
        /// Payload.
        payload: Bytes,
    },
    /// Register a subscription.
    Subscribe(Bytes),
    /// Remove a subscription.
    Unsubscribe(Bytes),
    /// Authentication succeeded for this ident.
    Authenticated(Bytes),
    /// Close the connection after sending any replies.
    Close,
}

/// Why a frame was refused; each maps to a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown ident or wrong secret.
    AuthFailed,
    /// A frame other than AUTH came first.
    NotAuthFirst,
    /// The frame named an ident other than the authenticated one.
    IdentMismatch,
    /// Publishing outside the ACL.
    PublishDenied,
    /// Subscribing outside the ACL.
    SubscribeDenied,
    /// AUTH on an authenticated connection.
    Reauth,
    /// INFO or ERROR sent by a client.
    Unexpected,
}

impl Refusal {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::AuthFailed => "auth_failed",
            Refusal::NotAuthFirst => "not_auth_first",
            Refusal::IdentMismatch => "ident_mismatch",
            Refusal::PublishDenied => "publish_denied",
            Refusal::SubscribeDenied => "subscribe_denied",
            Refusal::Reauth => "reauth",
            Refusal::Unexpected => "unexpected_opcode",
        }
    }
}

enum State {
    AwaitingAuth,
    Authed(Arc<Acl>),
}

/// The protocol state of one connection.
pub struct Session {
    nonce: [u8; 4],
    state: State,
}

/// Text of an ident or channel for an error message: lossy UTF-8, already ≤ 255 bytes.
fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Session {
    /// A fresh session that sent `nonce` in its INFO frame.
    pub fn new(nonce: [u8; 4]) -> Self {
        Self {
            nonce,
            state: State::AwaitingAuth,
        }
    }

    /// The authenticated ACL, if any.
    pub fn acl(&self) -> Option<&Arc<Acl>> {
        match &self.state {
            State::Authed(acl) => Some(acl),
            State::AwaitingAuth => None,
        }
    }

    /// Handles one frame; pushes actions to `out` and returns the refusal, if any.
    pub fn handle(
        &mut self,
        frame: Frame,
        auth: &dyn Authenticator,
        out: &mut Vec<Action>,
    ) -> Option<Refusal> {
        match (&self.state, frame) {
            (_, Frame::Info { .. }) => {
                out.push(Action::Reply(Frame::error(
                    "Unexpected OP_INFO from client",
                )));
                out.push(Action::Close);
                Some(Refusal::Unexpected)
            }
            (_, Frame::Error(_)) => {
                out.push(Action::Reply(Frame::error(
                    "Unexpected OP_ERROR from client",
                )));
                out.push(Action::Close);
                Some(Refusal::Unexpected)
            }
            (State::AwaitingAuth, Frame::Auth { ident, hash }) => match auth.lookup(&ident) {
                Some(acl) if acl.verify(&self.nonce, &hash) => {
                    self.state = State::Authed(acl);
                    out.push(Action::Authenticated(ident));
                    None
                }
                _ => {
                    out.push(Action::Reply(Frame::error(format!(
                        "Authentication failed for {}",
                        show(&ident)
                    ))));
                    out.push(Action::Close);
                    Some(Refusal::AuthFailed)
                }
            },
            (State::AwaitingAuth, _) => {
                out.push(Action::Reply(Frame::error("First message was not AUTH")));
                out.push(Action::Close);
                Some(Refusal::NotAuthFirst)
            }
            (State::Authed(_), Frame::Auth { .. }) => {
                out.push(Action::Reply(Frame::error("Already authenticated")));
                Some(Refusal::Reauth)
            }
            (
                State::Authed(acl),
                Frame::Publish {
                    ident,
                    channel,
                    payload,
                },
            ) => {
                if ident != acl.ident {
                    out.push(Action::Reply(mismatch(&ident)));
                    return Some(Refusal::IdentMismatch);
                }
                if channel.ends_with(BROKER_SUFFIX) || !acl.may_publish(&channel) {
                    out.push(Action::Reply(Frame::error(format!(
                        "Authkey not allowed to pub here. ident={}, chan={}",
                        show(&ident),
                        show(&channel)
                    ))));
                    return Some(Refusal::PublishDenied);
                }
                out.push(Action::Publish { channel, payload });
                None
            }
            (State::Authed(acl), Frame::Subscribe { ident, channel }) => {
                if ident != acl.ident {
                    out.push(Action::Reply(mismatch(&ident)));
                    return Some(Refusal::IdentMismatch);
                }
                // `<chan>..broker` needs subscribe rights on `<chan>` itself.
                let base = channel.strip_suffix(BROKER_SUFFIX).unwrap_or(&channel[..]);
                if !acl.may_subscribe(base) {
                    out.push(Action::Reply(Frame::error(format!(
                        "Authkey not allowed to sub here. ident={}, chan={}",
                        show(&ident),
                        show(&channel)
                    ))));
                    return Some(Refusal::SubscribeDenied);
                }
                out.push(Action::Subscribe(channel));
                None
            }
            (State::Authed(acl), Frame::Unsubscribe { ident, channel }) => {
                if ident != acl.ident {
                    out.push(Action::Reply(mismatch(&ident)));
                    return Some(Refusal::IdentMismatch);
                }
                out.push(Action::Unsubscribe(channel));
                None
            }
        }
    }
}

fn mismatch(ident: &[u8]) -> Frame {
    Frame::error(format!("Invalid authkey in message, ident={}", show(ident)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::MemoryAuth;
    use apiary_model::{Ident, Secret};

    const NONCE: [u8; 4] = [9, 8, 7, 6];

    fn auth() -> MemoryAuth {
        let a = MemoryAuth::new();
        a.replace_all(&[Ident {
            ident: "pub1".into(),
            secret: Secret::new("s3cret"),
            publish: vec!["test".into()],
            subscribe: vec!["feed".into()],
            owner: String::new(),
        }]);
        a
    }

    fn login(s: &mut Session, a: &MemoryAuth) {
        let mut out = vec![];
        let r = s.handle(
            Frame::Auth {
                ident: "pub1".into(),
                hash: Bytes::copy_from_slice(&hpfeeds::auth_hash(&NONCE, b"s3cret")),
            },
            a,
            &mut out,
        );
        assert_eq!(r, None);
        assert_eq!(out, vec![Action::Authenticated("pub1".into())]);
    }

    fn err(text: &str) -> Action {
        Action::Reply(Frame::error(text))
    }

    #[test]
    fn wrong_secret_is_fatal() {
        let a = auth();
        let mut s = Session::new(NONCE);
        let mut out = vec![];
        let r = s.handle(
            Frame::Auth {
                ident: "pub1".into(),
                hash: Bytes::copy_from_slice(&hpfeeds::auth_hash(&NONCE, b"nope")),
            },
            &a,
            &mut out,
        );
        assert_eq!(r, Some(Refusal::AuthFailed));
        assert_eq!(
            out,
            vec![err("Authentication failed for pub1"), Action::Close]
        );
        assert!(s.acl().is_none());
    }

    #[test]
    fn unknown_ident_and_hostile_bytes() {
        let a = auth();
        let mut s = Session::new(NONCE);
        let mut out = vec![];
        s.handle(
            Frame::Auth {
                ident: Bytes::from_static(b"\xff<script>"),
                hash: Bytes::new(),
            },
            &a,
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                err("Authentication failed for \u{fffd}<script>"),
                Action::Close
            ]
        );
    }

    #[test]
    fn must_auth_first() {
        let a = auth();
        let mut s = Session::new(NONCE);
        let mut out = vec![];
        let r = s.handle(Frame::publish("pub1", "test", "x"), &a, &mut out);
        assert_eq!(r, Some(Refusal::NotAuthFirst));
        assert_eq!(out, vec![err("First message was not AUTH"), Action::Close]);
    }

    #[test]
    fn publish_rules() {
        let a = auth();
        let mut s = Session::new(NONCE);
        login(&mut s, &a);
        let mut out = vec![];
        assert_eq!(
            s.handle(Frame::publish("pub1", "test", "hi"), &a, &mut out),
            None
        );
        assert_eq!(
            out,
            vec![Action::Publish {
                channel: "test".into(),
                payload: "hi".into()
            }]
        );
        out.clear();
        assert_eq!(
            s.handle(Frame::publish("sub1", "test", "hi"), &a, &mut out),
            Some(Refusal::IdentMismatch)
        );
        assert_eq!(out, vec![err("Invalid authkey in message, ident=sub1")]);
        out.clear();
        assert_eq!(
            s.handle(Frame::publish("pub1", "other", "hi"), &a, &mut out),
            Some(Refusal::PublishDenied)
        );
        assert_eq!(
            out,
            vec![err(
                "Authkey not allowed to pub here. ident=pub1, chan=other"
            )]
        );
        out.clear();
        assert_eq!(
            s.handle(Frame::publish("pub1", "test..broker", "hi"), &a, &mut out),
            Some(Refusal::PublishDenied)
        );
        // Non-fatal: still authenticated and publishing works.
        out.clear();
        s.handle(Frame::publish("pub1", "test", "again"), &a, &mut out);
        assert!(matches!(out[0], Action::Publish { .. }));
    }

    #[test]
    fn subscribe_rules() {
        let a = auth();
        let mut s = Session::new(NONCE);
        login(&mut s, &a);
        let mut out = vec![];
        let sub = |c: &'static str| Frame::Subscribe {
            ident: "pub1".into(),
            channel: c.into(),
        };
        assert_eq!(s.handle(sub("feed"), &a, &mut out), None);
        assert_eq!(s.handle(sub("feed..broker"), &a, &mut out), None);
        assert_eq!(
            out,
            vec![
                Action::Subscribe("feed".into()),
                Action::Subscribe("feed..broker".into())
            ]
        );
        out.clear();
        assert_eq!(
            s.handle(sub("test"), &a, &mut out),
            Some(Refusal::SubscribeDenied)
        );
        assert_eq!(
            out,
            vec![err(
                "Authkey not allowed to sub here. ident=pub1, chan=test"
            )]
        );
        out.clear();
        s.handle(
            Frame::Unsubscribe {
                ident: "pub1".into(),
                channel: "feed".into(),
            },
            &a,
            &mut out,
        );
        assert_eq!(out, vec![Action::Unsubscribe("feed".into())]);
    }

    #[test]
    fn reauth_and_client_info() {
        let a = auth();
        let mut s = Session::new(NONCE);
        login(&mut s, &a);
        let mut out = vec![];
        let r = s.handle(
            Frame::Auth {
                ident: "pub1".into(),
                hash: Bytes::new(),
            },
            &a,
            &mut out,
        );
        assert_eq!(r, Some(Refusal::Reauth));
        assert_eq!(out, vec![err("Already authenticated")]);
        assert!(s.acl().is_some());
        out.clear();
        let r = s.handle(
            Frame::Info {
                name: "x".into(),
                nonce: Bytes::new(),
            },
            &a,
            &mut out,
        );
        assert_eq!(r, Some(Refusal::Unexpected));
        assert_eq!(out.last(), Some(&Action::Close));
    }
}
