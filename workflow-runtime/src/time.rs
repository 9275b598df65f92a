//! Durations for workflow bodies and the runtime's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Short spellings for durations in workflow bodies: `10.secs()`, `250.millis()`, `5.mins()`.
///
/// ```
/// use std::time::Duration;
/// use workflow_runtime::DurationExt;
///
/// assert_eq!(250.millis(), Duration::from_millis(250));
/// assert_eq!(5.mins(), Duration::from_secs(300));
/// ```
pub trait DurationExt {
    /// This many milliseconds.
    fn millis(self) -> Duration;
    /// This many seconds.
    fn secs(self) -> Duration;
    /// This many minutes.
    fn mins(self) -> Duration;
    /// This many hours.
    fn hours(self) -> Duration;
}

// Implemented for `u64` alone so that an unsuffixed literal (`10.secs()`) has exactly one
// candidate type and needs no annotation.
impl DurationExt for u64 {
    fn millis(self) -> Duration {
        Duration::from_millis(self)
    }
    fn secs(self) -> Duration {
        Duration::from_secs(self)
    }
    fn mins(self) -> Duration {
        Duration::from_secs(self.saturating_mul(60))
    }
    fn hours(self) -> Duration {
        Duration::from_secs(self.saturating_mul(3600))
    }
}

/// A point in time: microseconds since the Unix epoch.
///
/// Persisted with every execution, so it is wall-clock time rather than a process-local
/// `Instant`; see the crate-private `Clock` for how it follows tokio's (possibly paused) time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self` moved forward by `d`.
    pub fn after(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }

    /// The wall-clock time now, from the system clock (not tokio's).
    pub(crate) fn wall_now() -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Timestamp(since_epoch)
    }

    /// As a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.0)
    }
}

/// Wall-clock time that advances with tokio's clock.
///
/// Reading `SystemTime` directly would ignore `tokio::time::pause()`, and timeouts computed
/// from it would never fire in virtual-time tests. The clock takes the wall time once and
/// adds tokio's elapsed time to it, so it is real time in production and virtual time in
/// tests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall_at_base: Timestamp,
    base: tokio::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            wall_at_base: Timestamp::wall_now(),
            base: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.wall_at_base.after(self.base.elapsed())
    }
}
