//! A raw hpfeeds message as received.

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// One published message, kept byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// Store id, once stored.
    pub id: Option<i64>,
    /// Channel it was published on.
    pub channel: String,
    /// Authenticated ident of the publisher.
    pub ident: String,
    /// When the broker received it.
    pub received_at: DateTime<Utc>,
    /// Payload bytes, exactly as published (may be binary).
    pub payload: Bytes,
}
