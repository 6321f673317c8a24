//! Board profiles through the real agent (`outpost agent -board ...`): the profile it runs
//! with and why (`/v1/agent/self`), the camera defaults a `v4l2` stream gets, the encoder
//! each stream uses (hardware when this GStreamer has the profile's element, else the
//! software fallback, with the reason) while the stream plays, a device-tree fixture
//! picking the board, and the errors of an unknown board or a broken profile file.
//! The media tests need GStreamer's base, good and ugly plugins (Debian's
//! `gstreamer1.0-plugins-{base,good,ugly}`); they fail, never skip, without them.

#[cfg(feature = "media")]
#[path = "common/browser.rs"]
mod browser;
mod common;

use std::process::Command;

use common::{Agent, HttpReply, curl, require_curl, write};

fn agent(extra: &[&str]) -> Agent {
    let mut args = vec![
        "-dev",
        "-bind",
        "127.0.0.1",
        "-dns-port",
        "0",
        "-http-port",
        "0",
        "-https-port",
        "-1",
    ];
    args.extend_from_slice(extra);
    Agent::start(&args)
}

fn get(agent: &Agent, path: &str) -> serde_json::Value {
    let r: HttpReply = curl(&[&format!("http://{}{path}", agent.http.unwrap())]);
    assert_eq!(r.status, 200, "{path}: {r:?}\n{}", agent.log());
    r.json()
}

/// A device tree as Linux shows it under /proc/device-tree, in a temporary directory.
fn device_tree(model: &str, compatible: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model"), format!("{model}\0")).unwrap();
    let list: String = compatible.iter().map(|c| format!("{c}\0")).collect();
    std::fs::write(dir.path().join("compatible"), list).unwrap();
    dir
}

/// `outpost agent ARGS` that must fail at start: its exit status and stderr.
fn refused(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(common::bin())
        .arg("agent")
        .args([
            "-dev",
            "-dns-port",
            "0",
            "-http-port",
            "0",
            "-https-port",
            "-1",
        ])
        .args(["-serf-lan-port", "0"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_board_stops_the_agent_naming_the_known_ones() {
    let (status, err) = refused(&["-board", "nosuch"]);
    assert!(!status.success(), "{err}");
    assert!(err.contains("-board: unknown board \"nosuch\""), "{err}");
    for name in [
        "rpi4",
        "rpi5",
        "rk3588",
        "imx8mp",
        "jetson-orin",
        "qemu-arm64",
        "generic",
    ] {
        assert!(err.contains(name), "{name} is not listed: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_broken_profile_file_stops_the_agent_naming_the_file_and_the_place() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "myboard.json",
        "{\"name\": \"myboard\", \"description\": \"a board\",\n \"encoders\": {\"h264\": {\"hardware\": [\n   {\"element\": \"x264enc\", \"properties\": {\"bitrate\": \"{kbps}\"}}]}}}",
    );
    let path = dir.path().join("myboard.json");
    let (status, err) = refused(&["-board", &path.display().to_string()]);
    assert!(!status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3:53: encoders.h264.hardware[0].properties.bitrate: unknown placeholder {{kbps}}",
            path.display()
        )),
        "{err}"
    );
    // Not JSON at all.
    write(dir.path(), "myboard.json", "board: rpi4\n");
    let (status, err) = refused(&["-board", &path.display().to_string()]);
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("myboard.json:1:1") && err.contains("expected a board profile"),
        "{err}"
    );
}

#[test]
fn a_device_tree_picks_the_board_and_the_agent_says_so() {
    require_curl();
    let pi5 = device_tree(
        "Raspberry Pi 5 Model B Rev 1.0",
        &["raspberrypi,5-model-b", "brcm,bcm2712"],
    );
    let a = agent(&["-device-tree", &pi5.path().display().to_string()]);
    let b = get(&a, "/v1/agent/self")["Board"].clone();
    assert_eq!(b["Name"], "rpi5", "{b}");
    assert_eq!(b["Source"], "device tree", "{b}");
    assert_eq!(b["Model"], "Raspberry Pi 5 Model B Rev 1.0", "{b}");
    assert_eq!(b["Compatible"][1], "brcm,bcm2712", "{b}");
    assert_eq!(b["Target"], "aarch64-unknown-linux-gnu", "{b}");
    assert_eq!(b["Camera"]["Device"], "/dev/video0", "{b}");
    assert!(
        b["Reason"]
            .as_str()
            .unwrap()
            .contains("compatible \"raspberrypi,5-model-b\""),
        "{b}"
    );
    assert!(a.log().contains("board rpi5"), "{}", a.log());

    // A board no profile knows: the generic profile, and the log says why.
    let other = device_tree(
        "Pine64 RockPro64 v2.1",
        &["pine64,rockpro64-v2.1", "rockchip,rk3399"],
    );
    let a = agent(&["-device-tree", &other.path().display().to_string()]);
    let b = get(&a, "/v1/agent/self")["Board"].clone();
    assert_eq!(
        (b["Name"].as_str(), b["Source"].as_str()),
        (Some("generic"), Some("default")),
        "{b}"
    );
    assert!(b["Camera"].is_null(), "{b}");
    let log = a.log();
    assert!(
        log.contains("board generic")
            && log
                .contains("no board profile matches this machine (model \"Pine64 RockPro64 v2.1\""),
        "{log}"
    );
    // -board wins over the device tree.
    let a = agent(&[
        "-board",
        "qemu-arm64",
        "-device-tree",
        &pi5.path().display().to_string(),
    ]);
    let b = get(&a, "/v1/agent/self")["Board"].clone();
    assert_eq!(
        (b["Name"].as_str(), b["Source"].as_str()),
        (Some("qemu-arm64"), Some("-board")),
        "{b}"
    );
}

#[cfg(not(feature = "media"))]
#[test]
fn without_media_the_board_shows_and_no_encoder_is_claimed() {
    require_curl();
    let a = agent(&["-board", "rpi4"]);
    let b = get(&a, "/v1/agent/self")["Board"].clone();
    assert_eq!(b["Name"], "rpi4", "{b}");
    assert_eq!(b["Encoders"], serde_json::json!([]), "{b}");
    assert!(
        b["EncodersNote"]
            .as_str()
            .unwrap()
            .contains("without the media feature"),
        "{b}"
    );
}

#[cfg(feature = "media")]
mod media {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;

    /// `/v1/streams/<name>` once `done` says so (within 10 s: the media hub builds streams
    /// beside the rest after the agent started).
    fn stream_when(
        a: &Agent,
        name: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = get(a, &format!("/v1/streams/{name}"));
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("stream {name} never got there: {s}\n{}", a.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A WHEP offer as a browser's (audio and video, receive only), made by str0m. The
    /// viewer never connects; its offer starts the stream's encoder.
    fn offer() -> String {
        use str0m::Rtc;
        use str0m::media::{Direction, MediaKind};
        let mut rtc = Rtc::builder().build(Instant::now());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.apply().unwrap().0.to_sdp_string()
    }

    /// Asks for `stream` over WHEP and waits until its encoder delivers frames: `playing`
    /// with a measured frame rate. Returns `/v1/streams/<stream>` then.
    fn plays(a: &Agent, stream: &str) -> serde_json::Value {
        let r = curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/sdp",
            "--data-binary",
            &offer(),
            &format!("http://{}/whep/{stream}", a.http.unwrap()),
        ]);
        assert_eq!(r.status, 201, "{r:?}\n{}", a.log());
        let deadline = Instant::now() + Duration::from_secs(9);
        let mut last = serde_json::Value::Null;
        while Instant::now() < deadline {
            last = get(a, &format!("/v1/streams/{stream}"));
            if last["State"] == "playing" && last["MeasuredFps"].as_f64().unwrap_or(0.0) > 0.0 {
                return last;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("stream {stream} never played: {last}\n{}", a.log());
    }

    fn encoders(a: &Agent) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let b = get(a, "/v1/agent/self")["Board"].clone();
            if b["Encoders"].as_array().is_some_and(|e| !e.is_empty()) || Instant::now() > deadline
            {
                return b["Encoders"].clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn rpi4_without_its_hardware_encoder_plays_on_the_software_fallback_and_says_why() {
        require_curl();
        let conf = tempfile::tempdir().unwrap();
        write(
            conf.path(),
            "streams.json",
            r#"{"streams": [{"name": "cam", "source": "test", "codec": "h264", "width": 320, "height": 240},
                            {"name": "usb", "source": "v4l2", "codec": "h264"}]}"#,
        );
        // v4l2h264enc exists only where the Pi's encoder device does: not here.
        assert!(!Path::new("/dev/video11").exists());
        let a = agent(&[
            "-board",
            "rpi4",
            "-config-dir",
            &conf.path().display().to_string(),
        ]);
        let b = get(&a, "/v1/agent/self")["Board"].clone();
        assert_eq!(
            (b["Name"].as_str(), b["Source"].as_str()),
            (Some("rpi4"), Some("-board")),
            "{b}"
        );
        assert_eq!(b["Camera"]["Width"], 1280, "{b}");

        // The camera stream that names nothing gets the board's camera.
        let usb = get(&a, "/v1/streams/usb");
        assert_eq!(
            (
                usb["Width"].as_u64(),
                usb["Height"].as_u64(),
                usb["Fps"].as_u64()
            ),
            (Some(1280), Some(720), Some(30)),
            "{usb}"
        );
        if !Path::new("/dev/video0").exists() {
            let usb = stream_when(&a, "usb", |s| s["State"] == "offline");
            assert!(
                usb["Reason"].as_str().unwrap().contains("/dev/video0"),
                "{usb}"
            );
        }

        let cam = plays(&a, "cam");
        assert_eq!(cam["Encoder"], "x264enc", "{cam}");
        assert_eq!(cam["EncoderHardware"], false, "{cam}");
        let reason = cam["EncoderReason"].as_str().unwrap();
        assert!(
            reason.contains("v4l2h264enc") && reason.contains("software fallback"),
            "{cam}"
        );
        assert_eq!(
            (
                cam["MeasuredWidth"].as_u64(),
                cam["MeasuredHeight"].as_u64()
            ),
            (Some(320), Some(240)),
            "{cam}"
        );

        let enc = encoders(&a);
        let h264 = enc
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["Codec"] == "h264")
            .unwrap();
        assert_eq!(
            (h264["Element"].as_str(), h264["Hardware"].as_bool()),
            (Some("x264enc"), Some(false)),
            "{enc}"
        );
        let vp8 = enc
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["Codec"] == "vp8")
            .unwrap();
        assert_eq!(vp8["Element"], "vp8enc", "{enc}");
        assert!(
            vp8["Reason"]
                .as_str()
                .unwrap()
                .contains("no hardware VP8 encoder"),
            "{enc}"
        );
        // The dev test stream (VP8) plays too, in software.
        let test = plays(&a, "test");
        assert_eq!(
            (test["Encoder"].as_str(), test["EncoderHardware"].as_bool()),
            (Some("vp8enc"), Some(false)),
            "{test}"
        );
        assert!(
            a.log().contains("stream \"cam\": software encoder x264enc"),
            "{}",
            a.log()
        );
    }

    #[test]
    fn a_profile_files_hardware_encoder_is_used_when_gstreamer_has_it_and_a_refused_one_falls_back()
    {
        require_curl();
        let dir = tempfile::tempdir().unwrap();
        // H.264: the first candidate is not installed, the second is (x264enc, standing in
        // for a board's encoder). VP8: an encoder GStreamer refuses (a bad value).
        write(
            dir.path(),
            "bench.json",
            r#"{"name": "bench", "description": "a bench box",
                "camera": {"device": "/dev/video7", "width": 800, "height": 600, "fps": 15},
                "encoders": {
                  "h264": {"hardware": [
                    {"element": "outpostnosuchenc"},
                    {"element": "x264enc", "properties": {"tune": "zerolatency", "speed-preset": "superfast",
                      "key-int-max": "{keyframe_frames}", "bitrate": "{bitrate_kbps}", "byte-stream": true},
                     "output_caps": "video/x-h264,profile=constrained-baseline"}]},
                  "vp8": {"hardware": [{"element": "vp8enc", "properties": {"deadline": "soon"}}]}}}"#,
        );
        let conf = tempfile::tempdir().unwrap();
        write(
            conf.path(),
            "streams.json",
            r#"{"streams": [{"name": "h", "source": "test", "codec": "h264", "width": 320, "height": 240},
                            {"name": "v", "source": "test", "codec": "vp8", "width": 320, "height": 240},
                            {"name": "cam", "source": "v4l2"}]}"#,
        );
        let profile = dir.path().join("bench.json");
        let a = agent(&[
            "-board",
            &profile.display().to_string(),
            "-config-dir",
            &conf.path().display().to_string(),
        ]);
        let b = get(&a, "/v1/agent/self")["Board"].clone();
        assert_eq!(
            (b["Name"].as_str(), b["Origin"].as_str()),
            (Some("bench"), profile.to_str()),
            "{b}"
        );
        let cam = stream_when(&a, "cam", |s| s["State"] == "offline");
        assert_eq!(
            (cam["Width"].as_u64(), cam["Fps"].as_u64()),
            (Some(800), Some(15)),
            "{cam}"
        );
        assert!(
            cam["Reason"].as_str().unwrap().contains("/dev/video7"),
            "{cam}"
        );

        let h = plays(&a, "h");
        assert_eq!(
            (h["Encoder"].as_str(), h["EncoderHardware"].as_bool()),
            (Some("x264enc"), Some(true)),
            "{h}"
        );
        assert!(
            h["EncoderReason"]
                .as_str()
                .unwrap()
                .contains("hardware encoder x264enc of board bench"),
            "{h}"
        );
        let v = plays(&a, "v");
        assert_eq!(
            (v["Encoder"].as_str(), v["EncoderHardware"].as_bool()),
            (Some("vp8enc"), Some(false)),
            "{v}"
        );
        let reason = v["EncoderReason"].as_str().unwrap();
        assert!(
            reason.contains("refused") && reason.contains("deadline"),
            "{v}"
        );
    }

    /// A reload that changes `board` rebuilds the encoded streams for the new board.
    #[test]
    fn a_reload_that_changes_the_board_rebuilds_the_encoded_streams() {
        require_curl();
        let conf = tempfile::tempdir().unwrap();
        write(conf.path(), "agent.json", r#"{"board": "rpi4"}"#);
        write(
            conf.path(),
            "streams.json",
            r#"{"streams": [{"name": "cam", "source": "test", "codec": "h264", "width": 320, "height": 240},
                            {"name": "usb", "source": "v4l2"}]}"#,
        );
        let a = agent(&["-config-dir", &conf.path().display().to_string()]);
        let b = get(&a, "/v1/agent/self")["Board"].clone();
        assert_eq!(
            (b["Name"].as_str(), b["Source"].as_str()),
            (Some("rpi4"), Some("config file")),
            "{b}"
        );
        assert!(
            b["Reason"].as_str().unwrap().contains("agent.json:1:11"),
            "{b}"
        );
        let cam = stream_when(&a, "cam", |s| s["Encoder"] == "x264enc");
        assert!(
            cam["EncoderReason"]
                .as_str()
                .unwrap()
                .contains("v4l2h264enc"),
            "{cam}"
        );

        write(conf.path(), "agent.json", r#"{"board": "jetson-orin"}"#);
        a.signal("HUP");
        let cam = stream_when(&a, "cam", |s| {
            s["EncoderReason"]
                .as_str()
                .is_some_and(|r| r.contains("nvv4l2h264enc"))
        });
        assert_eq!(cam["Encoder"], "x264enc", "{cam}");
        // The camera defaults follow the board.
        let usb = get(&a, "/v1/streams/usb");
        assert_eq!(
            (usb["Width"].as_u64(), usb["Height"].as_u64()),
            (Some(1920), Some(1080)),
            "{usb}"
        );
        assert_eq!(get(&a, "/v1/agent/self")["Board"]["Name"], "jetson-orin");
        assert!(a.log().contains("board jetson-orin"), "{}", a.log());
        // The rebuilt stream plays.
        let cam = plays(&a, "cam");
        assert!(
            cam["EncoderReason"]
                .as_str()
                .unwrap()
                .contains("nvv4l2h264enc"),
            "{cam}"
        );

        // A board that does not exist is a failed reload: the running board stays.
        write(conf.path(), "agent.json", r#"{"board": "rpi3"}"#);
        a.signal("HUP");
        a.wait_log("unknown board \"rpi3\"");
        assert_eq!(get(&a, "/v1/agent/self")["Board"]["Name"], "jetson-orin");
    }

    /// Every built-in profile's encoders that this GStreamer has make a pipeline GStreamer
    /// accepts (property names and values included), for both codecs.
    #[test]
    fn every_built_in_profiles_available_encoders_make_a_pipeline_gstreamer_accepts() {
        use outpost::board::{Chosen, DeviceTree, builtin, encoder, select};
        use outpost::config::{StreamSource, StreamSpec, VideoCodec};
        use outpost::media::pipeline::Pipeline;
        gstreamer::init().unwrap();
        let exists = |e: &str| gstreamer::ElementFactory::find(e).is_some();
        let mut checked = 0;
        for name in builtin::NAMES {
            let board = select(Some((name, Chosen::Flag)), &DeviceTree::default()).unwrap();
            for codec in [VideoCodec::H264, VideoCodec::Vp8] {
                let pick = encoder::pick(&board, codec, exists);
                let spec = StreamSpec {
                    name: format!("{name}-{}", codec.as_str()),
                    source: StreamSource::Test {
                        pattern: "ball".into(),
                    },
                    codec,
                    audio: false,
                    ..StreamSpec::dev_test()
                };
                let (tx, _rx) = async_channel::bounded(4);
                let started = Pipeline::new(&spec, &pick.choice).and_then(|p| p.start_stopped(tx));
                assert!(
                    started.is_ok(),
                    "{name} {}: {:?}: {pick:?}",
                    codec.as_str(),
                    started.err()
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 2 * builtin::NAMES.len());
    }

    /// The status page over HTTPS in headless Chromium (`tests/boards/status_board.mjs`):
    /// the board, each codec's encoder with its reason, and each stream's encoder.
    #[test]
    fn the_status_page_shows_the_board_and_the_encoders_in_use() {
        use browser::{artifacts_dir, node_deps, require_browser, run_bounded};
        let chromium = require_browser();
        let deps = node_deps("boards", &["status_board.mjs"]);
        let artifacts = artifacts_dir("boards-artifacts");
        let conf = tempfile::tempdir().unwrap();
        write(
            conf.path(),
            "streams.json",
            r#"{"stream": {"name": "cam", "source": "test", "codec": "h264", "width": 320, "height": 240}}"#,
        );
        let a = Agent::start(&[
            "-dev",
            "-board",
            "rpi4",
            "-config-dir",
            &conf.path().display().to_string(),
            "-dns-port",
            "0",
            "-http-port",
            "0",
            "-https-port",
            "0",
        ]);
        let page = format!("https://{}/", a.https.expect("HTTPS listener"));
        let mut node = Command::new("node");
        node.arg(deps.join("status_board.mjs"))
            .args([page.as_str(), &artifacts.display().to_string(), "rpi4"])
            .args(["H.264: x264enc (software)", "VP8: vp8enc (software)"])
            .args(["cam", "encoder x264enc (software)"])
            .current_dir(&deps)
            .env("OUTPOST_CHROMIUM", &chromium);
        let out = run_bounded(
            node,
            "the browser test (tests/boards/status_board.mjs)",
            &artifacts.join("browser.log"),
            Duration::from_secs(90),
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", a.log()));
        eprintln!("{out}");
        assert!(out.contains("PASS"), "the script did not say PASS:\n{out}");
    }
}
