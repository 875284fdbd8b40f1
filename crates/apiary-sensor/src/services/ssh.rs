//! SSH service on the `russh` server (ring crypto): a real key exchange, then every
//! authentication attempt (none, password, public key, keyboard-interactive) is recorded
//! and rejected. No shell is granted unless fake-shell mode is on: then a password login
//! the policy accepts opens session channels with the emulated shell of
//! [`super::shell`] (interactive, or one `exec` command).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, Config, Handler, PublicKeyOffer, Response, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};

use super::shell::{FakeShell, Policy};
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

/// Session channels one fake-shell connection may open.
const MAX_CHANNELS: usize = 4;

/// Per-connection handler; shares its capture with the connection task.
pub struct Recorder {
    /// What was seen.
    pub cap: Arc<Mutex<Capture>>,
    /// Fake-shell policy; `None`: every login fails.
    shell: Option<Arc<Policy>>,
    /// The user a fake-shell login accepted.
    user: Option<String>,
    /// Open shells by channel.
    shells: HashMap<ChannelId, FakeShell>,
}

impl Recorder {
    /// A handler recording into `cap`, with fake-shell mode when `shell` is set.
    pub fn new(cap: Arc<Mutex<Capture>>, shell: Option<Arc<Policy>>) -> Recorder {
        Recorder {
            cap,
            shell,
            user: None,
            shells: HashMap::new(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Capture) -> R) -> Option<R> {
        self.cap.lock().ok().map(|mut c| f(&mut c))
    }

    fn new_shell(&self) -> Option<FakeShell> {
        let (p, u) = (self.shell.as_ref()?, self.user.as_ref()?);
        Some(FakeShell::new(u, &p.hostname))
    }

    /// Ends a shell channel: exit status 0, EOF, close.
    fn finish(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        self.shells.remove(&channel);
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        session.close(channel)
    }
}

impl Handler for Recorder {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.with(|c| c.extra_str("first_user", user));
        Ok(Auth::reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let accept = self
            .shell
            .as_ref()
            .is_some_and(|p| p.accepts(user, password));
        self.with(|c| {
            c.cred(user, password);
            c.logged_in = Some(accept);
        });
        if accept {
            self.user = Some(user.to_owned());
            return Ok(Auth::Accept);
        }
        Ok(Auth::reject())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<russh::server::Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.new_shell() {
            Some(sh) if self.shells.len() < MAX_CHANNELS => {
                self.shells.insert(channel.id(), sh);
                reply.accept().await;
            }
            _ => {
                reply
                    .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                    .await
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.with(|c| c.extra_str("ssh_term", term));
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(sh) = self.shells.get(&channel) else {
            return session.channel_failure(channel);
        };
        let greeting = format!(
            "Welcome to Ubuntu 22.04.3 LTS (GNU/Linux 5.15.0-91-generic x86_64)\r\n\r\nLast login: Tue Nov 14 09:12:44 2023 from 10.0.0.12\r\n{}",
            sh.prompt()
        );
        session.channel_success(channel)?;
        session.data(channel, greeting.into_bytes())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(mut sh) = self.shells.remove(&channel) else {
            return session.channel_failure(channel);
        };
        let line = String::from_utf8_lossy(&data[..data.len().min(4096)]).into_owned();
        let out = self.with(|c| sh.run(&line, c)).unwrap_or_default();
        session.channel_success(channel)?;
        session.data(channel, out.into_bytes())?;
        self.finish(channel, session)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(mut sh) = self.shells.remove(&channel) else {
            return Ok(());
        };
        let out = self.with(|c| sh.input(data, c)).unwrap_or_default();
        if !out.is_empty() {
            session.data(channel, out)?;
        }
        if sh.closed {
            return self.finish(channel, session);
        }
        self.shells.insert(channel, sh);
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.shells.contains_key(&channel) {
            return self.finish(channel, session);
        }
        Ok(())
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
