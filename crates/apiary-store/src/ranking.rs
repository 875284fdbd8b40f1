//! The backend-independent half of [`Store::top_sources`](crate::Store::top_sources).
//!
//! Candidates come from the hourly source-address roll-up, most sessions first (ties by
//! address text). A candidate's roll-up sum covers every hour overlapping the window, so
//! it is at least the exact count of any of its groups. Each backend probes candidates in
//! that order with an exact grouped count over its source index and feeds the rows here;
//! once a candidate's sum cannot beat the last of `limit` rows kept, no later candidate
//! can either, and the answer is exact without reading the other sources' sessions.

use std::cmp::Ordering;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;

use crate::types::{Page, SessionFilter, SourceGroupCount, TopSources, TopSourcesQuery};
use crate::{Result, StoreError};

/// Addresses probed at most per query. Only reached when the filter drops most of the
/// candidates' sessions (a honeypot or port filter the source roll-up cannot see).
pub(crate) const MAX_PROBES: usize = 10_000;

/// Refuses what no backend can rank: free text has no roll-up to take candidates from.
pub(crate) fn check_query(q: &TopSourcesQuery) -> Result<()> {
    if q.filter.text.is_some() {
        return Err(StoreError::Invalid(
            "free text is not supported in top sources".into(),
        ));
    }
    Ok(())
}

/// Candidates read from the roll-up in the first round (more are read only if needed).
pub(crate) fn first_round(limit: usize) -> usize {
    (limit.saturating_mul(4)).clamp(64, MAX_PROBES)
}

/// The window with both ends set: `since` defaults to the epoch and `until` to ten years
/// ahead, so roll-up sums and exact probes cover the same sessions.
pub(crate) fn window(q: &TopSourcesQuery) -> (DateTime<Utc>, DateTime<Utc>) {
    let since = q.filter.since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let until = q
        .filter
        .until
        .unwrap_or_else(|| Utc::now() + Duration::days(3653));
    (since, until)
}

/// Whether a roll-up value (canonical address text) passes the query's network filter;
/// `None` when it is not an address.
pub(crate) fn candidate(value: &str, net: Option<IpNet>) -> Option<IpAddr> {
    let ip: IpAddr = value.parse().ok()?;
    match net {
        None => Some(ip),
        Some(n) => (n.contains(&ip) || n.contains(&mapped(ip))).then_some(ip),
    }
}

fn mapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

/// One `top_sources` query in rounds, the loop both backends share:
///
/// ```text
/// loop {
///     let candidates = top(SourceIp, since, until, search.want());
///     while let Some(ip) = search.next_probe(&candidates) {
///         search.add(exact_groups(ip));
///     }
///     if let Some(answer) = search.end_round(candidates.len()) { return answer }
/// }
/// ```
pub(crate) struct TopSearch {
    ranked: Ranked,
    net: Option<IpNet>,
    /// Candidates the backend reads cheaply in count order (see [`Self::cheap_reads`]).
    cheap: usize,
    want: usize,
    seen: usize,
    complete: bool,
    probing: String,
}

impl TopSearch {
    /// The search and the filter its probes apply: the window with both ends set and the
    /// network filter taken out (it is applied to candidates instead).
    pub(crate) fn new(q: &TopSourcesQuery) -> (Self, SessionFilter) {
        let (since, until) = window(q);
        let mut f = q.filter.clone();
        f.since = Some(since);
        f.until = Some(until);
        let net = f.source.take();
        let search = Self {
            ranked: Ranked::new(q.limit),
            net,
            cheap: 0,
            want: first_round(q.limit),
            seen: 0,
            complete: false,
            probing: String::new(),
        };
        (search, f)
    }

    /// Tells the search that the first `n` candidates come from an index in count order
    /// and any beyond them from a sort of all the others (SQLite's 24-hour window keeps a
    /// count index only for its busiest values). Rounds then grow fourfold while they stay
    /// within `n`, and otherwise go to the cap at once: each round reads its candidates
    /// from the start, and a sort repeated per round costs more than one large read
    /// (top_sources 100 by honeypot over 24 h at 1M sessions: 203 ms growing fourfold
    /// past the index, 117 ms going to the cap). Without it (`0`) rounds go to the cap.
    pub(crate) fn cheap_reads(&mut self, n: usize) {
        self.cheap = n;
    }

    /// Candidates to read from the roll-up this round.
    pub(crate) fn want(&self) -> usize {
        self.want
    }

    /// The next address to count exactly; `None` when this round's candidates are used
    /// up or no later candidate can enter the answer.
    pub(crate) fn next_probe(&mut self, candidates: &[(String, u64)]) -> Option<IpAddr> {
        while !self.complete {
            let (value, bound) = candidates.get(self.seen)?;
            if self.ranked.done(*bound, value) {
                self.complete = true;
                return None;
            }
            self.seen += 1;
            if let Some(ip) = candidate(value, self.net) {
                value.clone_into(&mut self.probing);
                return Some(ip);
            }
        }
        None
    }

    /// The exact groups of the address [`Self::next_probe`] returned last.
    pub(crate) fn add(&mut self, groups: Vec<SourceGroupCount>) {
        self.ranked.add(&self.probing, groups);
    }

    /// Up to `n` next addresses to count exactly, with their roll-up text, for a backend
    /// that counts several in one round trip; hand each one's groups to
    /// [`Self::add_for`]. The same addresses, in the same order, as `n` calls of
    /// [`Self::next_probe`] would return: whether a candidate can still enter depends
    /// only on the rows kept, and once one cannot, no later one can.
    pub(crate) fn next_probes(
        &mut self,
        candidates: &[(String, u64)],
        n: usize,
    ) -> Vec<(IpAddr, String)> {
        let mut out = Vec::new();
        while out.len() < n {
            let Some(ip) = self.next_probe(candidates) else {
                break;
            };
            out.push((ip, self.probing.clone()));
        }
        out
    }

    /// The exact groups of `value`, one of the addresses [`Self::next_probes`] returned.
    pub(crate) fn add_for(&mut self, value: &str, groups: Vec<SourceGroupCount>) {
        self.ranked.add(value, groups);
    }

    /// The answer after a round that read `read` candidates, or `None` when another,
    /// larger round is needed.
    pub(crate) fn end_round(&mut self, read: usize) -> Option<TopSources> {
        // Fewer than asked for: every address of the window was looked at.
        let truncated = !self.complete && read == self.want && self.want >= MAX_PROBES;
        if self.complete || read < self.want || truncated {
            return Some(TopSources {
                rows: std::mem::replace(&mut self.ranked, Ranked::new(1)).into_rows(),
                truncated,
            });
        }
        // See `cheap_reads`: top 10 attackers by honeypot typically needs a hundred or two
        // candidates, which going to the cap at once would read past SQLite's window index.
        self.want = if self.want * 4 <= self.cheap {
            (self.want * 4).min(MAX_PROBES)
        } else {
            MAX_PROBES
        };
        None
    }
}

/// Result order: most sessions first, then address text, honeypot, protocol, port.
pub(crate) fn order(a: &(SourceGroupCount, String), b: &(SourceGroupCount, String)) -> Ordering {
    b.0.count
        .cmp(&a.0.count)
        .then_with(|| a.1.cmp(&b.1))
        .then_with(|| a.0.honeypot.cmp(&b.0.honeypot))
        .then_with(|| a.0.protocol.cmp(&b.0.protocol))
        .then_with(|| a.0.destination_port.cmp(&b.0.destination_port))
}

/// The best `limit` rows seen so far.
pub(crate) struct Ranked {
    limit: usize,
    rows: Vec<(SourceGroupCount, String)>,
    /// Candidates probed.
    pub probes: usize,
}

impl Ranked {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit: limit.clamp(1, Page::MAX),
            rows: Vec::new(),
            probes: 0,
        }
    }

    /// `true` when a candidate with roll-up sum `bound` and address text `value` (and so
    /// every candidate after it) cannot enter the kept rows.
    pub(crate) fn done(&self, bound: u64, value: &str) -> bool {
        if self.rows.len() < self.limit {
            return false;
        }
        let Some((last, text)) = self.rows.last() else {
            return false;
        };
        bound < last.count || (bound == last.count && value > text.as_str())
    }

    /// Adds the exact groups of one probed address.
    pub(crate) fn add(&mut self, value: &str, groups: Vec<SourceGroupCount>) {
        self.probes += 1;
        self.rows.extend(
            groups
                .into_iter()
                .filter(|g| g.count > 0)
                .map(|g| (g, value.to_owned())),
        );
        self.rows.sort_by(order);
        self.rows.truncate(self.limit);
    }

    pub(crate) fn into_rows(self) -> Vec<SourceGroupCount> {
        self.rows.into_iter().map(|(g, _)| g).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ip: &str, hp: &str, n: u64) -> SourceGroupCount {
        SourceGroupCount {
            source_ip: ip.parse().unwrap(),
            honeypot: hp.into(),
            protocol: None,
            destination_port: None,
            count: n,
        }
    }

    #[test]
    fn stops_only_when_no_later_candidate_can_enter() {
        let mut r = Ranked::new(2);
        assert!(!r.done(5, "10.0.0.1"));
        r.add(
            "10.0.0.1",
            vec![row("10.0.0.1", "a", 3), row("10.0.0.1", "b", 2)],
        );
        // Kept: (3, .1, a), (2, .1, b). A sum of 2 with a smaller address could tie ahead.
        assert!(!r.done(2, "10.0.0.0"));
        assert!(r.done(2, "10.0.0.2"));
        assert!(r.done(1, "10.0.0.0"));
        r.add("10.0.0.0", vec![row("10.0.0.0", "c", 2)]);
        let rows = r.into_rows();
        assert_eq!(rows, vec![row("10.0.0.1", "a", 3), row("10.0.0.0", "c", 2)]);
    }

    #[test]
    fn batched_probes_are_the_single_probes_in_order() {
        let q = TopSourcesQuery {
            limit: 1,
            ..Default::default()
        };
        let candidates: Vec<(String, u64)> = [("10.0.0.1", 9), ("x", 8), ("10.0.0.2", 5)]
            .iter()
            .map(|(v, n)| (v.to_string(), *n))
            .chain((3..40).map(|i| (format!("10.0.0.{i}"), 1)))
            .collect();
        let (mut a, _) = TopSearch::new(&q);
        let (mut b, _) = TopSearch::new(&q);
        // First batch: nothing kept yet, so the first four addresses ("x" is skipped).
        let batch = b.next_probes(&candidates, 4);
        let single: Vec<IpAddr> = (0..4).filter_map(|_| a.next_probe(&candidates)).collect();
        assert_eq!(batch.iter().map(|p| p.0).collect::<Vec<_>>(), single);
        assert_eq!(batch[1].1, "10.0.0.2");
        // 10.0.0.1 with 9 sessions kept: no candidate with a smaller sum can enter.
        b.add_for("10.0.0.1", vec![row("10.0.0.1", "a", 9)]);
        assert!(b.next_probes(&candidates, 4).is_empty());
    }

    #[test]
    fn rounds_grow_fourfold_within_cheap_reads_then_go_to_the_cap() {
        let q = TopSourcesQuery {
            limit: 10,
            ..Default::default()
        };
        let rounds = |cheap: usize| {
            let (mut s, _) = TopSearch::new(&q);
            s.cheap_reads(cheap);
            let mut wants = vec![s.want()];
            while s.end_round(s.want()).is_none() {
                wants.push(s.want());
            }
            wants
        };
        assert_eq!(rounds(0), [64, MAX_PROBES]);
        assert_eq!(rounds(900), [64, 256, MAX_PROBES]);
        assert_eq!(rounds(5000), [64, 256, 1024, 4096, MAX_PROBES]);
        assert_eq!(rounds(usize::MAX), [64, 256, 1024, 4096, MAX_PROBES]);
        // A round that read fewer than it asked for saw every address: the answer.
        let (mut s, _) = TopSearch::new(&q);
        let answer = s.end_round(63).unwrap();
        assert!(!answer.truncated);
    }

    #[test]
    fn network_filter_sees_mapped_networks() {
        let n: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(candidate("10.1.2.3", Some(n)).is_some());
        assert!(candidate("11.1.2.3", Some(n)).is_none());
        assert!(candidate("10.1.2.3", Some("10.0.0.0/8".parse().unwrap())).is_some());
        assert!(candidate("not an ip", None).is_none());
    }
}
