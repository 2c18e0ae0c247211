//! The arithmetic behind the reported numbers.

use std::time::Duration;

use serde_json::{json, Value};

/// Events per second; zero for a zero-length interval rather than infinity.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Megabytes (10^6 bytes) per second.
pub fn megabytes_per_second(bytes: u64, elapsed: Duration) -> f64 {
    per_second(bytes, elapsed) / 1_000_000.0
}

/// The `pct`-th percentile (0..=100) of sorted samples, nearest-rank method.
pub fn percentile(sorted: &[u64], pct: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied().unwrap_or(0)
}

/// p50/p90/p99/max/mean of samples, which must be sorted ascending.
pub fn latency_summary(sorted: &[u64]) -> Value {
    let total: u64 = sorted.iter().sum();
    json!({
        "p50": percentile(sorted, 50.0),
        "p90": percentile(sorted, 90.0),
        "p99": percentile(sorted, 99.0),
        "max": sorted.last().copied().unwrap_or(0),
        "mean": round3(total as f64 / sorted.len().max(1) as f64),
    })
}

/// Rounds for printing: benchmark noise makes more than 3 decimals meaningless.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), 50);
        assert_eq!(percentile(&samples, 99.0), 99);
        assert_eq!(percentile(&samples, 100.0), 100);
        assert_eq!(percentile(&samples, 0.0), 1);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn rates_of_an_empty_interval_are_zero() {
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
        assert_eq!(megabytes_per_second(2_000_000, Duration::from_secs(2)), 1.0);
    }
}
