//! Exact counts of one source address in one sealed run, kept in memory for the probes of
//! `top_sources`.
//!
//! A probe counts a candidate address's sessions in every run overlapping the window: at
//! 12M sessions, with 2.4M in the last day, top 10 attackers by honeypot probes about 138
//! addresses in 73 runs each, and the seeks are most of its ~20 ms. A run below the newest
//! session's run takes no new sessions (a new id is above every stored one), so its
//! counts change only when sessions are deleted, and every delete is recorded in
//! `counters` by the transaction that makes it:
//!
//! - retention deletes sessions older than a cutoff and raises `sessions_pruned_before`
//!   to it; that can only touch runs whose time span starts before the cutoff;
//! - re-normalization bumps `sessions_rewritten`, which drops everything.
//!
//! A query reads both counters and the newest session id first ([`Stamp`]); entries read
//! under an older stamp are dropped or kept by those rules before any is used, so the
//! cache holds across processes (`apiary renormalize` beside the server) without a hook
//! in the writer. Deleting the newest sessions lets SQLite reuse their ids, but only in a
//! run that held a deleted session, which the same rules drop.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{params, Connection};

use super::runs::{run_of, Run};
use crate::Result;

/// Counter raised by retention to its cutoff (µs): sessions before it may be gone.
const PRUNED_BEFORE: &str = "sessions_pruned_before";
/// Counter bumped by every other delete of sessions (re-normalization).
const REWRITTEN: &str = "sessions_rewritten";

/// (run, source key) entries kept at most; past it the cache starts over. A top 10 by
/// honeypot at 11.3M fills about 4,000; an entry takes about 100 bytes plus 56 per group
/// (the names are shared within an entry).
const MAX_ENTRIES: usize = 200_000;

/// One (honeypot, protocol, destination port, sensor) group of a source in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Group {
    pub(super) honeypot: Arc<str>,
    pub(super) protocol: Option<Arc<str>>,
    pub(super) destination_port: Option<u16>,
    pub(super) sensor: Arc<str>,
    pub(super) count: u64,
}

/// What a query reads before its probes: the delete counters and the newest session's
/// run. Runs below `newest_run` are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    rewritten: i64,
    pruned_before: i64,
    newest_run: i64,
}

impl Stamp {
    pub(super) fn read(c: &Connection) -> Result<Self> {
        let mut st = c.prepare_cached(
            "SELECT (SELECT value FROM counters WHERE name = ?1),
                    (SELECT value FROM counters WHERE name = ?2),
                    (SELECT MAX(id) FROM sessions)",
        )?;
        Ok(st.query_row([REWRITTEN, PRUNED_BEFORE], |r| {
            Ok(Stamp {
                rewritten: r.get::<_, Option<i64>>(0)?.unwrap_or(0),
                pruned_before: r.get::<_, Option<i64>>(1)?.unwrap_or(i64::MIN),
                newest_run: run_of(r.get::<_, Option<i64>>(2)?.unwrap_or(0)),
            })
        })?)
    }

    /// Whether the counts of `run` can be kept: it is sealed and no retention pass so far
    /// could have touched it.
    pub(super) fn sealed(&self, run: &Run) -> bool {
        run.run < self.newest_run && run.min_ts >= self.pruned_before
    }
}

/// Records, in the transaction deleting sessions before `cutoff` (µs), that runs starting
/// before it may have changed.
pub(super) fn pruned(c: &Connection, cutoff: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
    )?
    .execute(params![PRUNED_BEFORE, cutoff])?;
    Ok(())
}

/// Records, in the transaction deleting sessions anywhere, that no count holds.
pub(super) fn rewritten(c: &Connection) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
    )?
    .execute([REWRITTEN])?;
    Ok(())
}

type Key = (i64, [u8; 16]);

struct Inner {
    /// The counters the entries were checked against last.
    rewritten: i64,
    pruned_before: i64,
    /// Groups and the run's first session time, by (run, source key).
    entries: HashMap<Key, (i64, Arc<[Group]>)>,
}

impl Default for Inner {
    /// The counters of a database nothing was ever deleted from (see [`Stamp::read`]).
    fn default() -> Self {
        Self {
            rewritten: 0,
            pruned_before: i64::MIN,
            entries: HashMap::new(),
        }
    }
}

/// The cache; one per store.
#[derive(Default)]
pub(super) struct RunCounts {
    inner: Mutex<Inner>,
}

impl RunCounts {
    /// Drops what `stamp` says may have changed; call with a fresh stamp before
    /// [`Self::get`].
    pub(super) fn sync(&self, stamp: &Stamp) {
        let mut g = self.inner.lock();
        if stamp.rewritten != g.rewritten {
            g.entries.clear();
            g.rewritten = stamp.rewritten;
        }
        if stamp.pruned_before > g.pruned_before {
            let cutoff = stamp.pruned_before;
            g.entries.retain(|_, (min_ts, _)| *min_ts >= cutoff);
            g.pruned_before = cutoff;
        }
    }

    /// The groups of `source` in sealed `run`, if kept.
    pub(super) fn get(&self, run: i64, source: [u8; 16]) -> Option<Arc<[Group]>> {
        self.inner
            .lock()
            .entries
            .get(&(run, source))
            .map(|(_, g)| g.clone())
    }

    /// Keeps groups read under `stamp` (synced first) unless a newer stamp has been seen
    /// since: then they may predate a delete.
    pub(super) fn put(&self, stamp: &Stamp, run: &Run, source: [u8; 16], groups: Arc<[Group]>) {
        if !stamp.sealed(run) {
            return;
        }
        let mut g = self.inner.lock();
        if g.rewritten != stamp.rewritten || g.pruned_before != stamp.pruned_before {
            return;
        }
        if g.entries.len() >= MAX_ENTRIES {
            g.entries.clear();
        }
        g.entries.insert((run.run, source), (run.min_ts, groups));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(run: i64, min_ts: i64) -> Run {
        Run {
            run,
            min_ts,
            max_ts: min_ts + 10,
        }
    }

    fn stamp(rewritten: i64, pruned_before: i64, newest_run: i64) -> Stamp {
        Stamp {
            rewritten,
            pruned_before,
            newest_run,
        }
    }

    fn one(n: u64) -> Arc<[Group]> {
        Arc::from(vec![Group {
            honeypot: "cowrie".into(),
            protocol: None,
            destination_port: None,
            sensor: "s".into(),
            count: n,
        }])
    }

    #[test]
    fn keeps_only_sealed_runs_under_the_current_stamp() {
        let cache = RunCounts::default();
        let s = stamp(0, i64::MIN, 5);
        cache.sync(&s);
        cache.put(&s, &run(4, 100), [1; 16], one(3));
        cache.put(&s, &run(5, 100), [1; 16], one(3)); // the newest run is still filling
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(4, [1; 16]).unwrap()[0].count, 3);
        assert!(cache.get(5, [1; 16]).is_none());
    }

    #[test]
    fn retention_drops_runs_starting_before_its_cutoff() {
        let cache = RunCounts::default();
        let s = stamp(0, i64::MIN, 9);
        cache.sync(&s);
        cache.put(&s, &run(1, 100), [1; 16], one(1));
        cache.put(&s, &run(2, 200), [1; 16], one(2));
        let later = stamp(0, 150, 9);
        cache.sync(&later);
        // Run 1 starts before the cutoff and may have lost sessions; run 2 cannot have.
        assert!(cache.get(1, [1; 16]).is_none());
        assert_eq!(cache.get(2, [1; 16]).unwrap()[0].count, 2);
        // A reader still holding the old stamp cannot put any more.
        cache.put(&s, &run(4, 400), [1; 16], one(4));
        assert!(cache.get(4, [1; 16]).is_none());
        // Nor can a run under the cutoff be kept with the new one.
        cache.put(&later, &run(1, 100), [1; 16], one(1));
        assert!(cache.get(1, [1; 16]).is_none());
    }

    #[test]
    fn rewriting_drops_everything() {
        let cache = RunCounts::default();
        let s = stamp(0, i64::MIN, 9);
        cache.sync(&s);
        cache.put(&s, &run(2, 200), [1; 16], one(2));
        cache.sync(&stamp(1, i64::MIN, 9));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn counters_are_written_and_read_back() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE sessions (id INTEGER PRIMARY KEY);
             INSERT INTO sessions (id) VALUES (200000);",
        )
        .unwrap();
        assert_eq!(Stamp::read(&c).unwrap(), stamp(0, i64::MIN, 3));
        pruned(&c, 50).unwrap();
        pruned(&c, 40).unwrap(); // never lowered
        rewritten(&c).unwrap();
        rewritten(&c).unwrap();
        assert_eq!(Stamp::read(&c).unwrap(), stamp(2, 50, 3));
    }
}
