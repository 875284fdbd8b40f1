//! People who use the web app and API: users, roles, API keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a user may do. Analysts read; admins also change things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users, sensors and API keys.
    Admin,
    /// Read-only.
    Analyst,
}

impl Role {
    /// Stable text form, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Analyst => "analyst",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "analyst" => Some(Self::Analyst),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Store id.
    pub id: i64,
    /// Sign-in name (unique, compared case-insensitively).
    pub email: String,
    /// What the user may do.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// An API key's public description. The key itself is shown once, at creation, and only
/// its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Store id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// The first characters of the key, so people can tell keys apart.
    pub prefix: String,
    /// Free-text label.
    pub label: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A signed-in browser session. The cookie carries a random token; the store keeps only
/// its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 (hex) of the cookie token.
    pub token_hash: String,
    /// Who signed in.
    pub user_id: i64,
    /// Synchronizer token that state-changing forms must echo.
    pub csrf: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
}
