//! The few bytes of RTP, RTCP and VP8 the pipeline reads or writes itself, pure: the PLI that
//! asks an RTP sender for a keyframe, the SSRC of an RTP packet, the size in a VP8 keyframe.

/// Length of a Picture Loss Indication: one RTCP header and two SSRCs (RFC 4585 §6.1).
pub const PLI_LEN: usize = 12;

/// RTCP packet type of payload-specific feedback (RFC 4585 §6.1).
const PT_PSFB: u8 = 206;
/// Feedback message type of a Picture Loss Indication (RFC 4585 §6.3.1).
const FMT_PLI: u8 = 1;

/// A Picture Loss Indication from `sender_ssrc` about the video stream `media_ssrc`
/// (RFC 4585 §6.3.1): V=2, P=0, FMT=1, PT=206, length 2 (words after the first, §6.1),
/// then the two SSRCs. Sent alone, as a reduced-size RTCP packet (RFC 5506), as Janus does.
pub fn pli(sender_ssrc: u32, media_ssrc: u32) -> [u8; PLI_LEN] {
    let mut p = [0u8; PLI_LEN];
    p[0] = (2 << 6) | FMT_PLI;
    p[1] = PT_PSFB;
    p[2..4].copy_from_slice(&2u16.to_be_bytes());
    p[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    p[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    p
}

/// The SSRC of an RTP packet (RFC 3550 §5.1), or `None` if `packet` is too short for the
/// fixed header or is not RTP version 2.
pub fn rtp_ssrc(packet: &[u8]) -> Option<u32> {
    let header = packet.get(..12)?;
    if header[0] >> 6 != 2 {
        return None;
    }
    Some(u32::from_be_bytes([
        header[8], header[9], header[10], header[11],
    ]))
}

/// Width and height of a VP8 keyframe (RFC 6386 §9.1: a 3-byte frame tag whose bit 0 is 0
/// for keyframes, the start code `9d 01 2a`, then 14-bit little-endian width and height,
/// each with 2 bits of scaling on top), or `None` for an interframe or malformed data.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let header = frame.get(..10)?;
    if header[0] & 1 != 0 || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([header[6], header[7]]) & 0x3fff;
    let height = u16::from_le_bytes([header[8], header[9]]) & 0x3fff;
    Some((u32::from(width), u32::from(height)))
}

#[cfg(test)]
mod tests;
