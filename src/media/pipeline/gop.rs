//! The last keyframe and the video frames after it, pure and bounded: a new viewer of a
//! source that cannot be asked for a keyframe (RTP without an RTCP port) gets a picture at
//! once, and with the whole group of pictures, one that decodes cleanly up to now.

use super::MediaFrame;

/// Most frames kept after a keyframe (10 s at 30 fps).
pub const MAX_GOP_FRAMES: usize = 300;
/// Most bytes kept, keyframe included (8 s at 1 Mbit/s).
pub const MAX_GOP_BYTES: usize = 1 << 20;

/// The current group of pictures. Frames share their data with the frames sent out
/// (`Arc`), so keeping them costs no copy.
#[derive(Clone, Debug, Default)]
pub struct Gop {
    frames: Vec<MediaFrame>,
    bytes: usize,
    /// Over a bound: only the keyframe is kept until the next one.
    truncated: bool,
}

impl Gop {
    /// Takes the next video frame.
    pub fn push(&mut self, frame: &MediaFrame) {
        if frame.keyframe {
            self.frames.clear();
            self.frames.push(frame.clone());
            self.bytes = frame.data.len();
            self.truncated = false;
            return;
        }
        if self.frames.is_empty() || self.truncated {
            return;
        }
        if self.frames.len() > MAX_GOP_FRAMES || self.bytes + frame.data.len() > MAX_GOP_BYTES {
            self.frames.truncate(1);
            self.bytes = self.frames[0].data.len();
            self.truncated = true;
            return;
        }
        self.bytes += frame.data.len();
        self.frames.push(frame.clone());
    }

    /// The last keyframe.
    pub fn keyframe(&self) -> Option<MediaFrame> {
        self.frames.first().cloned()
    }

    /// The last keyframe and every frame after it, oldest first; only the keyframe if the
    /// group outgrew the bounds; empty before the first keyframe.
    pub fn frames(&self) -> Vec<MediaFrame> {
        self.frames.clone()
    }

    /// Forgets everything (a new pipeline: its frames do not continue the old ones).
    pub fn clear(&mut self) {
        *self = Gop::default();
    }
}

#[cfg(test)]
mod tests;
