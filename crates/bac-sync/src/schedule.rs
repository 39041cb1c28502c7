//! How often a connection's entity syncs: `manual` (only when triggered), `hourly`, `daily`,
//! `weekly`, or a cron expression (five fields, or six with seconds, UTC).
use chrono::{DateTime, Duration, Utc};
use croner::Cron;

#[derive(Debug, Clone)]
pub enum Frequency {
    Manual,
    Every(Duration),
    Cron(Box<Cron>),
}

impl Frequency {
    pub fn parse(s: &str) -> Result<Frequency, String> {
        match s.trim() {
            "manual" => Ok(Frequency::Manual),
            "hourly" => Ok(Frequency::Every(Duration::hours(1))),
            "daily" => Ok(Frequency::Every(Duration::days(1))),
            "weekly" => Ok(Frequency::Every(Duration::weeks(1))),
            expr if expr.split_whitespace().count() >= 5 => {
                let cron = Cron::new(expr)
                    .with_seconds_optional()
                    .parse()
                    .map_err(|e| format!("frequency {expr:?} is not a valid cron expression: {e}"))?;
                if runs_more_than_once_a_minute(&cron) {
                    return Err(format!(
                        "frequency {expr:?} runs more often than once a minute; the shortest schedule is \"* * * * *\""
                    ));
                }
                Ok(Frequency::Cron(Box::new(cron)))
            }
            other => Err(format!(
                "frequency {other:?} is not manual, hourly, daily, weekly or a cron expression such as \"*/15 * * * *\""
            )),
        }
    }

    /// When the next scheduled run is due after `now` (`None`: manual).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Frequency::Manual => None,
            Frequency::Every(d) => Some(now + *d),
            Frequency::Cron(c) => c.find_next_occurrence(&now, false).ok(),
        }
    }
}

/// Two occurrences less than a minute apart within a day of the first one (a seconds field
/// such as `*/5`): a schedule that would keep a run slot busy for nothing.
fn runs_more_than_once_a_minute(cron: &Cron) -> bool {
    let Ok(start) = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z") else {
        return false;
    };
    let Ok(first) = cron.find_next_occurrence(&start.with_timezone(&Utc), false) else {
        return false;
    };
    let end = first + Duration::days(1);
    let mut previous = first;
    for _ in 0..2000 {
        let Ok(next) = cron.find_next_occurrence(&previous, false) else {
            return false;
        };
        if next - previous < Duration::minutes(1) {
            return true;
        }
        if next > end {
            return false;
        }
        previous = next;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_frequencies_and_cron_expressions() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:07:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(Frequency::parse("manual")
            .unwrap()
            .next_after(now)
            .is_none());
        assert_eq!(
            Frequency::parse("hourly").unwrap().next_after(now).unwrap(),
            now + Duration::hours(1)
        );
        assert_eq!(
            Frequency::parse("weekly").unwrap().next_after(now).unwrap(),
            now + Duration::days(7)
        );
        let q = Frequency::parse("*/15 * * * *").unwrap();
        assert_eq!(
            q.next_after(now).unwrap().to_rfc3339(),
            "2026-11-22T10:15:00+00:00"
        );
        assert!(Frequency::parse("every tuesday").is_err());
        assert!(Frequency::parse("61 * * * *").is_err());
        // Once a minute is the shortest schedule.
        assert!(Frequency::parse("* * * * *").is_ok());
        assert!(Frequency::parse("30 * * * * *").is_ok());
        for fast in [
            "*/5 * * * * *",
            "* * * * * *",
            "0,30 * * * * *",
            "* * * * * MON",
            "* * * 3-31 * *",
        ] {
            let e = Frequency::parse(fast).unwrap_err();
            assert!(e.contains("more often than once a minute"), "{fast}: {e}");
        }
    }
}
