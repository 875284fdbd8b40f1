//! What normalizers make of raw messages.
//!
//! A raw message yields zero or more [`Normalized`] records. Sessions are attack events;
//! files, urls, dorks and p0f metadata are side records MHN kept in their own collections.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One record produced by a normalizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalized {
    /// An attack event.
    Session(Box<Session>),
    /// A captured file (malware sample, script).
    File(FileRecord),
    /// A URL seen (download, exploit kit landing page).
    Url(UrlRecord),
    /// A web path attackers probe for ("dork").
    Dork(Dork),
    /// Passive OS/application fingerprint of an address (p0f).
    Metadata(P0fMetadata),
}

/// One attack event: who touched which honeypot, when and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Session {
    /// Store id, once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Event time (receipt time unless the honeypot supplies a trustworthy one).
    pub timestamp: DateTime<Utc>,
    /// Attacker address (IPv4-mapped IPv6 addresses are unmapped).
    pub source_ip: Option<IpAddr>,
    /// Attacker port.
    pub source_port: Option<u16>,
    /// Honeypot address as seen by the attacker, when known.
    pub destination_ip: Option<IpAddr>,
    /// Port attacked.
    pub destination_port: Option<u16>,
    /// Application protocol (`ssh`, `http`, `modbus`...).
    pub protocol: Option<String>,
    /// Honeypot software (`cowrie`, `dionaea`...).
    pub honeypot: String,
    /// Channel the raw message came on (set by the pipeline).
    #[serde(default)]
    pub channel: String,
    /// hpfeeds ident of the sensor that published it (set by the pipeline).
    #[serde(default)]
    pub sensor: String,
    /// Source address is private/loopback/link-local: an internal host touched a honeypot.
    #[serde(default)]
    pub internal: bool,
    /// Geolocation of the source (set by enrichment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_geo: Option<GeoInfo>,
    /// Geolocation of the destination (set by enrichment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_geo: Option<GeoInfo>,
    /// Store id of the raw message this came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_id: Option<i64>,
    /// Per-channel details.
    #[serde(default)]
    pub details: SessionDetails,
}

/// Per-channel details of a session. Every string is bounded by the normalizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SessionDetails {
    /// Username/password pairs tried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<Credential>,
    /// SSH client version string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_version: Option<String>,
    /// HTTP request seen by a web honeypot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequest>,
    /// IDS alert (Snort, Suricata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<IdsAlert>,
    /// ICS / industrial protocol data (Conpot PDUs and similar), kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ics: Option<serde_json::Value>,
    /// URLs seen in the session (downloads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Shell commands entered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// Hashes of files the session produced or downloaded (sha256 or md5 hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<String>,
    /// Whether the attacker got in (fake shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_in: Option<bool>,
    /// Anything else worth keeping, small (bounded JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
}

/// A username/password pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Username / login.
    pub username: String,
    /// Password.
    pub password: String,
}

/// An HTTP request captured by a web honeypot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HttpRequest {
    /// Request method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path (with query) or full URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Host header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// User-Agent header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Headers as (lower-cased name, value) pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Body (bounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// An IDS alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IdsAlert {
    /// Rule message.
    pub signature: String,
    /// Signature id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_id: Option<u64>,
    /// Generator id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_id: Option<u64>,
    /// Rule revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Classification text or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// Priority / severity (1 = highest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Action taken (allowed / blocked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// Geolocation and network owner of an address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GeoInfo {
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// Country name (English), when the database has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// City name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Latitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Autonomous system number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
}

/// A captured file, keyed by sha512.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FileRecord {
    /// MD5 hex.
    pub md5: String,
    /// SHA-1 hex.
    pub sha1: String,
    /// SHA-256 hex.
    pub sha256: String,
    /// SHA-512 hex (the key).
    pub sha512: String,
    /// Size in bytes of the content (or as reported when content is absent).
    pub size: u64,
    /// What the content looks like (libmagic-like guess or producer's type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_guess: Option<String>,
    /// The file bytes when the producer sent them.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex")]
    pub data: Option<Vec<u8>>,
    /// Where it was downloaded from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A URL seen by a honeypot or client honeypot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UrlRecord {
    /// The URL (bounded).
    pub url: String,
    /// sha512 of files extracted from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_sha512: Vec<String>,
}

/// A probed web path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dork {
    /// Path, query stripped.
    pub content: String,
    /// Kind of dork (`inurl`).
    pub kind: String,
}

/// A passive fingerprint of an address (p0f).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct P0fMetadata {
    /// Fingerprinted address.
    pub ip: String,
    /// Operating system guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Application guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Link type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Uptime text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<String>,
}

mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => {
                let mut out = String::with_capacity(b.len() * 2);
                for byte in b {
                    out.push_str(&format!("{byte:02x}"));
                }
                s.serialize_some(&out)
            }
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => {
                if s.len() % 2 != 0 {
                    return Err(serde::de::Error::custom("odd hex length"));
                }
                (0..s.len())
                    .step_by(2)
                    .map(|i| {
                        s.get(i..i + 2)
                            .and_then(|p| u8::from_str_radix(p, 16).ok())
                            .ok_or_else(|| serde::de::Error::custom("bad hex"))
                    })
                    .collect::<Result<Vec<u8>, _>>()
                    .map(Some)
            }
        }
    }
}

/// Unmaps `::ffff:a.b.c.d` to IPv4 so one attacker has one address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parses an address from attacker-supplied text: trims, strips `[...]` and `::ffff:`.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    s.parse::<IpAddr>().ok().map(canonical_ip)
}

/// True for addresses that are not on the public internet: RFC 1918, loopback,
/// link-local, CGNAT, unique-local IPv6. A session from one is an internal host
/// touching a honeypot, the early warning MHN users wanted.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            v6.is_loopback() || (seg0 & 0xfe00) == 0xfc00 || (seg0 & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_helpers() {
        assert_eq!(
            parse_ip("::ffff:198.51.100.23"),
            Some("198.51.100.23".parse().unwrap())
        );
        assert_eq!(
            parse_ip("[2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("not an ip"), None);
        assert!(is_internal("10.1.2.3".parse().unwrap()));
        assert!(is_internal("::ffff:192.168.1.1".parse().unwrap()));
        assert!(is_internal("fd00::1".parse().unwrap()));
        assert!(is_internal("100.64.0.1".parse().unwrap()));
        assert!(!is_internal("8.8.8.8".parse().unwrap()));
        assert!(!is_internal("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn file_record_hex_roundtrip() {
        let f = FileRecord {
            data: Some(vec![0, 1, 0xff]),
            ..Default::default()
        };
        let j = serde_json::to_string(&f).unwrap();
        assert!(j.contains("\"0001ff\""));
        let back: FileRecord = serde_json::from_str(&j).unwrap();
        assert_eq!(back, f);
    }
}
