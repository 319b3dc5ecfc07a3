//! Where the coordinator's services get the time: the system clock in production, a [`ManualClock`] that only
//! moves when told in tests. The store never reads a clock itself: every store call that needs the time takes
//! it as `now`, and the SQL binds it (never the database's `now()`), so a test can expire a lease by advancing a
//! `ManualClock` instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time, truncated to whole microseconds (what Postgres' `timestamptz` keeps), so a time read
    /// back from the store equals the one written.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(OffsetDateTime::now_utc())
    }
}

/// A clock that stands still until [`advance`](ManualClock::advance) or [`set`](ManualClock::set) moves it.
/// Clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock showing `start` (truncated to whole microseconds).
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(truncate_to_micros(start))),
        }
    }

    /// Moves the clock forward by `by` (truncated to whole microseconds) and returns the new time.
    pub fn advance(&self, by: Duration) -> OffsetDateTime {
        let mut now = self.lock();
        *now = truncate_to_micros(*now + by);
        *now
    }

    /// Sets the clock to `to` (truncated to whole microseconds), forwards or backwards, and returns it.
    pub fn set(&self, to: OffsetDateTime) -> OffsetDateTime {
        let mut now = self.lock();
        *now = truncate_to_micros(to);
        *now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetDateTime> {
        // The guarded value is a plain timestamp: a panic elsewhere cannot leave it half-written.
        self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.lock()
    }
}

/// Drops the nanoseconds below a whole microsecond.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.microsecond();
    t.replace_microsecond(micros)
        .expect("a microsecond read from a valid time is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_keeps_microseconds() {
        let start = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now().unix_timestamp_nanos(), 1_700_000_000_123_456_000);
        assert_eq!(clock.now(), clock.now());
        let shared = clock.clone();
        let later = clock.advance(Duration::from_nanos(2_500));
        assert_eq!(later.unix_timestamp_nanos(), 1_700_000_000_123_458_000);
        assert_eq!(shared.now(), later);
    }

    #[test]
    fn system_clock_has_no_sub_microsecond_part() {
        assert_eq!(SystemClock.now().nanosecond() % 1_000, 0);
    }
}
