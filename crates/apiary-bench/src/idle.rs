//! Idle-connection memory: open N connections, authenticate them all, read the broker's
//! VmRSS.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hpfeeds::Frame;
use serde::Serialize;

use crate::brokers::BrokerProc;
use crate::load::secret_of;
use crate::wire;

/// The single ident all idle connections authenticate as.
pub const IDLE_IDENT: &str = "idle";

#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    pub connections: usize,
    /// Authenticated connections as reported by the broker itself (None: not available).
    pub broker_authenticated: Option<u64>,
    /// Connections that got an error or were closed.
    pub failed: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub setup_secs: f64,
}

/// Opens `n` connections in waves of `wave` (staying under the broker's cap on
/// unauthenticated connections) and authenticates each.
pub fn run(broker: &mut BrokerProc, n: usize, wave: usize) -> Result<IdleResult> {
    let rss_before_kib = broker.rss_kib()?;
    let t0 = Instant::now();
    let secret = secret_of(IDLE_IDENT);
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    while conns.len() < n {
        let k = wave.min(n - conns.len());
        let mut fresh = Vec::with_capacity(k);
        for _ in 0..k {
            let s = TcpStream::connect_timeout(&broker.addr, Duration::from_secs(10))
                .with_context(|| {
                    format!(
                        "connection {} of {n} (raise `ulimit -n`?)",
                        conns.len() + fresh.len() + 1
                    )
                })?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            fresh.push(s);
        }
        for mut s in fresh {
            let nonce = match wire::read_frame(&mut s)? {
                Frame::Info { nonce, .. } => nonce,
                other => bail!("expected OP_INFO, got {:?}", other.opcode()),
            };
            let auth = Frame::Auth {
                ident: Bytes::from_static(IDLE_IDENT.as_bytes()),
                hash: Bytes::copy_from_slice(&hpfeeds::auth_hash(&nonce, secret.as_bytes())),
            };
            s.write_all(&auth.to_bytes()?)?;
            conns.push(s);
        }
    }
    // Wait until the broker has processed every AUTH.
    let until = Instant::now() + Duration::from_secs(30);
    let mut broker_authenticated = broker.authenticated();
    while broker_authenticated.is_some_and(|a| a < n as u64) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        broker_authenticated = broker.authenticated();
    }
    let setup_secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    // A failed AUTH is answered with an ERROR and a close; a good one with silence.
    let mut failed = 0;
    let mut probe = [0u8; 1];
    for s in &mut conns {
        s.set_nonblocking(true)?;
        match s.read(&mut probe) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            _ => failed += 1,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_after_kib = broker.rss_kib()?;
    drop(conns);
    Ok(IdleResult {
        connections: n,
        broker_authenticated,
        failed,
        rss_before_kib,
        rss_after_kib,
        setup_secs,
    })
}
