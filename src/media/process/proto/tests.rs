use futures_lite::io::Cursor;

use proptest::prelude::*;

use super::*;

fn status() -> StreamStatus {
    StreamStatus {
        state: "offline",
        reason: "camera /dev/video0 is absent".into(),
        viewers: 2,
        width: 640,
        height: 480,
        fps: 29.5,
        bitrate_kbps: 998.2,
        encoder: "v4l2h264enc".into(),
        encoder_hardware: true,
        encoder_reason: "hardware encoder v4l2h264enc of board rpi4 is in this GStreamer".into(),
    }
}

fn all_messages() -> (Vec<ToMedia>, Vec<FromMedia>) {
    let board = crate::board::Selection::generic(Default::default()).unwrap();
    let to = vec![
        ToMedia::Apply {
            streams: vec![StreamSpec::dev_test()],
            board: serde_json::to_string(&board).unwrap(),
        },
        ToMedia::Whep {
            id: 7,
            request: WhepRequest {
                method: "POST".into(),
                path: "/whep/test".into(),
                content_type: Some("application/sdp".into()),
                body: b"v=0\r\n".repeat(600),
            },
        },
    ];
    let from = vec![
        FromMedia::Whep {
            id: 7,
            reply: WireReply {
                status: 201,
                headers: vec![
                    ("content-type".into(), "application/sdp".into()),
                    ("location".into(), "/whep/test/abc".into()),
                ],
                body: b"v=0\r\n".repeat(300),
            },
        },
        FromMedia::Status {
            streams: [("test".to_string(), status())].into_iter().collect(),
            encoders: vec![crate::board::EncoderPick {
                codec: crate::config::VideoCodec::Vp8,
                choice: crate::board::EncoderChoice::software(crate::config::VideoCodec::Vp8),
                hardware: false,
                reason: "board generic has no hardware VP8 encoder: software".into(),
            }],
        },
    ];
    (to, from)
}

/// The next message from `r`, as the agent and the media process read their pipes.
fn read<T: for<'de> Deserialize<'de>>(
    r: &mut Cursor<impl AsRef<[u8]> + Unpin>,
) -> Result<Option<T>, ProtoError> {
    smol::block_on(read_async(r))
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
        assert_eq!(read::<ToMedia>(&mut r).unwrap().as_ref(), Some(m));
    }
    assert!(read::<ToMedia>(&mut r).unwrap().is_none(), "a clean end");

    let mut pipe = Vec::new();
    for m in &from {
        pipe.extend(encode(m).unwrap());
    }
    let mut r = Cursor::new(pipe);
    for m in &from {
        assert_eq!(read::<FromMedia>(&mut r).unwrap().as_ref(), Some(m));
    }
    assert!(read::<FromMedia>(&mut r).unwrap().is_none());
}

#[test]
fn a_pipe_cut_inside_a_message_is_truncated_not_a_clean_end() {
    let whole = encode(&all_messages().1[0]).unwrap();
    for cut in [1, 3, 4, 5, whole.len() - 1] {
        let err = read::<FromMedia>(&mut Cursor::new(&whole[..cut])).unwrap_err();
        assert!(matches!(err, ProtoError::Truncated), "cut at {cut}: {err}");
    }
}

#[test]
fn an_oversized_length_is_refused_before_anything_is_allocated() {
    let mut pipe = ((MAX_MESSAGE + 1) as u32).to_le_bytes().to_vec();
    pipe.extend([0u8; 16]);
    let err = read::<FromMedia>(&mut Cursor::new(&pipe)).unwrap_err();
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
fn a_message_too_long_for_the_reader_is_not_encoded() {
    let huge = ToMedia::Whep {
        id: 1,
        request: WhepRequest {
            method: "POST".into(),
            path: "/whep/test".into(),
            content_type: None,
            body: vec![7; MAX_MESSAGE + 1],
        },
    };
    assert!(encode(&huge).is_err());
}

#[test]
fn the_board_reads_back_as_the_agent_chose_it_but_for_where_it_came_from() {
    for profile in crate::board::builtin::all().unwrap() {
        let name = profile.name.clone();
        let board = crate::board::Selection {
            profile,
            chosen: crate::board::Chosen::ConfigFile("/etc/outpost.d/board.json:1:10".into()),
            device_tree: crate::board::DeviceTree {
                model: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
                compatible: vec!["raspberrypi,4-model-b".into(), "brcm,bcm2711".into()],
            },
        };
        let read: crate::board::Selection =
            serde_json::from_str(&serde_json::to_string(&board).unwrap()).unwrap();
        let mut expected = board.clone();
        expected.profile.origin = String::new();
        assert_eq!(read, expected, "{name}");
    }
}

#[test]
fn a_stream_state_the_agent_does_not_know_reads_as_offline() {
    for (sent, read) in [
        ("playing", "playing"),
        ("idle", "idle"),
        ("rebooting", "offline"),
    ] {
        let mut s = status();
        s.state = sent;
        let bytes = postcard::to_stdvec(&s).unwrap();
        let back: StreamStatus = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, StreamStatus { state: read, ..s });
    }
}

#[test]
fn an_unknown_message_is_malformed() {
    // Variant 9 of FromMedia does not exist.
    let pipe = [1, 0, 0, 0, 9];
    let err = read::<FromMedia>(&mut Cursor::new(&pipe[..])).unwrap_err();
    assert!(matches!(err, ProtoError::Malformed(_)), "{err}");
}

proptest! {
    /// Whatever a broken or hostile worker writes, the agent's reader answers with a
    /// message or an error, never a panic, and never reads past what it was given.
    #[test]
    fn any_bytes_give_a_message_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut r = Cursor::new(&bytes[..]);
        while let Ok(Some(_)) = read::<FromMedia>(&mut r) {}
        prop_assert!(r.position() as usize <= bytes.len());
    }

    /// Cut anywhere, a stream of valid messages yields a prefix of them, then a clean end
    /// (cut between messages) or Truncated.
    #[test]
    fn a_cut_stream_reads_a_prefix_then_ends_or_is_truncated(cut in 0usize..3000) {
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
            match read::<FromMedia>(&mut r) {
                Ok(Some(m)) => { prop_assert_eq!(&m, &from[got]); got += 1; }
                Ok(None) => { prop_assert!(ends.contains(&cut)); break; }
                Err(ProtoError::Truncated) => { prop_assert!(!ends.contains(&cut)); break; }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
