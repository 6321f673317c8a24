//! One viewer's bounded queue of frames between [`Gateway::push_frame`](super::Gateway::push_frame)
//! and the viewer's peer connection, with the video gate that waits for a keyframe.

use std::collections::VecDeque;
use std::time::Instant;

use super::Frame;

/// Video frames a viewer may have waiting: 8 frames, about 270 ms at 30 fps. More means the
/// shell cannot send as fast as frames come; the queued video is dropped and the viewer
/// waits for the next keyframe (latency stays bounded instead of growing).
pub const MAX_QUEUED_VIDEO: usize = 8;
/// Audio frames a viewer may have waiting: 12 Opus frames, 240 ms of 20 ms frames. More
/// drops the oldest (audio needs no keyframe).
pub const MAX_QUEUED_AUDIO: usize = 12;

/// A frame waiting, with the time it was pushed (its wallclock for RTCP sender reports).
#[derive(Clone, Debug)]
pub struct Queued {
    pub frame: Frame,
    pub at: Instant,
}

/// What [`FrameQueue::push`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// A delta frame while the viewer waits for a keyframe: dropped.
    WaitingForKeyframe,
    /// The video queue was full: the queued video and this frame were dropped, and the
    /// viewer now waits for a keyframe (the caller asks the encoder for one).
    Overflow,
}

/// Holds at most [`MAX_QUEUED_VIDEO`] video and [`MAX_QUEUED_AUDIO`] audio frames (frames
/// share their data with every other viewer: an entry is a reference, ~48 bytes).
#[derive(Debug)]
pub struct FrameQueue {
    items: VecDeque<Queued>,
    video: usize,
    audio: usize,
    /// No video is queued until a keyframe comes: a decoder cannot start on a delta frame.
    waiting_for_keyframe: bool,
    /// Frames dropped so far (overflow and keyframe waits), for the stats.
    pub dropped: u64,
}

impl Default for FrameQueue {
    fn default() -> Self {
        FrameQueue {
            items: VecDeque::new(),
            video: 0,
            audio: 0,
            waiting_for_keyframe: true,
            dropped: 0,
        }
    }
}

impl FrameQueue {
    pub fn push(&mut self, frame: &Frame, at: Instant) -> Pushed {
        if frame.video {
            if self.waiting_for_keyframe && !frame.keyframe {
                self.dropped += 1;
                return Pushed::WaitingForKeyframe;
            }
            if self.video >= MAX_QUEUED_VIDEO {
                let before = self.items.len();
                self.items.retain(|q| !q.frame.video);
                self.dropped += (before - self.items.len()) as u64;
                self.video = 0;
                if !frame.keyframe {
                    self.dropped += 1;
                    self.waiting_for_keyframe = true;
                    return Pushed::Overflow;
                }
            }
            self.waiting_for_keyframe = false;
            self.video += 1;
        } else {
            if self.audio >= MAX_QUEUED_AUDIO
                && let Some(i) = self.items.iter().position(|q| !q.frame.video)
            {
                self.items.remove(i);
                self.dropped += 1;
                self.audio -= 1;
            }
            self.audio += 1;
        }
        self.items.push_back(Queued {
            frame: frame.clone(),
            at,
        });
        Pushed::Queued
    }

    pub fn pop(&mut self) -> Option<Queued> {
        let q = self.items.pop_front()?;
        if q.frame.video {
            self.video -= 1;
        } else {
            self.audio -= 1;
        }
        Some(q)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn video(n: u64, keyframe: bool) -> Frame {
        Frame {
            video: true,
            data: Arc::from(vec![n as u8; 4]),
            keyframe,
            pts: Duration::from_millis(33 * n),
        }
    }

    fn audio(n: u64) -> Frame {
        Frame {
            video: false,
            data: Arc::from(vec![n as u8; 2]),
            keyframe: true,
            pts: Duration::from_millis(20 * n),
        }
    }

    #[test]
    fn video_starts_at_a_keyframe() {
        let (mut q, t) = (FrameQueue::default(), Instant::now());
        assert_eq!(q.push(&video(0, false), t), Pushed::WaitingForKeyframe);
        assert!(q.is_empty());
        assert_eq!(q.push(&video(1, true), t), Pushed::Queued);
        assert_eq!(q.push(&video(2, false), t), Pushed::Queued);
        assert_eq!(q.pop().unwrap().frame.pts, video(1, true).pts);
        assert_eq!(q.pop().unwrap().frame.pts, video(2, false).pts);
        assert!(q.pop().is_none());
    }

    #[test]
    fn audio_flows_while_video_waits_for_a_keyframe() {
        let (mut q, t) = (FrameQueue::default(), Instant::now());
        assert_eq!(q.push(&video(0, false), t), Pushed::WaitingForKeyframe);
        assert_eq!(q.push(&audio(0), t), Pushed::Queued);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_full_video_queue_drops_its_video_and_resumes_at_the_next_keyframe() {
        let (mut q, t) = (FrameQueue::default(), Instant::now());
        q.push(&video(0, true), t);
        for n in 1..MAX_QUEUED_VIDEO as u64 {
            assert_eq!(q.push(&video(n, false), t), Pushed::Queued);
        }
        q.push(&audio(0), t);
        assert_eq!(q.len(), MAX_QUEUED_VIDEO + 1);
        // One more than fits: the video goes, the audio stays.
        assert_eq!(q.push(&video(100, false), t), Pushed::Overflow);
        assert_eq!(q.len(), 1);
        assert!(!q.pop().unwrap().frame.video);
        assert_eq!(q.push(&video(101, false), t), Pushed::WaitingForKeyframe);
        assert_eq!(q.push(&video(102, true), t), Pushed::Queued);
        assert_eq!(q.push(&video(103, false), t), Pushed::Queued);
        assert_eq!(q.pop().unwrap().frame.pts, video(102, true).pts);
        assert_eq!(q.dropped, MAX_QUEUED_VIDEO as u64 + 2);
    }

    #[test]
    fn a_keyframe_that_overflows_replaces_the_queued_video() {
        let (mut q, t) = (FrameQueue::default(), Instant::now());
        q.push(&video(0, true), t);
        for n in 1..MAX_QUEUED_VIDEO as u64 {
            q.push(&video(n, false), t);
        }
        assert_eq!(q.push(&video(50, true), t), Pushed::Queued);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop().unwrap().frame.pts, video(50, true).pts);
    }

    #[test]
    fn audio_overflow_drops_the_oldest_audio() {
        let (mut q, t) = (FrameQueue::default(), Instant::now());
        for n in 0..MAX_QUEUED_AUDIO as u64 + 3 {
            assert_eq!(q.push(&audio(n), t), Pushed::Queued);
        }
        assert_eq!(q.len(), MAX_QUEUED_AUDIO);
        assert_eq!(q.pop().unwrap().frame.pts, audio(3).pts);
    }

    #[test]
    fn the_queue_never_holds_more_than_its_bounds() {
        let (mut q, t) = (FrameQueue::default(), Instant::now());
        for n in 0..10_000u64 {
            let f = match n % 7 {
                0 | 3 => audio(n),
                _ => video(n, n % 97 == 0),
            };
            q.push(&f, t);
            assert!(q.len() <= MAX_QUEUED_VIDEO + MAX_QUEUED_AUDIO);
        }
    }
}
