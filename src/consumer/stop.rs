//! [`StopSignal`]: the one way a consumer thread is told to stop, and interruptible sleeps.
//!
//! Stopping drops the only sender of a channel, so every `recv_timeout` on it returns at
//! once: a thread waiting out a backoff or a retry entry's due time wakes immediately.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// A latch shared by a consumer's threads: once stopped, stays stopped.
#[derive(Debug)]
pub(crate) struct StopSignal {
    stopped: AtomicBool,
    sender: Mutex<Option<Sender<()>>>,
    receiver: Receiver<()>,
}

impl StopSignal {
    /// A signal that has not fired.
    pub(crate) fn new() -> Self {
        let (sender, receiver) = crossbeam_channel::bounded(0);
        StopSignal {
            stopped: AtomicBool::new(false),
            sender: Mutex::new(Some(sender)),
            receiver,
        }
    }

    /// Fires the signal and wakes every sleeper. Firing twice is harmless.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Whether the signal fired.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration` unless the signal fires first. Returns `true` if it fired.
    pub(crate) fn sleep(&self, duration: Duration) -> bool {
        if self.is_stopped() {
            return true;
        }
        match self.receiver.recv_timeout(duration) {
            Err(RecvTimeoutError::Timeout) => self.is_stopped(),
            // Nobody sends on the channel: the only way out is the sender being dropped.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn sleep_runs_its_course_when_not_stopped() {
        let s = StopSignal::new();
        let t = Instant::now();
        assert!(!s.sleep(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn stop_wakes_a_sleeper_at_once() {
        let s = Arc::new(StopSignal::new());
        let s2 = s.clone();
        let t = Instant::now();
        let sleeper = std::thread::spawn(move || s2.sleep(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        s.stop();
        assert!(sleeper.join().unwrap());
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(s.is_stopped());
        assert!(s.sleep(Duration::from_secs(10)));
    }
}
