//! The hpfeeds broker: wire-compatible with the legacy MHN broker and hpfeeds 3 clients.
//!
//! # Layout
//! - [`auth`]: the in-memory credential table (ident → secret + channel ACLs), swapped
//!   atomically when the store's idents change.
//! - [`session`]: per-connection state machine, `Frame` in → actions out. No sockets.
//! - [`router`]: channel → subscribers; bounded queues for TCP subscribers, lossless
//!   backpressured queues for in-process consumers.
//! - [`connection`]: one client socket: read loop, writer task, limits.
//! - [`server`]: accept loops (TCP, TLS), connection cap, shutdown.
//! - [`metrics`]: counters rendered as Prometheus text.
//! - [`tls`]: loading certificate and key files.
//!
//! # Behaviour (decided where the reference brokers disagree)
//! - INFO on connect: configurable name, 4-byte nonce from the OS CSPRNG.
//! - AUTH failure (unknown ident or wrong secret): `Authentication failed for <ident>`,
//!   then close. Closing forces a new connection (and nonce) per guess.
//! - No AUTH within the auth timeout: `Authentication timeout`, close.
//! - Anything but AUTH first: `First message was not AUTH`, close.
//! - A second AUTH: `Already authenticated`, ignored (identity unchanged; the hpfeeds 3
//!   broker switches identity on the same nonce, the legacy one unions rights; neither is
//!   needed by any client we know).
//! - PUBLISH/SUBSCRIBE/UNSUBSCRIBE naming another ident: `Invalid authkey in message,
//!   ident=<x>`, message dropped, connection kept (the official Rust broker relays it:
//!   a spoofing hole).
//! - PUBLISH or SUBSCRIBE outside the ident's ACL: `Authkey not allowed to pub here.
//!   ident=<i>, chan=<c>` / `... sub here ...`, connection kept (MHN-legacy: non-fatal).
//! - Publishing to `<chan>..broker` is refused; subscribing to it needs subscribe rights on
//!   `<chan>`; the broker publishes `join`/`leave` there (ident = the subscriber).
//! - The publisher never receives its own message (legacy: no echo).
//! - Frame length < 5, above the limit, or an unknown opcode: an ERROR frame, then close.
//!   Before authentication the limit is 281 bytes (the largest AUTH).
//!   A client sending INFO or ERROR: `Unexpected <op> from client`, close.
//! - Slow TCP subscribers: each has a queue bounded in frames and bytes. A message that
//!   does not fit is dropped for that subscriber only and counted; a subscriber that stays
//!   full for the grace period is sent `Subscriber too slow` and disconnected (counted).
//! - In-process consumers never lose a message: when one is full, the publishing
//!   connection stops reading its socket until there is room (TCP backpressure).
//! - When an ident is removed or its secret/ACL changes, its open connections are closed.

pub mod auth;
pub mod connection;
pub mod metrics;
pub mod router;
pub mod server;
pub mod session;
pub mod tls;

pub use auth::{Acl, Authenticator};
pub use metrics::BrokerMetrics;
pub use router::{Published, Router};
pub use server::{Broker, BrokerConfig};
