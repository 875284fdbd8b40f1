//! Server settings: defaults → TOML file → `APIARY_*` environment → command-line flags.
//!
//! The TOML tree mirrors [`Settings`]. Environment variables name a key as
//! `APIARY_<SECTION>__<KEY>` (`APIARY_HPFEEDS__LISTEN`), top-level keys as `APIARY_<KEY>`
//! (`APIARY_DATA_DIR`). A bad value names the key and where it came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The documented example configuration (`apiary config example`).
pub const EXAMPLE: &str = include_str!("../../../config/example.toml");

/// Environment variables that are not settings (read elsewhere), so not warned about.
const NON_SETTING_ENV: &[&str] = &[
    "APIARY_CONFIG",
    "APIARY_LOG",
    "APIARY_PASSWORD",
    "APIARY_ADMIN_EMAIL",
    "APIARY_ADMIN_PASSWORD",
    "APIARY_TEST_DATABASE_URL",
    "APIARY_TEST_PYTHON",
    "APIARY_GEO_DIR",
    "APIARY_SKIP_GEO_TESTS",
    "APIARY_BIN",
];

/// All settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Directory for the embedded database and other state.
    pub data_dir: PathBuf,
    /// Database URL; empty means `sqlite://<data_dir>/apiary.db`.
    pub database_url: String,
    /// hpfeeds broker.
    pub hpfeeds: HpfeedsSettings,
    /// HTTP server.
    pub http: HttpSettings,
    /// Ingest pipeline.
    pub ingest: IngestSettings,
    /// Retention.
    pub retention: RetentionSettings,
    /// Geolocation databases.
    pub geo: GeoSettings,
    /// Live attack map.
    pub map: MapSettings,
    /// Sensor deployment.
    pub deploy: DeploySettings,
}

/// `[deploy]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DeploySettings {
    /// The `apiary-sensor` binary served to deploy scripts; empty = `apiary-sensor` next
    /// to the running `apiary` executable.
    pub sensor_binary: Option<PathBuf>,
}

/// `[map]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MapSettings {
    /// The server's own latitude: where sensors without a configured location are drawn
    /// (before falling back to the geolocation of their destination address). Unset: the
    /// geolocation of `hpfeeds.public_host`, else of the host of `http.public_url`.
    pub server_latitude: Option<f64>,
    /// The server's own longitude.
    pub server_longitude: Option<f64>,
    /// Live events buffered per `/api/live` client (at least `ingest.batch_size`); a client
    /// further behind loses the oldest for itself only (counted).
    pub live_buffer: usize,
}

impl Default for MapSettings {
    fn default() -> Self {
        Self {
            server_latitude: None,
            server_longitude: None,
            live_buffer: 4096,
        }
    }
}

impl MapSettings {
    /// The server's position, when both coordinates are set.
    pub fn server_location(&self) -> Option<apiary_model::live::LatLon> {
        match (self.server_latitude, self.server_longitude) {
            (Some(lat), Some(lon)) => Some(apiary_model::live::LatLon { lat, lon }),
            _ => None,
        }
    }
}

/// `[hpfeeds]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HpfeedsSettings {
    /// Plain TCP listen address.
    pub listen: SocketAddr,
    /// Optional TLS listen address.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// Broker name sent in OP_INFO.
    pub name: String,
    /// Largest accepted frame in bytes, header included.
    pub max_frame_bytes: usize,
    /// Seconds a client has to authenticate.
    pub auth_timeout_secs: u64,
    /// Maximum open connections.
    pub max_connections: usize,
    /// Maximum connections not yet authenticated.
    pub max_unauthenticated: usize,
    /// Maximum connections not yet authenticated from one address.
    pub max_unauthenticated_per_ip: usize,
    /// Frames queued per subscriber before its messages are dropped.
    pub subscriber_queue_frames: usize,
    /// Bytes queued per subscriber before its messages are dropped.
    pub subscriber_queue_bytes: usize,
    /// Seconds a subscriber may stay full before it is disconnected.
    pub slow_subscriber_grace_secs: u64,
    /// Seconds between checks of the store for added/removed idents.
    pub ident_reload_secs: u64,
    /// Host name or address sensors connect to (deploy scripts); empty = the host of
    /// `http.public_url`, else the host the deploy request was sent to.
    pub public_host: Option<String>,
    /// Port sensors connect to; empty = the port of `listen`.
    pub public_port: Option<u16>,
}

/// `[http]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Base URL sensors and browsers reach this server at (`https://apiary.example.net`),
    /// used in deploy commands and scripts; empty = `http://<the request's Host>`.
    pub public_url: Option<String>,
    /// Adds `Secure` to the session and sign-in cookies: set it when browsers reach the
    /// web app over HTTPS (a TLS-terminating proxy in front).
    pub secure_cookies: bool,
    /// Hours a browser session lasts after sign-in.
    pub session_hours: u32,
    /// Seconds a request may take to produce its response before it is answered 503.
    pub request_timeout_secs: u64,
}

/// `[ingest]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Store messages in the database and normalize them (off: broker only).
    pub enabled: bool,
    /// Maximum messages per database transaction.
    pub batch_size: usize,
    /// Milliseconds to wait for a batch to fill before committing what is there.
    pub batch_delay_ms: u64,
    /// Messages buffered between the broker and the pipeline (backpressure beyond).
    pub queue: usize,
}

/// `[retention]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Days raw messages are kept (0 = forever).
    pub raw_days: u32,
    /// Days sessions and roll-ups are kept (0 = forever).
    pub session_days: u32,
    /// Minutes between pruning passes.
    pub interval_minutes: u64,
    /// Disk budget in megabytes for the embedded database (0 = none): while the data
    /// takes more, the oldest hours of raw messages, sessions and roll-ups are pruned
    /// whatever their age. Not available with PostgreSQL.
    pub max_size_mb: u64,
    /// Seconds between checks of the disk budget.
    pub budget_check_seconds: u64,
}

/// `[geo]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GeoSettings {
    /// Directory searched for databases by their usual file names (before
    /// `<data_dir>/geo` and `./data/geo`).
    pub dir: Option<PathBuf>,
    /// City database (.mmdb); empty = look in `<data_dir>/geo` and `data/geo`.
    pub city_db: Option<PathBuf>,
    /// ASN database (.mmdb).
    pub asn_db: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./apiary-data"),
            database_url: String::new(),
            hpfeeds: HpfeedsSettings::default(),
            http: HttpSettings::default(),
            ingest: IngestSettings::default(),
            retention: RetentionSettings::default(),
            geo: GeoSettings::default(),
            map: MapSettings::default(),
            deploy: DeploySettings::default(),
        }
    }
}

impl Default for HpfeedsSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 10000)),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            name: "apiary".into(),
            max_frame_bytes: 10 * 1024 * 1024,
            auth_timeout_secs: 10,
            max_connections: 20_000,
            max_unauthenticated: 2_048,
            max_unauthenticated_per_ip: 64,
            subscriber_queue_frames: 65_536,
            subscriber_queue_bytes: 64 * 1024 * 1024,
            slow_subscriber_grace_secs: 5,
            ident_reload_secs: 1,
            public_host: None,
            public_port: None,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            public_url: None,
            secure_cookies: false,
            session_hours: 12,
            request_timeout_secs: 30,
        }
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_size: 20_000,
            batch_delay_ms: 50,
            queue: 20_000,
        }
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            raw_days: 30,
            session_days: 365,
            interval_minutes: 10,
            max_size_mb: 0,
            budget_check_seconds: 60,
        }
    }
}

/// Where settings came from, for error messages.
#[derive(Debug, Default)]
pub struct Sources {
    file: Option<PathBuf>,
    env_keys: BTreeMap<String, String>,
}

/// Command-line overrides (only the flags the user gave).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--database-url`
    pub database_url: Option<String>,
    /// `--hpfeeds-listen`
    pub hpfeeds_listen: Option<SocketAddr>,
    /// `--hpfeeds-tls-listen`
    pub hpfeeds_tls_listen: Option<SocketAddr>,
    /// `--hpfeeds-tls-cert`
    pub hpfeeds_tls_cert: Option<PathBuf>,
    /// `--hpfeeds-tls-key`
    pub hpfeeds_tls_key: Option<PathBuf>,
    /// `--http-listen`
    pub http_listen: Option<SocketAddr>,
}

/// A settings error that names the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl Settings {
    /// Loads settings from an optional file, the given environment and CLI overrides.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<(Settings, Vec<String>), SettingsError> {
        let mut sources = Sources::default();
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SettingsError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                sources.file = Some(path.to_path_buf());
                text.parse::<toml::Table>()
                    .map_err(|e| SettingsError(format!("config file {}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        let warnings = apply_env(&mut tree, env, &mut sources)?;
        let mut settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(tree))
            .map_err(|e| {
                let key = e.path().to_string();
                let origin = match sources.env_keys.get(&key) {
                    Some(var) => format!("environment variable {var}"),
                    None => match &sources.file {
                        Some(f) => format!("config file {}", f.display()),
                        None => "defaults".into(),
                    },
                };
                SettingsError(format!(
                    "invalid value for `{key}` in {origin}: {}",
                    e.inner()
                ))
            })?;
        settings.apply(overrides);
        settings.validate(&sources)?;
        Ok((settings, warnings))
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(v) = &o.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &o.database_url {
            self.database_url = v.clone();
        }
        if let Some(v) = o.hpfeeds_listen {
            self.hpfeeds.listen = v;
        }
        if let Some(v) = o.hpfeeds_tls_listen {
            self.hpfeeds.tls_listen = Some(v);
        }
        if let Some(v) = &o.hpfeeds_tls_cert {
            self.hpfeeds.tls_cert = Some(v.clone());
        }
        if let Some(v) = &o.hpfeeds_tls_key {
            self.hpfeeds.tls_key = Some(v.clone());
        }
        if let Some(v) = o.http_listen {
            self.http.listen = v;
        }
    }

    fn validate(&self, sources: &Sources) -> Result<(), SettingsError> {
        let origin = |key: &str| match sources.env_keys.get(key) {
            Some(var) => format!("environment variable {var}"),
            None => match &sources.file {
                Some(f) => format!("config file {}", f.display()),
                None => "command line".into(),
            },
        };
        let bad = |key: &str, why: &str| {
            Err(SettingsError(format!(
                "invalid value for `{key}` in {}: {why}",
                origin(key)
            )))
        };
        if self.hpfeeds.max_frame_bytes < 5 + 256 + 20 {
            return bad("hpfeeds.max_frame_bytes", "must be at least 281 bytes");
        }
        if self.hpfeeds.max_frame_bytes > u32::MAX as usize {
            return bad("hpfeeds.max_frame_bytes", "must be below 4 GiB");
        }
        if self.hpfeeds.name.is_empty() || self.hpfeeds.name.len() > 255 {
            return bad("hpfeeds.name", "must be 1 to 255 bytes");
        }
        if self.hpfeeds.auth_timeout_secs == 0 {
            return bad("hpfeeds.auth_timeout_secs", "must be at least 1");
        }
        if self.hpfeeds.tls_listen.is_some()
            && (self.hpfeeds.tls_cert.is_none() || self.hpfeeds.tls_key.is_none())
        {
            return bad(
                "hpfeeds.tls_listen",
                "needs hpfeeds.tls_cert and hpfeeds.tls_key",
            );
        }
        if self.ingest.batch_size == 0 {
            return bad("ingest.batch_size", "must be at least 1");
        }
        if self.ingest.queue == 0 {
            return bad("ingest.queue", "must be at least 1");
        }
        let m = &self.map;
        if m.server_latitude.is_some() != m.server_longitude.is_some() {
            return bad(
                "map.server_latitude",
                "set both map.server_latitude and map.server_longitude, or neither",
            );
        }
        if m.server_latitude
            .is_some_and(|v| !(-90.0..=90.0).contains(&v))
        {
            return bad("map.server_latitude", "must be -90 to 90");
        }
        if m.server_longitude
            .is_some_and(|v| !(-180.0..=180.0).contains(&v))
        {
            return bad("map.server_longitude", "must be -180 to 180");
        }
        if let Some(u) = &self.http.public_url {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && u.chars()
                    .all(|c| c.is_ascii_graphic() && !"\"'`$\\;&|<>(){}".contains(c));
            if !ok {
                return bad(
                    "http.public_url",
                    "must be an http:// or https:// URL without quotes or shell characters",
                );
            }
        }
        if self.http.session_hours == 0 || self.http.session_hours > 24 * 90 {
            return bad("http.session_hours", "must be 1 to 2160 (90 days)");
        }
        if self.http.request_timeout_secs == 0 || self.http.request_timeout_secs > 3600 {
            return bad("http.request_timeout_secs", "must be 1 to 3600");
        }
        if m.live_buffer == 0 || m.live_buffer > 1 << 20 {
            return bad("map.live_buffer", "must be 1 to 1048576");
        }
        let known_scheme = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| self.database_url.starts_with(p));
        if !self.database_url.is_empty() && !known_scheme {
            return bad("database_url", "must start with sqlite:// or postgres://");
        }
        if self.retention.max_size_mb > 0 && self.database_url.starts_with("postgres") {
            return bad(
                "retention.max_size_mb",
                "works with the embedded SQLite database only (PostgreSQL reuses deleted space \
                 through VACUUM, which the store cannot measure); use raw_days and session_days",
            );
        }
        if self.retention.budget_check_seconds == 0 || self.retention.budget_check_seconds > 3600 {
            return bad("retention.budget_check_seconds", "must be 1 to 3600");
        }
        Ok(())
    }

    /// The effective database URL.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("apiary.db").display())
        } else {
            self.database_url.clone()
        }
    }
}

/// Applies `APIARY_*` variables to the tree; returns warnings for unknown ones.
fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    sources: &mut Sources,
) -> Result<Vec<String>, SettingsError> {
    let known = toml::Value::try_from(Settings::default())
        .map_err(|e| SettingsError(format!("internal: {e}")))?;
    let mut warnings = vec![];
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("APIARY_") else {
            continue;
        };
        if NON_SETTING_ENV.contains(&var.as_str()) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let is_known = match path.as_slice() {
            [k] => known.get(k).is_some(),
            [s, k] => {
                known.get(s).and_then(|t| t.get(k)).is_some()
                    || matches!(
                        (s.as_str(), k.as_str()),
                        ("hpfeeds", "tls_listen" | "tls_cert" | "tls_key")
                            | ("geo", "dir" | "city_db" | "asn_db")
                            | ("map", "server_latitude" | "server_longitude")
                            | ("http", "public_url")
                            | ("hpfeeds", "public_host" | "public_port")
                            | ("deploy", "sensor_binary")
                    )
            }
            _ => false,
        };
        if !is_known {
            warnings.push(format!("ignoring unknown environment variable {var}"));
            continue;
        }
        // Numbers and booleans parse as TOML; anything else is a string.
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| !v.is_str() || value.starts_with('"'))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let (last, sections) = match path.split_last() {
            Some(x) => x,
            None => continue,
        };
        let mut node = &mut *tree;
        for s in sections {
            let entry = node
                .entry(s.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry.as_table_mut() {
                Some(t) => t,
                None => {
                    return Err(SettingsError(format!(
                        "environment variable {var}: `{s}` is not a section"
                    )))
                }
            };
        }
        node.insert(last.clone(), parsed);
        sources.env_keys.insert(path.join("."), var.clone());
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::load(Some(f.path()), env, &Overrides::default()).map(|(s, _)| s)
    }

    #[test]
    fn example_parses_and_matches_defaults() {
        let s = load_text(EXAMPLE, &[]).unwrap();
        assert_eq!(s, Settings::default());
        // The commented-out [map] server location in the example is valid when enabled.
        let located = EXAMPLE
            .replace("# server_latitude", "server_latitude")
            .replace("# server_longitude", "server_longitude");
        let s = load_text(&located, &[]).unwrap();
        assert!(s.map.server_location().is_some());
        let env = [
            ("APIARY_MAP__SERVER_LATITUDE", "1.5"),
            ("APIARY_MAP__SERVER_LONGITUDE", "2"),
        ];
        let s = load_text("", &env).unwrap();
        assert_eq!(
            s.map.server_location().map(|l| (l.lat, l.lon)),
            Some((1.5, 2.0))
        );
        let err = load_text("[map]\nserver_latitude = 1.0\n", &[])
            .unwrap_err()
            .0;
        assert!(err.contains("map.server_latitude"), "{err}");
    }

    #[test]
    fn unknown_key_is_rejected_with_file_name() {
        let err = load_text("[hpfeeds]\nlisten = \"0.0.0.0:1\"\nbogus = 1\n", &[])
            .unwrap_err()
            .0;
        assert!(err.contains("bogus"), "{err}");
        assert!(err.contains("config file"), "{err}");
    }

    #[test]
    fn bad_value_names_key_and_file() {
        let err = load_text("[hpfeeds]\nlisten = \"not an address\"\n", &[])
            .unwrap_err()
            .0;
        assert!(err.contains("hpfeeds.listen"), "{err}");
        assert!(err.contains("config file"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_errors_name_the_variable() {
        let s = load_text(
            "[http]\nlisten = \"127.0.0.1:1\"\n",
            &[
                ("APIARY_HTTP__LISTEN", "127.0.0.1:2"),
                ("APIARY_HPFEEDS__MAX_FRAME_BYTES", "4096"),
            ],
        )
        .unwrap();
        assert_eq!(s.http.listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(s.hpfeeds.max_frame_bytes, 4096);
        let err = load_text("", &[("APIARY_HPFEEDS__AUTH_TIMEOUT_SECS", "soon")])
            .unwrap_err()
            .0;
        assert!(err.contains("APIARY_HPFEEDS__AUTH_TIMEOUT_SECS"), "{err}");
        assert!(err.contains("hpfeeds.auth_timeout_secs"), "{err}");
    }

    #[test]
    fn validation_names_key() {
        let err = load_text("[hpfeeds]\nmax_frame_bytes = 10\n", &[])
            .unwrap_err()
            .0;
        assert!(err.contains("hpfeeds.max_frame_bytes"), "{err}");
        let err = load_text("database_url = \"mysql://x\"\n", &[])
            .unwrap_err()
            .0;
        assert!(err.contains("database_url"), "{err}");
        let err = load_text(
            "database_url = \"postgres://db/apiary\"\n[retention]\nmax_size_mb = 100\n",
            &[],
        )
        .unwrap_err()
        .0;
        assert!(err.contains("retention.max_size_mb"), "{err}");
        assert!(err.contains("PostgreSQL"), "{err}");
        let s = load_text("[retention]\nmax_size_mb = 100\n", &[]).unwrap();
        assert_eq!(s.retention.max_size_mb, 100);
    }

    #[test]
    fn cli_overrides_win() {
        let o = Overrides {
            hpfeeds_listen: Some("127.0.0.1:9".parse().unwrap()),
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        let (s, _) = Settings::load(
            None,
            [(
                "APIARY_HPFEEDS__LISTEN".to_string(),
                "127.0.0.1:8".to_string(),
            )],
            &o,
        )
        .unwrap();
        assert_eq!(s.hpfeeds.listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(s.database_url(), "sqlite:///tmp/x/apiary.db");
    }
}
