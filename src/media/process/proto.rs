//! What the agent and its media process say to each other over the process's stdin and
//! stdout: each message is its postcard length as a `u32` (little-endian), then postcard.
//! Pure encoding and decoding; the reader takes any `AsyncRead`.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt};
use serde::{Deserialize, Serialize};

use crate::agent::StreamStatus;
use crate::board::EncoderPick;
use crate::config::StreamSpec;

/// Longest message either side accepts: far above any WHEP offer (64 KiB at most) or
/// status, far below what would hurt a box.
pub const MAX_MESSAGE: usize = 1 << 20;

/// The agent to its media process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToMedia {
    /// Run these streams, with the encoders of this board. `board` is the
    /// [`Selection`](crate::board::Selection) as JSON: a profile is read as its file is.
    Apply {
        streams: Vec<StreamSpec>,
        board: String,
    },
    /// A WHEP request, answered by [`FromMedia::Whep`] with the same `id`.
    Whep { id: u64, request: WhepRequest },
}

/// The media process to the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromMedia {
    Whep {
        id: u64,
        reply: WireReply,
    },
    /// The streams' state, sent when it changed (looked at every [`STATUS_EVERY`]), and
    /// the encoder each codec gets on this board (empty until a stream was built).
    Status {
        streams: BTreeMap<String, StreamStatus>,
        encoders: Vec<EncoderPick>,
    },
}

/// How often the media process looks whether its streams' state changed.
pub const STATUS_EVERY: Duration = Duration::from_millis(200);

/// A WHEP request as the agent's HTTP server read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhepRequest {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A WHEP reply (see [`WhepReply`](crate::media::whep::WhepReply)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireReply {
    pub status: u16,
    /// Lower-case names, `content-type` among them.
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl From<crate::media::whep::WhepReply> for WireReply {
    fn from(r: crate::media::whep::WhepReply) -> WireReply {
        WireReply {
            status: r.status.as_u16(),
            headers: r
                .headers
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
            body: r.body,
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
        // The reader would refuse it.
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

/// The next message, `None` when the pipe closed between messages. Not cancel-safe: a
/// message half read is lost, so keep the future until it finishes.
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
