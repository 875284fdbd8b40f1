//! UDP catch-all: datagrams to the configured ports are coalesced into flows keyed by
//! (source address, source port, destination port); a flow becomes one `apiary.events`
//! message (transport `udp`) when its window ends: datagram count, bytes and the first
//! bytes as `payload_hex`. Nothing is ever sent back, so the sensor cannot be used to
//! reflect or amplify traffic.
//!
//! Memory is bounded by the flow table: at most `max_flows` flows are open at once (each
//! keeps at most [`PAYLOAD_KEEP`] bytes); datagrams of new flows beyond that are dropped
//! and counted in [`crate::Shared::udp_dropped`] (heartbeat `udp.dropped`). Events are
//! therefore bounded too: at most `max_flows` per window.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::event::{ip_text, ts, Capture, Event, EVENTS_CHANNEL, PAYLOAD_KEEP};
use crate::Shared;

/// Flow settings (`[sensor]` `udp_window_ms`, `udp_max_flows`).
#[derive(Debug, Clone, Copy)]
pub struct UdpConfig {
    /// A flow is reported this long after its first datagram.
    pub window: Duration,
    /// Flows open at once, over all UDP ports.
    pub max_flows: usize,
}

/// Flow key: attacker address and the sensor port it reached.
pub type Key = (SocketAddr, u16);

/// One open flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Attacker.
    pub peer: SocketAddr,
    /// Sensor address reached.
    pub local: SocketAddr,
    /// First datagram (wall clock).
    pub start: DateTime<Utc>,
    /// First datagram (monotonic).
    pub first: Instant,
    /// Last datagram (monotonic).
    pub last: Instant,
    /// Datagrams.
    pub datagrams: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// First payload bytes (of the first datagrams, concatenated).
    pub head: Vec<u8>,
}

/// The open flows.
#[derive(Debug, Default)]
pub struct Table {
    flows: HashMap<Key, Flow>,
}

impl Table {
    /// Accounts one datagram. `false`: a new flow that did not fit (dropped).
    pub fn datagram(
        &mut self,
        peer: SocketAddr,
        local: SocketAddr,
        data: &[u8],
        now: Instant,
        max_flows: usize,
    ) -> bool {
        let key = (peer, local.port());
        if !self.flows.contains_key(&key) && self.flows.len() >= max_flows {
            return false;
        }
        let f = self.flows.entry(key).or_insert_with(|| Flow {
            peer,
            local,
            start: Utc::now(),
            first: now,
            last: now,
            datagrams: 0,
            bytes: 0,
            head: Vec::new(),
        });
        f.datagrams += 1;
        f.bytes += data.len() as u64;
        f.last = now;
        let room = PAYLOAD_KEEP.saturating_sub(f.head.len());
        f.head
            .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        true
    }

    /// Removes and returns the flows whose window has ended at `now` (all with `None`).
    pub fn expired(&mut self, now: Option<Instant>, window: Duration) -> Vec<Flow> {
        let done: Vec<Key> = self
            .flows
            .iter()
            .filter(|(_, f)| now.is_none_or(|n| n.duration_since(f.first) >= window))
            .map(|(k, _)| *k)
            .collect();
        done.iter().filter_map(|k| self.flows.remove(k)).collect()
    }

    /// Open flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// No open flow.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// The usual protocol of a UDP port (a label only; nothing is parsed).
pub fn protocol(port: u16) -> &'static str {
    match port {
        53 => "dns",
        69 => "tftp",
        123 => "ntp",
        137 => "netbios-ns",
        161 | 162 => "snmp",
        500 | 4500 => "ike",
        1900 => "ssdp",
        5060 => "sip",
        5353 => "mdns",
        11211 => "memcached",
        _ => "udp",
    }
}

/// The event of a finished flow (`closed`: `timeout` at the window's end, `shutdown`).
pub fn flow_event(f: &Flow, id: String, closed: &'static str) -> Event {
    let mut cap = Capture::default();
    cap.payload(&f.head);
    cap.extra
        .insert("udp_datagrams".into(), Value::from(f.datagrams));
    Event {
        v: 1,
        id,
        time: ts(f.start),
        end_time: ts(Utc::now()),
        service: "udp".into(),
        protocol: protocol(f.local.port()).into(),
        transport: "udp",
        src_ip: ip_text(&f.peer),
        src_port: f.peer.port(),
        dst_ip: ip_text(&f.local),
        dst_port: f.local.port(),
        bytes_in: f.bytes,
        bytes_out: 0,
        duration_ms: f.last.duration_since(f.first).as_millis() as u64,
        closed,
        capture: cap,
    }
}

fn emit(shared: &Shared, flows: Vec<Flow>, closed: &'static str) {
    for f in flows {
        match serde_json::to_string(&flow_event(&f, shared.next_id(), closed)) {
            Ok(s) => {
                let _ = shared.emit(EVENTS_CHANNEL, &s, None);
            }
            Err(e) => tracing::error!(error = %e, "event serialization failed"),
        }
    }
}

/// The running catch-all.
pub struct Udp {
    tasks: Vec<JoinHandle<()>>,
    table: Arc<Mutex<Table>>,
    shared: Arc<Shared>,
}

impl Udp {
    /// Stops receiving and reports the open flows (`closed` = `shutdown`).
    pub fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        let open = self
            .table
            .lock()
            .map(|mut t| t.expired(None, Duration::ZERO))
            .unwrap_or_default();
        emit(&self.shared, open, "shutdown");
    }
}

/// Starts one receive task per socket and the task that reports finished flows. The
/// sockets are bound by the caller (before the privilege drop).
pub fn spawn(sockets: Vec<UdpSocket>, shared: Arc<Shared>, cfg: UdpConfig) -> Udp {
    let table = Arc::new(Mutex::new(Table::default()));
    let mut tasks = Vec::new();
    for sock in sockets {
        let (table, shared) = (table.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let local = match sock.local_addr() {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "udp socket has no address");
                    return;
                }
            };
            // Bound to a wildcard address: the datagram's own destination (IP_PKTINFO).
            let pktinfo = local.ip().is_unspecified() && enable_pktinfo(&sock);
            let mut buf = vec![0u8; 65_536];
            loop {
                let got = if pktinfo {
                    recv_pktinfo(&sock, &mut buf).await
                } else {
                    sock.recv_from(&mut buf).await.map(|(n, p)| (n, p, None))
                };
                let (n, peer, dst) = match got {
                    Ok(x) => x,
                    Err(e) => {
                        // ICMP errors surface here on some systems; keep serving.
                        tracing::debug!(error = %e, "udp recv failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                shared.udp_datagrams.fetch_add(1, Ordering::Relaxed);
                let data = buf.get(..n).unwrap_or_default();
                let ok = table
                    .lock()
                    .map(|mut t| {
                        t.datagram(
                            peer,
                            dst_addr(local, dst),
                            data,
                            Instant::now(),
                            cfg.max_flows,
                        )
                    })
                    .unwrap_or(false);
                if !ok {
                    shared.udp_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let tick = (cfg.window / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let handle_table = table.clone();
    let handle_shared = shared.clone();
    tasks.push(tokio::spawn(async move {
        let mut iv = tokio::time::interval(tick);
        loop {
            iv.tick().await;
            let done = table
                .lock()
                .map(|mut t| t.expired(Some(Instant::now()), cfg.window))
                .unwrap_or_default();
            emit(&shared, done, "timeout");
        }
    }));
    Udp {
        tasks,
        table: handle_table,
        shared: handle_shared,
    }
}

/// The sensor address a datagram reached: its PKTINFO destination (IPv4-mapped
/// addresses unmapped) on the socket's port, else the socket's address.
fn dst_addr(local: SocketAddr, dst: Option<IpAddr>) -> SocketAddr {
    match dst {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), local.port()),
            None => SocketAddr::new(v6.into(), local.port()),
        },
        Some(ip) => SocketAddr::new(ip, local.port()),
        None => local,
    }
}

/// Asks the kernel for each datagram's destination address; `false` when it cannot.
fn enable_pktinfo(sock: &UdpSocket) -> bool {
    use nix::sys::socket::{setsockopt, sockopt};
    match sock.local_addr() {
        Ok(SocketAddr::V4(_)) => setsockopt(sock, sockopt::Ipv4PacketInfo, &true).is_ok(),
        Ok(SocketAddr::V6(_)) => setsockopt(sock, sockopt::Ipv6RecvPacketInfo, &true).is_ok(),
        Err(_) => false,
    }
}

/// `recv_from` plus the destination address from the IP(V6)_PKTINFO control message.
async fn recv_pktinfo(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    use std::os::fd::AsRawFd;
    loop {
        sock.readable().await?;
        let r = sock.try_io(tokio::io::Interest::READABLE, || {
            let mut iov = [std::io::IoSliceMut::new(&mut *buf)];
            let mut space = nix::cmsg_space!(nix::libc::in6_pktinfo);
            let msg = recvmsg::<SockaddrStorage>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            let mut dst = None;
            for c in msg.cmsgs().map_err(io::Error::from)? {
                match c {
                    ControlMessageOwned::Ipv4PacketInfo(i) => {
                        dst = Some(IpAddr::from(Ipv4Addr::from(u32::from_be(
                            i.ipi_addr.s_addr,
                        ))));
                    }
                    ControlMessageOwned::Ipv6PacketInfo(i) => {
                        dst = Some(IpAddr::from(Ipv6Addr::from(i.ipi6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            let peer = msg.address.as_ref().and_then(|a| {
                a.as_sockaddr_in()
                    .map(|s| SocketAddr::from(SocketAddrV4::from(*s)))
                    .or_else(|| {
                        a.as_sockaddr_in6()
                            .map(|s| SocketAddr::from(SocketAddrV6::from(*s)))
                    })
            });
            let peer = peer.ok_or_else(|| io::Error::other("datagram without a source"))?;
            Ok((msg.bytes, peer, dst))
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn datagrams_coalesce_per_flow_and_window() {
        let mut t = Table::default();
        let t0 = Instant::now();
        let local = a("10.0.0.1:5060");
        assert!(t.datagram(a("198.51.100.7:4000"), local, b"OPTIONS ", t0, 10));
        assert!(t.datagram(
            a("198.51.100.7:4000"),
            local,
            b"sip:x",
            t0 + Duration::from_millis(100),
            10
        ));
        assert!(t.datagram(a("198.51.100.7:4001"), local, b"", t0, 10));
        assert!(t.datagram(a("198.51.100.7:4000"), a("10.0.0.1:161"), b"\x30", t0, 10));
        assert_eq!(t.len(), 3);
        assert!(t
            .expired(
                Some(t0 + Duration::from_millis(500)),
                Duration::from_secs(1)
            )
            .is_empty());
        let mut done = t.expired(Some(t0 + Duration::from_secs(1)), Duration::from_secs(1));
        done.sort_by_key(|f| (f.local.port(), f.peer.port()));
        assert_eq!(done.len(), 3);
        assert!(t.is_empty());
        let sip = &done[1];
        assert_eq!((sip.datagrams, sip.bytes), (2, 13));
        assert_eq!(sip.head, b"OPTIONS sip:x");
        let e = flow_event(sip, "b-1".into(), "timeout");
        assert_eq!((e.transport, e.protocol.as_str()), ("udp", "sip"));
        assert_eq!(e.duration_ms, 100);
        assert_eq!(
            e.capture.payload_hex.as_deref(),
            Some(hex::encode("OPTIONS sip:x").as_str())
        );
        assert_eq!(
            flow_event(&done[0], "b-2".into(), "timeout").protocol,
            "snmp"
        );
    }

    #[test]
    fn a_flood_is_bounded() {
        let mut t = Table::default();
        let now = Instant::now();
        let local = a("10.0.0.1:53");
        let big = vec![0x41; 60_000];
        let mut dropped = 0;
        for i in 0..10_000u32 {
            let peer = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 53));
            if !t.datagram(peer, local, &big, now, 100) {
                dropped += 1;
            }
        }
        // An existing flow keeps counting when the table is full.
        assert!(t.datagram(a("10.0.0.0:53"), local, &big, now, 100));
        assert_eq!(t.len(), 100);
        assert_eq!(dropped, 9_900);
        let all = t.expired(None, Duration::ZERO);
        assert!(all.iter().all(|f| f.head.len() <= PAYLOAD_KEEP));
        assert_eq!(all.iter().map(|f| f.datagrams).sum::<u64>(), 101);
    }
}
