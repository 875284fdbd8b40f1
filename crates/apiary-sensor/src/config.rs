//! TOML configuration (`/etc/apiary-sensor/sensor.toml`). Unknown keys are errors.
//!
//! ```toml
//! [broker]
//! host = "apiary.example.net"
//! port = 10000
//! ident = "6f1c…"          # the uuid returned by POST /api/sensor/
//! secret = "…"
//! tls_ca = "/etc/apiary-sensor/ca.pem"   # optional: TLS to the broker
//!
//! [sensor]
//! spool_dir = "/var/lib/apiary-sensor"
//! spool_max_bytes = 268435456
//! heartbeat_secs = 60
//! max_connections = 2000
//! conn_timeout_secs = 60
//! conn_max_bytes = 65536
//! user = "nobody"          # drop to this user after binding when started as root
//! udp_window_ms = 5000     # UDP catch-all: one event per flow per window
//! udp_max_flows = 4096     # UDP catch-all: open flows at once (more: dropped, counted)
//!
//! [[service]]
//! kind = "ssh"
//! port = 22
//! banner = "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6"
//! fake_shell = false       # true: accept the `accept` logins into an emulated shell
//! accept = ["root:*"]      # user:password, * for any (only with fake_shell)
//!
//! [[service]]
//! kind = "smb"             # SMB2 + NTLMSSP: records user, domain and the NetNTLM hash
//! port = 445
//! netbios_domain = "CORP"  # names claimed in the NTLM challenge
//! netbios_name = "FILESRV01"
//! dns_domain = "corp.local"
//!
//! [[service]]
//! kind = "udp"             # UDP catch-all: coalesced per flow, never answered
//! ports = [53, 123, 161, 1900, 5060]
//!
//! [[service]]
//! kind = "https"           # TLS, then the HTTP handler; records SNI and ALPN
//! port = 443
//! tls_cn = "intranet.corp.local"   # self-signed certificate made at start, or:
//! # tls_cert = "/etc/apiary-sensor/https.crt"
//! # tls_key = "/etc/apiary-sensor/https.key"
//!
//! [[forwarder]]
//! kind = "suricata"
//! path = "/var/log/suricata/eve.json"
//! event_types = ["alert", "anomaly"]
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Broker connection.
    pub broker: Broker,
    /// Sensor-wide settings.
    #[serde(default)]
    pub sensor: Sensor,
    /// Honeypot services.
    #[serde(default, rename = "service")]
    pub services: Vec<Service>,
    /// Log forwarders.
    #[serde(default, rename = "forwarder")]
    pub forwarders: Vec<Forwarder>,
}

/// Broker connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// Port (default 10000).
    #[serde(default = "default_broker_port")]
    pub port: u16,
    /// hpfeeds ident.
    pub ident: String,
    /// hpfeeds secret.
    pub secret: String,
    /// CA PEM file; set means TLS.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Upper bound of the reconnect backoff.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: u64,
}

/// Sensor-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sensor {
    /// Spool and state directory.
    pub spool_dir: PathBuf,
    /// Spool bound in bytes (oldest segments dropped beyond it, counted).
    pub spool_max_bytes: u64,
    /// Spool segment size.
    pub spool_segment_bytes: u64,
    /// Heartbeat period.
    pub heartbeat_secs: u64,
    /// Global cap on concurrent attacker connections.
    pub max_connections: usize,
    /// Per-connection time limit.
    pub conn_timeout_secs: u64,
    /// Per-connection limit of bytes read from the attacker.
    pub conn_max_bytes: u64,
    /// Address services bind to.
    pub bind: IpAddr,
    /// User to drop to when started as root.
    pub user: String,
    /// Group (defaults to the user's primary group).
    pub group: Option<String>,
    /// Forwarder poll period in milliseconds.
    pub poll_ms: u64,
    /// UDP catch-all: a flow is reported this long after its first datagram.
    pub udp_window_ms: u64,
    /// UDP catch-all: flows open at once over all UDP ports (more are dropped, counted).
    pub udp_max_flows: usize,
}

impl Default for Sensor {
    fn default() -> Self {
        Sensor {
            spool_dir: PathBuf::from("/var/lib/apiary-sensor"),
            spool_max_bytes: 256 * 1024 * 1024,
            spool_segment_bytes: 4 * 1024 * 1024,
            heartbeat_secs: 60,
            max_connections: 2000,
            conn_timeout_secs: 60,
            conn_max_bytes: 64 * 1024,
            bind: IpAddr::from([0, 0, 0, 0]),
            user: "nobody".into(),
            group: None,
            poll_ms: 500,
            udp_window_ms: 5000,
            udp_max_flows: 4096,
        }
    }
}

/// Service kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// SSH (russh server; password/publickey capture, never grants a shell).
    Ssh,
    /// Telnet login prompt.
    Telnet,
    /// HTTP request capture.
    Http,
    /// HTTP over TLS (rustls); records SNI and ALPN.
    Https,
    /// FTP USER/PASS.
    Ftp,
    /// Redis RESP/inline commands.
    Redis,
    /// MySQL handshake + login packet.
    Mysql,
    /// MSSQL: PRELOGIN without TLS, then the LOGIN7 user and password (error 18456).
    Mssql,
    /// SMB2 negotiate + NTLMSSP authentication (user, domain, NetNTLM hash).
    Smb,
    /// RDP X.224 connection request cookie.
    Rdp,
    /// VNC RFB handshake.
    Vnc,
    /// SIP over TCP (request line, From/To, User-Agent).
    Sip,
    /// Modbus/TCP function codes.
    Modbus,
    /// S7comm (TPKT/COTP) connect.
    S7,
    /// Elasticsearch-looking HTTP.
    Elasticsearch,
    /// Records whatever arrives.
    Tcp,
    /// UDP catch-all: datagrams coalesced per flow, never answered.
    Udp,
}

impl Kind {
    /// Label used in events.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ssh => "ssh",
            Kind::Telnet => "telnet",
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Ftp => "ftp",
            Kind::Redis => "redis",
            Kind::Mysql => "mysql",
            Kind::Mssql => "mssql",
            Kind::Smb => "smb",
            Kind::Rdp => "rdp",
            Kind::Vnc => "vnc",
            Kind::Sip => "sip",
            Kind::Modbus => "modbus",
            Kind::S7 => "s7comm",
            Kind::Elasticsearch => "elasticsearch",
            Kind::Tcp => "tcp",
            Kind::Udp => "udp",
        }
    }
    /// Default port.
    pub fn default_port(self) -> u16 {
        match self {
            Kind::Ssh => 22,
            Kind::Telnet => 23,
            Kind::Http => 80,
            Kind::Https => 443,
            Kind::Ftp => 21,
            Kind::Redis => 6379,
            Kind::Mysql => 3306,
            Kind::Mssql => 1433,
            Kind::Smb => 445,
            Kind::Rdp => 3389,
            Kind::Vnc => 5900,
            Kind::Sip => 5060,
            Kind::Modbus => 502,
            Kind::S7 => 102,
            Kind::Elasticsearch => 9200,
            Kind::Tcp | Kind::Udp => 0,
        }
    }
}

/// One honeypot service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Protocol.
    pub kind: Kind,
    /// Port (default: the protocol's usual port). `tcp` and `udp` need `port` or `ports`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Extra ports for `tcp` and `udp` (catch-all).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Banner / server string / persona.
    #[serde(default)]
    pub banner: Option<String>,
    /// Disabled services are skipped.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// SSH and Telnet only: accept the logins `accept` names and give an emulated shell
    /// (`services::shell`) that records commands and URLs. Off by default: every login
    /// fails.
    #[serde(default)]
    pub fake_shell: bool,
    /// Logins a fake shell accepts, `user:password` with `*` for any (default `root:*`).
    #[serde(default)]
    pub accept: Vec<String>,
    /// Host name the fake shell shows (default `srv01`).
    #[serde(default)]
    pub shell_hostname: Option<String>,
    /// SMB: NetBIOS domain in the NTLM challenge (default `CORP`).
    #[serde(default)]
    pub netbios_domain: Option<String>,
    /// SMB: NetBIOS computer name in the NTLM challenge (default `FILESRV01`).
    #[serde(default)]
    pub netbios_name: Option<String>,
    /// SMB: DNS domain in the NTLM challenge (default `corp.local`).
    #[serde(default)]
    pub dns_domain: Option<String>,
    /// HTTPS: PEM certificate chain (with `tls_key`); unset: self-signed for `tls_cn`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: PEM private key.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// HTTPS: name of the self-signed certificate made at start (default `localhost`).
    #[serde(default)]
    pub tls_cn: Option<String>,
}

impl Service {
    /// Handler settings of this service (HTTPS: reads the certificate and key, or makes a
    /// self-signed certificate).
    pub fn opts(&self) -> anyhow::Result<crate::services::proto::Opts> {
        let mut smb = crate::services::smb::Names::default();
        if let Some(v) = &self.netbios_domain {
            smb.netbios_domain = v.clone();
        }
        if let Some(v) = &self.netbios_name {
            smb.netbios_name = v.clone();
        }
        if let Some(v) = &self.dns_domain {
            smb.dns_domain = v.clone();
        }
        use crate::services::tls::Tls;
        let tls = match (self.kind, &self.tls_cert, &self.tls_key) {
            (Kind::Https, Some(c), Some(k)) => Some(Tls::from_pem_files(c, k)?),
            (Kind::Https, _, _) => Some(Tls::self_signed(
                self.tls_cn.as_deref().unwrap_or("localhost"),
            )?),
            _ => None,
        };
        Ok(crate::services::proto::Opts { smb, tls })
    }

    /// The fake-shell policy of this service, when `fake_shell` is on.
    pub fn shell_policy(&self) -> anyhow::Result<Option<crate::services::shell::Policy>> {
        if !self.fake_shell {
            return Ok(None);
        }
        let rules = if self.accept.is_empty() {
            vec!["root:*".to_owned()]
        } else {
            self.accept.clone()
        };
        crate::services::shell::Policy::new(
            &rules,
            self.shell_hostname.as_deref().unwrap_or("srv01"),
        )
        .map(Some)
        .map_err(|e| anyhow::anyhow!("service {}: {e}", self.kind.name()))
    }
}

/// Forwarder kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardKind {
    /// Suricata eve.json → `suricata.eve`.
    Suricata,
    /// Snort 3 alert_json → `snort.alert_json`.
    Snort,
    /// Cowrie JSON log → `cowrie.events`.
    Cowrie,
    /// p0f `-o` log → `p0f.log`.
    P0f,
    /// Dionaea JSON log (log_json ihandler) → `dionaea.json`.
    Dionaea,
}

impl ForwardKind {
    /// Default channel.
    pub fn channel(self) -> &'static str {
        match self {
            ForwardKind::Suricata => "suricata.eve",
            ForwardKind::Snort => "snort.alert_json",
            ForwardKind::Cowrie => "cowrie.events",
            ForwardKind::P0f => "p0f.log",
            ForwardKind::Dionaea => "dionaea.json",
        }
    }
    /// Label.
    pub fn name(self) -> &'static str {
        match self {
            ForwardKind::Suricata => "suricata",
            ForwardKind::Snort => "snort",
            ForwardKind::Cowrie => "cowrie",
            ForwardKind::P0f => "p0f",
            ForwardKind::Dionaea => "dionaea",
        }
    }
}

/// One tailed log file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forwarder {
    /// Format.
    pub kind: ForwardKind,
    /// File to tail.
    pub path: PathBuf,
    /// Channel override.
    #[serde(default)]
    pub channel: Option<String>,
    /// Suricata `event_type`s forwarded (default `["alert"]`).
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Where a rotated file goes (default `<path>.1`), drained on restart after rotation.
    #[serde(default)]
    pub rotated_path: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn default_broker_port() -> u16 {
    10000
}
fn default_backoff_max() -> u64 {
    60
}

impl Config {
    /// Parses TOML text and validates it.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let c: Config = toml::from_str(text)?;
        for s in &c.services {
            if matches!(s.kind, Kind::Tcp | Kind::Udp) && s.port.is_none() && s.ports.is_empty() {
                anyhow::bail!("service kind \"{}\" needs `port` or `ports`", s.kind.name());
            }
            if s.fake_shell && !matches!(s.kind, Kind::Ssh | Kind::Telnet) {
                anyhow::bail!(
                    "service kind \"{}\": fake_shell is for ssh and telnet only",
                    s.kind.name()
                );
            }
            s.shell_policy()?;
            let tls_keys = s.tls_cert.is_some() || s.tls_key.is_some() || s.tls_cn.is_some();
            if tls_keys && s.kind != Kind::Https {
                anyhow::bail!(
                    "service kind \"{}\": tls_cert, tls_key and tls_cn are for https only",
                    s.kind.name()
                );
            }
            if s.tls_cert.is_some() != s.tls_key.is_some() {
                anyhow::bail!("service kind \"https\": set both tls_cert and tls_key, or neither");
            }
        }
        if c.sensor.udp_max_flows == 0 || c.sensor.udp_window_ms == 0 {
            anyhow::bail!("sensor.udp_max_flows and sensor.udp_window_ms must be > 0");
        }
        if c.sensor.max_connections == 0 {
            anyhow::bail!("sensor.max_connections must be > 0");
        }
        if c.sensor.spool_segment_bytes == 0
            || c.sensor.spool_max_bytes < c.sensor.spool_segment_bytes
        {
            anyhow::bail!("sensor.spool_max_bytes must be >= spool_segment_bytes > 0");
        }
        Ok(c)
    }
    /// Reads and parses a file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_and_rejects_unknown() {
        let c = Config::parse(
            "[broker]\nhost='h'\nident='i'\nsecret='s'\n[[service]]\nkind='ssh'\nport=2222\n",
        )
        .unwrap();
        assert_eq!(c.broker.port, 10000);
        assert_eq!(c.services[0].port, Some(2222));
        assert!(Config::parse("[broker]\nhost='h'\nident='i'\nsecret='s'\nbogus=1\n").is_err());
        assert!(Config::parse(
            "[broker]\nhost='h'\nident='i'\nsecret='s'\n[[service]]\nkind='tcp'\n"
        )
        .is_err());
        assert!(Config::parse(
            "[broker]\nhost='h'\nident='i'\nsecret='s'\n[[service]]\nkind='gopher'\n"
        )
        .is_err());
        let base = "[broker]\nhost='h'\nident='i'\nsecret='s'\n[[service]]\n";
        let c = Config::parse(&format!("{base}kind='https'\ntls_cn='x.test'\n")).unwrap();
        assert_eq!(c.services[0].kind.default_port(), 443);
        assert!(c.services[0].opts().unwrap().tls.is_some());
        assert!(Config::parse(&format!("{base}kind='https'\ntls_cert='/c'\n")).is_err());
        assert!(Config::parse(&format!("{base}kind='http'\ntls_cn='x'\n")).is_err());
        assert!(Config::parse(&format!("{base}kind='udp'\n")).is_err());
        let c = Config::parse(&format!("{base}kind='udp'\nports=[53, 5060]\n")).unwrap();
        assert_eq!(c.services[0].ports, vec![53, 5060]);
        let c = Config::parse(&format!("{base}kind='smb'\nnetbios_name='DC1'\n")).unwrap();
        assert_eq!(c.services[0].opts().unwrap().smb.netbios_name, "DC1");
    }
}
