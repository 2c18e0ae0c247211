//! The process's memory and CPU use, read from `/proc` (Linux). Elsewhere they read as 0.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Clock ticks per second in `/proc/<pid>/stat`: `USER_HZ`, fixed at 100 by the Linux ABI.
const USER_HZ: f64 = 100.0;
/// Below this interval the previous CPU figure is reused: a percentage over a few
/// milliseconds is noise.
const MIN_SAMPLE: Duration = Duration::from_millis(500);

/// Resident set size in bytes (`VmRSS` in `/proc/self/status`, which is already in kB, so no
/// page-size lookup is needed).
pub fn resident_memory_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return 0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// User plus system CPU time of the process, in seconds.
pub fn cpu_seconds() -> f64 {
    cpu_ticks().map_or(0.0, |t| t as f64 / USER_HZ)
}

/// `utime + stime` from `/proc/self/stat`. Fields are counted after the `)` that closes the
/// command name, since the name itself may contain spaces.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU use in percent of one core between two `/varz` requests, like nats-server's `cpu`.
#[derive(Default)]
pub struct CpuSampler {
    last: Mutex<Option<Sample>>,
}

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    seconds: f64,
    percent: f64,
}

impl CpuSampler {
    /// `running_for` is how long the server has run: the first request averages over it.
    pub fn percent(&self, running_for: Duration) -> f64 {
        let now = Instant::now();
        let seconds = cpu_seconds();
        let mut last = self.last.lock();
        let percent = match *last {
            Some(prev) if now.duration_since(prev.at) < MIN_SAMPLE => return prev.percent,
            Some(prev) => 100.0 * (seconds - prev.seconds) / now.duration_since(prev.at).as_secs_f64(),
            None => 100.0 * seconds / running_for.as_secs_f64().max(1e-3),
        };
        // One decimal, as nats-server reports it.
        let percent = (percent.max(0.0) * 10.0).round() / 10.0;
        *last = Some(Sample { at: now, seconds, percent });
        percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory_and_cpu_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_memory_bytes() > 1024 * 1024);
            // Burn a little CPU so the tick counter has moved.
            let mut x = 0u64;
            for i in 0..20_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            assert!(x != 1);
            assert!(cpu_seconds() > 0.0);
        }
    }
}
