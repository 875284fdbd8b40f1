//! Query and result types the [`Store`](crate::Store) trait speaks besides the model types.
//!
//! Filters are plain structs: every backend turns them into its own SQL, and callers never
//! see a SQL fragment.

use std::fmt;
use std::net::IpAddr;

use apiary_model::{Credential, FileRecord, Normalized, P0fMetadata, RawEvent};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One raw message plus what the normalizer made of it.
#[derive(Debug, Clone)]
pub struct IngestItem {
    /// The message as received.
    pub raw: RawEvent,
    /// Normalized records, or the normalizer's error (the raw message is kept either way).
    pub outcome: std::result::Result<Vec<Normalized>, String>,
}

/// What one `insert_batch` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// Store ids of the raw messages, in batch order.
    pub raw_ids: Vec<i64>,
    /// Store ids of the sessions inserted, in batch order (each message's sessions in
    /// record order); empty for re-normalization.
    pub session_ids: Vec<i64>,
    /// Sessions inserted.
    pub sessions: u64,
    /// Side records (files, urls, dorks, metadata) upserted.
    pub side_records: u64,
    /// Raw messages stored with an error outcome.
    pub errors: u64,
}

/// Normalization state of a raw message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawStatus {
    /// Stored but not normalized yet.
    Pending,
    /// Normalized (possibly into zero records).
    Normalized,
    /// The normalizer failed; see `error`.
    Error,
}

impl RawStatus {
    /// Stable text form, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Normalized => "normalized",
            Self::Error => "error",
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "normalized" => Some(Self::Normalized),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// A stored raw message with its normalization state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRaw {
    /// The message (with `id` set).
    pub event: RawEvent,
    /// Normalization state.
    pub status: RawStatus,
    /// Normalizer error text when `status` is `Error`.
    pub error: Option<String>,
}

/// Which raw messages `apiary renormalize` revisits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawFilter {
    /// Only this channel.
    pub channel: Option<String>,
    /// Only messages received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only messages whose normalization failed.
    pub only_errors: bool,
}

/// Filter for browsing raw messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawQuery {
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this publisher ident.
    pub ident: Option<String>,
    /// Only payloads containing these bytes (exact, case-sensitive; scans).
    pub text: Option<String>,
    /// Only messages with this status.
    pub status: Option<RawStatus>,
}

/// Filter for sessions. Every set field must match (AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFilter {
    /// Sessions at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Sessions strictly before this time.
    pub until: Option<DateTime<Utc>>,
    /// Publishing sensor ident.
    pub sensor: Option<String>,
    /// Honeypot software.
    pub honeypot: Option<String>,
    /// Source address or network (`/32` or `/128` for one address).
    pub source: Option<IpNet>,
    /// Destination port.
    pub destination_port: Option<u16>,
    /// Protocol, exact.
    pub protocol: Option<String>,
    /// Source country code, exact (ISO alpha-2, as stored).
    pub country: Option<String>,
    /// Source AS number.
    pub asn: Option<u32>,
    /// IDS signature contains this text (ASCII case-insensitive).
    pub signature: Option<String>,
    /// A credential tried whose username or password equals this text.
    pub credential: Option<String>,
    /// Channel, exact.
    pub channel: Option<String>,
    /// Only internal (`true`) or only external (`false`) sources.
    pub internal: Option<bool>,
    /// Free text: a credential whose username or password equals it (exact,
    /// case-sensitive), or an IDS signature or a URL containing it (ASCII
    /// case-insensitive). Each of the three is read newest first from its own index
    /// (the credential indexes, the partial index of IDS sessions, the partial index of
    /// sessions with URLs) and the three are merged, so only candidate sessions are read.
    /// Not supported by [`Store::top_sources`](crate::Store::top_sources).
    pub text: Option<String>,
}

/// An opaque keyset position. Hand back what a listing returned to get the next page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

impl Cursor {
    /// Encodes a (time-ish key, id) position. Hex of the two's complement, so no sign.
    pub(crate) fn encode(key: i64, id: i64) -> Self {
        Self(format!("{key:x}.{id:x}"))
    }

    /// Decodes a position; a malformed cursor is `Invalid`.
    pub(crate) fn decode(&self) -> crate::Result<(i64, i64)> {
        let bad = || crate::StoreError::Invalid(format!("malformed cursor {:?}", self.0));
        let (a, b) = self.0.split_once('.').ok_or_else(bad)?;
        let num = |s: &str| {
            u64::from_str_radix(s, 16)
                .map(|v| v as i64)
                .map_err(|_| bad())
        };
        Ok((num(a)?, num(b)?))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Page size and position for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Rows per page (capped at [`Page::MAX`]).
    pub limit: usize,
    /// Where to continue; `None` for the first page.
    pub after: Option<Cursor>,
}

impl Page {
    /// Largest page a backend returns.
    pub const MAX: usize = 10_000;

    /// First page of `limit` rows.
    pub fn first(limit: usize) -> Self {
        Self { limit, after: None }
    }

    /// The page after `cursor`.
    pub fn after(limit: usize, cursor: Cursor) -> Self {
        Self {
            limit,
            after: Some(cursor),
        }
    }

    pub(crate) fn capped(&self) -> usize {
        self.limit.clamp(1, Self::MAX)
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::first(100)
    }
}

/// A dimension kept in the hourly roll-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Every session (value is empty); used for totals.
    All,
    /// Honeypot software.
    Honeypot,
    /// Sensor ident.
    Sensor,
    /// Destination port (decimal text).
    DestinationPort,
    /// Source address (canonical text).
    SourceIp,
    /// Source country code.
    Country,
    /// Protocol.
    Protocol,
    /// Channel.
    Channel,
    /// IDS signature.
    Signature,
    /// Username tried (one count per attempt).
    Username,
    /// Password tried (one count per attempt).
    Password,
}

impl Dimension {
    /// All dimensions, in code order.
    pub const ALL: [Dimension; 11] = [
        Self::All,
        Self::Honeypot,
        Self::Sensor,
        Self::DestinationPort,
        Self::SourceIp,
        Self::Country,
        Self::Protocol,
        Self::Channel,
        Self::Signature,
        Self::Username,
        Self::Password,
    ];

    /// Stable numeric code, as stored. Never renumber.
    pub fn code(self) -> i64 {
        match self {
            Self::All => 0,
            Self::Honeypot => 1,
            Self::Sensor => 2,
            Self::DestinationPort => 3,
            Self::SourceIp => 4,
            Self::Country => 5,
            Self::Protocol => 6,
            Self::Channel => 7,
            Self::Signature => 8,
            Self::Username => 9,
            Self::Password => 10,
        }
    }

    /// Name used in URLs and config (`destination_port`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Honeypot => "honeypot",
            Self::Sensor => "sensor",
            Self::DestinationPort => "destination_port",
            Self::SourceIp => "source_ip",
            Self::Country => "country",
            Self::Protocol => "protocol",
            Self::Channel => "channel",
            Self::Signature => "signature",
            Self::Username => "username",
            Self::Password => "password",
        }
    }

    /// Parses [`Dimension::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// Sessions counted in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HourCount {
    /// Start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// Sessions (or credential attempts for username/password) in that hour.
    pub count: u64,
}

/// What one attacker address did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AttackerStats {
    /// The address.
    pub ip: Option<IpAddr>,
    /// Sessions from it in the window.
    pub count: u64,
    /// First session time.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last session time.
    pub last_seen: Option<DateTime<Utc>>,
    /// Destination ports, ascending.
    pub ports: Vec<u16>,
    /// Honeypots, sorted.
    pub honeypots: Vec<String>,
    /// Sensor idents, sorted.
    pub sensors: Vec<String>,
    /// Credentials tried with attempt counts, most tried first (at most 100).
    pub credentials: Vec<(Credential, u64)>,
    /// URLs seen in its sessions (distinct, at most 100).
    pub urls: Vec<String>,
    /// Commands it entered (distinct, at most 100).
    pub commands: Vec<String>,
}

/// A stored file with its sighting figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRow {
    /// The file (listings leave `data` out; [`Store::file`](crate::Store::file) fills it).
    pub file: FileRecord,
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// Last seen.
    pub last_seen: DateTime<Utc>,
    /// Times seen.
    pub count: u64,
}

/// A stored URL with its sighting figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UrlRow {
    /// The URL.
    pub url: String,
    /// sha512 of files extracted from it.
    pub file_sha512: Vec<String>,
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// Last seen.
    pub last_seen: DateTime<Utc>,
    /// Times seen.
    pub count: u64,
}

/// A stored dork with its sighting figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DorkRow {
    /// Path probed.
    pub content: String,
    /// Kind (`inurl`).
    pub kind: String,
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// Last seen.
    pub last_seen: DateTime<Utc>,
    /// Times seen.
    pub count: u64,
}

/// A stored p0f fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataRow {
    /// The fingerprint (latest known value of each field).
    pub metadata: P0fMetadata,
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

/// A deployed sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorRecord {
    /// Sensor uuid (primary key).
    pub uuid: String,
    /// Display name (unique).
    pub name: String,
    /// Host name.
    pub hostname: String,
    /// Address it registered or connected from.
    pub ip: Option<String>,
    /// Honeypot software.
    pub honeypot: String,
    /// hpfeeds ident it publishes with.
    pub ident: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Last time it published or sent a heartbeat.
    pub last_seen: Option<DateTime<Utc>>,
    /// Last heartbeat body (JSON object).
    pub heartbeat: Option<serde_json::Value>,
    /// Latitude, when the operator placed it.
    pub latitude: Option<f64>,
    /// Longitude, when the operator placed it.
    pub longitude: Option<f64>,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneResult {
    /// Raw messages deleted.
    pub raw: u64,
    /// Sessions deleted.
    pub sessions: u64,
    /// Credential rows deleted with them.
    pub credentials: u64,
    /// Roll-up rows deleted.
    pub rollups: u64,
}

/// How [`Store::top_sources`](crate::Store::top_sources) groups each source's sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceGrouping {
    /// By honeypot (MHN's `top_attackers`).
    #[default]
    Honeypot,
    /// By honeypot, protocol and destination port (MHN's `intel_feed`).
    Service,
}

/// The most active source addresses, grouped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopSourcesQuery {
    /// Which sessions count. `since` defaults to the epoch, `until` to no bound; `source`
    /// keeps only addresses inside that network.
    pub filter: SessionFilter,
    /// What a row is.
    pub grouping: SourceGrouping,
    /// Sessions with one of these protocols (exact) do not count; sessions without a
    /// protocol always do.
    pub exclude_protocols: Vec<String>,
    /// Rows wanted (1 to [`Page::MAX`]).
    pub limit: usize,
}

/// Sessions of one source address in one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceGroupCount {
    /// The source address (canonical: IPv4-mapped addresses as IPv4).
    pub source_ip: IpAddr,
    /// Honeypot.
    pub honeypot: String,
    /// Protocol ([`SourceGrouping::Service`] only).
    pub protocol: Option<String>,
    /// Destination port ([`SourceGrouping::Service`] only).
    pub destination_port: Option<u16>,
    /// Sessions.
    pub count: u64,
}

/// Answer of [`Store::top_sources`](crate::Store::top_sources).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopSources {
    /// Most sessions first; ties by address text, then honeypot, protocol, port
    /// (absent first).
    pub rows: Vec<SourceGroupCount>,
    /// `true` when the backend stopped after probing its maximum number of addresses
    /// (only with filters the roll-ups cannot narrow): the rows are then exact counts
    /// of the addresses probed, but a less active address may be missing.
    pub truncated: bool,
}
