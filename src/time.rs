//! Time formatting without a calendar dependency.

/// Formats seconds since the Unix epoch as RFC 3339 UTC with nanoseconds
/// (`2026-11-27T12:00:00.123456789Z`), the form nats-server's JSON uses.
pub fn format_rfc3339(epoch_secs: f64) -> String {
    let secs = epoch_secs.floor() as i64;
    let nanos = ((epoch_secs - secs as f64) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    format_rfc3339_parts(secs, nanos)
}

/// Formats whole seconds and nanoseconds since the epoch.
pub fn format_rfc3339_parts(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_parts(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_rfc3339_parts(1_795_782_896, 5), "2026-11-27T12:34:56.000000005Z");
        assert_eq!(format_rfc3339_parts(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }
}
