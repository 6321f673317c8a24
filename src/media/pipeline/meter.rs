//! Frames and bits per second over the last seconds, pure: what the status page shows and
//! what tells an operator that a camera delivers 7 fps instead of 30.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most samples kept: enough for 2 s at 240 fps; older ones are forgotten first.
pub const MAX_SAMPLES: usize = 512;

/// Rates measured over a sliding window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub bits_per_second: f64,
}

/// A sliding window of (time, size) samples, bounded by [`MAX_SAMPLES`].
#[derive(Clone, Debug)]
pub struct RateMeter {
    window: Duration,
    first: Option<Instant>,
    samples: VecDeque<(Instant, usize)>,
}

impl RateMeter {
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            window,
            first: None,
            samples: VecDeque::new(),
        }
    }

    /// One frame of `bytes` at `now` (times never go backwards).
    pub fn record(&mut self, now: Instant, bytes: usize) {
        self.first.get_or_insert(now);
        while let Some(&(t, _)) = self.samples.front() {
            if now.duration_since(t) >= self.window || self.samples.len() >= MAX_SAMPLES {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        self.samples.push_back((now, bytes));
    }

    /// Rates over the window ending at `now` (over less while the meter is younger than the
    /// window); zero before any sample.
    pub fn rate(&self, now: Instant) -> Rate {
        let Some(first) = self.first else {
            return Rate::default();
        };
        let span = now.saturating_duration_since(first).min(self.window);
        if span.is_zero() {
            return Rate::default();
        }
        let (count, bytes) = self
            .samples
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) < self.window)
            .fold((0usize, 0usize), |(n, b), (_, size)| (n + 1, b + size));
        let secs = span.as_secs_f64();
        Rate {
            per_second: count as f64 / secs,
            bits_per_second: (bytes * 8) as f64 / secs,
        }
    }

    /// Forgets everything (the pipeline restarted).
    pub fn reset(&mut self) {
        self.first = None;
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests;
