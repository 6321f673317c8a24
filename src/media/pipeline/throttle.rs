//! At most one keyframe request per interval per stream, pure. Requests inside the interval
//! are coalesced into one that goes out when it ends, so no viewer waits for the encoder's
//! own schedule just because another viewer asked a moment earlier.

use std::time::{Duration, Instant};

/// What to do with a keyframe request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttled {
    /// Send it now.
    SendNow,
    /// One request is pending until `at` (see [`KeyframeThrottle::poll_timeout`]); `newly`
    /// is true for the request that made it pending, so only that one needs to wake the timer.
    Deferred { at: Instant, newly: bool },
}

/// Janus's rule (one PLI a second per stream), with coalescing instead of dropping.
#[derive(Clone, Debug)]
pub struct KeyframeThrottle {
    min_interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    pub fn new(min_interval: Duration) -> KeyframeThrottle {
        KeyframeThrottle {
            min_interval,
            last_sent: None,
            pending: false,
        }
    }

    /// A request at `now`.
    pub fn request(&mut self, now: Instant) -> Throttled {
        match self.last_sent {
            Some(last) if now < last + self.min_interval => {
                let newly = !self.pending;
                self.pending = true;
                Throttled::Deferred {
                    at: last + self.min_interval,
                    newly,
                }
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                Throttled::SendNow
            }
        }
    }

    /// When the pending request is due, if one is.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.pending, self.last_sent) {
            (true, Some(last)) => Some(last + self.min_interval),
            _ => None,
        }
    }

    /// True if the pending request is due at `now`: send it (it counts as sent at `now`).
    /// Calling it early or with nothing pending is harmless.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.poll_timeout() {
            Some(due) if now >= due => {
                self.pending = false;
                self.last_sent = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Forgets a pending request (the pipeline stopped: its next start begins with a keyframe).
    pub fn cancel(&mut self) {
        self.pending = false;
    }
}

#[cfg(test)]
mod tests;
