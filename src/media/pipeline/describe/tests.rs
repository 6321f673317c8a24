//! The pipeline descriptions, as text: what each source and codec turns into.

use super::*;

fn spec(source: StreamSource, codec: VideoCodec) -> StreamSpec {
    StreamSpec {
        source,
        codec,
        ..StreamSpec::dev_test()
    }
}

fn local() -> RtpListen {
    RtpListen {
        address: IpAddr::from([127, 0, 0, 1]),
    }
}

fn janus_demo(video_rtcp_port: u16) -> StreamSource {
    StreamSource::Rtp {
        video_port: 5004,
        video_pt: 100,
        video_codec: VideoCodec::Vp8,
        audio_port: 5002,
        audio_pt: 111,
        video_rtcp_port,
    }
}

#[test]
fn the_dev_test_stream_is_test_pattern_and_tone_with_live_vp8_and_opus() {
    let s = StreamSpec::dev_test();
    let d = describe(&s, &EncoderChoice::software(VideoCodec::Vp8), local()).unwrap();
    assert_eq!(
        d.launch,
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=640,height=480,framerate=30/1 ! \
         videoconvert ! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 leaky=downstream ! \
         vp8enc deadline=1 cpu-used=8 lag-in-frames=0 end-usage=cbr target-bitrate=1000000 \
         keyframe-max-dist=60 error-resilient=default threads=1 buffer-size=500 buffer-initial-size=300 \
         buffer-optimal-size=400 ! video/x-vp8 ! \
         appsink name=video sync=false async=false max-buffers=8 drop=true enable-last-sample=false \
         audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert ! audioresample ! \
         audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=64000 frame-size=20 audio-type=generic ! \
         appsink name=audio sync=false async=false max-buffers=8 drop=true enable-last-sample=false"
    );
    assert!(d.encodes);
    assert!(d.audio);
}

#[test]
fn h264_is_constrained_baseline_annex_b_access_units_with_headers_at_every_idr() {
    let mut s = spec(
        StreamSource::Test {
            pattern: "ball".into(),
        },
        VideoCodec::H264,
    );
    s.audio = false;
    s.bitrate_kbps = 800;
    s.keyframe_interval_s = 1;
    let d = describe(&s, &EncoderChoice::software(VideoCodec::H264), local()).unwrap();
    assert!(
        d.launch.contains(
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=800 threads=1 \
             byte-stream=true ! video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 ! \
             video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=video"
        ),
        "{}",
        d.launch
    );
    assert!(!d.launch.contains("audiotestsrc"));
    assert!(!d.audio);
}

#[test]
fn a_camera_takes_raw_or_mjpeg_at_the_configured_mode_and_has_no_audio() {
    let s = spec(
        StreamSource::V4l2 {
            device: "/dev/video0".into(),
        },
        VideoCodec::Vp8,
    );
    let d = describe(&s, &EncoderChoice::software(VideoCodec::Vp8), local()).unwrap();
    assert!(
        d.launch.starts_with(
            "v4l2src device=\"/dev/video0\" ! capsfilter caps=\"video/x-raw,width=640,height=480,framerate=30/1;\
             image/jpeg,width=640,height=480,framerate=30/1\" ! decodebin ! videoscale ! \
             video/x-raw,width=640,height=480 ! videoconvert ! queue"
        ),
        "{}",
        d.launch
    );
    assert!(!d.audio, "spec.audio is ignored for cameras");
    assert!(d.encodes);
}

#[test]
fn a_board_encoder_gets_its_properties_with_the_placeholders_filled_in() {
    let s = spec(
        StreamSource::V4l2 {
            device: "/dev/video0".into(),
        },
        VideoCodec::H264,
    );
    let enc = EncoderChoice {
        element: "v4l2h264enc".into(),
        properties: vec![(
            "extra-controls".into(),
            "controls,video_bitrate={bitrate},h264_i_frame_period={keyframe_frames}".into(),
        )],
        ..EncoderChoice::software(VideoCodec::H264)
    };
    let d = describe(&s, &enc, local()).unwrap();
    assert!(
        d.launch.contains(
            "v4l2h264enc extra-controls=\"controls,video_bitrate=1000000,h264_i_frame_period=60\" ! \
             video/x-h264,profile=constrained-baseline ! h264parse"
        ),
        "{}",
        d.launch
    );
}

#[test]
fn an_encoder_with_its_own_converter_gets_its_input_caps_and_output_caps() {
    // A Jetson's NVENC: nvvidconv moves frames into NVMM memory; its output is any H.264.
    let s = spec(
        StreamSource::Test {
            pattern: "ball".into(),
        },
        VideoCodec::H264,
    );
    let enc = EncoderChoice {
        element: "nvv4l2h264enc".into(),
        properties: vec![
            ("bitrate".into(), "{bitrate}".into()),
            ("insert-sps-pps".into(), "true".into()),
        ],
        convert: "nvvidconv".into(),
        input_caps: Some("video/x-raw(memory:NVMM),format=NV12".into()),
        caps: "video/x-h264".into(),
    };
    let d = describe(&s, &enc, local()).unwrap();
    assert!(
        d.launch.contains(
            "framerate=30/1 ! nvvidconv ! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 \
             leaky=downstream ! video/x-raw(memory:NVMM),format=NV12 ! nvv4l2h264enc bitrate=1000000 \
             insert-sps-pps=true ! video/x-h264 ! h264parse config-interval=-1"
        ),
        "{}",
        d.launch
    );
}

#[test]
fn the_janus_demo_rtp_is_depayloaded_without_reencoding() {
    let s = spec(janus_demo(0), VideoCodec::Vp8);
    let d = describe(&s, &EncoderChoice::software(VideoCodec::Vp8), local()).unwrap();
    assert_eq!(
        d.launch,
        "udpsrc name=rtpvideo address=127.0.0.1 port=5004 \
         caps=\"application/x-rtp,media=video,encoding-name=VP8,payload=100,clock-rate=90000\" ! \
         rtpjitterbuffer latency=50 ! rtpvp8depay wait-for-keyframe=true ! video/x-vp8 ! \
         appsink name=video sync=false async=false max-buffers=8 drop=true enable-last-sample=false \
         udpsrc address=127.0.0.1 port=5002 \
         caps=\"application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000\" ! \
         rtpjitterbuffer latency=50 ! rtpopusdepay ! \
         appsink name=audio sync=false async=false max-buffers=8 drop=true enable-last-sample=false"
    );
    assert!(!d.encodes);
    assert!(!d.launch.contains("vp8enc"));
}

#[test]
fn rtp_h264_becomes_annex_b_access_units_and_audio_needs_a_port() {
    let mut s = spec(
        StreamSource::Rtp {
            video_port: 6000,
            video_pt: 96,
            video_codec: VideoCodec::H264,
            audio_port: 0,
            audio_pt: 111,
            video_rtcp_port: 0,
        },
        VideoCodec::H264,
    );
    s.audio = true;
    let d = describe(&s, &EncoderChoice::software(VideoCodec::H264), local()).unwrap();
    assert!(d.launch.contains(
        "encoding-name=H264,payload=96,clock-rate=90000\" ! rtpjitterbuffer latency=50 ! rtph264depay ! \
         h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink"
    ));
    assert!(!d.audio, "audio port 0 means no audio");
    let v6 = describe(
        &s,
        &EncoderChoice::software(VideoCodec::H264),
        RtpListen {
            address: "::".parse().unwrap(),
        },
    )
    .unwrap();
    assert!(
        v6.launch.contains("address=\"::\" port=6000"),
        "{}",
        v6.launch
    );
}

#[test]
fn configured_values_cannot_break_out_of_their_property() {
    let s = spec(
        StreamSource::V4l2 {
            device: "/dev/x\" ! filesink location=/etc/passwd \\".into(),
        },
        VideoCodec::Vp8,
    );
    let d = describe(&s, &EncoderChoice::software(VideoCodec::Vp8), local()).unwrap();
    assert!(
        d.launch.starts_with(
            "v4l2src device=\"/dev/x\\\" ! filesink location=/etc/passwd \\\\\" ! capsfilter"
        ),
        "{}",
        d.launch
    );
    assert_eq!(quote(""), "\"\"");
    assert_eq!(value(""), "\"\"");
    assert_eq!(value("zone-plate"), "zone-plate");
    assert_eq!(value("a b"), "\"a b\"");
}

#[test]
fn encoder_names_must_be_gstreamer_names() {
    let s = StreamSpec::dev_test();
    let bad_element = EncoderChoice {
        element: "vp8enc ! filesink".into(),
        properties: vec![],
        ..EncoderChoice::software(VideoCodec::Vp8)
    };
    let err = describe(&s, &bad_element, local()).unwrap_err();
    assert!(
        matches!(&err, PipelineError::BadEncoder { what: "element", value, .. } if value == "vp8enc ! filesink"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"vp8enc ! filesink\""), "{err}");
    let bad_property = EncoderChoice {
        element: "vp8enc".into(),
        properties: vec![("deadline=1 name".into(), "x".into())],
        ..EncoderChoice::software(VideoCodec::Vp8)
    };
    assert!(matches!(
        describe(&s, &bad_property, local()),
        Err(PipelineError::BadEncoder {
            what: "property",
            ..
        })
    ));
    for (choice, what) in [
        (
            EncoderChoice {
                convert: "videoconvert ! fakesink".into(),
                ..EncoderChoice::software(VideoCodec::Vp8)
            },
            "converter",
        ),
        (
            EncoderChoice {
                input_caps: Some("video/x-raw ! filesink location=x".into()),
                ..EncoderChoice::software(VideoCodec::Vp8)
            },
            "input caps",
        ),
        (
            EncoderChoice {
                caps: "video/x-vp8\" name=x".into(),
                ..EncoderChoice::software(VideoCodec::Vp8)
            },
            "caps",
        ),
    ] {
        let err = describe(&s, &choice, local()).unwrap_err();
        assert!(
            matches!(&err, PipelineError::BadEncoder { what: w, .. } if *w == what),
            "{err:?}"
        );
    }
    assert!(is_gst_name("v4l2h264enc"));
    assert!(is_gst_name("key-int-max"));
    assert!(!is_gst_name(""));
    assert!(!is_gst_name("1x"));
}

#[test]
fn placeholders_come_from_the_spec_and_other_braces_stay() {
    let mut s = StreamSpec::dev_test();
    s.fps = 25;
    s.keyframe_interval_s = 4;
    s.bitrate_kbps = 1500;
    assert_eq!(
        substitute(
            "{bitrate} {bitrate_kbps} {fps} {keyframe_frames} { a, b } {other}",
            &s
        ),
        "1500000 1500 25 100 { a, b } {other}"
    );
    s.keyframe_interval_s = 0;
    assert_eq!(substitute("{keyframe_frames}", &s), "1", "never 0");
}
