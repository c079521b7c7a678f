//! Instants as milliseconds since the Unix epoch, read from and written as RFC 3339 (the form of JavaScript's
//! `Date.prototype.toISOString`), without reading any clock.

use crate::ErrorCode;
use std::fmt;

/// 0000-01-01T00:00:00.000Z, the earliest instant with a four-digit year.
const MIN_MILLIS: i64 = -62_167_219_200_000;
/// 9999-12-31T23:59:59.999Z, the latest instant with a four-digit year.
const MAX_MILLIS: i64 = 253_402_300_799_999;
const MILLIS_PER_DAY: i64 = 86_400_000;

/// An instant, in whole milliseconds since 1970-01-01T00:00:00Z, between the years 0000 and 9999.
///
/// Millisecond precision is what JavaScript dates carry; finer fractions in parsed text are truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// 1970-01-01T00:00:00.000Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The instant `millis` milliseconds after the Unix epoch (negative: before it).
    pub fn from_unix_millis(millis: i64) -> Result<Self, TimestampError> {
        if !(MIN_MILLIS..=MAX_MILLIS).contains(&millis) {
            return Err(TimestampError::OutOfRange);
        }
        Ok(Timestamp(millis))
    }

    /// The instant from a JavaScript time value such as `Date.now()`; fractions of a millisecond are dropped.
    pub fn from_js_time(millis: f64) -> Result<Self, TimestampError> {
        if !millis.is_finite() {
            return Err(TimestampError::OutOfRange);
        }
        let whole = millis.floor();
        if whole < MIN_MILLIS as f64 || whole > MAX_MILLIS as f64 {
            return Err(TimestampError::OutOfRange);
        }
        // In range and whole: the cast is exact.
        Ok(Timestamp(whole as i64))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `millis` milliseconds, or `None` past the year 9999.
    pub fn checked_add_millis(self, millis: i64) -> Option<Timestamp> {
        self.0.checked_add(millis).and_then(|sum| Timestamp::from_unix_millis(sum).ok())
    }

    /// Parses RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. The separator may be `T`, `t` or a space
    /// and `Z` may be lower case, as RFC 3339 allows. A date without a time or a time without an offset is
    /// refused: the instant it names would depend on the reader's time zone.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampError> {
        let invalid = || TimestampError::Invalid { text: truncate_for_message(text) };
        let bytes = text.as_bytes();
        if bytes.len() < 20 {
            return Err(invalid());
        }
        let year = digits(bytes, 0, 4).ok_or_else(invalid)?;
        let month = digits(bytes, 5, 2).ok_or_else(invalid)?;
        let day = digits(bytes, 8, 2).ok_or_else(invalid)?;
        let hour = digits(bytes, 11, 2).ok_or_else(invalid)?;
        let minute = digits(bytes, 14, 2).ok_or_else(invalid)?;
        let second = digits(bytes, 17, 2).ok_or_else(invalid)?;
        let separators_ok = bytes[4] == b'-'
            && bytes[7] == b'-'
            && matches!(bytes[10], b'T' | b't' | b' ')
            && bytes[13] == b':'
            && bytes[16] == b':';
        if !separators_ok {
            return Err(invalid());
        }
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(invalid());
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(invalid());
        }

        let mut position = 19;
        let mut millis_of_second = 0;
        if bytes[position] == b'.' {
            position += 1;
            let start = position;
            while position < bytes.len() && bytes[position].is_ascii_digit() {
                if position - start < 3 {
                    millis_of_second = millis_of_second * 10 + i64::from(bytes[position] - b'0');
                }
                position += 1;
            }
            let fraction_digits = position - start;
            if fraction_digits == 0 {
                return Err(invalid());
            }
            for _ in fraction_digits..3 {
                millis_of_second *= 10;
            }
        }

        let offset_minutes = match &bytes[position..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let offset_hours = digits(bytes, position + 1, 2).ok_or_else(invalid)?;
                let offset_mins = digits(bytes, position + 4, 2).ok_or_else(invalid)?;
                if offset_hours > 23 || offset_mins > 59 {
                    return Err(invalid());
                }
                let magnitude = offset_hours * 60 + offset_mins;
                if *sign == b'-' { -magnitude } else { magnitude }
            }
            _ => return Err(invalid()),
        };

        let days = days_from_civil(year, month, day);
        let local_millis = days * MILLIS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis_of_second;
        Timestamp::from_unix_millis(local_millis - offset_minutes * 60_000)
    }

    /// This instant as RFC 3339 in UTC with milliseconds, exactly as `Date.prototype.toISOString` writes it.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(MILLIS_PER_DAY);
        let millis_of_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let seconds_of_day = millis_of_day / 1000;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            seconds_of_day / 3600,
            seconds_of_day / 60 % 60,
            seconds_of_day % 60,
            millis_of_day % 1000
        )
    }
}

/// Why a text or number is not a [`Timestamp`]. Code: `invalid_date`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("{text:?} is not an RFC 3339 date-time such as 2026-11-24T10:00:00.000Z")]
    Invalid { text: String },
    #[error("the date is outside the years 0000 to 9999")]
    OutOfRange,
}

impl ErrorCode for TimestampError {
    fn code(&self) -> &'static str {
        "invalid_date"
    }
}

/// Error messages quote at most this much of the text they refuse, so a huge input cannot make a huge message.
fn truncate_for_message(text: &str) -> String {
    const LIMIT: usize = 64;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// The decimal number written with exactly `count` ASCII digits at `start`, or `None`.
fn digits(bytes: &[u8], start: usize, count: usize) -> Option<i64> {
    let slice = bytes.get(start..start + count)?;
    slice.iter().try_fold(0_i64, |value, &byte| byte.is_ascii_digit().then(|| value * 10 + i64::from(byte - b'0')))
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
///
/// Counts in 400-year eras of 146,097 days whose years start on March 1st, so that the leap day is the last
/// day of its year and the day of the year follows from the month by a linear formula.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let march_based_year = if month <= 2 { year - 1 } else { year };
    let era = march_based_year.div_euclid(400);
    let year_of_era = march_based_year.rem_euclid(400);
    let march_based_month = (month + 9) % 12; // March = 0 ... February = 11
    let day_of_year = (153 * march_based_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719,468 days separate 0000-03-01 (day 0 of era 0) from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` days after 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days_since_era_zero = days + 719_468;
    let era = days_since_era_zero.div_euclid(146_097);
    let day_of_era = days_since_era_zero.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_based_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_based_month + 2) / 5 + 1;
    let month = if march_based_month < 10 { march_based_month + 3 } else { march_based_month - 9 };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> i64 {
        Timestamp::parse_rfc3339(text).expect("valid RFC 3339").unix_millis()
    }

    #[test]
    fn the_epoch_and_known_instants_parse_to_their_unix_milliseconds() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), 0);
        assert_eq!(parse("1970-01-01T00:00:00.001Z"), 1);
        assert_eq!(parse("2000-02-29T12:00:00Z"), 951_825_600_000);
        assert_eq!(parse("2026-11-24T10:00:00.000Z"), 1_795_514_400_000);
        assert_eq!(parse("1969-12-31T23:59:59.999Z"), -1);
        assert_eq!(parse("0000-01-01T00:00:00Z"), MIN_MILLIS);
        assert_eq!(parse("9999-12-31T23:59:59.999Z"), MAX_MILLIS);
    }

    #[test]
    fn offsets_lower_case_separators_and_long_fractions_are_understood() {
        assert_eq!(parse("2026-11-24T11:00:00+01:00"), parse("2026-11-24T10:00:00Z"));
        assert_eq!(parse("2026-11-24T05:30:00-04:30"), parse("2026-11-24T10:00:00Z"));
        assert_eq!(parse("2026-11-24t10:00:00z"), parse("2026-11-24T10:00:00Z"));
        assert_eq!(parse("2026-11-24 10:00:00Z"), parse("2026-11-24T10:00:00Z"));
        assert_eq!(parse("2026-11-24T10:00:00.5Z"), parse("2026-11-24T10:00:00.500Z"));
        assert_eq!(parse("2026-11-24T10:00:00.123456789Z"), parse("2026-11-24T10:00:00.123Z"));
    }

    #[test]
    fn dates_that_do_not_exist_or_are_not_rfc_3339_are_refused() {
        for text in [
            "",
            "2026-11-24",
            "2026-11-24T10:00:00",
            "2026-02-29T10:00:00Z",
            "1900-02-29T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-11-31T10:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T10:60:00Z",
            "2026-11-24T10:00:60Z",
            "2026-11-24T10:00:00.Z",
            "2026-11-24T10:00:00+1:00",
            "2026-11-24T10:00:00+24:00",
            "2026-11-24T10:00:00Zjunk",
            "2026/11/24T10:00:00Z",
            "+2026-11-24T10:00:00Z",
            "tomorrow at noon please",
            "２026-11-24T10:00:00Z",
        ] {
            let error = Timestamp::parse_rfc3339(text).expect_err(text);
            assert_eq!(error.code(), "invalid_date", "{text}");
        }
    }

    #[test]
    fn an_offset_that_moves_an_instant_before_year_zero_is_out_of_range() {
        assert_eq!(Timestamp::parse_rfc3339("0000-01-01T00:00:00+01:00"), Err(TimestampError::OutOfRange));
    }

    #[test]
    fn messages_quote_at_most_64_characters_of_the_refused_text() {
        let long = "x".repeat(10_000);
        let message = Timestamp::parse_rfc3339(&long).expect_err("not a date").to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn timestamps_are_written_like_to_iso_string() {
        let instant = Timestamp::from_unix_millis(1_795_514_400_123).expect("in range");
        assert_eq!(instant.to_rfc3339(), "2026-11-24T10:00:00.123Z");
        assert_eq!(Timestamp::from_unix_millis(-1).expect("in range").to_rfc3339(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn javascript_time_values_drop_fractions_and_refuse_non_finite_values() {
        assert_eq!(Timestamp::from_js_time(1.9).map(Timestamp::unix_millis), Ok(1));
        assert_eq!(Timestamp::from_js_time(f64::NAN), Err(TimestampError::OutOfRange));
        assert_eq!(Timestamp::from_js_time(1e300), Err(TimestampError::OutOfRange));
    }

    proptest! {
        #[test]
        fn writing_then_parsing_gives_back_the_same_instant(millis in MIN_MILLIS..=MAX_MILLIS) {
            let instant = Timestamp::from_unix_millis(millis).expect("in range");
            prop_assert_eq!(Timestamp::parse_rfc3339(&instant.to_rfc3339()), Ok(instant));
        }

        #[test]
        fn civil_dates_and_day_counts_are_inverse(days in -719_528_i64..=2_932_896) {
            let (year, month, day) = civil_from_days(days);
            prop_assert!((1..=12).contains(&month));
            prop_assert!(day >= 1 && day <= days_in_month(year, month));
            prop_assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
