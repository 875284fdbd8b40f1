//! The credential table the broker checks AUTH against.
//!
//! Reads happen on every AUTH and must not wait on the store, so the table lives in
//! memory and is replaced wholesale when the store's idents change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use apiary_model::Ident;
use bytes::Bytes;
use parking_lot::RwLock;
use subtle::ConstantTimeEq;

/// One ident's secret and channel rights, in the byte form frames carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// The identifier.
    pub ident: Bytes,
    secret: Vec<u8>,
    /// Channels it may publish to.
    pub publish: HashSet<Bytes>,
    /// Channels it may subscribe to.
    pub subscribe: HashSet<Bytes>,
}

impl Acl {
    /// Builds the ACL of a stored ident.
    pub fn from_ident(i: &Ident) -> Self {
        Self {
            ident: Bytes::copy_from_slice(i.ident.as_bytes()),
            secret: i.secret.expose().as_bytes().to_vec(),
            publish: i
                .publish
                .iter()
                .map(|c| Bytes::copy_from_slice(c.as_bytes()))
                .collect(),
            subscribe: i
                .subscribe
                .iter()
                .map(|c| Bytes::copy_from_slice(c.as_bytes()))
                .collect(),
        }
    }

    /// Checks `hash == SHA1(nonce ‖ secret)` in constant time.
    pub fn verify(&self, nonce: &[u8], hash: &[u8]) -> bool {
        let expected = hpfeeds::auth_hash(nonce, &self.secret);
        hash.len() == expected.len() && bool::from(expected.ct_eq(hash))
    }

    /// May publish on `channel`.
    pub fn may_publish(&self, channel: &[u8]) -> bool {
        self.publish.contains(channel)
    }

    /// May subscribe to `channel`.
    pub fn may_subscribe(&self, channel: &[u8]) -> bool {
        self.subscribe.contains(channel)
    }
}

/// Looks up idents; implemented by the in-memory table and by test doubles.
pub trait Authenticator: Send + Sync {
    /// The ACL of `ident`, if it exists.
    fn lookup(&self, ident: &[u8]) -> Option<Arc<Acl>>;
}

/// The broker's in-memory credential table.
#[derive(Default)]
pub struct MemoryAuth {
    table: RwLock<HashMap<Bytes, Arc<Acl>>>,
}

impl MemoryAuth {
    /// An empty table (every AUTH fails).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole table; returns the idents that were removed or changed, whose
    /// open connections must be closed.
    pub fn replace_all(&self, idents: &[Ident]) -> Vec<Bytes> {
        let new: HashMap<Bytes, Arc<Acl>> = idents
            .iter()
            .map(|i| {
                let acl = Acl::from_ident(i);
                (acl.ident.clone(), Arc::new(acl))
            })
            .collect();
        let mut table = self.table.write();
        let stale = table
            .iter()
            .filter(|(k, old)| new.get(*k).is_none_or(|n| n != *old))
            .map(|(k, _)| k.clone())
            .collect();
        *table = new;
        stale
    }

    /// Number of idents loaded.
    pub fn len(&self) -> usize {
        self.table.read().len()
    }

    /// True when no ident is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Authenticator for MemoryAuth {
    fn lookup(&self, ident: &[u8]) -> Option<Arc<Acl>> {
        self.table.read().get(ident).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiary_model::Secret;

    fn ident(name: &str, secret: &str, publish: &[&str]) -> Ident {
        Ident {
            ident: name.into(),
            secret: Secret::new(secret),
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: vec![],
            owner: String::new(),
        }
    }

    #[test]
    fn verify_and_replace() {
        let auth = MemoryAuth::new();
        assert!(auth
            .replace_all(&[ident("a", "s1", &["x"]), ident("b", "s2", &[])])
            .is_empty());
        let a = auth.lookup(b"a").unwrap();
        let nonce = [1, 2, 3, 4];
        assert!(a.verify(&nonce, &hpfeeds::auth_hash(&nonce, b"s1")));
        assert!(!a.verify(&nonce, &hpfeeds::auth_hash(&nonce, b"s2")));
        assert!(!a.verify(&nonce, b"short"));
        assert!(a.may_publish(b"x") && !a.may_publish(b"y"));
        // b removed, a's ACL changed: both stale.
        let mut stale = auth.replace_all(&[ident("a", "s1", &["x", "y"])]);
        stale.sort();
        assert_eq!(stale, vec![Bytes::from("a"), Bytes::from("b")]);
        assert!(auth.lookup(b"b").is_none());
    }
}
