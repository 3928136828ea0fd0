//! [`RetryPolicy`]: exponential backoff with jitter, bounded by attempts and elapsed time.
//!
//! The producer uses it for connection and retriable broker errors; the consumer for
//! handler retries. It wraps the `backoff` crate behind our own type so the crate can be
//! swapped without touching callers.

use std::time::Duration;

use backoff::backoff::Backoff;

/// How to space out attempts of an operation that may fail transiently.
///
/// Attempt 1 runs at once; before attempt `n + 1` the policy waits roughly
/// `initial_interval * multiplier^(n-1)`, capped at `max_interval`, varied by
/// `± randomization_factor`. It gives up after `max_attempts` attempts or once
/// `max_elapsed` has passed since the first attempt, whichever comes first.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Wait before the second attempt. Default: 100 ms.
    pub initial_interval: Duration,
    /// Growth of the wait per attempt. Default: 2.0.
    pub multiplier: f64,
    /// Largest wait between two attempts. Default: 2 s.
    pub max_interval: Duration,
    /// Give up once this much time has passed since the first attempt. Default: 30 s.
    pub max_elapsed: Duration,
    /// Give up after this many attempts in all (the first included). Default: 10.
    pub max_attempts: u32,
    /// Jitter: each wait is drawn from `[w·(1−f), w·(1+f)]`. Default: 0.2.
    pub randomization_factor: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_millis(100),
            multiplier: 2.0,
            max_interval: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(30),
            max_attempts: 10,
            randomization_factor: 0.2,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries: one attempt only.
    pub fn no_retries() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Starts a fresh schedule for one operation.
    pub fn schedule(&self) -> RetrySchedule {
        let inner = backoff::ExponentialBackoff {
            current_interval: self.initial_interval,
            initial_interval: self.initial_interval,
            randomization_factor: self.randomization_factor,
            multiplier: self.multiplier,
            max_interval: self.max_interval,
            start_time: std::time::Instant::now(),
            // Elapsed time is enforced by the schedule itself against the caller's clock.
            max_elapsed_time: None,
            clock: backoff::SystemClock::default(),
        };
        RetrySchedule {
            policy: self.clone(),
            inner,
            attempts: 1,
        }
    }
}

/// The state of one operation's retries: ask it for the next wait after each failure.
#[derive(Debug)]
pub struct RetrySchedule {
    policy: RetryPolicy,
    inner: backoff::ExponentialBackoff,
    attempts: u32,
}

impl RetrySchedule {
    /// Attempts made so far (the first counts once it is running).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// After a failed attempt, at time `elapsed` since the first one: how long to wait before
    /// the next attempt, or `None` if the policy gives up (attempts used up, or the wait
    /// would end past `max_elapsed`).
    pub fn next_delay(&mut self, elapsed: Duration) -> Option<Duration> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let delay = self.inner.next_backoff()?;
        if elapsed + delay > self.policy.max_elapsed {
            return None;
        }
        self.attempts += 1;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_retries_gives_up_at_once() {
        let mut s = RetryPolicy::no_retries().schedule();
        assert_eq!(s.next_delay(Duration::ZERO), None);
    }

    #[test]
    fn delays_grow_and_stop_at_max_attempts() {
        let policy = RetryPolicy {
            randomization_factor: 0.0,
            max_attempts: 4,
            ..RetryPolicy::default()
        };
        let mut s = policy.schedule();
        let delays: Vec<_> = std::iter::from_fn(|| s.next_delay(Duration::ZERO)).collect();
        assert_eq!(
            delays,
            vec![
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400)
            ]
        );
        assert_eq!(s.attempts(), 4);
    }

    #[test]
    fn gives_up_when_the_wait_would_pass_max_elapsed() {
        let policy = RetryPolicy {
            max_elapsed: Duration::from_millis(150),
            randomization_factor: 0.0,
            ..RetryPolicy::default()
        };
        let mut s = policy.schedule();
        assert_eq!(
            s.next_delay(Duration::ZERO),
            Some(Duration::from_millis(100))
        );
        assert_eq!(s.next_delay(Duration::from_millis(100)), None);
    }
}

/// The waits of a plain retry loop inside the transports (metadata, coordinator, group
/// calls): `initial`, then doubling up to `max`, no jitter. The one place such a loop's
/// arithmetic lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Doubling {
    next: Duration,
    max: Duration,
}

impl Doubling {
    /// Waits starting at `initial`, never above `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Doubling {
            next: initial.min(max),
            max,
        }
    }

    /// The wait to take now; the following one doubles (up to `max`).
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// The wait [`next_wait`](Self::next_wait) would return, without advancing.
    pub(crate) fn peek(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod doubling_tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let mut d = Doubling::new(Duration::from_millis(50), Duration::from_millis(300));
        let waits: Vec<u128> = (0..5).map(|_| d.next_wait().as_millis()).collect();
        assert_eq!(waits, vec![50, 100, 200, 300, 300]);
        assert_eq!(d.peek(), Duration::from_millis(300));
    }
}
