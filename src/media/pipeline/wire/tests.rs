//! The RTP, RTCP and VP8 bits against their RFCs, and against random bytes.

use proptest::prelude::*;

use super::*;

#[test]
fn pli_is_a_reduced_size_psfb_packet_rfc4585_6_3_1() {
    let p = pli(0x0102_0304, 0xa1b2_c3d4);
    assert_eq!(
        p,
        [
            0x81, 206, 0x00, 0x02, // V=2 P=0 FMT=1, PT=PSFB, length=2 words
            0x01, 0x02, 0x03, 0x04, // SSRC of packet sender
            0xa1, 0xb2, 0xc3, 0xd4, // SSRC of media source
        ]
    );
    // RFC 3550 §6.4.1: length in 32-bit words minus one.
    let words = u16::from_be_bytes([p[2], p[3]]) as usize;
    assert_eq!((words + 1) * 4, PLI_LEN);
}

#[test]
fn rtp_ssrc_reads_bytes_8_to_12_of_a_version_2_header() {
    let mut packet = [0u8; 20];
    packet[0] = 0x80;
    packet[1] = 100;
    packet[8..12].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(rtp_ssrc(&packet), Some(0xdead_beef));
    assert_eq!(
        rtp_ssrc(&packet[..11]),
        None,
        "shorter than the fixed header"
    );
    packet[0] = 0x40;
    assert_eq!(rtp_ssrc(&packet), None, "version 1");
}

#[test]
fn vp8_keyframe_size_reads_the_uncompressed_header_rfc6386_9_1() {
    // A 640x480 keyframe header: tag (key, version 0, show), start code, sizes with scale 0.
    let key = [
        0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0xff,
    ];
    assert_eq!(vp8_keyframe_size(&key), Some((640, 480)));
    // Scaling bits are not part of the size.
    let mut scaled = key;
    scaled[7] |= 0xc0;
    scaled[9] |= 0x40;
    assert_eq!(vp8_keyframe_size(&scaled), Some((640, 480)));
    // An interframe has bit 0 of the tag set and no start code.
    let mut inter = key;
    inter[0] |= 1;
    assert_eq!(vp8_keyframe_size(&inter), None);
    let mut bad_code = key;
    bad_code[4] = 0;
    assert_eq!(vp8_keyframe_size(&bad_code), None);
    assert_eq!(vp8_keyframe_size(&key[..9]), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn readers_take_any_bytes_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = rtp_ssrc(&bytes);
        if let Some((w, h)) = vp8_keyframe_size(&bytes) {
            prop_assert!(w < 1 << 14 && h < 1 << 14);
        }
    }

    #[test]
    fn pli_round_trips_its_ssrcs(sender in any::<u32>(), media in any::<u32>()) {
        let p = pli(sender, media);
        prop_assert_eq!(u32::from_be_bytes([p[4], p[5], p[6], p[7]]), sender);
        prop_assert_eq!(u32::from_be_bytes([p[8], p[9], p[10], p[11]]), media);
    }
}
