//! SSH service on the `russh` server (ring crypto): a real key exchange, then every
//! authentication attempt (none, password, public key, keyboard-interactive) is recorded
//! and rejected. No shell is ever granted.

use std::path::Path;
use std::sync::{Arc, Mutex};

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, Config, Handler, PublicKeyOffer, Response};
use russh::{MethodKind, MethodSet, SshId};

use crate::event::Capture;

/// Loads the Ed25519 host key seed from `path` (hex), creating it on first start.
pub fn host_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let seed: [u8; 32] = match std::fs::read_to_string(path) {
        Ok(s) => hex::decode(s.trim())?
            .try_into()
            .map_err(|_| anyhow::anyhow!("{}: bad host key seed", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            std::fs::write(path, hex::encode(seed))?;
            seed
        }
        Err(e) => return Err(e.into()),
    };
    Ok(PrivateKey::from(Ed25519Keypair::from_seed(&seed)))
}

/// Server configuration: our banner, password + publickey + keyboard-interactive offered.
pub fn config(key: PrivateKey, banner: Option<&str>, timeout: std::time::Duration) -> Config {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::Password);
    methods.push(MethodKind::PublicKey);
    methods.push(MethodKind::KeyboardInteractive);
    Config {
        server_id: SshId::Standard(
            banner
                .unwrap_or("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10")
                .to_owned()
                .into(),
        ),
        methods,
        auth_rejection_time: std::time::Duration::from_millis(300),
        auth_rejection_time_initial: Some(std::time::Duration::from_millis(0)),
        keys: vec![key],
        max_auth_attempts: 6,
        inactivity_timeout: Some(timeout),
        ..Default::default()
    }
}

/// Per-connection handler; shares its capture with the connection task.
pub struct Recorder {
    /// What was seen.
    pub cap: Arc<Mutex<Capture>>,
}

impl Recorder {
    fn with<R>(&self, f: impl FnOnce(&mut Capture) -> R) -> Option<R> {
        self.cap.lock().ok().map(|mut c| f(&mut c))
    }
}

impl Handler for Recorder {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.with(|c| c.extra_str("first_user", user));
        Ok(Auth::reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.with(|c| {
            c.cred(user, password);
            c.logged_in = Some(false);
        });
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = format!(
            "{} {} {}",
            apiary_model::bounded::bounded(user, apiary_model::bounded::SHORT),
            offer.algorithm,
            offer.public_key.fingerprint(HashAlg::Sha256)
        );
        self.with(|c| {
            if c.keys.len() < apiary_model::bounded::MAX_ITEMS {
                c.keys.push(fp);
            }
        });
        Ok(Auth::reject())
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        match response {
            None => Ok(Auth::Partial {
                name: "".into(),
                instructions: "".into(),
                prompts: vec![("Password: ".into(), false)].into(),
            }),
            Some(r) => {
                let answers: Vec<String> = r
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .take(4)
                    .collect();
                self.with(|c| {
                    c.cred(user, answers.first().map_or("", |s| s.as_str()));
                    c.logged_in = Some(false);
                });
                Ok(Auth::reject())
            }
        }
    }
}
