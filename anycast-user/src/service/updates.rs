//! How long a member's change of health takes to reach the data plane:
//! from the moment the probe result that decided it came in to the return
//! of the map write that applies it (queueing behind other results
//! included). The service keeps the last [`RECENT`] of these for `anycast
//! status` and counts all of them in a Prometheus histogram
//! (`metrics::UpdateHistogram`).

use std::{collections::VecDeque, time::Duration};

use serde::{Deserialize, Serialize};

/// How many of the latest updates `anycast status` reports.
pub const RECENT: usize = 1000;

/// The latest updates' latencies, oldest first, and how many there were.
#[derive(Clone, Debug, Default)]
pub struct Updates {
    recent: VecDeque<Duration>,
    count: u64,
}

impl Updates {
    /// Counts one update that took `took`; the oldest of [`RECENT`] goes.
    pub fn record(&mut self, took: Duration) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
        self.count += 1;
    }

    /// What `anycast status` reports of them.
    pub fn summary(&self) -> UpdateSummary {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        // Nearest rank: the smallest value with at least p of them at or below it.
        let rank = |p: f64| {
            let n = sorted.len();
            (n > 0).then(|| ms(&sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1]))
        };
        UpdateSummary {
            count: self.count,
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: sorted.last().map(ms),
            recent_ms: self.recent.iter().map(ms).collect(),
        }
    }
}

/// Member updates (a change of health written to the data plane), in
/// `anycast status --json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct UpdateSummary {
    /// Updates since the service started.
    pub count: u64,
    /// The median of the latest ones' latencies, in milliseconds (none yet:
    /// absent).
    pub p50_ms: Option<f64>,
    /// Their 99th percentile.
    pub p99_ms: Option<f64>,
    /// Their maximum.
    pub max_ms: Option<f64>,
    /// The latest (at most [`RECENT`]) latencies, oldest first: from the
    /// deciding probe result to the data plane's write returning.
    pub recent_ms: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_updates_give_the_percentiles_and_the_oldest_go() {
        let mut u = Updates::default();
        assert_eq!(
            u.summary(),
            UpdateSummary::default(),
            "none yet: no percentiles"
        );
        // 1..=100 ms: the median is 50, the 99th percentile 99.
        for i in (1..=100).rev() {
            u.record(Duration::from_millis(i));
        }
        let s = u.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_ms, Some(50.0));
        assert_eq!(s.p99_ms, Some(99.0));
        assert_eq!(s.max_ms, Some(100.0));
        assert_eq!(s.recent_ms.first(), Some(&100.0), "oldest first");
        // RECENT more of 1 ms push the old ones out; the count goes on.
        for _ in 0..RECENT {
            u.record(Duration::from_millis(1));
        }
        let s = u.summary();
        assert_eq!(s.count, 100 + RECENT as u64);
        assert_eq!(s.recent_ms.len(), RECENT);
        assert_eq!(s.max_ms, Some(1.0));
        // One slow update among them is the maximum, not the 99th percentile.
        u.record(Duration::from_millis(40));
        let s = u.summary();
        assert_eq!((s.p99_ms, s.max_ms), (Some(1.0), Some(40.0)));
        assert_eq!(s.recent_ms.last(), Some(&40.0));
    }
}
