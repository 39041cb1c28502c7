//! Dates and times in mappings: reading an upstream's instants (RFC 3339, Unix seconds,
//! dates, strftime patterns in a time zone) and writing them the platform's way; patterns are
//! checked on save against sample instants.
use chrono::{
    format::{Item, ParseErrorKind, Parsed, StrftimeItems},
    DateTime, SecondsFormat, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde_json::Value;

use std::fmt::Write as _;

use super::{render, type_name};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum TimeFormat<'a> {
    Rfc3339,
    Unix,
    Date,
    Pattern(&'a str),
}

impl<'a> TimeFormat<'a> {
    pub(super) fn of(s: &'a str) -> TimeFormat<'a> {
        match s {
            "rfc3339" => TimeFormat::Rfc3339,
            "unix" => TimeFormat::Unix,
            "date" => TimeFormat::Date,
            p => TimeFormat::Pattern(p),
        }
    }
}

pub(super) fn zone(name: Option<&str>) -> Result<Tz, String> {
    match name {
        None => Ok(Tz::UTC),
        Some(n) => n
            .parse::<Tz>()
            .map_err(|_| format!("unknown time zone \"{n}\"")),
    }
}

pub(super) fn read_datetime(
    v: &Value,
    from: TimeFormat<'_>,
    tz: Tz,
) -> Result<DateTime<Utc>, String> {
    let text = || match v {
        Value::String(s) => Ok(s.as_str()),
        other => Err(format!(
            "expected a date/time string, got {}",
            type_name(other)
        )),
    };
    match from {
        TimeFormat::Unix => read_unix(v),
        TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(text()?.trim())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| format!("{} is not RFC 3339: {e}", render(v))),
        TimeFormat::Date => parse_with_pattern(text()?, "%Y-%m-%d", tz),
        TimeFormat::Pattern(p) => parse_with_pattern(text()?, p, tz),
    }
}

pub(super) fn read_unix(v: &Value) -> Result<DateTime<Utc>, String> {
    let secs = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        other => return Err(format!("expected unix seconds, got {}", type_name(other))),
    }
    .filter(|f| f.is_finite())
    .ok_or_else(|| format!("not unix seconds: {}", render(v)))?;
    let whole = secs.floor();
    let nanos = (((secs - whole) * 1e9).round() as u32).min(999_999_999);
    DateTime::from_timestamp(whole as i64, nanos)
        .ok_or_else(|| format!("unix seconds out of range: {}", render(v)))
}

/// With an offset in the pattern the input is an instant; without, a wall-clock time in `tz`
/// (midnight when the pattern has no time).
pub(super) fn parse_with_pattern(s: &str, pattern: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let fail = |e: chrono::ParseError| format!("\"{s}\" does not match \"{pattern}\": {e}");
    // One parse, then read as an instant, a wall-clock time or a date, whichever the pattern
    // gave enough for.
    let mut parsed = Parsed::new();
    match pattern_items(pattern) {
        Some(items) => chrono::format::parse(&mut parsed, s, items.iter()),
        None => chrono::format::parse(&mut parsed, s, StrftimeItems::new(pattern)),
    }
    .map_err(fail)?;
    match parsed.to_datetime() {
        Ok(d) => return Ok(d.with_timezone(&Utc)),
        Err(e) if e.kind() != ParseErrorKind::NotEnough => return Err(fail(e)),
        Err(_) => {}
    }
    let naive = match parsed.to_naive_datetime_with_offset(0) {
        Ok(n) => n,
        Err(e) if e.kind() != ParseErrorKind::NotEnough => return Err(fail(e)),
        Err(_) => parsed
            .to_naive_date()
            .map_err(fail)?
            .and_time(chrono::NaiveTime::MIN),
    };
    // A repeated wall-clock hour (DST end) takes its first occurrence; a skipped one is refused.
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| format!("{naive} does not exist in {tz} (a daylight-saving gap)"))
}

/// A pattern split into chrono's items, once per thread: a mapping applies the same few
/// patterns to every record, and splitting the pattern again each time was the largest single
/// cost of mapping a page (perf, `scripts/bench sync`). `None` for a pattern chrono refuses.
pub(super) fn pattern_items(pattern: &str) -> Option<std::rc::Rc<[Item<'static>]>> {
    type Cache = std::collections::HashMap<String, Option<std::rc::Rc<[Item<'static>]>>>;
    thread_local! {
        static PATTERNS: std::cell::RefCell<Cache> = Default::default();
    }
    PATTERNS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(items) = cache.get(pattern) {
            return items.clone();
        }
        // Patterns come from tenants' mappings: keep the cache bounded.
        if cache.len() >= 256 {
            cache.clear();
        }
        let items = StrftimeItems::new(pattern)
            .parse_to_owned()
            .ok()
            .map(std::rc::Rc::from);
        cache.insert(pattern.to_owned(), items.clone());
        items
    })
}

pub(super) fn write_datetime(d: DateTime<Tz>, to: TimeFormat<'_>) -> Result<Value, String> {
    Ok(match to {
        TimeFormat::Rfc3339 => Value::String(d.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        TimeFormat::Unix => Value::from(d.timestamp()),
        TimeFormat::Date => Value::String(d.format("%Y-%m-%d").to_string()),
        TimeFormat::Pattern(p) => Value::String(format_pattern(&d, p)?),
    })
}

/// `DelayedFormat`'s `to_string` panics on a bad pattern; `write!` reports it instead.
pub(super) fn format_pattern(d: &DateTime<Tz>, pattern: &str) -> Result<String, String> {
    let items =
        pattern_items(pattern).ok_or_else(|| format!("invalid strftime pattern \"{pattern}\""))?;
    let mut s = String::new();
    write!(s, "{}", d.format_with_items(items.iter()))
        .map_err(|_| format!("cannot format with \"{pattern}\""))?;
    Ok(s)
}

pub(super) fn sample_instants() -> [DateTime<Tz>; 2] {
    [
        (981_173_106, 789_000_000), // 2001-02-03T04:05:06.789Z
        (1_352_553_255, 0),         // 2012-11-10T13:14:15Z
    ]
    .map(|(secs, nanos)| {
        DateTime::from_timestamp(secs, nanos)
            .unwrap_or_default()
            .with_timezone(&Tz::UTC)
    })
}

/// Usable for output: it formats, and two different instants do not come out the same.
pub(super) fn check_write_pattern(pattern: &str) -> Result<(), String> {
    let [a, b] = sample_instants();
    let (a, b) = (format_pattern(&a, pattern)?, format_pattern(&b, pattern)?);
    if a == b {
        return Err(format!("\"{pattern}\" has no date or time fields"));
    }
    Ok(())
}

/// Usable for input: also, what it writes it can read back as a date.
pub(super) fn check_read_pattern(pattern: &str) -> Result<(), String> {
    check_write_pattern(pattern)?;
    let [a, _] = sample_instants();
    let written = format_pattern(&a, pattern)?;
    parse_with_pattern(&written, pattern, Tz::UTC)
        .map(|_| ())
        .map_err(|e| format!("cannot read a date with it ({e})"))
}
