//! hpfeeds credentials.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret whose `Debug` and `Display` never reveal it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; call only where it is really needed (auth, admin display).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// An hpfeeds identity: who may publish and subscribe where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ident {
    /// The identifier sent in `OP_AUTH`.
    pub ident: String,
    /// Shared secret.
    pub secret: Secret,
    /// Channels this ident may publish to (exact names).
    pub publish: Vec<String>,
    /// Channels this ident may subscribe to (exact names).
    pub subscribe: Vec<String>,
    /// Free-text owner (user, sensor uuid...).
    #[serde(default)]
    pub owner: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn secret_is_masked() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "****");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
