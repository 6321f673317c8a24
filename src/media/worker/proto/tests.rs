use std::io::Cursor;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::stream::StreamSpec;
use crate::media::pipeline::{MediaCounters, StreamState};

fn stats() -> PipelineStats {
    PipelineStats {
        state: StreamState::Offline {
            reason: "camera /dev/video0 is absent".into(),
        },
        video: MediaCounters {
            frames: 300,
            bytes: 1_234_567,
            keyframes: 5,
            dropped: 2,
        },
        audio: MediaCounters::default(),
        fps: 29.5,
        video_bitrate: 998_000.0,
        audio_bitrate: 0.0,
        width: Some(640),
        height: Some(480),
        starts: 3,
        keyframe_requests: 7,
        last_error: Some("v4l2src0: Cannot identify device '/dev/video0'.".into()),
    }
}

fn frame() -> WireFrame {
    WireFrame {
        kind: MediaKind::Video,
        data: (0..5000u32).map(|i| i as u8).collect(),
        keyframe: true,
        pts: Duration::from_millis(1234),
        duration: Some(Duration::from_micros(33_333)),
        seq: 42,
    }
}

fn all_messages() -> (Vec<ToWorker>, Vec<FromWorker>) {
    let to = vec![
        ToWorker::Probe(vec!["v4l2h264enc".into(), "videoconvert".into()]),
        ToWorker::Open {
            spec: StreamSpec::dev_test(),
            encoder: EncoderChoice::software(crate::config::VideoCodec::Vp8),
        },
        ToWorker::Start,
        ToWorker::Stop,
        ToWorker::KeyframeWanted,
    ];
    let from = vec![
        FromWorker::Exists(vec![false, true]),
        FromWorker::Opened(Ok(())),
        FromWorker::Opened(Err("no element \"vp8enc\"".into())),
        FromWorker::Frame(frame()),
        FromWorker::Stats(stats()),
    ];
    (to, from)
}

#[test]
fn every_message_reads_back_as_written_one_after_another() {
    let (to, from) = all_messages();
    let mut pipe = Vec::new();
    for m in &to {
        pipe.extend(encode(m).unwrap());
    }
    let mut r = Cursor::new(pipe);
    for m in &to {
        assert_eq!(read::<ToWorker>(&mut r).unwrap().as_ref(), Some(m));
    }
    assert!(read::<ToWorker>(&mut r).unwrap().is_none(), "a clean end");

    let mut pipe = Vec::new();
    for m in &from {
        pipe.extend(encode(m).unwrap());
    }
    let mut r = futures_lite::io::Cursor::new(pipe);
    smol::block_on(async {
        for m in &from {
            assert_eq!(
                read_async::<FromWorker>(&mut r).await.unwrap().as_ref(),
                Some(m)
            );
        }
        assert!(read_async::<FromWorker>(&mut r).await.unwrap().is_none());
    });
}

#[test]
fn a_frame_keeps_its_bytes_and_times_through_the_wire_form() {
    let f = frame();
    let media: MediaFrame = f.clone().into();
    assert_eq!(&*media.data, &f.data[..]);
    assert_eq!(WireFrame::from(&media), f);
}

#[test]
fn a_pipe_cut_inside_a_message_is_truncated_not_a_clean_end() {
    let whole = encode(&FromWorker::Frame(frame())).unwrap();
    for cut in [1, 3, 4, 5, whole.len() - 1] {
        let err = read::<FromWorker>(&mut Cursor::new(&whole[..cut])).unwrap_err();
        assert!(matches!(err, ProtoError::Truncated), "cut at {cut}: {err}");
        let err = smol::block_on(read_async::<FromWorker>(
            &mut futures_lite::io::Cursor::new(&whole[..cut]),
        ))
        .unwrap_err();
        assert!(matches!(err, ProtoError::Truncated), "cut at {cut}: {err}");
    }
}

#[test]
fn an_oversized_length_is_refused_before_anything_is_allocated() {
    let mut pipe = ((MAX_MESSAGE + 1) as u32).to_le_bytes().to_vec();
    pipe.extend([0u8; 16]);
    let err = read::<FromWorker>(&mut Cursor::new(&pipe)).unwrap_err();
    assert!(
        matches!(err, ProtoError::TooLong(n) if n == MAX_MESSAGE + 1),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "a message of {} bytes is longer than the {MAX_MESSAGE} allowed",
            MAX_MESSAGE + 1
        )
    );
}

#[test]
fn a_frame_too_big_for_the_reader_is_not_encoded() {
    let mut f = frame();
    f.data = vec![7; MAX_MESSAGE + 1];
    assert!(encode(&FromWorker::Frame(f)).is_err());
}

#[test]
fn an_unknown_message_is_malformed() {
    // Variant 9 of FromWorker does not exist.
    let pipe = [1, 0, 0, 0, 9];
    let err = read::<FromWorker>(&mut Cursor::new(&pipe[..])).unwrap_err();
    assert!(matches!(err, ProtoError::Malformed(_)), "{err}");
}

proptest! {
    /// Whatever a broken or hostile worker writes, the agent's reader answers with a
    /// message or an error, never a panic, and never reads past what it was given.
    #[test]
    fn any_bytes_give_a_message_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut r = Cursor::new(&bytes[..]);
        while let Ok(Some(_)) = read::<FromWorker>(&mut r) {}
        prop_assert!(r.position() as usize <= bytes.len());
        let mut r = futures_lite::io::Cursor::new(&bytes[..]);
        smol::block_on(async { while let Ok(Some(_)) = read_async::<FromWorker>(&mut r).await {} });
    }

    /// Cut anywhere, a stream of valid messages yields a prefix of them, then a clean end
    /// (cut between messages) or Truncated.
    #[test]
    fn a_cut_stream_reads_a_prefix_then_ends_or_is_truncated(cut in 0usize..6000) {
        let (_, from) = all_messages();
        let mut pipe = Vec::new();
        let mut ends = vec![0];
        for m in &from {
            pipe.extend(encode(m).unwrap());
            ends.push(pipe.len());
        }
        let cut = cut.min(pipe.len());
        let mut r = Cursor::new(&pipe[..cut]);
        let mut got = 0;
        loop {
            match read::<FromWorker>(&mut r) {
                Ok(Some(m)) => { prop_assert_eq!(&m, &from[got]); got += 1; }
                Ok(None) => { prop_assert!(ends.contains(&cut)); break; }
                Err(ProtoError::Truncated) => { prop_assert!(!ends.contains(&cut)); break; }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
