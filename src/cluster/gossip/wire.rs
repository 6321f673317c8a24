//! The gossip envelope: decode and encode only. Every datagram is a version byte, then either
//! the frame in the clear (no keyring) or a nonce and the frame sealed with
//! ChaCha20-Poly1305; the frame carries flags, the sender's session and a packet number (for
//! replay detection), then foca's packet, or a keyring query message when the flags say so.
//!
//! ```text
//! plain:  [0x00] [frame]
//! sealed: [0x01] [nonce: 12] [sealed frame] [tag: 16]      (the version byte is the AAD)
//! frame:  [flags: 1] [session: u64 LE] [seq: u64 LE] [foca packet | keyring message]
//! ```

use super::keyring::{Keyring, TAG_LEN};

/// Version byte of a packet sent in the clear.
pub const VERSION_PLAIN: u8 = 0;
/// Version byte of a packet sealed with ChaCha20-Poly1305.
pub const VERSION_SEALED: u8 = 1;
/// Bytes of the AEAD nonce, drawn at random for every packet.
pub const NONCE_LEN: usize = 12;
/// Bytes of the frame header: flags, session, sequence number.
pub const FRAME_HEADER: usize = 1 + 8 + 8;
/// Bytes a plain envelope adds to foca's packet.
pub const PLAIN_OVERHEAD: usize = 1 + FRAME_HEADER;
/// Bytes a sealed envelope adds to foca's packet.
pub const SEALED_OVERHEAD: usize = 1 + NONCE_LEN + FRAME_HEADER + TAG_LEN;

/// Flag: the frame carries a keyring query message (`query.rs`), not a foca packet. Being
/// inside the sealed frame, it is authenticated like the rest.
pub const FLAG_KEYRING: u8 = 0x01;
/// Flags this version knows; a packet with any other flag set is refused rather than
/// misread.
const KNOWN_FLAGS: u8 = FLAG_KEYRING;

/// The frame header, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// 0 for a foca packet, [`FLAG_KEYRING`] for a keyring query message.
    pub flags: u8,
    /// Chosen at random by the sender when it starts; the replay window is per session.
    pub session: u64,
    /// Counts the session's packets from 0.
    pub seq: u64,
}

/// Why a datagram could not be opened. Nothing was processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Too short, an unknown version byte or unknown flags.
    Malformed,
    /// Sealed, but no installed key opens it (or this member has no keyring).
    Decrypt,
    /// In the clear while this member requires encryption.
    Plaintext,
}

impl FrameHeader {
    fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.flags);
        out.extend_from_slice(&self.session.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
    }

    /// Reads the header at the start of `frame`; `None` if too short or with unknown flags.
    fn parse(frame: &[u8]) -> Option<FrameHeader> {
        let (&flags, rest) = frame.split_first()?;
        if flags & !KNOWN_FLAGS != 0 {
            return None;
        }
        let session = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        let seq = u64::from_le_bytes(rest.get(8..16)?.try_into().ok()?);
        Some(FrameHeader {
            flags,
            session,
            seq,
        })
    }
}

/// Bytes an envelope adds, with or without a keyring.
pub fn overhead(sealed: bool) -> usize {
    if sealed {
        SEALED_OVERHEAD
    } else {
        PLAIN_OVERHEAD
    }
}

/// Writes the envelope of `payload` into `out` (cleared first): sealed with the keyring's
/// primary key and `nonce` when there is a keyring, in the clear otherwise. False only if
/// sealing failed (it does not for these sizes).
pub fn seal(
    keyring: Option<&Keyring>,
    nonce: [u8; NONCE_LEN],
    header: FrameHeader,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    match keyring {
        None => {
            out.push(VERSION_PLAIN);
            header.emit(out);
            out.extend_from_slice(payload);
            true
        }
        Some(keyring) => {
            let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len() + TAG_LEN);
            header.emit(&mut frame);
            frame.extend_from_slice(payload);
            if !keyring.seal(nonce, &[VERSION_SEALED], &mut frame) {
                return false;
            }
            out.push(VERSION_SEALED);
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&frame);
            true
        }
    }
}

/// Opens `packet` into `scratch` and returns the frame header; foca's packet is then
/// `scratch[FRAME_HEADER..]`. With a keyring only sealed packets are accepted, without one
/// only plain ones.
pub fn open(
    keyring: Option<&Keyring>,
    packet: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<FrameHeader, OpenError> {
    let (&version, rest) = packet.split_first().ok_or(OpenError::Malformed)?;
    match (version, keyring) {
        (VERSION_PLAIN, None) => {
            scratch.clear();
            scratch.extend_from_slice(rest);
        }
        (VERSION_PLAIN, Some(_)) => return Err(OpenError::Plaintext),
        (VERSION_SEALED, None) => return Err(OpenError::Decrypt),
        (VERSION_SEALED, Some(keyring)) => {
            if rest.len() < NONCE_LEN + FRAME_HEADER + TAG_LEN {
                return Err(OpenError::Malformed);
            }
            let (nonce, sealed) = rest.split_at(NONCE_LEN);
            let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::Malformed)?;
            if !keyring.open(nonce, &[VERSION_SEALED], sealed, scratch) {
                return Err(OpenError::Decrypt);
            }
        }
        _ => return Err(OpenError::Malformed),
    }
    FrameHeader::parse(scratch).ok_or(OpenError::Malformed)
}
