//! Timing store queries in the benchmarks: the median and maximum of a few runs, and the
//! dashboard's and an analyst's queries over a time range.

use std::future::Future;
use std::net::IpAddr;
use std::time::Instant;

use apiary_store::{Dimension, Page, SessionFilter, SourceGrouping, Store, TopSourcesQuery};
use chrono::{DateTime, Utc};

/// Runs `f` `runs` times and prints the median and maximum time under `label` (or the
/// first error).
pub async fn time_query<T, F, Fut>(label: &str, runs: usize, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = apiary_store::Result<T>>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        if let Err(e) = f().await {
            println!("  {label:<44} error: {e}");
            return;
        }
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "  {label:<44} median {:>9.2} ms   max {:>9.2} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}

/// Times what the dashboard asks for over `since..until`: top 10 of each of `dimensions`,
/// counts per hour (all, and for cowrie), the total and the first page of sessions;
/// `runs` runs each.
pub async fn time_dashboard_queries(
    store: &dyn Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    runs: usize,
    dimensions: &[Dimension],
) {
    for &d in dimensions {
        time_query(&format!("top 10 {}", d.name()), runs, || {
            store.top(d, since, until, 10)
        })
        .await;
    }
    time_query("counts_per_hour (all)", runs, || {
        store.counts_per_hour(since, until, None)
    })
    .await;
    time_query("counts_per_hour (honeypot=cowrie)", runs, || {
        store.counts_per_hour(since, until, Some((Dimension::Honeypot, "cowrie".into())))
    })
    .await;
    time_query("total_sessions", runs, || {
        store.total_sessions(since, until)
    })
    .await;
    time_query("sessions first page (50)", runs, || {
        store.sessions(
            SessionFilter {
                since: Some(since),
                ..Default::default()
            },
            Page::first(50),
        )
    })
    .await;
}

/// Times what an analyst asks about the busiest source address of `since..until`: its
/// attacker profile (all time and over the range), its newest sessions and those of its
/// /16, and the top attackers by honeypot over the range; `runs` runs each.
pub async fn time_address_queries(
    store: &dyn Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    runs: usize,
) {
    let top = match store.top(Dimension::SourceIp, since, until, 1).await {
        Ok(top) => top,
        Err(e) => {
            println!("  top source address: error: {e}");
            return;
        }
    };
    let Some((ip, count)) = top
        .first()
        .and_then(|(value, n)| Some((value.parse::<IpAddr>().ok()?, *n)))
    else {
        println!("  no source address in range");
        return;
    };
    println!("  busiest source address {ip}: {count} sessions in range");
    time_query("attacker stats (all time)", runs, || {
        store.attacker_stats(ip, None)
    })
    .await;
    time_query("attacker stats (range)", runs, || {
        store.attacker_stats(ip, Some(since))
    })
    .await;
    time_query("sessions of the address, first page (50)", runs, || {
        store.sessions(
            SessionFilter {
                source: Some(ip.into()),
                ..Default::default()
            },
            Page::first(50),
        )
    })
    .await;
    time_query("sessions of its /16, first page (50)", runs, || {
        store.sessions(
            SessionFilter {
                source: ipnet::IpNet::new(ip, 16).map(|n| n.trunc()).ok(),
                ..Default::default()
            },
            Page::first(50),
        )
    })
    .await;
    time_query("top 10 attackers by honeypot", runs, || {
        store.top_sources(TopSourcesQuery {
            filter: SessionFilter {
                since: Some(since),
                until: Some(until),
                ..Default::default()
            },
            grouping: SourceGrouping::Honeypot,
            exclude_protocols: Vec::new(),
            limit: 10,
        })
    })
    .await;
}
