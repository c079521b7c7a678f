//! Where the sidecar reads the time: the system clock in production, a clock the tests move by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use stock_core::Timestamp;

/// A source of the current time. Everything time-dependent reads it here, never the system clock directly.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        // Between 1970 and 9999 on any machine that runs this.
        Timestamp::from_unix_millis(millis).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

/// A clock that stands still until moved: tests expire reservations without sleeping.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.unix_millis())))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance_seconds(&self, seconds: i64) {
        self.0.fetch_add(seconds * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let millis = self.0.load(Ordering::SeqCst);
        Timestamp::from_unix_millis(millis).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}
