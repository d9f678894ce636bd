//! The service's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall time (unix milliseconds, stored and shown) derived from tokio's monotonic clock, so that a test can pause and
/// advance time, and so that a wall-clock step does not move a running deadline.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_unix_ms: i64,
    base: tokio::time::Instant,
}

impl Clock {
    /// A clock that reads the system's wall time once, now.
    pub fn system() -> Clock {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        Clock { base_unix_ms: unix, base: tokio::time::Instant::now() }
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        self.base_unix_ms + self.base.elapsed().as_millis() as i64
    }

    /// The tokio instant at which the clock reads `unix_ms` (now, if that is in the past).
    pub fn instant_at(&self, unix_ms: i64) -> tokio::time::Instant {
        let ahead = unix_ms - self.now_ms();
        tokio::time::Instant::now() + Duration::from_millis(ahead.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_time() {
        let c = Clock::system();
        let t0 = c.now_ms();
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(c.now_ms() - t0, 90_000);
        let at = c.instant_at(t0 + 100_000);
        assert_eq!(at - tokio::time::Instant::now(), Duration::from_secs(10));
        assert_eq!(c.instant_at(t0), tokio::time::Instant::now());
    }
}
