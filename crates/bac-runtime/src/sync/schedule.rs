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
            expr if expr.split_whitespace().count() >= 5 => Cron::new(expr)
                .with_seconds_optional()
                .parse()
                .map(|c| Frequency::Cron(Box::new(c)))
                .map_err(|e| format!("frequency {expr:?} is not a valid cron expression: {e}")),
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
    }
}
