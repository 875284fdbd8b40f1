//! The sliding 24-hour roll-up: per-value sums of `rollup_hourly` over the hours
//! `[W - 24, W]` for the high-cardinality dimensions, kept by the writer, where `W` is
//! the writer's current hour (`rollup_window_hour` in `rollup_state`). The tables live in
//! the roll-up file ([`super::rollup_db`]).
//!
//! "Top 10 source addresses in the last 24 hours" over the hourly roll-ups sums one row
//! per (hour, address): at 10 million sessions that was ~190 ms. Here it is ten entries
//! of an index ordered by count. A query for the same 25 hour buckets as
//! `hour_range(now - 24 h, now)` reads it; any other window sums the hourly rows.
//!
//! Invariant, inside every write transaction: for each windowed dimension and value,
//! `rollup_window.count` = SUM(`rollup_hourly.count`) over hours `W - 24 ..= W`.
//! Each batch first advances `W` to the wall-clock hour (subtracting the hours that left
//! the window, or rebuilding after a long pause), then adds its own increments for hours
//! inside the window.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{params, Connection, OptionalExtension};

use crate::types::Dimension;
pub(super) use crate::window::SPAN;
use crate::window::{answers, covers, plan, Move, Ranker, DIMS, HOUR_COUNTER};
use crate::Result;

fn dims_sql() -> String {
    let codes: Vec<String> = DIMS.iter().map(|d| d.code().to_string()).collect();
    codes.join(",")
}

/// The window's current hour `W`, or `None` before the first build.
pub(super) fn current_hour(c: &Connection) -> Result<Option<i64>> {
    let w: Option<i64> = c
        .prepare_cached("SELECT value FROM rollup_state WHERE name = ?1")?
        .query_row([HOUR_COUNTER], |r| r.get(0))
        .optional()?;
    Ok(w.filter(|&w| w >= 0))
}

/// Moves a window that fell behind the clock (no ingest for a while) to `now_hour` in its
/// own write transaction; `true` when it moved. The store runs this every minute, so top-N
/// over the last day keeps reading the window through quiet hours (a query more than
/// [`MAX_SKIPPED_HOURS`] after `W` would sum the hourly rows instead).
pub(super) fn catch_up(c: &mut Connection, now_hour: i64) -> Result<bool> {
    if current_hour(c)?.is_some_and(|w| w >= now_hour) {
        return Ok(false);
    }
    let tx = c.transaction()?;
    super::rollup_db::lock_for_write(&tx)?;
    let before = current_hour(&tx)?;
    let w = advance(&tx, now_hour)?;
    tx.commit()?;
    Ok(before != Some(w))
}

/// Moves the window to `now_hour` (never backwards) and returns `W`. Call in the write
/// transaction before the batch's roll-up increments are written.
pub(super) fn advance(c: &Connection, now_hour: i64) -> Result<i64> {
    match plan(current_hour(c)?, now_hour) {
        Move::Stay(w) => return Ok(w),
        Move::Shift { out, came_in } => {
            let dims = dims_sql();
            c.prepare_cached(&format!(
                "INSERT INTO rollup_window (dim, value, count)
                 SELECT dim, value, CASE WHEN hour <= ?2 THEN -count ELSE count END
                 FROM rollup_hourly
                 WHERE dim IN ({dims})
                   AND ((hour >= ?1 AND hour <= ?2) OR (hour >= ?3 AND hour <= ?4))
                 ON CONFLICT (dim, value) DO UPDATE SET count = count + excluded.count"
            ))?
            .execute(params![out.0, out.1, came_in.0, came_in.1])?;
            let mut drop_zero =
                c.prepare_cached("DELETE FROM rollup_window WHERE dim = ?1 AND count = 0")?;
            for d in DIMS {
                drop_zero.execute([d.code()])?;
            }
            rebuild_tiers(c, None)?;
        }
        Move::Rebuild => {
            rebuild(c, now_hour)?;
            rebuild_tiers(c, None)?;
        }
    }
    c.prepare_cached(
        "INSERT INTO rollup_state (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![HOUR_COUNTER, now_hour])?;
    Ok(now_hour)
}

/// Recomputes the window for `W = hour` from the hourly roll-ups.
fn rebuild(c: &Connection, hour: i64) -> Result<()> {
    let dims = dims_sql();
    c.execute("DELETE FROM rollup_window", [])?;
    c.execute(
        &format!(
            "INSERT INTO rollup_window (dim, value, count)
             SELECT dim, value, SUM(count) FROM rollup_hourly
             WHERE dim IN ({dims}) AND hour >= ?1 AND hour <= ?2
             GROUP BY dim, value HAVING SUM(count) <> 0"
        ),
        params![hour - SPAN, hour],
    )?;
    Ok(())
}

/// Sums the deltas for (`dim`, `hour`, `value`) whose hour is inside the window `w` per
/// (`dim`, `value`) (a batch spanning two hours writes each value once), then writes them.
pub(super) struct Adder {
    w: i64,
    sums: HashMap<(i64, String), i64>,
    negative: bool,
}

impl Adder {
    pub(super) fn new(w: i64) -> Self {
        Self {
            w,
            sums: HashMap::new(),
            negative: false,
        }
    }

    pub(super) fn add(&mut self, dim: i64, hour: i64, value: &str, delta: i64) {
        if delta != 0 && covers(self.w, dim, hour) {
            *self.sums.entry((dim, value.to_owned())).or_default() += delta;
            self.negative |= delta < 0;
        }
    }

    /// Writes the sums and removes rows a negative delta (re-normalization) brought to
    /// zero.
    pub(super) fn finish(self, c: &Connection) -> Result<()> {
        let mut upsert = c.prepare_cached(
            "INSERT INTO rollup_window (dim, value, count) VALUES (?1, ?2, ?3)
             ON CONFLICT (dim, value) DO UPDATE SET count = count + excluded.count",
        )?;
        // The count before, read apart: RETURNING on the upsert costs SQLite a statement
        // journal (1.6 µs more per upsert in isolation, 15 µs more per ingested event in
        // the end-to-end bench, where it spilled to disk); the read costs 0.65 µs.
        let mut before =
            c.prepare_cached("SELECT count FROM rollup_window WHERE dim = ?1 AND value = ?2")?;
        let mut leave = c.prepare_cached(
            "DELETE FROM rollup_window_tier WHERE dim = ?1 AND tier = ?2 AND value = ?3",
        )?;
        let mut enter = c.prepare_cached(
            "INSERT INTO rollup_window_tier (dim, tier, value) VALUES (?1, ?2, ?3)",
        )?;
        for ((dim, value), n) in self.sums {
            if n == 0 {
                continue;
            }
            if dim != TIERED.code() {
                upsert.execute(params![dim, value, n])?;
                continue;
            }
            let was: i64 = before
                .query_row(params![dim, value], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            upsert.execute(params![dim, value, n])?;
            let (was, is) = (tier(was), tier(was + n));
            if was != is {
                if let Some(t) = was {
                    leave.execute(params![dim, t, value])?;
                }
                if let Some(t) = is {
                    enter.execute(params![dim, t, value])?;
                }
            }
        }
        if self.negative {
            let mut drop_zero =
                c.prepare_cached("DELETE FROM rollup_window WHERE dim = ?1 AND count = 0")?;
            for d in DIMS {
                drop_zero.execute([d.code()])?;
            }
        }
        Ok(())
    }
}

/// Window rows counting at least this many are in the `rollup_window_hot` index, ordered
/// by count (see `rollup_db`'s schema). Below it a row has no index entry, so the upsert of
/// a value seen a few times a day (most source addresses) writes one B-tree, not three
/// (an index entry keyed by the count moves on every change): the window's upserts fell
/// from 12 % to 6 % of the process's CPU per ingested event.
pub(super) const HOT: i64 = 64;

/// Window rows counting at least this many and fewer than [`HOT`] are listed in
/// `rollup_window_tier` by power-of-two tier (8-15, 16-31, 32-63). A row enters or leaves a
/// tier a few times a day, not at every change of its count, so the list costs a write per
/// crossing; a top-N that must go past the hot rows (a day of many small sources: top 10
/// source addresses at 1M sessions with 333k in the day took 20 ms sorting every other
/// value) reads the tiers it needs, each sorted in memory, before sorting the cold rest.
pub(super) const WARM: i64 = 8;

/// The dimension whose warm values are listed: source addresses have the long flat tails
/// (usernames and passwords have heavy heads, and a list would cost every upsert of theirs
/// a read of the count before it).
const TIERED: Dimension = Dimension::SourceIp;

const _: () = assert!(WARM.count_ones() == 1 && HOT.count_ones() == 1 && WARM < HOT);

/// The tier of a warm count: its power of two.
fn tier(count: i64) -> Option<i64> {
    (WARM..HOT)
        .contains(&count)
        .then(|| 63 - i64::from(count.leading_zeros()))
}

/// The warm tiers, highest first.
fn tiers() -> impl Iterator<Item = i64> {
    (WARM.trailing_zeros()..HOT.trailing_zeros())
        .rev()
        .map(i64::from)
}

/// Lists the window's warm rows in `rollup_window_tier` anew: after the window moved
/// (every value's count may have changed) and when the roll-up file is opened (a build
/// without the list may have written it). `schema` qualifies the tables when set.
pub(super) fn rebuild_tiers(c: &Connection, schema: Option<&str>) -> Result<()> {
    let s = schema.map(|s| format!("{s}.")).unwrap_or_default();
    // floor(log2(count)) for WARM <= count < HOT, as `tier` computes it.
    let case: String = tiers()
        .map(|t| format!("WHEN count >= {} THEN {t} ", 1i64 << t))
        .collect();
    c.execute(&format!("DELETE FROM {s}rollup_window_tier"), [])?;
    c.execute(
        &format!(
            "INSERT INTO {s}rollup_window_tier (dim, tier, value)
             SELECT dim, CASE {case}END, value FROM {s}rollup_window
             WHERE dim = ?1 AND count >= {WARM} AND count < {HOT}"
        ),
        [TIERED.code()],
    )?;
    Ok(())
}

/// The hot rows, most first (the bound is a literal so that SQLite can use the partial
/// index), and the others.
static HOT_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT value, count FROM rollup_window WHERE dim = ?1 AND count >= {HOT}
         ORDER BY count DESC, value"
    )
});
static HOT_COUNT: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT COUNT(*) FROM rollup_window WHERE dim = ?1 AND count >= {HOT}")
});
/// The rows below the hot ones, or below the warm ones for [`TIERED`].
static COLD_ROWS: LazyLock<String> = LazyLock::new(|| cold_rows(HOT));
static COLD_ROWS_TIERED: LazyLock<String> = LazyLock::new(|| cold_rows(WARM));

fn cold_rows(below: i64) -> String {
    format!(
        "SELECT value, count FROM rollup_window WHERE dim = ?1 AND count > 0 AND count < {below}
         ORDER BY count DESC, value"
    )
}
const TIER_ROWS: &str = "SELECT w.value, w.count FROM rollup_window_tier t
     JOIN rollup_window w ON w.dim = t.dim AND w.value = t.value
     WHERE t.dim = ?1 AND t.tier = ?2";

/// Warm rows counted as cheap reads at most (see [`indexed_values`]).
const CHEAP_WARM: i64 = 8_192;

/// How many values of `dim` a query over the hour buckets `[lo, hi)` reads cheaply in count
/// order: its hot rows (and its warm ones while few) when the window answers that query,
/// else none.
pub(super) fn indexed_values(c: &Connection, dim: Dimension, lo: i64, hi: i64) -> Result<usize> {
    let Some(w) = current_hour(c)? else {
        return Ok(0);
    };
    if !answers(w, dim, lo, hi, 1) {
        return Ok(0);
    }
    let hot: i64 = c
        .prepare_cached(&HOT_COUNT)?
        .query_row([dim.code()], |r| r.get(0))?;
    // The warm rows too while they are few: each round that reaches them reads and sorts
    // whole tiers, cheap for a few thousand, not for a day where most addresses are warm.
    // Top 10 attackers by honeypot, at 1M on a flat day (333k sessions, busiest address
    // 76): 46-51 ms counting them, 85 ms not; at 14M with 4.3M in the day: 9.2-14.0 ms
    // counting them always, 5.8-7.9 ms never, 8.5-10.7 ms with this bound (the count
    // itself reads up to this many rows).
    let warm: i64 = c
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM rollup_window_tier WHERE dim = ?1 LIMIT {})",
            CHEAP_WARM + 1
        ))?
        .query_row([dim.code()], |r| r.get(0))?;
    let warm = if warm <= CHEAP_WARM { warm } else { 0 };
    Ok(usize::try_from(hot + warm).unwrap_or(0))
}

/// Top `limit` values of `dim` over the hour buckets `[lo, hi)` from the window when
/// [`answers`] says it can; `None` means: sum the hourly rows instead.
pub(super) fn top(
    c: &Connection,
    dim: Dimension,
    lo: i64,
    hi: i64,
    limit: usize,
) -> Result<Option<Vec<(String, u64)>>> {
    // One read transaction: W and the rows from the same snapshot.
    let tx = c.unchecked_transaction()?;
    let Some(w) = current_hour(&tx)? else {
        return Ok(None);
    };
    if !answers(w, dim, lo, hi, limit) {
        return Ok(None);
    }
    let sums = |from: i64, to: i64| -> Result<HashMap<String, i64>> {
        let mut out: HashMap<String, i64> = HashMap::new();
        if from < to {
            let mut st = tx.prepare_cached(
                "SELECT value, count FROM rollup_hourly WHERE dim = ?1 AND hour >= ?2 AND hour < ?3",
            )?;
            let mut rows = st.query(params![dim.code(), from, to])?;
            while let Some(r) = rows.next()? {
                *out.entry(r.get(0)?).or_default() += r.get::<_, i64>(1)?;
            }
        }
        Ok(out)
    };
    // Counts of the hours the query leaves out, and of those after the window.
    let mut ranker = Ranker::new(limit, sums(w - SPAN, lo)?, sums(w + 1, hi)?);
    // The hot rows in count order from their index; the rest (every other value, sorted)
    // only when the ranking needs them: a top 10 over a busy day ends among the hot rows,
    // and a quiet day has few values to sort. Asking for thousands on a busy day costs a
    // sort of the day's values (`top_sources` asks in growing rounds for that reason).
    'read: {
        let mut st = tx.prepare_cached(&HOT_ROWS)?;
        let mut rows = st.query([dim.code()])?;
        while let Some(r) = rows.next()? {
            if !ranker.offer(r.get(0)?, r.get(1)?) {
                break 'read;
            }
        }
        let tiered = dim == TIERED;
        let mut st = tx.prepare_cached(TIER_ROWS)?;
        for t in tiers().filter(|_| tiered) {
            let mut warm: Vec<(String, i64)> = st
                .query_map(params![dim.code(), t], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            warm.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            for (value, count) in warm {
                if !ranker.offer(value, count) {
                    break 'read;
                }
            }
        }
        let cold = if tiered {
            &COLD_ROWS_TIERED
        } else {
            &COLD_ROWS
        };
        let mut st = tx.prepare_cached(cold)?;
        let mut rows = st.query([dim.code()])?;
        while let Some(r) = rows.next()? {
            if !ranker.offer(r.get(0)?, r.get(1)?) {
                break 'read;
            }
        }
    }
    let mut late = HashMap::new();
    {
        let mut st =
            tx.prepare_cached("SELECT count FROM rollup_window WHERE dim = ?1 AND value = ?2")?;
        for value in ranker.late_values() {
            let wc: Option<i64> = st
                .query_row(params![dim.code(), value], |r| r.get(0))
                .optional()?;
            late.insert(value, wc.unwrap_or(0));
        }
    }
    tx.finish()?;
    Ok(Some(ranker.finish(&late)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::MAX_SKIPPED_HOURS;
    use std::collections::{BTreeMap, BTreeSet};

    fn db() -> Connection {
        super::super::open_memory().unwrap()
    }

    /// What the window must hold: hourly sums over W-24 ..= W, zero sums left out.
    fn expected(c: &Connection, w: i64) -> BTreeMap<(i64, String), i64> {
        let mut st = c
            .prepare(&format!(
                "SELECT dim, value, SUM(count) FROM rollup_hourly
                 WHERE dim IN ({}) AND hour >= ?1 AND hour <= ?2
                 GROUP BY dim, value HAVING SUM(count) <> 0",
                dims_sql()
            ))
            .unwrap();
        st.query_map(params![w - SPAN, w], |r| {
            Ok(((r.get(0)?, r.get(1)?), r.get(2)?))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }

    fn actual(c: &Connection) -> BTreeMap<(i64, String), i64> {
        let mut st = c
            .prepare("SELECT dim, value, count FROM rollup_window")
            .unwrap();
        st.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    /// One batch as the writer does it: advance, then hourly and window increments.
    fn batch(c: &Connection, now_hour: i64, incs: &[(Dimension, i64, &str, i64)]) {
        let tx = c.unchecked_transaction().unwrap();
        let w = advance(&tx, now_hour).unwrap();
        let mut add = Adder::new(w);
        for &(dim, hour, value, n) in incs {
            tx.execute(
                "INSERT INTO rollup_hourly (dim, hour, value, count) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (dim, hour, value) DO UPDATE SET count = count + excluded.count",
                params![dim.code(), hour, value, n],
            )
            .unwrap();
            add.add(dim.code(), hour, value, n);
        }
        add.finish(&tx).unwrap();
        tx.commit().unwrap();
        check_tiers(c);
    }

    /// The tier list holds exactly the warm rows, each in its count's tier.
    fn check_tiers(c: &Connection) {
        let listed: BTreeSet<(i64, i64, String)> = c
            .prepare("SELECT dim, tier, value FROM rollup_window_tier")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let want: BTreeSet<(i64, i64, String)> = actual(c)
            .into_iter()
            .filter(|((dim, _), _)| *dim == TIERED.code())
            .filter_map(|((dim, value), n)| tier(n).map(|t| (dim, t, value)))
            .collect();
        assert_eq!(listed, want);
    }

    #[test]
    fn tiers_are_powers_of_two_between_warm_and_hot() {
        assert_eq!(tier(WARM - 1), None);
        assert_eq!(tier(8), Some(3));
        assert_eq!(tier(15), Some(3));
        assert_eq!(tier(16), Some(4));
        assert_eq!(tier(63), Some(5));
        assert_eq!(tier(HOT), None);
        assert_eq!(tier(0), None);
        assert_eq!(tier(-9), None);
        assert_eq!(tiers().collect::<Vec<_>>(), [5, 4, 3]);
    }

    /// Counts on both sides of every bound, moving up and down (negative deltas, hours
    /// leaving the window) over many batches: the tier list stays exact (checked after
    /// every batch) and top-N equals the hourly sums ranked, for every limit.
    #[test]
    fn top_is_exact_through_hot_warm_and_cold_values() {
        // Source addresses have their warm values listed; usernames do not.
        for ip in [Dimension::SourceIp, Dimension::Username] {
            let c = db();
            let h = 900_000;
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            let values: Vec<String> = (0..60).map(|i| format!("198.51.100.{i}")).collect();
            // What each (value, hour) counts: a negative delta (re-normalization) only takes
            // back what was counted, as in the store.
            let mut counted: HashMap<(usize, i64), i64> = HashMap::new();
            for step in 0..40i64 {
                let now = h + step / 4;
                let incs: Vec<(Dimension, i64, &str, i64)> = (0..30)
                    .map(|_| {
                        let i = next(values.len() as u64) as usize;
                        let hour = now - next(30) as i64;
                        let had = counted.entry((i, hour)).or_default();
                        let n = match next(10) {
                            0 => -(next(20) as i64).min(*had),
                            1 => 40 + next(40) as i64,
                            _ => 1 + next(12) as i64,
                        };
                        *had += n;
                        (ip, hour, values[i].as_str(), n)
                    })
                    .collect();
                batch(&c, now, &incs);
                let w = current_hour(&c).unwrap().unwrap();
                // The whole window, and without its first hour (read as skipped).
                for lo in [w - SPAN, w - SPAN + 1] {
                    let mut sums: HashMap<String, i64> = HashMap::new();
                    let mut st = c
                        .prepare(
                            "SELECT value, count FROM rollup_hourly
                             WHERE dim = ?1 AND hour >= ?2 AND hour <= ?3",
                        )
                        .unwrap();
                    let rows = st
                        .query_map(params![ip.code(), lo, w], |r| Ok((r.get(0)?, r.get(1)?)))
                        .unwrap();
                    for r in rows {
                        let (v, n): (String, i64) = r.unwrap();
                        *sums.entry(v).or_default() += n;
                    }
                    let mut want: Vec<(String, u64)> = sums
                        .into_iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(v, n)| (v, n as u64))
                        .collect();
                    want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    for limit in [1, 3, 10, 25, 100] {
                        let got = top(&c, ip, lo, w + 1, limit).unwrap().unwrap();
                        let expect: Vec<(String, u64)> = want.iter().take(limit).cloned().collect();
                        assert_eq!(got, expect, "step {step}, from {lo}, limit {limit}");
                    }
                }
            }
        }
    }

    #[test]
    fn window_equals_hourly_sums_as_hours_pass() {
        let c = db();
        let ip = Dimension::SourceIp;
        let pw = Dimension::Password;
        let h0 = 500_000;
        // Before any window: history, including hours that will be inside it.
        batch(
            &c,
            h0,
            &[
                (ip, h0 - 30, "a", 5),
                (ip, h0 - 3, "a", 2),
                (pw, h0, "x", 1),
            ],
        );
        assert_eq!(current_hour(&c).unwrap(), Some(h0));
        assert_eq!(actual(&c), expected(&c, h0));
        // Late events (outside the window), future events, other dimensions.
        batch(
            &c,
            h0,
            &[
                (ip, h0 - 40, "b", 7),
                (ip, h0 + 2, "b", 3),
                (Dimension::Honeypot, h0, "cowrie", 9),
                (ip, h0 - 24, "c", 4),
            ],
        );
        assert_eq!(actual(&c), expected(&c, h0));
        // One hour at a time: "c" (at W-24) leaves after one step.
        for step in 1..=3 {
            batch(&c, h0 + step, &[(ip, h0 + step, "a", 1)]);
            assert_eq!(actual(&c), expected(&c, h0 + step), "step {step}");
        }
        assert!(!actual(&c).contains_key(&(ip.code(), "c".into())));
        // The future event entered when its hour came into the window (it was counted in
        // the hourly rows all along).
        assert_eq!(actual(&c)[&(ip.code(), "b".into())], 3);
        // Re-normalization removes counts: zero rows disappear.
        batch(&c, h0 + 3, &[(pw, h0, "x", -1), (ip, h0 - 3, "a", -2)]);
        assert_eq!(actual(&c), expected(&c, h0 + 3));
        assert!(!actual(&c).contains_key(&(pw.code(), "x".into())));
        // Several hours at once, then a pause longer than the window (rebuild).
        batch(&c, h0 + 10, &[(pw, h0 + 9, "y", 2)]);
        assert_eq!(actual(&c), expected(&c, h0 + 10));
        batch(&c, h0 + 100, &[(pw, h0 + 99, "z", 1)]);
        assert_eq!(actual(&c), expected(&c, h0 + 100));
        // The clock going back never moves the window back.
        batch(&c, h0 + 90, &[(pw, h0 + 95, "z", 1)]);
        assert_eq!(current_hour(&c).unwrap(), Some(h0 + 100));
        assert_eq!(actual(&c), expected(&c, h0 + 100));
    }

    #[test]
    fn catch_up_moves_an_idle_window_like_a_batch_would() {
        let mut c = db();
        let ip = Dimension::SourceIp;
        let h = 700_000;
        batch(&c, h, &[(ip, h, "a", 2), (ip, h - 20, "b", 5)]);
        assert!(!catch_up(&mut c, h).unwrap(), "already current");
        // Ten quiet hours: "b" (h - 20) leaves the window, "a" stays.
        assert!(catch_up(&mut c, h + 10).unwrap());
        assert_eq!(current_hour(&c).unwrap(), Some(h + 10));
        assert_eq!(actual(&c), expected(&c, h + 10));
        assert_eq!(
            top(&c, ip, h + 10 - SPAN, h + 11, 10).unwrap().unwrap(),
            vec![("a".into(), 2)]
        );
        assert!(!catch_up(&mut c, h + 9).unwrap(), "never backwards");
    }

    #[test]
    fn top_reads_past_the_hot_rows_when_the_ranking_needs_more() {
        let c = db();
        let ip = Dimension::SourceIp;
        let h = 800_000;
        let hot = HOT;
        batch(
            &c,
            h,
            &[
                (ip, h, "a", hot + 40),
                (ip, h, "b", hot),
                (ip, h, "c", hot - 1),
                (ip, h - 3, "d", hot - 1),
                (ip, h, "e", 2),
                // Leaves the hot rows when its first hour is skipped.
                (ip, h - SPAN, "f", hot),
            ],
        );
        let all = top(&c, ip, h - SPAN, h + 1, 10).unwrap().unwrap();
        let want = |v: &[(&str, i64)]| -> Vec<(String, u64)> {
            v.iter().map(|(s, n)| (s.to_string(), *n as u64)).collect()
        };
        assert_eq!(
            all,
            want(&[
                ("a", hot + 40),
                ("b", hot),
                ("f", hot),
                ("c", hot - 1),
                ("d", hot - 1),
                ("e", 2)
            ])
        );
        assert_eq!(
            top(&c, ip, h - SPAN, h + 1, 2).unwrap().unwrap(),
            want(&[("a", hot + 40), ("b", hot)])
        );
        assert_eq!(
            top(&c, ip, h - SPAN + 1, h + 1, 3).unwrap().unwrap(),
            want(&[("a", hot + 40), ("b", hot), ("c", hot - 1)])
        );
        // The hot rows and the (few) warm ones, c and d at 63.
        assert_eq!(indexed_values(&c, ip, h - SPAN, h + 1).unwrap(), 5);
        assert_eq!(indexed_values(&c, ip, h - SPAN - 1, h + 1).unwrap(), 0);
        // Counts moving across the bound keep the index right.
        batch(&c, h, &[(ip, h, "e", hot), (ip, h, "a", -(hot + 39))]);
        assert_eq!(
            top(&c, ip, h - SPAN, h + 1, 2).unwrap().unwrap(),
            want(&[("e", hot + 2), ("b", hot)])
        );
        assert_eq!(
            top(&c, ip, h - SPAN, h + 1, 10).unwrap().unwrap().last(),
            Some(&("a".to_string(), 1))
        );
    }

    #[test]
    fn hot_rows_are_read_from_their_partial_index() {
        let c = db();
        let plan = |sql: &str| -> String {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = st.query_map([4], |r| r.get::<_, String>(3)).unwrap();
            rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
        };
        let count = plan(&HOT_COUNT);
        assert!(count.contains("rollup_window_hot"), "{count}");
        let hot = plan(&HOT_ROWS);
        assert!(hot.contains("rollup_window_hot"), "{hot}");
        assert!(!hot.contains("TEMP B-TREE"), "{hot}");
    }

    #[test]
    fn top_reads_the_window_only_for_its_exact_hours() {
        let c = db();
        let ip = Dimension::SourceIp;
        let h = 600_000;
        batch(
            &c,
            h,
            &[
                (ip, h, "b", 3),
                (ip, h - 1, "a", 3),
                (ip, h - 24, "c", 5),
                (ip, h - 25, "d", 9),
            ],
        );
        let got = top(&c, ip, h - SPAN, h + 1, 10).unwrap().unwrap();
        // Ties by value, like the hourly path.
        assert_eq!(got, vec![("c".into(), 5), ("a".into(), 3), ("b".into(), 3)]);
        assert_eq!(top(&c, ip, h - SPAN, h + 1, 1).unwrap().unwrap().len(), 1);
        assert!(top(&c, ip, h - SPAN - 1, h + 1, 10).unwrap().is_none());
        // Leaving out the window's first hour: "c" goes.
        assert_eq!(
            top(&c, ip, h - SPAN + 1, h + 1, 10).unwrap().unwrap(),
            vec![("a".into(), 3), ("b".into(), 3)]
        );
        assert_eq!(
            top(&c, ip, h - SPAN + 1, h + 1, 1).unwrap().unwrap(),
            vec![("a".into(), 3)]
        );
        assert!(top(&c, ip, h - SPAN + MAX_SKIPPED_HOURS + 1, h + 1, 10)
            .unwrap()
            .is_none());
        assert!(top(&c, ip, h - SPAN, h, 10).unwrap().is_none());
        // Open-ended (ends after the window): rows of later hours count too.
        batch(&c, h, &[(ip, h + 5, "a", 1), (ip, h + 9, "e", 4)]);
        assert_eq!(
            top(&c, ip, h - SPAN, h + 1000, 10).unwrap().unwrap(),
            vec![
                ("c".into(), 5),
                ("a".into(), 4),
                ("e".into(), 4),
                ("b".into(), 3)
            ]
        );
        assert_eq!(
            top(&c, ip, h - SPAN + 1, h + 1000, 2).unwrap().unwrap(),
            vec![("a".into(), 4), ("e".into(), 4)]
        );
        // The window alone still ignores them.
        assert_eq!(
            top(&c, ip, h - SPAN, h + 1, 10).unwrap().unwrap(),
            vec![("c".into(), 5), ("a".into(), 3), ("b".into(), 3)]
        );
        assert!(top(&c, Dimension::Honeypot, h - SPAN, h + 1, 10)
            .unwrap()
            .is_none());
    }
}
