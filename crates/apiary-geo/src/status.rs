//! What is loaded, for logs and `/metrics`.

use std::fmt;
use std::path::{Path, PathBuf};

use maxminddb::Metadata;
use serde::Serialize;

/// What a database is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbRole {
    /// Country, city and coordinates.
    City,
    /// Autonomous system number and organisation.
    Asn,
}

/// Record layout, guessed from the metadata's `database_type`.
///
/// Only informative: lookups detect the layout per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Nested MaxMind layout (`GeoLite2-*`, `GeoIP2-*`, `DBIP-*` types).
    MaxMind,
    /// Flat layout of the `@ip-location-db` files (types such as `city ipv4`).
    Flat,
    /// Range CSV (`start,end,asn,organization`) of the `@ip-location-db/asn` package.
    Csv,
}

/// One loaded database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatabaseStatus {
    /// City or ASN.
    pub role: DbRole,
    /// File it was read from.
    pub path: PathBuf,
    /// Metadata `database_type`, e.g. `GeoLite2-City` or `city ipv4`.
    pub database_type: String,
    /// Layout guessed from the type.
    pub layout: Layout,
    /// 4 for an IPv4-only tree, 6 for IPv6 (which may also hold IPv4).
    pub ip_version: u16,
    /// Build time, seconds since the Unix epoch.
    pub build_epoch: u64,
    /// Build date, `YYYY-MM-DD` (UTC).
    pub build_date: String,
    /// Networks in the search tree (a size indication).
    pub node_count: u32,
}

impl DatabaseStatus {
    pub(crate) fn from_metadata(role: DbRole, path: &Path, m: &Metadata) -> DatabaseStatus {
        let t = m.database_type.as_str();
        let layout = if ["GeoLite2", "GeoIP2", "GeoIP", "DBIP"]
            .iter()
            .any(|p| t.starts_with(p))
        {
            Layout::MaxMind
        } else {
            Layout::Flat
        };
        DatabaseStatus {
            role,
            path: path.to_path_buf(),
            database_type: m.database_type.clone(),
            layout,
            ip_version: m.ip_version,
            build_epoch: m.build_epoch,
            build_date: date_from_epoch(m.build_epoch),
            node_count: m.node_count,
        }
    }
}

/// Lookup cache size and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheStatus {
    /// Most entries kept; 0 when caching is off.
    pub capacity: usize,
    /// Entries held now.
    pub entries: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that went to the databases.
    pub misses: u64,
}

/// Everything [`GeoDb::status`](crate::GeoDb::status) reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeoStatus {
    /// Loaded databases, city first; empty when geolocation is off.
    pub databases: Vec<DatabaseStatus>,
    /// The lookup cache.
    pub cache: CacheStatus,
}

impl fmt::Display for GeoStatus {
    /// One line: `geo: city GeoLite2-City (2024-05-01, /path) + asn ... ; cache 65536`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.databases.is_empty() {
            return f.write_str("geo: no database loaded");
        }
        f.write_str("geo:")?;
        for (i, d) in self.databases.iter().enumerate() {
            let role = match d.role {
                DbRole::City => "city",
                DbRole::Asn => "asn",
            };
            let sep = if i == 0 { " " } else { "; " };
            write!(
                f,
                "{sep}{role} {:?} IPv{} built {} ({})",
                d.database_type,
                d.ip_version,
                d.build_date,
                d.path.display()
            )?;
        }
        write!(f, "; cache capacity {}", self.cache.capacity)
    }
}

/// `YYYY-MM-DD` of a Unix time (proleptic Gregorian, UTC).
pub(crate) fn date_from_epoch(secs: u64) -> String {
    // Days-to-civil conversion on 400-year eras, days counted from 0000-03-01.
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_from_epoch(0), "1970-01-01");
        assert_eq!(date_from_epoch(951_782_400), "2000-02-29");
        assert_eq!(date_from_epoch(1_577_209_301), "2019-12-24");
        assert_eq!(date_from_epoch(1_709_251_199), "2024-02-29");
        assert_eq!(date_from_epoch(1_781_725_941), "2026-06-17");
    }
}
