//! The sliding 24-hour roll-up both backends keep: per-value sums of the hourly roll-ups
//! over the hours `[W - 24, W]` for the high-cardinality dimensions, where `W` is the
//! writer's current hour. This module holds what does not depend on the database: which
//! dimensions and hours the window covers, when a query may read it, and how a top-N is
//! ranked from its rows ([`Ranker`]). Each backend stores the window in a `rollup_window`
//! table and moves it on in its write transactions (`sqlite/window.rs`,
//! `postgres/window.rs`).

use std::collections::HashMap;

use crate::types::Dimension;

/// Dimensions kept in the window: the ones whose hourly sums are too slow to read.
pub(crate) const DIMS: [Dimension; 3] = [
    Dimension::SourceIp,
    Dimension::Username,
    Dimension::Password,
];

/// Hours before `W` that are still inside the window.
pub(crate) const SPAN: i64 = 24;

/// Name of the counter holding `W` (-1 before the first build).
pub(crate) const HOUR_COUNTER: &str = "rollup_window_hour";

/// Hours at the old end of the window that a query may leave out: their rows are
/// subtracted at query time (one hour is what a query ending on an hour boundary skips).
pub(crate) const MAX_SKIPPED_HOURS: i64 = 6;

/// Most values one read from the window returns (`top_sources` asks for up to its probe
/// cap in one round).
const MAX_LIMIT: usize = crate::ranking::MAX_PROBES;

pub(crate) fn is_windowed(code: i64) -> bool {
    DIMS.iter().any(|d| d.code() == code)
}

/// How the window at `W` moves on to the writer's current hour.
#[derive(Debug, PartialEq)]
pub(crate) enum Move {
    /// Already at that hour or past it (never backwards): `W` stays.
    Stay(i64),
    /// Less than a day on: subtract the rows of the hours that fell out and add those of
    /// the hours that came in (which may already hold future-dated sessions); both
    /// ranges are inclusive.
    Shift {
        out: (i64, i64),
        came_in: (i64, i64),
    },
    /// Further on, or never built: recompute from the hourly roll-ups.
    Rebuild,
}

/// The move from `w` (`None` before the first build) to `now_hour`.
pub(crate) fn plan(w: Option<i64>, now_hour: i64) -> Move {
    match w {
        Some(w) if w >= now_hour => Move::Stay(w),
        Some(w) if now_hour - w <= SPAN => Move::Shift {
            out: (w - SPAN, now_hour - SPAN - 1),
            came_in: (w + 1, now_hour),
        },
        _ => Move::Rebuild,
    }
}

/// Whether (`dim`, `hour`) counts in the window whose current hour is `w`.
pub(crate) fn covers(w: i64, dim: i64, hour: i64) -> bool {
    is_windowed(dim) && hour >= w - SPAN && hour <= w
}

/// Whether a top-`limit` of `dim` over the hour buckets `[lo, hi)` can be read from the
/// window at `w`: `dim` is kept in it, `lo` is at most [`MAX_SKIPPED_HOURS`] after its
/// start and `hi` is its end or later (an open-ended query: rows of hours after the
/// window, future-dated sessions, are added at query time).
pub(crate) fn answers(w: i64, dim: Dimension, lo: i64, hi: i64, limit: usize) -> bool {
    let start = w - SPAN;
    DIMS.contains(&dim)
        && limit > 0
        && limit <= MAX_LIMIT
        && hi > w
        && lo >= start
        && lo <= start + MAX_SKIPPED_HOURS
}

/// Ranks the top `limit` values of a query [`answers`] accepted, from the window's rows
/// read in descending count order.
///
/// A value's count in `[lo, hi)` is its window count minus its rows in the skipped hours
/// `[W - 24, lo)`; values with rows after the window (`[W + 1, hi)`) are counted apart.
/// A value's count is at most its window count, so once window counts fall below the
/// limit-th best found, no later value can enter (equal counts may still win on the
/// value order), and reading stops.
pub(crate) struct Ranker {
    limit: usize,
    skipped: HashMap<String, i64>,
    added: HashMap<String, i64>,
    best: Vec<(String, i64)>,
    threshold: i64,
}

fn order(a: &(String, i64), b: &(String, i64)) -> std::cmp::Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
}

impl Ranker {
    /// `skipped`: per-value sums of the hours the query leaves out at the window's start;
    /// `added`: per-value sums of the hours after the window the query includes.
    pub(crate) fn new(
        limit: usize,
        skipped: HashMap<String, i64>,
        added: HashMap<String, i64>,
    ) -> Self {
        Self {
            limit,
            skipped,
            added,
            best: Vec::new(),
            threshold: i64::MIN,
        }
    }

    /// The next window row; `false` when no later row can enter the top.
    pub(crate) fn offer(&mut self, value: String, window_count: i64) -> bool {
        if window_count < self.threshold {
            return false;
        }
        if self.added.contains_key(&value) {
            return true;
        }
        let n = window_count - self.skipped.get(&value).copied().unwrap_or(0);
        if n <= 0 {
            return true;
        }
        self.best.push((value, n));
        // Trim at `limit`, then only every `limit` more rows: sorting on every push would
        // be quadratic for large limits; a stale threshold only reads more rows.
        let limit = self.limit;
        if self.best.len() >= limit && (self.threshold == i64::MIN || self.best.len() >= 2 * limit)
        {
            self.best.sort_unstable_by(order);
            self.best.truncate(limit);
            self.threshold = self.best[limit - 1].1;
        }
        true
    }

    /// The values with rows after the window: the caller looks up each one's window
    /// count and hands it to [`Ranker::finish`].
    pub(crate) fn late_values(&self) -> Vec<String> {
        self.added.keys().cloned().collect()
    }

    /// The ranking, given the window counts of [`Ranker::late_values`] (0 when absent).
    pub(crate) fn finish(
        mut self,
        late_window_counts: &HashMap<String, i64>,
    ) -> Vec<(String, u64)> {
        for (value, a) in std::mem::take(&mut self.added) {
            let wc = late_window_counts.get(&value).copied().unwrap_or(0);
            let n = wc - self.skipped.get(&value).copied().unwrap_or(0) + a;
            if n > 0 {
                self.best.push((value, n));
            }
        }
        self.best.sort_unstable_by(order);
        self.best.truncate(self.limit);
        self.best.into_iter().map(|(v, n)| (v, n as u64)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs.iter().map(|(v, n)| (v.to_string(), *n)).collect()
    }

    #[test]
    fn ranks_window_rows_less_skipped_plus_late() {
        let mut r = Ranker::new(2, sums(&[("a", 5)]), sums(&[("c", 4)]));
        // Window rows by count: a 9 (4 after skipping), b 6, c 3 (+4 late = 7), d 1.
        assert!(r.offer("a".into(), 9));
        assert!(r.offer("b".into(), 6));
        // Threshold is now 4 (a): rows below it are not read; c, with late rows, is
        // counted in finish all the same.
        assert!(!r.offer("c".into(), 3));
        let top = r.finish(&sums(&[("c", 3)]));
        assert_eq!(top, vec![("c".to_string(), 7), ("b".to_string(), 6)]);
    }

    #[test]
    fn equal_counts_order_by_value() {
        let mut r = Ranker::new(1, HashMap::new(), HashMap::new());
        assert!(r.offer("b".into(), 3));
        assert!(r.offer("a".into(), 3));
        assert!(!r.offer("c".into(), 2));
        assert_eq!(r.finish(&HashMap::new()), vec![("a".to_string(), 3)]);
    }

    #[test]
    fn plans_moves() {
        assert_eq!(plan(Some(10), 10), Move::Stay(10));
        assert_eq!(plan(Some(11), 10), Move::Stay(11));
        assert_eq!(
            plan(Some(100), 102),
            Move::Shift {
                out: (76, 77),
                came_in: (101, 102)
            }
        );
        assert_eq!(plan(Some(100), 125), Move::Rebuild);
        assert_eq!(plan(None, 10), Move::Rebuild);
    }

    #[test]
    fn answers_only_windows_ending_now_or_later() {
        let w = 1000;
        assert!(answers(w, Dimension::SourceIp, w - 24, w + 1, 10));
        assert!(answers(w, Dimension::Username, w - 18, w + 3, 10));
        assert!(!answers(w, Dimension::SourceIp, w - 17, w + 1, 10));
        assert!(!answers(w, Dimension::SourceIp, w - 25, w + 1, 10));
        assert!(!answers(w, Dimension::SourceIp, w - 24, w, 10));
        assert!(!answers(w, Dimension::Honeypot, w - 24, w + 1, 10));
        assert!(!answers(w, Dimension::SourceIp, w - 24, w + 1, 0));
    }
}
