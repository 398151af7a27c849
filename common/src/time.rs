//! UTC timestamps as the contract writes them, without a date library.
//!
//! Records use RFC 3339 in UTC (`2026-11-22T03:00:00Z`), remote object names
//! use the compact stamp (`20261122T030000Z`) so that names sort by time,
//! and flags take durations such as `26h` or `7d`. All of it is whole
//! seconds since the Unix epoch underneath; the calendar arithmetic is
//! Howard Hinnant's days-from-civil algorithm.

use anyhow::{Result, bail};
use std::time::{SystemTime, UNIX_EPOCH};

/// A moment in UTC, to the second.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A calendar date and time of day in UTC, as the pieces retention rules
/// and formatting need.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
    /// Hour, 0 to 23.
    pub hour: u32,
    /// Minute, 0 to 59.
    pub minute: u32,
    /// Second, 0 to 59.
    pub second: u32,
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(|e| serde::de::Error::custom(format!("{e:#}")))
    }
}

impl Timestamp {
    /// The current time, truncated to the second.
    pub fn now() -> Timestamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Timestamp(secs)
    }

    /// Builds a timestamp from seconds since the Unix epoch.
    pub fn from_unix(secs: i64) -> Timestamp {
        Timestamp(secs)
    }

    /// Seconds since the Unix epoch.
    pub fn unix(self) -> i64 {
        self.0
    }

    /// The calendar pieces of this moment.
    pub fn civil(self) -> Civil {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// Builds a timestamp from calendar pieces (UTC).
    pub fn from_civil(c: Civil) -> Timestamp {
        let days = days_from_civil(c.year, c.month, c.day);
        Timestamp(days * 86_400 + i64::from(c.hour * 3600 + c.minute * 60 + c.second))
    }

    /// Days since the Unix epoch (for calendar buckets).
    pub fn days(self) -> i64 {
        self.0.div_euclid(86_400)
    }

    /// The ISO 8601 week this moment falls in, as (week-based year, week).
    pub fn iso_week(self) -> (i64, u32) {
        let days = self.days();
        // 1970-01-01 was a Thursday; ISO weeks start on Monday.
        let weekday = (days + 3).rem_euclid(7); // Monday = 0
        let thursday = days - weekday + 3;
        let (year, _, _) = civil_from_days(thursday);
        let jan1 = days_from_civil(year, 1, 1);
        let week = (thursday - jan1) / 7 + 1;
        (year, week as u32)
    }

    /// RFC 3339 in UTC: `2026-11-22T03:00:00Z`.
    pub fn rfc3339(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// The compact stamp used in object names: `20261122T030000Z`.
    pub fn stamp(self) -> String {
        let c = self.civil();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// Parses RFC 3339 (`2026-11-22T03:00:00Z`, fractions and offsets
    /// allowed, a space in place of `T` too), converting to UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp> {
        let bad = || {
            anyhow::anyhow!("invalid time {text:?}: expected RFC 3339 like 2026-11-22T03:00:00Z")
        };
        let b = text.trim().as_bytes();
        if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') {
            return Err(bad());
        }
        let date = parse_date_bytes(&b[..10]).ok_or_else(bad)?;
        if b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let hour = digits(&b[11..13]).ok_or_else(bad)?;
        let minute = digits(&b[14..16]).ok_or_else(bad)?;
        let second = digits(&b[17..19]).ok_or_else(bad)?;
        if hour > 23 || minute > 59 || second > 60 {
            return Err(bad());
        }
        let mut rest = &b[19..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(bad());
            }
            rest = &rest[1 + n..];
        }
        let offset = match rest {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let h = digits(&[*h1, *h2]).ok_or_else(bad)?;
                let m = digits(&[*m1, *m2]).ok_or_else(bad)?;
                let secs = i64::from(h * 3600 + m * 60);
                if *sign == b'+' { secs } else { -secs }
            }
            _ => return Err(bad()),
        };
        let base = Timestamp::from_civil(Civil {
            hour,
            minute,
            second: second.min(59),
            ..date
        });
        Ok(Timestamp(base.0 - offset))
    }

    /// Parses a bare date `YYYY-MM-DD` as midnight UTC of that day.
    pub fn parse_date(text: &str) -> Result<Timestamp> {
        match parse_date_bytes(text.trim().as_bytes()) {
            Some(c) if text.trim().len() == 10 => Ok(Timestamp::from_civil(c)),
            _ => bail!("invalid date {text:?}: expected YYYY-MM-DD"),
        }
    }

    /// Parses the compact stamp `20261122T030000Z`.
    pub fn parse_stamp(text: &str) -> Result<Timestamp> {
        let b = text.as_bytes();
        let ok = b.len() == 16 && b[8] == b'T' && b[15] == b'Z';
        let num = |r: std::ops::Range<usize>| if ok { digits(&b[r]) } else { None };
        match (
            num(0..4),
            num(4..6),
            num(6..8),
            num(9..11),
            num(11..13),
            num(13..15),
        ) {
            (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s))
                if (1..=12).contains(&mo)
                    && d >= 1
                    && d <= days_in_month(i64::from(y), mo)
                    && h < 24
                    && mi < 60
                    && s < 60 =>
            {
                Ok(Timestamp::from_civil(Civil {
                    year: i64::from(y),
                    month: mo,
                    day: d,
                    hour: h,
                    minute: mi,
                    second: s,
                }))
            }
            _ => bail!("invalid stamp {text:?}: expected YYYYMMDDTHHMMSSZ"),
        }
    }
}

/// Parses the value of a duration option (`--busy-timeout 5s`): a bad value
/// is a usage error (exit 2) naming the option, the same in every tool.
pub fn duration_option(flag: &str, text: &str) -> Result<i64> {
    parse_duration(text)
        .map_err(|e| crate::exit::fail(crate::exit::Exit::Usage, format!("bad {flag}: {e:#}")))
}

/// Parses a duration such as `90s`, `15m`, `26h`, `7d`, `2w` or `1d12h`
/// into seconds. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<i64> {
    let t = text.trim();
    if t.is_empty() {
        bail!("invalid duration \"\": expected e.g. 26h or 7d");
    }
    if let Ok(secs) = t.parse::<i64>()
        && secs >= 0
    {
        return Ok(secs);
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    for ch in t.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => bail!("invalid duration {text:?}: unknown unit {ch:?} (use s, m, h, d or w)"),
        };
        let n: i64 = number.parse().map_err(|_| {
            anyhow::anyhow!("invalid duration {text:?}: a number must come before {ch:?}")
        })?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| anyhow::anyhow!("invalid duration {text:?}: too large"))?;
        number.clear();
    }
    if !number.is_empty() {
        bail!("invalid duration {text:?}: {number} needs a unit (s, m, h, d or w)");
    }
    Ok(total)
}

/// Formats seconds as the largest whole units, e.g. `1d 2h` or `45m`.
pub fn format_duration(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n != 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

/// Reads an ASCII decimal number of a fixed width.
fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// Reads `YYYY-MM-DD`, checking the day exists in that month.
fn parse_date_bytes(b: &[u8]) -> Option<Civil> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i64::from(digits(&b[..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(Civil {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
    })
}

/// The number of days in a month of the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a civil date (Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = Timestamp::parse_rfc3339("2026-11-22T03:00:01Z").unwrap();
        assert_eq!(t.unix(), 1_795_316_401);
        assert_eq!(t.rfc3339(), "2026-11-22T03:00:01Z");
        assert_eq!(t.stamp(), "20261122T030001Z");
        assert_eq!(Timestamp::parse_stamp("20261122T030001Z").unwrap(), t);
        assert_eq!(Timestamp::from_unix(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2000-02-29T23:59:59Z")
                .unwrap()
                .rfc3339(),
            "2000-02-29T23:59:59Z"
        );
    }

    #[test]
    fn offsets_and_fractions() {
        let t = Timestamp::parse_rfc3339("2026-11-22T04:30:00.123+01:30").unwrap();
        assert_eq!(t.rfc3339(), "2026-11-22T03:00:00Z");
        let t = Timestamp::parse_rfc3339("2026-11-21 23:00:00-04:00").unwrap();
        assert_eq!(t.rfc3339(), "2026-11-22T03:00:00Z");
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-22T03:00:00",
            "yesterday",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert!(Timestamp::parse_stamp("20261322T030001Z").is_err());
        // Days that do not exist are refused everywhere, not rolled over.
        assert!(Timestamp::parse_stamp("20260230T030001Z").is_err());
        assert!(Timestamp::parse_stamp("20250229T000000Z").is_err());
        assert!(Timestamp::parse_stamp("20240229T000000Z").is_ok());
        assert!(Timestamp::parse_stamp("20261131T000000Z").is_err());
        assert!(Timestamp::parse_date("2026-02-30").is_err());
        assert!(Timestamp::parse_date("2026-11-31").is_err());
        assert_eq!(
            Timestamp::parse_date("2026-11-22").unwrap().rfc3339(),
            "2026-11-22T00:00:00Z"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("26h").unwrap(), 93_600);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("1d12h").unwrap(), 129_600);
        assert_eq!(parse_duration("90").unwrap(), 90);
        for bad in ["", "h", "5x", "-3h", "3h5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(93_600), "1d 2h");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn iso_weeks() {
        // 2026-01-01 is a Thursday: week 1 of 2026.
        assert_eq!(
            Timestamp::parse_date("2026-01-01").unwrap().iso_week(),
            (2026, 1)
        );
        // 2027-01-01 is a Friday: still week 53 of 2026.
        assert_eq!(
            Timestamp::parse_date("2027-01-01").unwrap().iso_week(),
            (2026, 53)
        );
        // 2024-12-30 is a Monday: week 1 of 2025.
        assert_eq!(
            Timestamp::parse_date("2024-12-30").unwrap().iso_week(),
            (2025, 1)
        );
    }
}
