//! Human-readable sizes and durations for the stderr log.
//!
//! Records carry exact numbers (bytes, seconds); people reading a cron
//! mail want "48.1 MiB" and "0.41 s".

use std::time::Duration;

/// Formats a byte count with binary units, one decimal above KiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Formats an elapsed time as seconds with two decimals.
pub fn human_duration(elapsed: Duration) -> String {
    format!("{:.2} s", elapsed.as_secs_f64())
}

/// An elapsed time for a record's `*_seconds` field: seconds, to the
/// millisecond (finer is noise for a whole snapshot or upload).
pub fn record_seconds(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(50_436_506), "48.1 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_millis(410)), "0.41 s");
        assert_eq!(record_seconds(Duration::from_micros(410_600)), 0.411);
    }
}
