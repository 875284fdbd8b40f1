//! `apiary-sensor`: low-interaction honeypot services and log forwarders that publish to
//! an Apiary (hpfeeds) broker through a crash-safe on-disk spool.
//!
//! - [`config`]: the TOML file.
//! - [`event`]: the JSON schema of `apiary.events` and `apiary.heartbeat`.
//! - [`spool`]: append-only segments, acknowledged by position.
//! - [`publisher`]: spool → broker, reconnect with backoff, heartbeats.
//! - [`services`]: the honeypot listeners (SSH via russh, Telnet, HTTP, HTTPS, FTP, Redis,
//!   MySQL, VNC, RDP, SMB2 with NTLM capture, MSSQL LOGIN7, S7, Modbus, SIP,
//!   Elasticsearch, catch-all TCP and UDP).
//! - [`forward`]: tail Suricata/Snort/Cowrie/p0f/Dionaea logs into the spool.
//! - [`privdrop`]: bind first, then setgid/setuid.
//!
//! `deploy/apiary-sensor.sh` and `deploy/cowrie.sh` are deploy-script templates
//! (`{{SERVER_URL}}`, `{{TOKEN}}`, `{{HPF_HOST}}`, `{{HPF_PORT}}`) meant to be seeded into the
//! server's script store; the server side (`/deploy/<token>.sh`, tokens) is not built yet.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod event;
pub mod forward;
pub mod privdrop;
pub mod publisher;
pub mod services;
pub mod spool;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::spool::{SourcePos, Spool};

/// State shared by services, forwarders and the publisher.
pub struct Shared {
    /// The spool (short critical sections: one append or one read).
    pub spool: Mutex<Spool>,
    /// Signalled after every append.
    pub appended: Notify,
    /// Random id of this process start.
    pub boot_id: String,
    seq: AtomicU64,
    /// Connections being handled now.
    pub active: AtomicU64,
    /// Connections accepted since start.
    pub total: AtomicU64,
    /// Connections refused by the global cap.
    pub rejected: AtomicU64,
    /// Events lost because the spool could not be written.
    pub spool_errors: AtomicU64,
    /// UDP datagrams received (catch-all).
    pub udp_datagrams: AtomicU64,
    /// UDP datagrams dropped because the flow table was full.
    pub udp_dropped: AtomicU64,
}

impl Shared {
    /// New state around an opened spool.
    pub fn new(spool: Spool) -> Shared {
        Shared {
            spool: Mutex::new(spool),
            appended: Notify::new(),
            boot_id: hex::encode(rand::random::<[u8; 8]>()),
            seq: AtomicU64::new(0),
            active: AtomicU64::new(0),
            total: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            spool_errors: AtomicU64::new(0),
            udp_datagrams: AtomicU64::new(0),
            udp_dropped: AtomicU64::new(0),
        }
    }

    /// Next event id.
    pub fn next_id(&self) -> String {
        format!(
            "{}-{}",
            self.boot_id,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Appends a record to the spool and wakes the publisher.
    pub fn emit(
        &self,
        channel: &str,
        payload: &str,
        src: Option<&SourcePos>,
    ) -> std::io::Result<()> {
        let r = match self.spool.lock() {
            Ok(mut s) => s.append(channel, payload, src),
            Err(_) => Err(std::io::Error::other("spool lock poisoned")),
        };
        if let Err(e) = &r {
            self.spool_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "spool append failed");
        }
        self.appended.notify_one();
        r
    }
}
