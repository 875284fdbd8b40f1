//! The JSON published on `apiary.events` and `apiary.heartbeat`.
//!
//! # `apiary.events` (schema version 1)
//! One JSON object per message, one message per attacker connection (published when the
//! connection ends: peer close, time limit, byte limit or sensor shutdown):
//!
//! ```json
//! {"v": 1, "id": "3f2a…-42", "time": "2026-11-28T13:41:33.915Z", "end_time": "…",
//!  "service": "ssh", "protocol": "ssh", "transport": "tcp",
//!  "src_ip": "198.51.100.7", "src_port": 56762, "dst_ip": "203.0.113.5", "dst_port": 22,
//!  "bytes_in": 1234, "bytes_out": 567, "duration_ms": 812, "closed": "peer",
//!  "credentials": [{"username": "root", "password": "123456"}],
//!  "logged_in": false, "client_version": "SSH-2.0-OpenSSH_9.2",
//!  "http": {"method": "GET", "path": "/", "host": "x", "user_agent": "curl/8",
//!           "headers": [["Accept", "*/*"]], "body": null},
//!  "commands": ["INFO", "CONFIG GET *"], "urls": [], "keys": ["ssh-ed25519 SHA256:…"],
//!  "payload_hex": "474554202f…", "extra": {"…": "service-specific"}}
//! ```
//! - `v`, `id`, `time`, `service`, `protocol`, `transport`, `src_ip`, `src_port`, `dst_ip`,
//!   `dst_port`, `bytes_in`, `bytes_out`, `duration_ms`, `closed` are always present.
//!   `id` is `<boot id>-<sequence>`, unique per sensor process start, so a consumer can
//!   drop the rare duplicate a reconnect can cause (see [`crate::publisher`]).
//! - `closed` ∈ `peer`, `timeout`, `byte_limit`, `shutdown`, `error`.
//! - All other keys are optional and omitted when empty/absent. Strings are attacker
//!   controlled and already bounded (`apiary_model::bounded`: usernames/passwords/versions
//!   `SHORT`, paths/commands `MEDIUM`, bodies `LONG`); lists hold at most `MAX_ITEMS`.
//! - `payload_hex`: the first bytes the client sent (at most 512), for services that do
//!   not parse the protocol (catch-all) and for unparsed leftovers.
//! - `extra`: a flat object of service-specific fields (e.g. `rdp_cookie`, `ntlm_user`,
//!   `database`, `modbus_function`). Among them:
//!   - `smb`: `smb_version` (`"1"`/`"2"`, of the first packet), `smb_dialects` (offered),
//!     `smb_dialect` (chosen, e.g. `"0x0302"`), and from the NTLMSSP AUTHENTICATE:
//!     `ntlm_user`, `ntlm_domain`, `ntlm_workstation`, `ntlm_hash` (hashcat format:
//!     NetNTLMv2 `user::DOMAIN:challenge:ntproofstr:blob`, mode 5600, or NetNTLMv1
//!     `user::DOMAIN:lm:nt:challenge`, mode 5500; only when it fits in `MEDIUM`
//!     characters, else `ntlm_hash_too_long` with the NT response length),
//!     `ntlm_anonymous` (an anonymous login). The credential is `DOMAIN\user` (or `user`)
//!     with an empty password.
//!   - `mssql`: `tds_type` (first packet type), `mssql_client_version` and
//!     `mssql_encryption` (from the PRELOGIN), and from the LOGIN7: `mssql_hostname`,
//!     `mssql_app`, `mssql_server`, `mssql_library` (client interface library),
//!     `database`, `mssql_sspi` (integrated authentication offered). The credential is the
//!     LOGIN7 user and its password, de-obfuscated.
//!   - `https`: `tls_sni` (server name), `tls_alpn` (list the client offered),
//!     `tls_version` (negotiated); when the handshake fails (e.g. plain HTTP on the TLS
//!     port), `tls_error` and `payload_hex` of the raw bytes. `bytes_in`/`bytes_out`
//!     count TLS bytes.
//!   - `udp` (catch-all, `transport` `udp`): one event per flow (source address and
//!     port, destination port), reported a window after its first datagram with `closed`
//!     `timeout` (`shutdown` when the sensor stops first); `udp_datagrams` (count); `bytes_in` sums the payloads; `payload_hex`
//!     holds the first bytes; `protocol` is the usual one of the port (`dns`, `ntp`,
//!     `snmp`, `sip`, `ssdp`, ... else `udp`). Datagrams of new flows beyond
//!     `udp_max_flows` are dropped and counted in the heartbeat's `udp.dropped`.
//!
//! # `apiary.heartbeat` (schema version 1)
//! ```json
//! {"v": 1, "time": "…", "boot_id": "3f2a…", "version": "0.1.0", "hostname": "h",
//!  "uptime_s": 120, "interval_s": 60,
//!  "services": [{"name": "ssh", "port": 22}],
//!  "connections": {"active": 3, "total": 1200, "rejected": 0},
//!  "udp": {"datagrams": 52, "dropped": 0},
//!  "spool": {"pending": 0, "pending_bytes": 0, "dropped": 0},
//!  "forwarders": [{"kind": "suricata", "path": "/var/log/suricata/eve.json", "lines": 10}]}
//! ```
//! Heartbeats are not spooled: a heartbeat that cannot be sent is stale and skipped.

use std::net::SocketAddr;

use apiary_model::bounded::{bounded, MAX_ITEMS, SHORT};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Channel for sensor events.
pub const EVENTS_CHANNEL: &str = "apiary.events";
/// Channel for heartbeats.
pub const HEARTBEAT_CHANNEL: &str = "apiary.heartbeat";
/// Bytes of raw client payload kept in `payload_hex`.
pub const PAYLOAD_KEEP: usize = 512;

/// A credential pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cred {
    /// User name as sent.
    pub username: String,
    /// Password as sent.
    pub password: String,
}

/// HTTP request summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Http {
    /// Method.
    pub method: String,
    /// Request target.
    pub path: String,
    /// Host header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// User-Agent header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Headers in order (bounded).
    pub headers: Vec<(String, String)>,
    /// Body (bounded, lossy UTF-8).
    pub body: Option<String>,
}

/// What a service learned from one connection. Filled by the protocol handlers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Capture {
    /// Credentials tried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<Cred>,
    /// Whether the honeypot pretended to accept a login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_in: Option<bool>,
    /// Client software version string (SSH banner, MySQL client, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// HTTP request (the first one on the connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    /// Commands (FTP/Redis/Telnet lines, SSH exec).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// URLs seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Public keys offered (algorithm + fingerprint).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// First bytes from the client, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    /// Service specific fields.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl Capture {
    /// Adds a credential pair (bounded; list capped).
    pub fn cred(&mut self, user: &str, pass: &str) {
        if self.credentials.len() < MAX_ITEMS {
            self.credentials.push(Cred {
                username: bounded(user, SHORT),
                password: bounded(pass, SHORT),
            });
        }
    }
    /// Adds a command (bounded; list capped).
    pub fn command(&mut self, c: &str) {
        if self.commands.len() < MAX_ITEMS {
            self.commands
                .push(bounded(c, apiary_model::bounded::MEDIUM));
        }
    }
    /// Sets a bounded string in `extra`.
    pub fn extra_str(&mut self, k: &str, v: &str) {
        self.extra
            .insert(k.to_owned(), Value::String(bounded(v, SHORT)));
    }
    /// Keeps the first bytes of the client payload if none kept yet.
    pub fn payload(&mut self, b: &[u8]) {
        if self.payload_hex.is_none() && !b.is_empty() {
            self.payload_hex = Some(hex::encode(&b[..b.len().min(PAYLOAD_KEEP)]));
        }
    }
}

/// A complete `apiary.events` message.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Schema version.
    pub v: u32,
    /// Unique id.
    pub id: String,
    /// Connection start.
    pub time: String,
    /// Connection end.
    pub end_time: String,
    /// Service name as configured (`ssh`, `http`, `tcp`...).
    pub service: String,
    /// Application protocol.
    pub protocol: String,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// Attacker address.
    pub src_ip: String,
    /// Attacker port.
    pub src_port: u16,
    /// Sensor address the attacker reached.
    pub dst_ip: String,
    /// Sensor port.
    pub dst_port: u16,
    /// Bytes received from the attacker.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Duration.
    pub duration_ms: u64,
    /// Why the connection ended.
    pub closed: &'static str,
    /// Everything else.
    #[serde(flatten)]
    pub capture: Capture,
}

/// RFC 3339 with milliseconds, `Z`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Canonical IP text (`::ffff:a.b.c.d` becomes `a.b.c.d`).
pub fn ip_text(a: &SocketAddr) -> String {
    match a.ip() {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    }
}
