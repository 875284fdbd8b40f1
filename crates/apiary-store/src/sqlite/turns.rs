//! Commit order for batches whose preparation overlaps.
//!
//! The ingest sink keeps two batches in flight so that the CPU part of batch N+1 (JSON,
//! address keys, roll-up sums) runs while batch N holds the writer. Each call takes a
//! ticket when it starts; the writer section waits for its turn, so batches commit in the
//! order they were handed over and raw ids follow arrival order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How long a batch waits for an earlier one that never comes (its task was dropped
/// before it ran, e.g. at shutdown) before going ahead anyway.
const GIVE_UP: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct Turns {
    next: AtomicU64,
    now: Mutex<u64>,
    moved: Condvar,
}

/// Held while it is this batch's turn; the next ticket goes on drop (also on error or
/// panic).
pub(super) struct Turn<'a> {
    turns: &'a Turns,
    ticket: u64,
}

impl Turns {
    /// A ticket, in call order.
    pub(super) fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits until every earlier ticket has had its turn.
    pub(super) fn wait(&self, ticket: u64) -> Turn<'_> {
        let deadline = Instant::now() + GIVE_UP;
        let mut now = self.now.lock();
        while *now < ticket {
            if self.moved.wait_until(&mut now, deadline).timed_out() {
                tracing::warn!(
                    ticket,
                    turn = *now,
                    "an earlier batch never came; going ahead"
                );
                break;
            }
        }
        Turn {
            turns: self,
            ticket,
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut now = self.turns.now.lock();
        *now = (*now).max(self.ticket + 1);
        self.turns.moved.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn turns_follow_tickets_whatever_order_the_threads_arrive_in() {
        let turns = Arc::new(Turns::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let tickets: Vec<u64> = (0..8).map(|_| turns.take()).collect();
        let threads: Vec<_> = tickets
            .into_iter()
            .rev()
            .map(|t| {
                let (turns, order) = (turns.clone(), order.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(5 * (8 - t)));
                    let _turn = turns.wait(t);
                    order.lock().push(t);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock(), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn a_failed_batch_still_passes_the_turn_on() {
        let turns = Turns::default();
        let (a, b) = (turns.take(), turns.take());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _turn = turns.wait(a);
            panic!("write failed");
        }));
        assert!(r.is_err());
        let started = Instant::now();
        drop(turns.wait(b));
        assert!(started.elapsed() < GIVE_UP);
    }
}
