//! UTC timestamps as the contract writes them, over the `time` crate.
//!
//! Records use RFC 3339 in UTC (`2026-11-22T03:00:00Z`), remote object names
//! use the compact stamp (`20261122T030000Z`) so that names sort by time,
//! and flags take durations such as `26h` or `7d`. All of it is whole
//! seconds since the Unix epoch underneath; the calendar (days in a month,
//! leap years, ISO weeks, offsets) is the `time` crate's, which refuses a
//! day that does not exist instead of rolling it over. What stays here is
//! our own syntax: the stamp and the duration units.

use anyhow::{Result, bail};
use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

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

    /// This moment in the `time` crate's terms. Every timestamp we make
    /// comes from a parse or the clock, inside its range (years 1 to
    /// 9999); anything beyond is pinned to that range's ends.
    fn moment(self) -> OffsetDateTime {
        let secs = self.0.clamp(
            PrimitiveDateTime::MIN.assume_utc().unix_timestamp(),
            PrimitiveDateTime::MAX.assume_utc().unix_timestamp(),
        );
        OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The calendar pieces of this moment.
    pub fn civil(self) -> Civil {
        let m = self.moment();
        Civil {
            year: i64::from(m.year()),
            month: u32::from(u8::from(m.month())),
            day: u32::from(m.day()),
            hour: u32::from(m.hour()),
            minute: u32::from(m.minute()),
            second: u32::from(m.second()),
        }
    }

    /// Days since the Unix epoch (for calendar buckets).
    pub fn days(self) -> i64 {
        self.0.div_euclid(86_400)
    }

    /// The ISO 8601 week this moment falls in, as (week-based year, week).
    pub fn iso_week(self) -> (i64, u32) {
        let (year, week, _) = self.moment().to_iso_week_date();
        (i64::from(year), u32::from(week))
    }

    /// RFC 3339 in UTC: `2026-11-22T03:00:00Z`.
    pub fn rfc3339(self) -> String {
        self.format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
    }

    /// The compact stamp used in object names: `20261122T030000Z`.
    pub fn stamp(self) -> String {
        self.format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
    }

    fn format(self, how: &[time::format_description::BorrowedFormatItem<'_>]) -> String {
        self.moment()
            .format(how)
            .expect("a UTC moment in years 1 to 9999 formats")
    }

    /// Parses RFC 3339 (`2026-11-22T03:00:00Z`, fractions and offsets
    /// allowed, a space in place of `T` too), converting to UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp> {
        let bad = || {
            anyhow::anyhow!("invalid time {text:?}: expected RFC 3339 like 2026-11-22T03:00:00Z")
        };
        let mut t = text.trim().to_string();
        if t.as_bytes().get(10) == Some(&b' ') {
            t.replace_range(10..11, "T");
        }
        let parsed = OffsetDateTime::parse(&t, &Rfc3339).map_err(|_| bad())?;
        Ok(Timestamp(parsed.unix_timestamp()))
    }

    /// Parses a bare date `YYYY-MM-DD` as midnight UTC of that day.
    pub fn parse_date(text: &str) -> Result<Timestamp> {
        match Date::parse(text.trim(), format_description!("[year]-[month]-[day]")) {
            Ok(date) => Ok(Timestamp(date.midnight().assume_utc().unix_timestamp())),
            Err(_) => bail!("invalid date {text:?}: expected YYYY-MM-DD"),
        }
    }

    /// Parses the compact stamp `20261122T030000Z`.
    pub fn parse_stamp(text: &str) -> Result<Timestamp> {
        let how = format_description!("[year][month][day]T[hour][minute][second]Z");
        match PrimitiveDateTime::parse(text, how) {
            // Exactly the 16 characters we write: no sign, no wider year.
            Ok(moment) if text.len() == 16 && text.as_bytes()[0].is_ascii_digit() => {
                Ok(Timestamp(moment.assume_utc().unix_timestamp()))
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
/// into seconds. A bare number other than 0 is refused: `--max-age 26`
/// meant hours far more often than 26 seconds.
pub fn parse_duration(text: &str) -> Result<i64> {
    let t = text.trim();
    if t.is_empty() {
        bail!("invalid duration \"\": expected e.g. 26h or 7d");
    }
    if t == "0" {
        return Ok(0);
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
        assert_eq!(parse_duration("0").unwrap(), 0);
        for bad in ["", "h", "5x", "-3h", "3h5", "90", "26"] {
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
