//! When sessions end, and the clock that decides it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How long a session lives: it ends after `idle_timeout` without use, and after
/// `absolute_lifetime` since it was created, whichever comes first.
///
/// The session layer enforces both from the timestamps it wrote itself, whatever the store
/// or the client say. A session can carry its own `Expiry` (for "remember me"), set with
/// [`Session::set_expiry`](crate::Session::set_expiry).
///
/// ```
/// use std::time::Duration;
/// use sessio::Expiry;
///
/// let remember_me = Expiry::new(Duration::from_secs(30 * 86_400), Duration::from_secs(90 * 86_400));
/// assert_eq!(remember_me.idle_timeout(), Duration::from_secs(30 * 86_400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    idle_timeout: Duration,
    absolute_lifetime: Duration,
}

impl Expiry {
    /// An expiry with both limits. The idle timeout is capped at the absolute lifetime.
    pub fn new(idle_timeout: Duration, absolute_lifetime: Duration) -> Self {
        Self {
            idle_timeout: idle_timeout.min(absolute_lifetime),
            absolute_lifetime,
        }
    }

    /// Time without use after which the session ends.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Time since creation after which the session ends, however active.
    pub fn absolute_lifetime(&self) -> Duration {
        self.absolute_lifetime
    }

    /// When a session created at `created_at` and last used at `last_active` ends.
    pub fn deadline(&self, created_at: SystemTime, last_active: SystemTime) -> SystemTime {
        let idle = last_active.checked_add(self.idle_timeout);
        let absolute = created_at.checked_add(self.absolute_lifetime);
        match (idle, absolute) {
            (Some(idle), Some(absolute)) => idle.min(absolute),
            (Some(at), None) | (None, Some(at)) => at,
            // Both overflow: far enough in the future for any purpose.
            (None, None) => SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX as u64 * 64),
        }
    }
}

impl Default for Expiry {
    /// One day idle, one week absolute.
    fn default() -> Self {
        Self::new(Duration::from_secs(86_400), Duration::from_secs(7 * 86_400))
    }
}

/// The source of the current time for expiry decisions.
///
/// [`SystemClock`] in production; [`ManualClock`] in tests, to move time on demand.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sessio::{Clock, ManualClock};
///
/// let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Default for ManualClock {
    /// A clock standing at the current wall-clock time.
    fn default() -> Self {
        Self::new(SystemTime::now())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn the_earlier_limit_wins() {
        let expiry = Expiry::new(Duration::from_secs(10), Duration::from_secs(100));
        assert_eq!(expiry.deadline(T0, T0), T0 + Duration::from_secs(10));
        let late = T0 + Duration::from_secs(95);
        assert_eq!(expiry.deadline(T0, late), T0 + Duration::from_secs(100));
    }

    #[test]
    fn idle_never_exceeds_absolute() {
        let expiry = Expiry::new(Duration::from_secs(500), Duration::from_secs(100));
        assert_eq!(expiry.idle_timeout(), Duration::from_secs(100));
    }

    #[test]
    fn defaults_are_finite() {
        let expiry = Expiry::default();
        assert!(expiry.idle_timeout() <= expiry.absolute_lifetime());
        assert!(expiry.absolute_lifetime() <= Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let clock = ManualClock::new(T0);
        let other = clock.clone();
        clock.advance(Duration::from_secs(3));
        assert_eq!(other.now(), T0 + Duration::from_secs(3));
    }
}
