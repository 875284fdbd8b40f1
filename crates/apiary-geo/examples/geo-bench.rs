//! Print lookup rates against the databases found by discovery (or `$APIARY_GEO_DIR`).
//!
//! `cargo run -p apiary-geo --release --example geo-bench [-- THREADS]`
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use apiary_geo::{GeoDb, GeoSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2);
    let dir =
        std::env::var_os("APIARY_GEO_DIR").map_or_else(|| PathBuf::from("data/geo"), PathBuf::from);
    let settings = GeoSettings::discover_in(&[dir]);
    if settings.is_empty() {
        return Err("no database found: run scripts/fetch-geo.sh".into());
    }
    let t = Instant::now();
    let db = Arc::new(GeoDb::open(&settings)?);
    println!("{} (opened in {:?})", db.status(), t.elapsed());

    // Spread over the IPv4 space (multiplicative hashing of a counter), and over /48s of
    // IPv6 /16s where allocations are dense.
    let v4: Vec<IpAddr> = (0..200_000u32)
        .map(|i| IpAddr::from((i.wrapping_mul(2_654_435_761) | 0x0100_0000).to_be_bytes()))
        .collect();
    const V6_TOPS: [u16; 12] = [
        0x2001, 0x2400, 0x2401, 0x2404, 0x2600, 0x2601, 0x2604, 0x2607, 0x2800, 0x2a00, 0x2a01,
        0x2a02,
    ];
    let v6: Vec<IpAddr> = (0..100_000u32)
        .map(|i| {
            let top = u128::from(V6_TOPS[i as usize % V6_TOPS.len()]) << 112;
            let mid = u128::from(i.wrapping_mul(2_654_435_761)) << 80;
            IpAddr::from((top | mid).to_be_bytes())
        })
        .collect();

    for (name, addrs) in [("IPv4", &v4), ("IPv6", &v6)] {
        let t = Instant::now();
        let found = addrs
            .iter()
            .filter(|a| db.lookup_uncached(**a).is_some())
            .count();
        let rate = addrs.len() as f64 / t.elapsed().as_secs_f64();
        println!(
            "uncached {name}: {rate:>12.0} lookups/s, 1 thread ({found}/{} found)",
            addrs.len()
        );
    }

    // Cached: a working set smaller than the cache, looked up repeatedly from N threads.
    let hot: Arc<Vec<IpAddr>> = Arc::new(v4[..10_000].to_vec());
    for a in hot.iter() {
        db.lookup(*a);
    }
    let rounds = 100;
    let t = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (db, hot) = (db.clone(), hot.clone());
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    for a in hot.iter() {
                        std::hint::black_box(db.lookup(*a));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "bench thread panicked")?;
    }
    let total = (hot.len() * rounds * threads) as f64;
    println!(
        "cached:        {:>12.0} lookups/s, {threads} threads",
        total / t.elapsed().as_secs_f64()
    );
    println!("{:?}", db.status().cache);
    Ok(())
}
