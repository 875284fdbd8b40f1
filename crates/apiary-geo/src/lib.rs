//! Geo and ASN enrichment from MaxMind-format (`.mmdb`) databases.
//!
//! ```no_run
//! # use apiary_geo::{GeoDb, GeoSettings};
//! # use std::path::Path;
//! let settings = GeoSettings::discover(Path::new("/var/lib/apiary"));
//! let geo = GeoDb::open(&settings)?;
//! if !geo.is_enabled() {
//!     tracing::warn!("no geo database configured; events stored without geolocation");
//! }
//! let info = geo.lookup("8.8.8.8".parse().unwrap());
//! # Ok::<(), apiary_geo::GeoError>(())
//! ```
//!
//! Two record layouts are understood, per record, so either kind of file can be given
//! for either role:
//!
//! - **MaxMind** (GeoLite2/GeoIP2 City, Country and ASN): `country.iso_code`,
//!   `country.names.en`, `city.names.en`, `location.latitude`, `location.longitude`;
//!   `autonomous_system_number`, `autonomous_system_organization`.
//! - **Flat** (`@ip-location-db/*-mmdb`, fetched by `scripts/fetch-geo.sh`):
//!   `country_code`, `city`, `state1`, `state2`, `postcode`, `latitude`, `longitude`,
//!   `timezone` (empty strings for unknown); ASN files use the same two
//!   `autonomous_system_*` keys. These ship as separate IPv4 and IPv6 files.
//!
//! # Layout
//!
//! - `lib.rs`: [`GeoDb`] (open, lookup, status), [`GeoError`].
//! - `settings.rs`: [`GeoSettings`] and discovery of files by their usual names.
//! - `record.rs`: one serde struct decoding both layouts without allocating.
//! - `cache.rs`: the bounded, sharded lookup cache (positive and negative results).
//! - `net.rs`: `::ffff:` canonicalization and the ranges never looked up.
//! - `status.rs`: [`GeoStatus`], what is loaded, for logs and `/metrics`.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cache;
mod net;
mod ranges;
mod record;
mod settings;
mod status;
#[cfg(test)]
mod testdb;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use apiary_model::GeoInfo;
use maxminddb::{MaxMindDBError, Reader};

use crate::cache::Cache;
use crate::record::Record;

pub use crate::net::{canonical, is_non_routable};
pub use crate::settings::{GeoSettings, DEFAULT_CACHE_SIZE};
pub use crate::status::{CacheStatus, DatabaseStatus, DbRole, GeoStatus, Layout};

/// Errors from opening databases. Lookups never fail: a miss is `None`.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read or is not a valid MaxMind DB.
    #[error("cannot open geo database {path}: {reason}")]
    Open {
        /// The configured path.
        path: PathBuf,
        /// What the reader reported.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, GeoError>;

/// One opened `.mmdb` file.
struct Source {
    reader: Reader<Vec<u8>>,
    status: DatabaseStatus,
    /// Metadata `ip_version` is 6: the file can answer IPv6 (and perhaps IPv4).
    has_v6_tree: bool,
}

impl Source {
    fn open(path: &Path, role: DbRole) -> Result<Source> {
        let reader = Reader::open_readfile(path).map_err(|e| GeoError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let status = DatabaseStatus::from_metadata(role, path, &reader.metadata);
        Ok(Source {
            has_v6_tree: reader.metadata.ip_version == 6,
            reader,
            status,
        })
    }

    /// Decode the record for `ip`; `None` when absent or undecodable.
    fn record(&self, ip: IpAddr) -> Option<Record<'_>> {
        match self.reader.lookup::<Record<'_>>(ip) {
            Ok(r) => Some(r),
            Err(MaxMindDBError::AddressNotFoundError(_)) => None,
            Err(e) => {
                tracing::debug!(db = %self.status.path.display(), %ip, error = %e, "geo record not decodable");
                None
            }
        }
    }
}

/// Geo and ASN lookups over zero or more opened databases, with a bounded cache.
///
/// `Send + Sync`: share it (e.g. in an `Arc`) and call [`lookup`](Self::lookup) from any
/// thread.
pub struct GeoDb {
    /// City/country sources, IPv4-only files first.
    city: Vec<Source>,
    /// ASN sources, IPv4-only files first.
    asn: Vec<Source>,
    /// ASN range CSV files (asked when no ASN `.mmdb` knows the address).
    asn_ranges: ranges::AsnRanges,
    cache: Cache,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("status", &self.status())
            .finish()
    }
}

impl GeoDb {
    /// Open every database named in `settings`. Fails if a named file cannot be read or
    /// is not a MaxMind DB; with no file named, this is [`GeoDb::disabled`].
    pub fn open(settings: &GeoSettings) -> Result<GeoDb> {
        let open_role = |paths: [&Option<PathBuf>; 2], role| -> Result<Vec<Source>> {
            let mut sources = paths
                .into_iter()
                .flatten()
                .filter(|p| role != DbRole::Asn || !ranges::is_csv(p))
                .map(|p| Source::open(p, role))
                .collect::<Result<Vec<_>>>()?;
            // IPv4 addresses try IPv4-only files first (stable: config order otherwise).
            sources.sort_by_key(|s| s.has_v6_tree);
            Ok(sources)
        };
        Ok(GeoDb {
            city: open_role([&settings.city, &settings.city_v6], DbRole::City)?,
            asn: open_role([&settings.asn, &settings.asn_v6], DbRole::Asn)?,
            asn_ranges: {
                let csv: Vec<&Path> = [&settings.asn, &settings.asn_v6]
                    .into_iter()
                    .flatten()
                    .map(PathBuf::as_path)
                    .filter(|p| ranges::is_csv(p))
                    .collect();
                if csv.is_empty() {
                    ranges::AsnRanges::default()
                } else {
                    ranges::AsnRanges::load(&csv)?
                }
            },
            cache: Cache::new(settings.cache_size),
        })
    }

    /// A `GeoDb` with no database: every lookup is `None`.
    pub fn disabled() -> GeoDb {
        GeoDb {
            city: Vec::new(),
            asn: Vec::new(),
            asn_ranges: ranges::AsnRanges::default(),
            cache: Cache::new(0),
        }
    }

    /// Whether at least one database is loaded.
    pub fn is_enabled(&self) -> bool {
        !self.city.is_empty() || !self.asn.is_empty() || !self.asn_ranges.is_empty()
    }

    /// Geolocation and AS of `ip`, merged from the city and ASN databases.
    ///
    /// `::ffff:a.b.c.d` is looked up as `a.b.c.d`. Private, loopback and other
    /// non-routable addresses return `None` without touching the databases. `None` also
    /// when no database knows the address. Results, including `None`, are cached.
    pub fn lookup(&self, ip: IpAddr) -> Option<GeoInfo> {
        if !self.is_enabled() {
            return None;
        }
        let ip = canonical(ip);
        if is_non_routable(ip) {
            return None;
        }
        let key = net::key(ip);
        if let Some(hit) = self.cache.get(key) {
            return hit;
        }
        let result = self.lookup_uncached(ip);
        self.cache.insert(key, result.clone());
        result
    }

    /// [`lookup`](Self::lookup) without the cache (and without canonicalization or the
    /// non-routable check). For benchmarks and tools.
    pub fn lookup_uncached(&self, ip: IpAddr) -> Option<GeoInfo> {
        let mut info = GeoInfo::default();
        if let Some(rec) = first_record(&self.city, ip) {
            rec.fill_location(&mut info);
            // A city file that also carries AS data (some commercial ones do).
            rec.fill_asn(&mut info);
        }
        if let Some(rec) = first_record(&self.asn, ip) {
            rec.fill_asn(&mut info);
        }
        if info.asn.is_none() {
            if let Some((asn, org)) = self.asn_ranges.lookup(ip) {
                info.asn = Some(asn);
                info.as_org = (!org.is_empty()).then(|| org.to_owned());
            }
        }
        (info != GeoInfo::default()).then_some(info)
    }

    /// What is loaded, and cache counters.
    pub fn status(&self) -> GeoStatus {
        let counts = self.cache.counts();
        GeoStatus {
            databases: self
                .city
                .iter()
                .chain(&self.asn)
                .map(|s| s.status.clone())
                .chain(self.asn_ranges.status.iter().cloned())
                .collect(),
            cache: CacheStatus {
                capacity: self.cache.capacity(),
                entries: counts.entries,
                hits: counts.hits,
                misses: counts.misses,
            },
        }
    }
}

/// The first source (in routing order) that has a record for `ip`.
fn first_record(sources: &[Source], ip: IpAddr) -> Option<Record<'_>> {
    let v6 = ip.is_ipv6();
    sources
        .iter()
        // An IPv4-only tree would be walked with IPv6 bits and answer nonsense.
        .filter(|s| s.has_v6_tree || !v6)
        .find_map(|s| s.record(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdb::{DbBuilder, Val};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: Vec<u8>) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// A MaxMind-layout city file and ASN file, combined IPv4+IPv6.
    fn maxmind_files(dir: &Path) -> GeoSettings {
        let names = |en: &str| Val::map([("en", Val::str(en)), ("de", Val::str("x"))]);
        let mut city = DbBuilder::new(6, "GeoLite2-City");
        city.insert(
            "8.8.8.0/24",
            Val::map([
                (
                    "country",
                    Val::map([
                        ("iso_code", Val::str("US")),
                        ("names", names("United States")),
                    ]),
                ),
                (
                    "city",
                    Val::map([
                        ("geoname_id", Val::U32(1)),
                        ("names", names("Mountain View")),
                    ]),
                ),
                (
                    "location",
                    Val::map([
                        ("latitude", Val::F64(37.386)),
                        ("longitude", Val::F64(-122.0838)),
                        ("accuracy_radius", Val::U16(1000)),
                    ]),
                ),
                (
                    "subdivisions",
                    Val::Array(vec![Val::map([("iso_code", Val::str("CA"))])]),
                ),
            ]),
        );
        city.insert(
            "2001:4860::/32",
            Val::map([(
                "registered_country",
                Val::map([
                    ("iso_code", Val::str("US")),
                    ("names", names("United States")),
                ]),
            )]),
        );
        let mut asn = DbBuilder::new(6, "GeoLite2-ASN");
        asn.insert(
            "8.8.8.0/24",
            Val::map([
                ("autonomous_system_number", Val::U32(15169)),
                ("autonomous_system_organization", Val::str("GOOGLE")),
            ]),
        );
        GeoSettings {
            city: Some(write(dir, "GeoLite2-City.mmdb", city.build())),
            asn: Some(write(dir, "GeoLite2-ASN.mmdb", asn.build())),
            ..GeoSettings::default()
        }
    }

    /// Flat-layout files, separate IPv4 and IPv6.
    fn flat_files(dir: &Path) -> GeoSettings {
        let flat = |cc: &str, city: &str, lat: f32, lon: f32| {
            Val::map([
                ("city", Val::str(city)),
                ("country_code", Val::str(cc)),
                ("latitude", Val::F32(lat)),
                ("longitude", Val::F32(lon)),
                ("postcode", Val::str("")),
                ("state1", Val::str("")),
                ("timezone", Val::str("Europe/Berlin")),
            ])
        };
        let mut v4 = DbBuilder::new(4, "city ipv4");
        v4.insert("81.2.69.0/24", flat("GB", "Bracknell", 51.4036, -0.7618));
        v4.insert("5.9.0.0/16", flat("DE", "", 51.2993, 9.491));
        let mut v6 = DbBuilder::new(6, "city ipv6");
        v6.insert(
            "2a00:1450::/32",
            flat("DE", "Frankfurt am Main", 50.1169, 8.6837),
        );
        let mut asn4 = DbBuilder::new(4, "asn ipv4");
        asn4.insert(
            "81.2.69.0/24",
            Val::map([
                ("autonomous_system_number", Val::U32(20712)),
                (
                    "autonomous_system_organization",
                    Val::str("Andrews & Arnold Ltd"),
                ),
            ]),
        );
        let mut asn6 = DbBuilder::new(6, "asn ipv6");
        // A number stored as a string must still be understood.
        asn6.insert(
            "2a00:1450::/32",
            Val::map([
                ("autonomous_system_number", Val::str("AS15169")),
                ("autonomous_system_organization", Val::str("Google LLC")),
            ]),
        );
        GeoSettings {
            // Deliberately the "wrong" way round: routing follows metadata, not fields.
            city: Some(write(dir, "c6.mmdb", v6.build())),
            city_v6: Some(write(dir, "c4.mmdb", v4.build())),
            asn: Some(write(dir, "a4.mmdb", asn4.build())),
            asn_v6: Some(write(dir, "a6.mmdb", asn6.build())),
            ..GeoSettings::default()
        }
    }

    #[test]
    fn maxmind_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let db = GeoDb::open(&maxmind_files(tmp.path())).unwrap();
        let got = db.lookup(ip("8.8.8.8")).unwrap();
        assert_eq!(
            got,
            GeoInfo {
                country_code: Some("US".into()),
                country: Some("United States".into()),
                city: Some("Mountain View".into()),
                latitude: Some(37.386),
                longitude: Some(-122.0838),
                asn: Some(15169),
                as_org: Some("GOOGLE".into()),
            }
        );
        assert_eq!(db.lookup(ip("::ffff:8.8.8.8")), Some(got));
        // registered_country stands in for a missing country.
        let v6 = db.lookup(ip("2001:4860:4860::8888")).unwrap();
        assert_eq!(v6.country_code.as_deref(), Some("US"));
        assert_eq!((v6.city, v6.asn, v6.latitude), (None, None, None));
        assert_eq!(db.lookup(ip("9.9.9.9")), None);
        let st = db.status();
        assert_eq!(st.databases.len(), 2);
        assert!(st.databases.iter().all(|d| d.layout == Layout::MaxMind));
    }

    #[test]
    fn flat_layout_routed_by_family() {
        let tmp = tempfile::tempdir().unwrap();
        let db = GeoDb::open(&flat_files(tmp.path())).unwrap();
        let gb = db.lookup(ip("81.2.69.160")).unwrap();
        assert_eq!(gb.country_code.as_deref(), Some("GB"));
        assert_eq!(gb.country, None);
        assert_eq!(gb.city.as_deref(), Some("Bracknell"));
        assert_eq!((gb.latitude, gb.longitude), (Some(51.4036), Some(-0.7618)));
        assert_eq!(
            (gb.asn, gb.as_org.as_deref()),
            (Some(20712), Some("Andrews & Arnold Ltd"))
        );

        // Empty strings are absent, not "".
        let de = db.lookup(ip("5.9.1.2")).unwrap();
        assert_eq!((de.country_code.as_deref(), de.city), (Some("DE"), None));

        let v6 = db.lookup(ip("2a00:1450:4001:80b::200e")).unwrap();
        assert_eq!(v6.city.as_deref(), Some("Frankfurt am Main"));
        assert_eq!(
            (v6.asn, v6.as_org.as_deref()),
            (Some(15169), Some("Google LLC"))
        );

        // An IPv6 address whose bits would hit data in the IPv4 tree (81.2.69.x = 0x5102_45xx)
        // must not be answered from the IPv4-only file.
        assert_eq!(db.lookup(ip("5102:4500::1")), None);
        let st = db.status();
        assert!(st.databases.iter().all(|d| d.layout == Layout::Flat));
        assert_eq!(
            st.databases[0].ip_version, 4,
            "IPv4-only files sorted first"
        );
    }

    #[test]
    fn record_layout_is_detected_per_record() {
        let tmp = tempfile::tempdir().unwrap();
        let mm = GeoDb::open(&maxmind_files(tmp.path())).unwrap();
        let flat = GeoDb::open(&flat_files(tmp.path())).unwrap();
        let rec = first_record(&mm.city, ip("8.8.8.8")).unwrap();
        assert!(rec.is_nested());
        let rec = first_record(&flat.city, ip("81.2.69.1")).unwrap();
        assert!(!rec.is_nested());
    }

    #[test]
    fn non_routable_and_disabled() {
        let tmp = tempfile::tempdir().unwrap();
        let db = GeoDb::open(&maxmind_files(tmp.path())).unwrap();
        for s in [
            "10.0.0.1",
            "127.0.0.1",
            "::1",
            "fe80::1",
            "::ffff:192.168.1.1",
        ] {
            assert_eq!(db.lookup(ip(s)), None, "{s}");
        }
        assert_eq!(
            db.status().cache.misses,
            0,
            "non-routable never reaches the cache"
        );

        let off = GeoDb::disabled();
        assert!(!off.is_enabled());
        assert_eq!(off.lookup(ip("8.8.8.8")), None);
        assert!(off.status().databases.is_empty());
        let empty = GeoDb::open(&GeoSettings::default()).unwrap();
        assert!(!empty.is_enabled());
    }

    #[test]
    fn cache_counts_hits_and_negative_results() {
        let tmp = tempfile::tempdir().unwrap();
        let db = GeoDb::open(&maxmind_files(tmp.path())).unwrap();
        for _ in 0..3 {
            assert!(db.lookup(ip("8.8.8.8")).is_some());
            assert!(db.lookup(ip("9.9.9.9")).is_none());
        }
        let c = db.status().cache;
        assert_eq!((c.hits, c.misses, c.entries), (4, 2, 2));
    }

    #[test]
    fn open_errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = write(tmp.path(), "bad.mmdb", b"not a database".to_vec());
        for city in [bad.clone(), tmp.path().join("missing.mmdb")] {
            let err = GeoDb::open(&GeoSettings {
                city: Some(city.clone()),
                ..GeoSettings::default()
            })
            .unwrap_err();
            assert!(
                err.to_string().contains(&city.display().to_string()),
                "{err}"
            );
        }
    }

    #[test]
    fn shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<GeoDb>();
        let tmp = tempfile::tempdir().unwrap();
        let db = std::sync::Arc::new(GeoDb::open(&maxmind_files(tmp.path())).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        let a = IpAddr::from([8, 8, 8, (i % 256) as u8]);
                        assert_eq!(db.lookup(a).and_then(|g| g.asn), Some(15169));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
