//! The wall clock as the reference backends report it: a fixed offset from UTC (UTC+09:00
//! unless configured), formatted `YYYY/MM/DD` and `HH:MM:SS` like the original's `strftime`.

use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that sets the offset, `+HH:MM` or `-HH:MM` (or `Z` for UTC).
pub const UTC_OFFSET_ENV: &str = "UTC_OFFSET";

/// The original sample's offset: Japan Standard Time.
pub const DEFAULT_UTC_OFFSET_SECONDS: i64 = 9 * 3600;

/// A calendar date and time of day at some fixed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDateTime {
    /// Year, for example 2026.
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

impl LocalDateTime {
    /// The date and time `unix_seconds` after the epoch, shifted by `offset_seconds`.
    pub fn from_unix(unix_seconds: i64, offset_seconds: i64) -> Self {
        let local = unix_seconds + offset_seconds;
        let days = local.div_euclid(86_400);
        let seconds_of_day = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (seconds_of_day / 3600) as u32,
            minute: (seconds_of_day % 3600 / 60) as u32,
            second: (seconds_of_day % 60) as u32,
        }
    }

    /// The current time at the configured offset (see [`offset_from_env`]).
    pub fn now() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self::from_unix(unix, offset_from_env())
    }

    /// `YYYY/MM/DD`.
    pub fn date(&self) -> String {
        format!("{:04}/{:02}/{:02}", self.year, self.month, self.day)
    }

    /// `HH:MM:SS`.
    pub fn time(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

/// The offset named by `UTC_OFFSET`, or UTC+09:00 when it is unset or invalid (an invalid value
/// is reported on stderr once per request, which the host logs).
pub fn offset_from_env() -> i64 {
    match std::env::var(UTC_OFFSET_ENV) {
        Ok(value) => parse_offset(&value).unwrap_or_else(|| {
            eprintln!(
                "{UTC_OFFSET_ENV}={value:?} is not an offset like +09:00, -05:30 or Z; using +09:00"
            );
            DEFAULT_UTC_OFFSET_SECONDS
        }),
        Err(_) => DEFAULT_UTC_OFFSET_SECONDS,
    }
}

/// Parses `+HH:MM`, `-HH:MM`, `+HHMM`, `+HH` or `Z` into seconds east of UTC.
pub fn parse_offset(value: &str) -> Option<i64> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("z") || value.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let (sign, rest) = match value.as_bytes().first()? {
        b'+' => (1, &value[1..]),
        b'-' => (-1, &value[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || !(rest.len() == 2 || digits.len() == 4) {
        return None;
    }
    let hours: i64 = digits.get(0..2)?.parse().ok()?;
    let minutes: i64 = if digits.len() == 4 {
        digits[2..4].parse().ok()?
    } else {
        0
    };
    if hours > 14 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), exact for any `i64` day
/// count the clock can produce. Works in 400-year eras of 146 097 days that start on March 1st,
/// so that the leap day is the last day of an era's year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_1970_01_01_in_utc() {
        let t = LocalDateTime::from_unix(0, 0);
        assert_eq!(
            (t.date(), t.time()),
            ("1970/01/01".into(), "00:00:00".into())
        );
    }

    #[test]
    fn jst_crosses_midnight_before_utc() {
        // 2026-11-24T15:30:05Z is 2026-11-25 00:30:05 in UTC+9.
        let t = LocalDateTime::from_unix(1_795_534_205, DEFAULT_UTC_OFFSET_SECONDS);
        assert_eq!(t.date(), "2026/11/25");
        assert_eq!(t.time(), "00:30:05");
    }

    #[test]
    fn leap_days_and_negative_offsets() {
        // 2024-02-29T23:59:59Z
        let t = LocalDateTime::from_unix(1_709_251_199, 0);
        assert_eq!(
            (t.date(), t.time()),
            ("2024/02/29".into(), "23:59:59".into())
        );
        // 2000-03-01T02:00:00Z at -05:00 is still Feb 29th of a leap century.
        let t = LocalDateTime::from_unix(951_876_000, -5 * 3600);
        assert_eq!(
            (t.date(), t.time()),
            ("2000/02/29".into(), "21:00:00".into())
        );
        // Before the epoch.
        let t = LocalDateTime::from_unix(-1, 0);
        assert_eq!(
            (t.date(), t.time()),
            ("1969/12/31".into(), "23:59:59".into())
        );
    }

    #[test]
    fn every_day_of_four_centuries_round_trips_through_the_calendar() {
        let mut expected = (1970_i64, 1_u32, 1_u32);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), expected, "day {days}");
            let (y, m, d) = expected;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expected = if d < month_len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn offsets_parse_in_the_usual_forms() {
        assert_eq!(parse_offset("+09:00"), Some(32_400));
        assert_eq!(parse_offset("-05:30"), Some(-19_800));
        assert_eq!(parse_offset("+0530"), Some(19_800));
        assert_eq!(parse_offset("+02"), Some(7_200));
        assert_eq!(parse_offset("Z"), Some(0));
        for bad in ["", "9", "+9:00", "+25:00", "+09:60", "JST", "+0a:00"] {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
    }
}
