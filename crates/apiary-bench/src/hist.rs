//! A small log-linear latency histogram (16 sub-buckets per power of two, ≤ 6.25 % error),
//! fixed size and mergeable, so subscribers can record every message cheaply.

const SUB: u32 = 16;
const BUCKETS: usize = (64 - 4 + 1) * SUB as usize;

/// Nanosecond histogram.
#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    n: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - 4;
    let sub = (v >> shift) & (SUB as u64 - 1);
    (shift as usize + 1) * SUB as usize + sub as usize
}

/// Middle of bucket `i`.
fn value(i: usize) -> u64 {
    if i < SUB as usize {
        return i as u64;
    }
    let shift = (i / SUB as usize - 1) as u32;
    let sub = (i % SUB as usize) as u64;
    let lo = (SUB as u64 + sub) << shift;
    lo + ((1u64 << shift) >> 1)
}

impl Hist {
    /// Records one value.
    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(index(v)) {
            *c += 1;
        }
        self.n += 1;
        self.max = self.max.max(v);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
    }

    /// The `q` quantile (0..=1), or None when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        if rank == self.n {
            return Some(self.max);
        }
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(value(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let mut h = Hist::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.07, "{p99}");
        let p50 = h.quantile(0.5).unwrap() as f64;
        assert!((p50 / 50_000_000.0 - 1.0).abs() < 0.07, "{p50}");
        assert_eq!(h.quantile(1.0), Some(100_000_000));
        for v in [0u64, 1, 15, 16, 17, 31, 32, 1 << 40, u64::MAX] {
            let i = index(v);
            assert!(i < BUCKETS);
            let m = value(i) as f64;
            assert!(v < 16 || (m / v as f64 - 1.0).abs() < 0.07, "{v} {m}");
        }
    }
}
