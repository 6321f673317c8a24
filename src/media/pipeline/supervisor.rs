//! When a stream's pipeline is built, torn down and rebuilt, pure: restart with backoff after
//! a fault, forever; notice a source that went quiet without an error.
//!
//! # Run loop
//!
//! [`Supervisor`] owns no pipeline, thread or clock. The shell (the stream's supervisor
//! thread, see `shell.rs`) keeps one and repeats:
//!
//! 1. Feed **one** input with the current time: [`Supervisor::start`] or
//!    [`Supervisor::stop`] (the caller wants the encoder running or not),
//!    [`Supervisor::fault`] (an error or end-of-stream on a pipeline's bus),
//!    [`Supervisor::frame_seen`] (the first video frame since [`Action::Build`] or
//!    [`Action::WatchFrames`]), or [`Supervisor::handle_timeout`] when the deadline from
//!    [`Supervisor::poll_timeout`] has passed (calling it early is harmless).
//! 2. Drain [`Supervisor::poll_action`] until `None`, in order.
//! 3. Sleep until `poll_timeout` or the next input, then go to 1.
//!
//! Every pipeline gets a new generation number; inputs about an older one are ignored, so a
//! late error from a pipeline already torn down cannot take its successor down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::StreamState;

/// How long to wait before rebuilding a failed pipeline: `initial`, doubling up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling to 30 s: a camera plugged back in is used within 30 s, and a missing one
    /// costs one failed `open` every 30 s.
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// The delays of a [`Backoff`], one fault after another.
#[derive(Clone, Debug)]
pub struct BackoffSchedule {
    config: Backoff,
    next: Duration,
}

impl BackoffSchedule {
    pub fn new(config: Backoff) -> BackoffSchedule {
        BackoffSchedule {
            config,
            next: config.initial.min(config.max),
        }
    }

    /// The delay before the next attempt; each call doubles the following one, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.config.max);
        delay
    }

    /// Back to `initial` (the pipeline ran healthily, or the caller stopped it).
    pub fn reset(&mut self) {
        self.next = self.config.initial.min(self.config.max);
    }
}

/// What a running pipeline that delivers no video for a while means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quiet {
    /// A fault: the source hung (a camera that stopped delivering without an error). Tear
    /// down and rebuild with backoff.
    Restart,
    /// Only a state: the sender is not sending (RTP). Report it `Offline`, keep listening,
    /// and go back to `Playing` at the next frame.
    Report,
}

/// The supervisor's knobs.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    pub backoff: Backoff,
    /// No video frame for this long (since the build, or since the last frame) is quiet.
    pub quiet_after: Duration,
    pub on_quiet: Quiet,
    /// The `Offline` reason for a quiet source (e.g. "no RTP video on port 5004 for 5 s").
    pub quiet_reason: String,
    /// A pipeline that played this long before failing was healthy: its fault restarts the
    /// backoff from `initial` instead of continuing to double.
    pub healthy_after: Duration,
}

/// What the shell must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Build and start pipeline number `generation`, and tell [`Supervisor::frame_seen`] about its
    /// first video frame. A build that fails is reported to [`Supervisor::fault`].
    Build { generation: u64 },
    /// Set the current pipeline to NULL and drop it.
    Teardown,
    /// Publish the stream's new state.
    State(StreamState),
    /// Tell [`Supervisor::frame_seen`] about the next video frame of the current pipeline.
    WatchFrames,
}

/// The supervisor's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// The backoff after a fault is over: rebuild.
    Retry,
    /// Time to check that video still arrives.
    Quiet,
}

#[derive(Clone, Debug)]
enum Phase {
    Stopped,
    Running {
        generation: u64,
        since: Instant,
        playing_since: Option<Instant>,
        /// Reported quiet (only with [`Quiet::Report`]); no quiet timer until a frame.
        quiet: bool,
        check_quiet_at: Instant,
    },
    Waiting {
        until: Instant,
    },
}

/// One stream's restart logic.
#[derive(Debug)]
pub struct Supervisor {
    config: SupervisorConfig,
    want_running: bool,
    phase: Phase,
    backoff: BackoffSchedule,
    generation: u64,
    state: StreamState,
    actions: VecDeque<Action>,
}

impl Supervisor {
    /// A stopped stream.
    pub fn new(config: SupervisorConfig) -> Supervisor {
        Supervisor {
            backoff: BackoffSchedule::new(config.backoff),
            config,
            want_running: false,
            phase: Phase::Stopped,
            generation: 0,
            state: StreamState::Stopped,
            actions: VecDeque::new(),
        }
    }

    /// The caller wants the pipeline running (a no-op if it already is, or waits to retry).
    pub fn start(&mut self, now: Instant) {
        self.want_running = true;
        if matches!(self.phase, Phase::Stopped) {
            self.build(now);
        }
    }

    /// The caller wants it stopped: tear down, forget the backoff, state `Stopped`.
    pub fn stop(&mut self, _now: Instant) {
        self.want_running = false;
        if matches!(self.phase, Phase::Running { .. }) {
            self.actions.push_back(Action::Teardown);
        }
        self.phase = Phase::Stopped;
        self.backoff.reset();
        self.set_state(StreamState::Stopped);
    }

    /// Pipeline `generation` failed with `reason` (GStreamer's message): tear it down, state
    /// `Offline { reason }`, rebuild after the backoff.
    pub fn fault(&mut self, now: Instant, generation: u64, reason: String) {
        let Phase::Running {
            generation: current,
            playing_since,
            ..
        } = self.phase
        else {
            return;
        };
        if current != generation {
            return;
        }
        self.actions.push_back(Action::Teardown);
        if playing_since
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.healthy_after)
        {
            self.backoff.reset();
        }
        let delay = self.backoff.next_delay();
        // A delay too large for the clock means "not in this process's lifetime".
        let until = now
            .checked_add(delay)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        self.phase = Phase::Waiting { until };
        self.set_state(StreamState::Offline { reason });
    }

    /// A video frame of pipeline `generation` arrived (the first since it was built or watched).
    pub fn frame_seen(&mut self, now: Instant, generation: u64) {
        if let Phase::Running {
            generation: current,
            playing_since,
            quiet,
            check_quiet_at,
            ..
        } = &mut self.phase
        {
            if *current != generation {
                return;
            }
            playing_since.get_or_insert(now);
            if *quiet {
                *quiet = false;
                *check_quiet_at = now + self.config.quiet_after;
            }
            self.set_state(StreamState::Playing);
        }
    }

    /// Timers due at `now` fire; `last_frame` is when the last video frame arrived (of any
    /// pipeline: older ones are before this pipeline's build and count as the build time).
    pub fn handle_timeout(&mut self, now: Instant, last_frame: Option<Instant>) {
        match self.phase {
            Phase::Waiting { until } if now >= until => {
                self.phase = Phase::Stopped;
                if self.want_running {
                    self.build(now);
                }
            }
            Phase::Running {
                generation,
                since,
                quiet: false,
                check_quiet_at,
                ..
            } if now >= check_quiet_at => {
                let activity = last_frame.map_or(since, |t| t.max(since));
                let deadline = activity + self.config.quiet_after;
                if now < deadline {
                    if let Phase::Running { check_quiet_at, .. } = &mut self.phase {
                        *check_quiet_at = deadline;
                    }
                    return;
                }
                let reason = self.config.quiet_reason.clone();
                match self.config.on_quiet {
                    Quiet::Restart => self.fault(now, generation, reason),
                    Quiet::Report => {
                        if let Phase::Running { quiet, .. } = &mut self.phase {
                            *quiet = true;
                        }
                        self.actions.push_back(Action::WatchFrames);
                        self.set_state(StreamState::Offline { reason });
                    }
                }
            }
            _ => {}
        }
    }

    /// The next deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(_, at)| at)
    }

    /// The next timer and its deadline: why the shell will wake.
    pub fn next_timer(&self) -> Option<(Timer, Instant)> {
        match self.phase {
            Phase::Stopped => None,
            Phase::Waiting { until } => Some((Timer::Retry, until)),
            Phase::Running {
                quiet: false,
                check_quiet_at,
                ..
            } => Some((Timer::Quiet, check_quiet_at)),
            Phase::Running { quiet: true, .. } => None,
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The state last published.
    pub fn state(&self) -> &StreamState {
        &self.state
    }

    fn build(&mut self, now: Instant) {
        self.generation += 1;
        self.phase = Phase::Running {
            generation: self.generation,
            since: now,
            playing_since: None,
            quiet: false,
            check_quiet_at: now + self.config.quiet_after,
        };
        self.actions.push_back(Action::Build {
            generation: self.generation,
        });
        // A stream retrying after a fault stays Offline, with its reason, until it plays.
        if !matches!(self.state, StreamState::Offline { .. }) {
            self.set_state(StreamState::Starting);
        }
    }

    fn set_state(&mut self, state: StreamState) {
        if self.state != state {
            self.state = state.clone();
            self.actions.push_back(Action::State(state));
        }
    }
}

#[cfg(test)]
mod tests;
