//! The time that code deciding on expiry reads, injectable so a test moves it instead of
//! waiting: token refreshes ahead of expiry, leases, look-backs. Production uses
//! [`SystemClock`]; a test hands a [`ManualClock`] in and advances it.
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Wall-clock time as the code that holds it sees it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told to move (tests).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(at)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.now.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.now
            .lock()
            .map(|n| *n)
            .unwrap_or_else(|e| *e.into_inner())
    }
}

/// The clock a component uses when none is given.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = Utc::now();
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        c.advance(Duration::seconds(90));
        assert_eq!(c.now(), start + Duration::seconds(90));
        let shared: Arc<dyn Clock> = Arc::new(c.clone());
        c.advance(Duration::seconds(10));
        assert_eq!(shared.now(), start + Duration::seconds(100));
    }
}
