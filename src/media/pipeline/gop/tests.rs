//! The group-of-pictures cache and its bounds.

use std::sync::Arc;
use std::time::Duration;

use super::super::MediaKind;
use super::*;

fn frame(seq: u64, keyframe: bool, len: usize) -> MediaFrame {
    MediaFrame {
        kind: MediaKind::Video,
        data: Arc::from(vec![0u8; len]),
        keyframe,
        pts: Duration::from_millis(seq * 33),
        duration: None,
        seq,
    }
}

fn seqs(g: &Gop) -> Vec<u64> {
    g.frames().iter().map(|f| f.seq).collect()
}

#[test]
fn keeps_the_last_keyframe_and_the_frames_after_it() {
    let mut g = Gop::default();
    g.push(&frame(0, false, 10));
    assert!(g.keyframe().is_none(), "nothing before the first keyframe");
    assert!(g.frames().is_empty());
    for (seq, key) in [(1, true), (2, false), (3, false), (4, true), (5, false)] {
        g.push(&frame(seq, key, 10));
    }
    assert_eq!(g.keyframe().map(|f| f.seq), Some(4));
    assert_eq!(seqs(&g), [4, 5]);
    g.clear();
    assert!(g.keyframe().is_none());
}

#[test]
fn a_group_over_the_byte_bound_keeps_only_its_keyframe_until_the_next() {
    let mut g = Gop::default();
    g.push(&frame(1, true, 1000));
    let big = MAX_GOP_BYTES / 4;
    for seq in 2..10 {
        g.push(&frame(seq, false, big));
    }
    assert_eq!(seqs(&g), [1], "truncated to the keyframe");
    assert!(g.bytes <= MAX_GOP_BYTES);
    g.push(&frame(10, false, 10));
    assert_eq!(seqs(&g), [1], "no gap-ridden tail after truncation");
    g.push(&frame(11, true, 10));
    g.push(&frame(12, false, 10));
    assert_eq!(seqs(&g), [11, 12]);
}

#[test]
fn a_group_over_the_frame_bound_keeps_only_its_keyframe() {
    let mut g = Gop::default();
    g.push(&frame(0, true, 1));
    for seq in 1..=(MAX_GOP_FRAMES as u64 + 5) {
        g.push(&frame(seq, false, 1));
    }
    assert_eq!(seqs(&g), [0]);
}
