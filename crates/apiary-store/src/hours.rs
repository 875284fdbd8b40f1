//! Timestamps as stored (microseconds since the epoch) and the hour buckets of the
//! roll-ups, the same in both backends.

use chrono::{DateTime, Utc};

use crate::types::HourCount;
use crate::{Result, StoreError};

pub(crate) const HOUR_US: i64 = 3_600_000_000;

/// Hours a counts-per-hour answer may span (ten years); more is a caller bug.
const MAX_HOURS: i64 = 24 * 366 * 10;

/// Microseconds since the epoch.
pub(crate) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Back from microseconds; out-of-range values (never written by us) clamp to the epoch.
pub(crate) fn from_us(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

/// The hour bucket (hours since the epoch) holding `t_us`.
pub(crate) fn hour_of(t_us: i64) -> i64 {
    t_us.div_euclid(HOUR_US)
}

/// Hour buckets overlapping `[since, until)`: `lo <= hour < hi`.
pub(crate) fn hour_range(since: DateTime<Utc>, until: DateTime<Utc>) -> (i64, i64) {
    let lo = hour_of(us(since));
    let u = us(until);
    let hi = u.div_euclid(HOUR_US) + i64::from(u.rem_euclid(HOUR_US) != 0);
    (lo, hi)
}

/// A counts-per-hour answer under construction: one slot per hour of `[lo, hi)`, zero
/// until a roll-up row fills it.
pub(crate) struct HourSlots {
    lo: i64,
    counts: Vec<u64>,
}

impl HourSlots {
    /// Refuses a span over [`MAX_HOURS`] buckets.
    pub(crate) fn new(lo: i64, hi: i64) -> Result<Self> {
        if hi - lo > MAX_HOURS {
            return Err(StoreError::Invalid(format!(
                "counts per hour over {} hours; at most {MAX_HOURS}",
                hi - lo
            )));
        }
        Ok(Self {
            lo,
            counts: vec![0u64; (hi - lo).max(0) as usize],
        })
    }

    /// Sets the count of `hour`; hours outside the span are ignored.
    pub(crate) fn set(&mut self, hour: i64, n: i64) {
        if let Some(slot) = self.counts.get_mut((hour - self.lo) as usize) {
            *slot = n.max(0) as u64;
        }
    }

    pub(crate) fn into_counts(self) -> Vec<HourCount> {
        let lo = self.lo;
        self.counts
            .into_iter()
            .enumerate()
            .map(|(i, count)| HourCount {
                hour: from_us((lo + i as i64) * HOUR_US),
                count,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_ranges() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let (lo, hi) = hour_range(t("2024-01-01T10:00:00Z"), t("2024-01-01T12:00:00Z"));
        assert_eq!(hi - lo, 2);
        let (lo2, hi2) = hour_range(t("2024-01-01T10:30:00Z"), t("2024-01-01T12:00:01Z"));
        assert_eq!((lo2, hi2), (lo, hi + 1));
    }
}
