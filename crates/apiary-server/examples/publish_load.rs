//! Publishes the benchmarks' realistic mix (cowrie.sessions and dionaea.connections from
//! 50,000 source addresses, stamped now) to a running server for a while, flat out or at
//! a rate, to watch how ingest behaves beside something else (a retention or disk-budget
//! pass, a backup). The ident must be allowed to publish to both channels:
//!
//! ```text
//! cargo run --release -p apiary-server --example publish_load -- \
//!     HOST:PORT IDENT SECRET SECONDS [EVENTS_PER_SECOND]
//! ```
//!
//! Prints what it published every 5 s; committed counts are on the server's `/metrics`
//! (`apiary_ingest_raw_committed_total`).

use std::time::{Duration, Instant};

use apiary_testdata::{address_pool, payload, sensor_ip, Rng};
use chrono::Utc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, ident, secret, seconds, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: publish_load HOST:PORT IDENT SECRET SECONDS [EVENTS_PER_SECOND]".into(),
        );
    };
    let addr: std::net::SocketAddr = addr.parse()?;
    let seconds: u64 = seconds.parse()?;
    let rate: Option<f64> = rest.first().map(|r| r.parse()).transpose()?;
    let opts = hpfeeds::ClientOptions::new(addr.ip().to_string(), addr.port(), ident, secret);
    let mut client = hpfeeds::Client::connect(opts).await?;
    client.check_auth(Duration::from_secs(2)).await?;
    let pool = address_pool(50_000, 0x10ad);
    let mut rng = Rng::seeded(0x10ad);
    let (start, mut last) = (Instant::now(), Instant::now());
    let (mut n, mut at_last) = (0usize, 0usize);
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..100 {
            let (channel, body) = payload(&mut rng, &pool, sensor_ip(0), Utc::now());
            client.publish(channel, body.into_bytes()).await?;
            n += 1;
        }
        if let Some(rate) = rate {
            client.flush().await?;
            let ahead = n as f64 / rate - start.elapsed().as_secs_f64();
            if ahead > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(ahead)).await;
            }
        }
        if last.elapsed() >= Duration::from_secs(5) {
            let per_s = (n - at_last) as f64 / last.elapsed().as_secs_f64();
            println!(
                "t={:>5.1}s published {n} ({per_s:.0}/s)",
                start.elapsed().as_secs_f64()
            );
            (last, at_last) = (Instant::now(), n);
        }
    }
    client.flush().await?;
    println!("published {n} in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
