//! Apiary's domain types. No IO, no database, no sockets: every other crate speaks these.
//!
//! # Layout
//! - [`raw`]: a message exactly as the broker received it.
//! - [`event`]: what normalizers produce from it (sessions, files, urls, dorks, p0f metadata).
//! - [`ident`]: hpfeeds credentials (ident, secret, channel ACLs).
//! - [`bounded`]: length limits applied to every attacker-controlled string.
//! - [`account`]: users, roles, API keys and web sessions of the web app.

pub mod account;
pub mod bounded;
pub mod event;
pub mod ident;
pub mod live;
pub mod raw;

pub use account::{ApiKey, Role, User, WebSession};
pub use event::{
    Credential, Dork, FileRecord, GeoInfo, HttpRequest, IdsAlert, Normalized, P0fMetadata, Session,
    SessionDetails, UrlRecord,
};
pub use ident::{Ident, Secret};
pub use raw::RawEvent;
