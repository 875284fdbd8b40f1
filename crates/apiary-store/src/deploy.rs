//! Deploy scripts and enrollment tokens: what the Deploy page edits and what the one-line
//! deploy command (`curl -fsSL SERVER/deploy/<token>.sh | sudo bash`) is gated by.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A deploy script at its newest version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployScript {
    /// Row id.
    pub id: i64,
    /// Display name (unique), e.g. "Apiary sensor".
    pub name: String,
    /// Honeypot the script installs (the sensors it registers get this honeypot).
    pub honeypot: String,
    /// Newest version number (1 for a new script).
    pub version: i64,
    /// Body of the newest version.
    pub body: String,
    /// Notes of the newest version.
    pub notes: String,
    /// Author of the newest version.
    pub author: String,
    /// When the script was created.
    pub created_at: DateTime<Utc>,
    /// When the newest version was saved.
    pub updated_at: DateTime<Utc>,
}

/// One saved version of a deploy script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptVersion {
    /// Script id.
    pub script_id: i64,
    /// Version number, from 1.
    pub version: i64,
    /// Script text.
    pub body: String,
    /// What changed.
    pub notes: String,
    /// Who saved it.
    pub author: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An enrollment token (the token itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentToken {
    /// Row id.
    pub id: i64,
    /// The script it deploys.
    pub script_id: i64,
    /// First characters of the token, to recognise it in lists.
    pub prefix: String,
    /// Free text.
    pub label: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// After this instant the token is refused.
    pub expires_at: DateTime<Utc>,
    /// Revoked tokens are refused.
    pub revoked: bool,
    /// Successful registrations made with it.
    pub uses: i64,
}

impl EnrollmentToken {
    /// Usable at `now`: not revoked and not expired.
    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && now < self.expires_at
    }
}

/// What a new enrollment token needs.
#[derive(Debug, Clone)]
pub struct NewEnrollmentToken {
    /// The script it deploys.
    pub script_id: i64,
    /// SHA-256 hex of the token.
    pub token_hash: String,
    /// First characters of the token.
    pub prefix: String,
    /// Free text.
    pub label: String,
    /// Who creates it.
    pub created_by: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}
