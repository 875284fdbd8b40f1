//! Session runs: the source-address and ASN indexes are led by `id >> 16` (a run of
//! 65,536 consecutive session ids), not by the address, the ASN or the day.
//!
//! An index led by the address puts every insert on a random leaf; led by the day, on a
//! random leaf of today's part, which at a sustained high rate is itself millions of rows
//! (at 20M sessions the day-led source index was 71 % of the pages each commit wrote, the
//! ASN index 14 %). Led by the run, inserts land in the newest run's part: at most 65,536
//! entries, a few megabytes that stay in cache, so a commit dirties at most that part
//! whatever the rate.
//!
//! Readers probe the index once per run whose time span overlaps what they ask for.
//! `session_runs` keeps each run's smallest and largest session time, widened in the same
//! transaction that inserts its sessions (spans are never narrowed when sessions go: a
//! wider span only costs a probe) and forgotten by retention once the run has no sessions
//! left.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::Result;

/// Session ids per run: 2^RUN_BITS.
const RUN_BITS: u32 = 16;

/// The indexed run expression (migrations 0014, 0015). Queries must spell it exactly for
/// SQLite to use the index.
pub(super) const RUN: &str = "id >> 16";

/// The run of a session id (as [`RUN`] computes it).
pub(super) fn run_of(id: i64) -> i64 {
    id >> RUN_BITS
}

/// One run and the time span of its sessions, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Run {
    pub(super) run: i64,
    pub(super) min_ts: i64,
    pub(super) max_ts: i64,
}

/// The runs that may hold sessions with `since <= ts < until` and `ts <= upto`, newest
/// span end first.
pub(super) fn overlapping(
    c: &Connection,
    since: Option<i64>,
    until: Option<i64>,
    upto: Option<i64>,
) -> Result<Vec<Run>> {
    let hi = until
        .map(|u| u.saturating_sub(1))
        .unwrap_or(i64::MAX)
        .min(upto.unwrap_or(i64::MAX));
    let mut st = c.prepare_cached(
        "SELECT run, min_ts, max_ts FROM session_runs WHERE max_ts >= ?1 AND min_ts <= ?2 \
         ORDER BY max_ts DESC, run DESC",
    )?;
    let runs = st
        .query_map([since.unwrap_or(i64::MIN), hi], |r| {
            Ok(Run {
                run: r.get(0)?,
                min_ts: r.get(1)?,
                max_ts: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(runs)
}

/// Condition on `sessions`: its run is one of `runs`. A literal list: given
/// `IN (SELECT run FROM session_runs ...)` SQLite's planner scans the whole index.
pub(super) fn in_list(runs: &[Run]) -> String {
    if runs.is_empty() {
        return "0".into();
    }
    let list: Vec<String> = runs.iter().map(|r| r.run.to_string()).collect();
    format!("sessions.{RUN} IN ({})", list.join(", "))
}

/// The time spans of the sessions a transaction inserts, per run.
#[derive(Default)]
pub(super) struct Spans(HashMap<i64, (i64, i64)>);

impl Spans {
    pub(super) fn add(&mut self, id: i64, ts: i64) {
        let span = self.0.entry(run_of(id)).or_insert((ts, ts));
        span.0 = span.0.min(ts);
        span.1 = span.1.max(ts);
    }

    /// Widens the stored spans; call in the transaction that inserted the sessions.
    pub(super) fn save(self, c: &Connection) -> Result<()> {
        let mut st = c.prepare_cached(
            "INSERT INTO session_runs (run, min_ts, max_ts) VALUES (?1, ?2, ?3)
             ON CONFLICT (run) DO UPDATE SET min_ts = min(min_ts, excluded.min_ts),
                                             max_ts = max(max_ts, excluded.max_ts)",
        )?;
        for (run, (lo, hi)) in self.0 {
            st.execute([run, lo, hi])?;
        }
        Ok(())
    }
}

/// Forgets the runs of `candidates` (a query yielding run numbers) that no longer hold a
/// session.
pub(super) fn forget_empty(
    c: &Connection,
    candidates: &str,
    args: impl rusqlite::Params,
) -> Result<()> {
    c.execute(
        &format!(
            "DELETE FROM session_runs WHERE run IN ({candidates}) AND NOT EXISTS (
                 SELECT 1 FROM sessions WHERE id >= session_runs.run << {RUN_BITS}
                                          AND id < (session_runs.run + 1) << {RUN_BITS})"
        ),
        args,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expression_the_bits_and_the_migrations_agree() {
        assert_eq!(RUN, format!("id >> {RUN_BITS}"));
        for sql in [
            include_str!("../../migrations/sqlite/0014_source_by_run.sql"),
            include_str!("../../migrations/sqlite/0015_asn_by_run.sql"),
        ] {
            let index = sql.split("CREATE INDEX").nth(1).unwrap();
            assert!(index.contains(&format!("({RUN},")), "{sql}");
        }
        assert_eq!(run_of((3 << RUN_BITS) + 5), 3);
    }
}
