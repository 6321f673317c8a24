//! What the agent and its media worker say to each other over the worker's stdin and
//! stdout: each message is its postcard length as a `u32` (little-endian), then postcard.
//! Pure encoding and decoding; the readers take any `Read` or `AsyncRead`.

use std::io;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt};
use serde::{Deserialize, Serialize};

use crate::board::EncoderChoice;
use crate::config::StreamSpec;
use crate::media::pipeline::{MediaFrame, MediaKind, PipelineStats};

/// Longest message either side accepts: far above any encoded frame (a 1080p keyframe is
/// well under 1 MiB), far below what would hurt a box.
pub const MAX_MESSAGE: usize = 8 << 20;

/// The agent to its worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Which of these GStreamer elements exist; answered by [`FromWorker::Exists`], one
    /// bool per name, all false when GStreamer cannot be initialised.
    Probe(Vec<String>),
    /// Build the stream's pipeline, stopped; answered by [`FromWorker::Opened`]. A refused
    /// pipeline may be followed by another `Open` (the software encoder after a hardware one).
    Open {
        spec: StreamSpec,
        encoder: EncoderChoice,
    },
    /// Run the encoder (a viewer is watching).
    Start,
    /// Stop it (nobody watches).
    Stop,
    /// A viewer needs a keyframe: the encoder or the RTP sender is asked for one, or, when
    /// neither can make one, the frames since the last keyframe are sent again.
    KeyframeWanted,
}

/// The worker to the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    Exists(Vec<bool>),
    /// The pipeline is built (`Ok`) or why GStreamer refused it.
    Opened(Result<(), String>),
    Frame(WireFrame),
    /// Sent when they changed, at most every [`STATS_EVERY`].
    Stats(PipelineStats),
}

/// How often the worker looks whether its stream's numbers changed.
pub const STATS_EVERY: Duration = Duration::from_millis(200);

/// A [`MediaFrame`] on the pipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireFrame {
    pub kind: MediaKind,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub pts: Duration,
    pub duration: Option<Duration>,
    pub seq: u64,
}

impl From<&MediaFrame> for WireFrame {
    fn from(f: &MediaFrame) -> WireFrame {
        WireFrame {
            kind: f.kind,
            data: f.data.to_vec(),
            keyframe: f.keyframe,
            pts: f.pts,
            duration: f.duration,
            seq: f.seq,
        }
    }
}

impl From<WireFrame> for MediaFrame {
    fn from(f: WireFrame) -> MediaFrame {
        MediaFrame {
            kind: f.kind,
            data: f.data.into(),
            keyframe: f.keyframe,
            pts: f.pts,
            duration: f.duration,
            seq: f.seq,
        }
    }
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("a message of {0} bytes is longer than the {MAX_MESSAGE} allowed")]
    TooLong(usize),
    #[error("the pipe closed in the middle of a message")]
    Truncated,
    #[error("a malformed message: {0}")]
    Malformed(#[from] postcard::Error),
}

/// `msg` framed for the pipe.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, postcard::Error> {
    let mut out = postcard::to_extend(msg, vec![0u8; 4])?;
    let len = out.len() - 4;
    if len > MAX_MESSAGE {
        // The reader would refuse it; a frame this size is dropped instead.
        return Err(postcard::Error::SerializeBufferFull);
    }
    out[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(out)
}

fn body_len(header: [u8; 4]) -> Result<usize, ProtoError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_MESSAGE {
        return Err(ProtoError::TooLong(len));
    }
    Ok(len)
}

/// The next message, `None` when the pipe closed between messages.
pub fn read<T: for<'de> Deserialize<'de>>(r: &mut impl io::Read) -> Result<Option<T>, ProtoError> {
    let mut header = [0u8; 4];
    match read_full(r, &mut header)? {
        0 => return Ok(None),
        4 => {}
        _ => return Err(ProtoError::Truncated),
    }
    let mut body = vec![0u8; body_len(header)?];
    if read_full(r, &mut body)? < body.len() {
        return Err(ProtoError::Truncated);
    }
    Ok(Some(postcard::from_bytes(&body)?))
}

/// Fills `buf` unless the pipe ends first; how much it got.
fn read_full(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// As [`read`], from an async pipe. Not cancel-safe: a message half read is lost, so keep
/// the future until it finishes.
pub async fn read_async<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<Option<T>, ProtoError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut header[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(ProtoError::Truncated),
            n => got += n,
        }
    }
    let mut body = vec![0u8; body_len(header)?];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ProtoError::Truncated,
        _ => ProtoError::Io(e),
    })?;
    Ok(Some(postcard::from_bytes(&body)?))
}

#[cfg(test)]
mod tests;
