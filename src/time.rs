//! Everything about time, in UTC only: the `--since/--until` forms, reading
//! the vendors' timestamp spellings, and the day granularity the vendors'
//! date filters use. Nothing here reads the machine's local zone.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use crate::error::{Error, Result};

/// Which end of a range a `WHEN` is for: a bare date means the start of that
/// UTC day for `--since` and its last instant for `--until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Since,
    Until,
}

/// Parses `YYYY-MM-DD`, an RFC 3339 timestamp, or a span back from `now`
/// (`90m`, `36h`, `7d`, `2w`).
pub fn parse_when(text: &str, bound: Bound, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let text = text.trim();
    let flag = match bound {
        Bound::Since => "--since",
        Bound::Until => "--until",
    };
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && text.len() == 10
    {
        return Ok(match bound {
            Bound::Since => start_of_day(day),
            Bound::Until => start_of_day(day) + Duration::days(1) - Duration::nanoseconds(1),
        });
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(span) = parse_span(text) {
        return now
            .checked_sub_signed(span)
            .ok_or_else(|| Error::usage(format!("{flag} {text}: span reaches too far back")));
    }
    Err(Error::usage(format!("{flag} {text:?} is not a date"))
        .with_hint("use YYYY-MM-DD (a UTC day), an RFC 3339 time like 2025-01-15T10:30:00Z, or a span back from now like 90m, 36h, 7d, 2w"))
}

fn parse_span(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let amount: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    if amount < 0 {
        return None;
    }
    match unit {
        'm' => Duration::try_minutes(amount),
        'h' => Duration::try_hours(amount),
        'd' => Duration::try_days(amount),
        'w' => Duration::try_weeks(amount),
        _ => None,
    }
}

pub fn start_of_day(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// Reads a vendor timestamp: RFC 3339 with `Z` or an offset (converted to
/// UTC), or a zone-less `YYYY-MM-DD HH:MM:SS[.fff]` / `T`-separated form read
/// as UTC, or a bare date. Anything else is `None`; callers keep the
/// original text in `fields.created_at_raw`.
pub fn parse_vendor_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = crate::model::trim_text(text);
    if text.is_empty() {
        return None;
    }
    if let Some(t) = parse_fixed_layout(text) {
        return Some(t);
    }
    parse_with_chrono(text)
}

/// The layouts vendors actually send, `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}]`
/// then nothing (UTC), `Z`, `±HH:MM` or `±HHMM`, read byte by byte: chrono's
/// format strings, tried in turn, cost a sixth of a Robofy export. Anything
/// else (a leap second, lower-case separators, more than nine fraction
/// digits) is `None` and goes to chrono; the tests check both agree.
fn parse_fixed_layout(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let digit = |at: usize| -> Option<u32> {
        let d = b[at].wrapping_sub(b'0');
        (d < 10).then_some(u32::from(d))
    };
    // Digit by digit, not by folding over a slice: this runs for every
    // record, and the fold (a slice and a closure per field) was 155
    // instructions of a Chatzuri lead. A function the compiler must
    // inline: as a closure it stayed a call, seven per timestamp.
    #[inline(always)]
    fn two_digits(b: &[u8], at: usize) -> Option<u32> {
        let tens = b[at].wrapping_sub(b'0');
        let ones = b[at + 1].wrapping_sub(b'0');
        (tens < 10 && ones < 10).then_some(u32::from(tens) * 10 + u32::from(ones))
    }
    let two = |at: usize| two_digits(b, at);
    let number = |from: usize, to: usize| -> Option<u32> {
        (from..to).try_fold(0u32, |n, at| Some(n * 10 + digit(at)?))
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (two(0)? * 100 + two(2)?, two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let mut at = 19;
    let mut nanos = 0u32;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = number(at + 1, at + 1 + digits)? * 10u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let offset_seconds: i64 = match &b[at..] {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let hours = i64::from(h1 - b'0') * 10 + i64::from(h2 - b'0');
            let minutes = i64::from(m1 - b'0') * 10 + i64::from(m2 - b'0');
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let local = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?;
    if second > 59 {
        return None;
    }
    let utc = match offset_seconds {
        0 => local,
        _ => local.checked_sub_signed(Duration::seconds(offset_seconds))?,
    };
    Some(Utc.from_utc_datetime(&utc))
}

/// Every layout `parse_vendor_timestamp` reads, through chrono. Public for
/// the parser benchmark (`benches/parsers.rs`).
#[doc(hidden)]
pub fn parse_with_chrono(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // RFC 3339 with a space instead of `T`, and an offset.
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    if text.len() == 10
        && let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
    {
        return Some(start_of_day(day));
    }
    None
}

/// The earliest and latest days sent to a vendor's date filter.
pub const FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
pub const LAST_DAY: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();

/// The earliest and latest years a numeric timestamp may fall in. A number
/// outside them was almost certainly read in the wrong unit (or is not a
/// time at all), and taking it at face value would put a record in 1969 or
/// in the year 50000, where it would become an incremental run's bookmark.
const EPOCH_YEARS: std::ops::RangeInclusive<i32> = 1970..=2200;

/// Reads a number as Unix time, choosing the unit by magnitude: below 10^11
/// seconds, below 10^14 milliseconds, below 10^17 microseconds. Each unit
/// covers 1970 to beyond 2200 on its own, so for any time in range the
/// choice is unambiguous. A result outside the years 1970-2200 is `None`.
pub fn parse_epoch_number(n: i64) -> Option<DateTime<Utc>> {
    let t = match n.unsigned_abs() {
        0..100_000_000_000 => DateTime::from_timestamp(n, 0),
        100_000_000_000..100_000_000_000_000 => DateTime::from_timestamp_millis(n),
        100_000_000_000_000..100_000_000_000_000_000 => DateTime::from_timestamp_micros(n),
        _ => None,
    }?;
    in_epoch_years(t)
}

/// The same rule for a number with a fraction (`1736937000.25`): the unit
/// by magnitude, the fraction kept to the microsecond.
pub fn parse_epoch_float(x: f64) -> Option<DateTime<Utc>> {
    if !x.is_finite() {
        return None;
    }
    let micros_per_unit = match x.abs() {
        a if a < 1e11 => 1e6,
        a if a < 1e14 => 1e3,
        a if a < 1e17 => 1.0,
        _ => return None,
    };
    let micros = (x * micros_per_unit).round();
    if micros.abs() >= 9.0e18 {
        return None;
    }
    in_epoch_years(DateTime::from_timestamp_micros(micros as i64)?)
}

fn in_epoch_years(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    EPOCH_YEARS.contains(&t.year()).then_some(t)
}

/// A day range for the vendors' `YYYY-MM-DD` filters, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayRange {
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

impl DayRange {
    /// The whole UTC days that cover `[since, until]`. The exact bounds are
    /// re-applied on the client, so the range only has to be wide enough.
    /// Both ends are clamped to the days a vendor can be asked for: valid
    /// extreme bounds (`--until 9999-12-31` widened by a day, `--since
    /// 0001-01-01` narrowed by one) would otherwise be sent as malformed
    /// dates, and no record predates 1970.
    pub fn covering(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> DayRange {
        let clamp = |t: DateTime<Utc>| t.date_naive().clamp(FIRST_DAY, LAST_DAY);
        DayRange {
            start: since.map(clamp),
            end: until.map(clamp),
        }
    }

    pub fn start_text(&self) -> Option<String> {
        self.start.map(format_day)
    }

    pub fn end_text(&self) -> Option<String> {
        self.end.map(format_day)
    }
}

/// Zero-padded `YYYY-MM-DD` (the vendors reject `2023-7-10`).
pub fn format_day(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-by-byte reader agrees with chrono on every layout it takes,
    /// and leaves the rest to it.
    #[test]
    fn the_fixed_layout_reader_agrees_with_chrono() {
        let mut checked = 0;
        for date in [
            "2025-01-15",
            "2024-02-29",
            "2025-02-30",
            "1999-12-31",
            "2025-13-01",
        ] {
            for sep in ["T", " ", "t"] {
                for time in [
                    "10:30:00", "00:00:00", "23:59:59", "24:00:00", "10:60:00", "23:59:60",
                ] {
                    for fraction in [
                        "",
                        ".5",
                        ".123",
                        ".123456",
                        ".123456789",
                        ".1234567891",
                        ".",
                    ] {
                        for zone in [
                            "", "Z", "z", "+08:00", "-08:00", "+0530", "-0000", "+24:00", "+08:60",
                            " ", "+8:00",
                        ] {
                            let text = format!("{date}{sep}{time}{fraction}{zone}");
                            let fast = parse_fixed_layout(&text);
                            if fast.is_some() {
                                checked += 1;
                                assert_eq!(fast, parse_with_chrono(&text), "{text}");
                            }
                            assert_eq!(
                                parse_vendor_timestamp(&text),
                                fast.or_else(|| parse_with_chrono(text.trim())),
                                "{text}"
                            );
                        }
                    }
                }
            }
        }
        assert!(checked > 500, "the fast path took only {checked}");
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn bare_dates_are_whole_utc_days() {
        let since = parse_when("2025-01-15", Bound::Since, now()).unwrap();
        let until = parse_when("2025-01-15", Bound::Until, now()).unwrap();
        assert_eq!(since.to_rfc3339(), "2025-01-15T00:00:00+00:00");
        assert_eq!(until, since + Duration::days(1) - Duration::nanoseconds(1));
    }

    #[test]
    fn rfc3339_offsets_convert_to_utc() {
        let t = parse_when("2025-01-15T10:30:00-08:00", Bound::Since, now()).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2025, 1, 15, 18, 30, 0).unwrap());
    }

    #[test]
    fn spans_count_back_from_now() {
        assert_eq!(
            parse_when("90m", Bound::Since, now()).unwrap(),
            now() - Duration::minutes(90)
        );
        assert_eq!(
            parse_when("36h", Bound::Since, now()).unwrap(),
            now() - Duration::hours(36)
        );
        assert_eq!(
            parse_when("7d", Bound::Since, now()).unwrap(),
            now() - Duration::days(7)
        );
        assert_eq!(
            parse_when("2w", Bound::Until, now()).unwrap(),
            now() - Duration::weeks(2)
        );
    }

    #[test]
    fn nonsense_is_a_usage_error() {
        for bad in ["yesterday", "2025-13-01", "7y", "", "-3d", "2025-1-5"] {
            let err = parse_when(bad, Bound::Since, now()).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Usage, "{bad}");
        }
    }

    #[test]
    fn vendor_timestamps_in_every_spelling() {
        let cases = [
            (
                "2023-11-23T18:36:21.512302-08:00",
                "2023-11-24T02:36:21.512302Z",
            ),
            ("2023-11-21T16:22:42.264484Z", "2023-11-21T16:22:42.264484Z"),
            ("2025-01-15 10:30:00", "2025-01-15T10:30:00.000000Z"),
            ("2025-01-15T10:30:00", "2025-01-15T10:30:00.000000Z"),
            ("2024-01-01T12:00:00Z", "2024-01-01T12:00:00.000000Z"),
            ("2025-01-15 10:30:00+02:00", "2025-01-15T08:30:00.000000Z"),
            ("2025-01-15", "2025-01-15T00:00:00.000000Z"),
        ];
        for (input, expected) in cases {
            let t = parse_vendor_timestamp(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(crate::model::format_timestamp(&t), expected, "{input}");
        }
        assert_eq!(parse_vendor_timestamp("last tuesday"), None);
        assert_eq!(parse_vendor_timestamp(""), None);
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn epoch_numbers_pick_seconds_milliseconds_or_microseconds_by_magnitude() {
        let at = utc(2025, 1, 15, 10, 30, 0);
        assert_eq!(parse_epoch_number(1_736_937_000), Some(at));
        assert_eq!(
            parse_epoch_number(1_736_937_000_123),
            Some(at + Duration::milliseconds(123))
        );
        assert_eq!(
            parse_epoch_number(1_736_937_000_123_456),
            Some(at + Duration::microseconds(123_456))
        );
        // Each boundary: just below it is the smaller unit (far beyond 2200,
        // so refused), at it the larger one (early 1973).
        let early_1973 = utc(1973, 3, 3, 9, 46, 40);
        assert_eq!(parse_epoch_number(99_999_999_999), None);
        assert_eq!(parse_epoch_number(100_000_000_000), Some(early_1973));
        assert_eq!(parse_epoch_number(99_999_999_999_999), None);
        assert_eq!(parse_epoch_number(100_000_000_000_000), Some(early_1973));
        assert_eq!(parse_epoch_number(99_999_999_999_999_999), None);
        assert_eq!(parse_epoch_number(100_000_000_000_000_000), None);
        assert_eq!(parse_epoch_number(i64::MAX), None);
        assert_eq!(parse_epoch_number(i64::MIN), None);
    }

    #[test]
    fn epoch_numbers_outside_1970_to_2200_are_unparseable() {
        let first = utc(1970, 1, 1, 0, 0, 0);
        let last = utc(2200, 12, 31, 23, 59, 59);
        assert_eq!(parse_epoch_number(0), Some(first));
        assert_eq!(parse_epoch_number(-1), None);
        assert_eq!(parse_epoch_number(last.timestamp()), Some(last));
        assert_eq!(parse_epoch_number(last.timestamp() + 1), None);
        assert_eq!(
            parse_epoch_number(last.timestamp_millis()),
            Some(last),
            "milliseconds up to the end of 2200"
        );
        assert_eq!(parse_epoch_number(last.timestamp_millis() + 1000), None);
        assert_eq!(parse_epoch_number(last.timestamp_micros()), Some(last));
        assert_eq!(
            parse_epoch_number(last.timestamp_micros() + 1_000_000),
            None
        );
        // A year-2999 lead in seconds is in range of nothing.
        assert_eq!(
            parse_epoch_number(utc(2999, 1, 1, 0, 0, 0).timestamp()),
            None
        );
    }

    #[test]
    fn epoch_floats_follow_the_same_rule_and_keep_the_fraction() {
        let at = utc(2025, 1, 15, 10, 30, 0);
        assert_eq!(
            parse_epoch_float(1_736_937_000.25),
            Some(at + Duration::milliseconds(250))
        );
        assert_eq!(
            parse_epoch_float(1_736_937_000_123.0),
            Some(at + Duration::milliseconds(123))
        );
        assert_eq!(parse_epoch_float(99_999_999_999.0), None);
        assert_eq!(
            parse_epoch_float(100_000_000_000.0),
            Some(utc(1973, 3, 3, 9, 46, 40))
        );
        assert_eq!(parse_epoch_float(-0.5), None);
        assert_eq!(parse_epoch_float(f64::NAN), None);
        assert_eq!(parse_epoch_float(f64::INFINITY), None);
        assert_eq!(parse_epoch_float(1e300), None);
    }
}
