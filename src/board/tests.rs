//! Board profiles: the built-in files, what a broken profile says, how a device tree picks a
//! profile, and which encoder each codec gets.

use std::path::Path;

use super::encoder::{EncoderChoice, pick};
use super::profile::parse;
use super::*;
use crate::config::VideoCodec;

fn parse_text(text: &str) -> Result<Profile, crate::config::ConfigError> {
    parse(Path::new("myboard.json"), text)
}

/// A device tree as the kernel shows it: `model` NUL-terminated, `compatible` NUL-separated.
fn dt(model: Option<&str>, compatible: &[&str]) -> DeviceTree {
    let model = model.map(|m| format!("{m}\0"));
    let compat: String = compatible.iter().map(|c| format!("{c}\0")).collect();
    DeviceTree::from_bytes(
        model.as_deref().map(str::as_bytes),
        (!compatible.is_empty()).then_some(compat.as_bytes()),
    )
}

/// A fixture device-tree directory like `/proc/device-tree`, with the raw files.
fn dt_dir(model: Option<&[u8]>, compatible: Option<&[u8]>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(m) = model {
        std::fs::write(dir.path().join("model"), m).unwrap();
    }
    if let Some(c) = compatible {
        std::fs::write(dir.path().join("compatible"), c).unwrap();
    }
    dir
}

fn selected(d: &DeviceTree) -> Selection {
    select(None, d).unwrap()
}

fn named(name: &str) -> Selection {
    select(Some((name, Chosen::Flag)), &DeviceTree::default()).unwrap()
}

#[test]
fn every_built_in_profile_parses_under_its_own_name() {
    let all = builtin::all().unwrap();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, builtin::NAMES);
    for p in &all {
        assert_eq!(p.origin, "built in");
        assert!(!p.description.is_empty(), "{}", p.name);
        if p.name != "generic" {
            assert_eq!(
                p.target.as_deref(),
                Some("aarch64-unknown-linux-gnu"),
                "{}",
                p.name
            );
            assert!(
                !p.matches.compatible.is_empty(),
                "{} matches nothing",
                p.name
            );
        }
    }
    // The files in board/ are exactly the built-in ones.
    let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/board"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let mut want: Vec<String> = builtin::NAMES.iter().map(|n| format!("{n}.json")).collect();
    want.sort();
    assert_eq!(files, want);
}

#[test]
fn the_built_in_profiles_say_what_each_board_encodes_in_hardware() {
    let hw = |name: &str, codec| -> Vec<String> {
        let p = builtin::get(name).unwrap();
        p.encoders
            .of(codec)
            .hardware
            .iter()
            .map(|e| e.element.clone())
            .collect()
    };
    assert_eq!(hw("rpi4", VideoCodec::H264), ["v4l2h264enc"]);
    assert!(
        hw("rpi4", VideoCodec::Vp8).is_empty(),
        "the VideoCore VI has no VP8 encoder"
    );
    assert!(
        hw("rpi5", VideoCodec::H264).is_empty(),
        "the Pi 5 has no encoder"
    );
    assert!(hw("rpi5", VideoCodec::Vp8).is_empty());
    assert_eq!(hw("rk3588", VideoCodec::H264), ["mpph264enc"]);
    assert!(
        hw("rk3588", VideoCodec::Vp8).is_empty(),
        "mppvp8enc is left out on purpose"
    );
    assert_eq!(hw("imx8mp", VideoCodec::H264), ["vpuenc_h264"]);
    assert_eq!(hw("jetson-orin", VideoCodec::H264), ["nvv4l2h264enc"]);
    for name in ["qemu-arm64", "generic"] {
        assert!(hw(name, VideoCodec::H264).is_empty() && hw(name, VideoCodec::Vp8).is_empty());
        assert!(
            builtin::get(name).unwrap().camera.is_none(),
            "{name} has no camera"
        );
    }
    let rpi4 = builtin::get("rpi4").unwrap();
    let extra = &rpi4.encoders.h264.hardware[0].properties[0];
    assert_eq!(extra.0, "extra-controls");
    for control in [
        "video_bitrate={bitrate}",
        "h264_i_frame_period={keyframe_frames}",
        "h264_level=",
        "h264_profile=",
    ] {
        assert!(
            extra.1.contains(control),
            "{control} missing from {}",
            extra.1
        );
    }
    let cam = rpi4.camera.unwrap();
    assert_eq!(
        (cam.device.as_str(), cam.width, cam.height, cam.fps),
        ("/dev/video0", 1280, 720, 30)
    );
}

#[test]
fn properties_keep_their_order_and_take_numbers_and_booleans() {
    let p = parse_text(
        r#"{"name": "b", "description": "d", "encoders": {"h264": {"hardware": [
            {"element": "nvv4l2h264enc", "properties": {"bitrate": "{bitrate}", "control-rate": 1,
             "insert-sps-pps": true, "a-last": "x"}}]}}}"#,
    )
    .unwrap();
    assert_eq!(
        p.encoders.h264.hardware[0].properties,
        [
            ("bitrate".to_string(), "{bitrate}".to_string()),
            ("control-rate".into(), "1".into()),
            ("insert-sps-pps".into(), "true".into()),
            ("a-last".into(), "x".into()),
        ]
    );
    assert_eq!(p.origin, "myboard.json");
}

#[test]
fn a_broken_profile_is_an_error_at_the_culprit() {
    let e = |text: &str| parse_text(text).unwrap_err();
    // Syntax: the position.
    let x = e("{\"name\": \"b\",\n \"description\": }");
    assert_eq!((x.line, x.column), (2, 17), "{x}");
    assert_eq!(x.file.as_deref(), Some(Path::new("myboard.json")));
    // Unknown key, missing key, wrong type: the field.
    let x = e(r#"{"name": "b", "description": "d", "encoder": {}}"#);
    assert!(x.message.contains("unknown field `encoder`"), "{x}");
    let x = e(r#"{"name": "b"}"#);
    assert!(x.message.contains("missing field `description`"), "{x}");
    let x = e(
        r#"{"name": "b", "description": "d", "camera": {"device": "/dev/video0", "width": -1, "height": 2, "fps": 3}}"#,
    );
    assert_eq!(x.field, "camera.width", "{x}");
    // Found after parsing: still file:line:col and the field.
    let x = e(
        "{\"name\": \"b\", \"description\": \"d\",\n \"encoders\": {\"h264\": {\"hardware\": [\n  {\"element\": \"v4l2h264enc ! filesink\"}]}}}",
    );
    assert_eq!(x.field, "encoders.h264.hardware[0].element", "{x}");
    assert_eq!((x.line, x.column), (3, 15), "{x}");
    assert!(
        x.to_string()
            .starts_with("myboard.json:3:15: encoders.h264.hardware[0].element: "),
        "{x}"
    );
    let x = e(
        r#"{"name": "b", "description": "d", "encoders": {"vp8": {"hardware": [
        {"element": "x", "properties": {"target-bitrate": "{bitrat}"}}]}}}"#,
    );
    assert_eq!(
        x.field, "encoders.vp8.hardware[0].properties.target-bitrate",
        "{x}"
    );
    assert!(
        x.message.contains("{bitrat}") && x.message.contains("{keyframe_frames}"),
        "{x}"
    );
    let x = e(
        r#"{"name": "b", "description": "d", "encoders": {"vp8": {"hardware": [
        {"element": "x", "properties": {"a": 1, "a": 2}}]}}}"#,
    );
    assert!(x.message.contains("\"a\" is given twice"), "{x}");
    let x = e(
        r#"{"name": "b", "description": "d", "encoders": {"vp8": {"hardware": [
        {"element": "x", "properties": {"a": [1]}}]}}}"#,
    );
    assert!(x.message.contains("not a string, number or boolean"), "{x}");
    let x = e(
        r#"{"name": "b", "description": "d", "encoders": {"h264": {"hardware": [{"properties": {}}]}}}"#,
    );
    assert!(x.message.contains("needs an \"element\""), "{x}");
    let x = e(
        r#"{"name": "b", "description": "d", "encoders": {"h264": {"hardware": [
        {"element": "x", "output_caps": "video/x-vp8"}]}}}"#,
    );
    assert_eq!(x.field, "encoders.h264.hardware[0].output_caps", "{x}");
    let x = e(
        r#"{"name": "b", "description": "d", "encoders": {"h264": {"software": {"input_caps": "video/x-raw ! x"}}}}"#,
    );
    assert_eq!(x.field, "encoders.h264.software.input_caps", "{x}");
    let x = e(
        r#"{"name": "b", "description": "d", "encoders": {"h264": {"software": {"convert": "a b"}}}}"#,
    );
    assert_eq!(x.field, "encoders.h264.software.convert", "{x}");
    let x = e(r#"{"name": "My Board", "description": "d"}"#);
    assert_eq!(x.field, "name", "{x}");
    let x = e(r#"{"name": "b", "description": " "}"#);
    assert_eq!(x.field, "description", "{x}");
    let x = e(
        r#"{"name": "b", "description": "d", "camera": {"device": "video0", "width": 640, "height": 480, "fps": 30}}"#,
    );
    assert_eq!(x.field, "camera.device", "{x}");
    let x = e(
        r#"{"name": "b", "description": "d", "camera": {"device": "/dev/video0", "width": 640, "height": 480, "fps": 500}}"#,
    );
    assert!(x.message.contains("1-120"), "{x}");
    let x = e(r#"{"name": "b", "description": "d", "match": {"compatible": [""]}}"#);
    assert_eq!(x.field, "match.compatible[0]", "{x}");
    let x = e(
        r#"{"name": "b", "description": "d", "no_hardware_encoder": {"compatible": [], "reason": "r"}}"#,
    );
    assert_eq!(x.field, "no_hardware_encoder", "{x}");
    let x = e("[]");
    assert!(x.message.contains("expected a board profile"), "{x}");
    let x = e(&format!(
        r#"{{"name": "b", "description": "{}"}}"#,
        "x".repeat(profile::MAX_PROFILE_BYTES)
    ));
    assert!(x.message.contains("limit"), "{x}");
}

#[test]
fn device_tree_properties_are_nul_terminated_strings_and_lists() {
    let d = DeviceTree::from_bytes(
        Some(b"Raspberry Pi 4 Model B Rev 1.4\0"),
        Some(b"raspberrypi,4-model-b\0brcm,bcm2711\0"),
    );
    assert_eq!(d.model.as_deref(), Some("Raspberry Pi 4 Model B Rev 1.4"));
    assert_eq!(d.compatible, ["raspberrypi,4-model-b", "brcm,bcm2711"]);
    assert!(!d.is_empty());
    // Without the last NUL, with empty strings, with bytes that are not UTF-8.
    let d = DeviceTree::from_bytes(Some(b"Board \xff"), Some(b"a,b\0\0c,d"));
    assert_eq!(d.model.as_deref(), Some("Board \u{fffd}"));
    assert_eq!(d.compatible, ["a,b", "c,d"]);
    let d = DeviceTree::from_bytes(Some(b"\0"), Some(b""));
    assert!(d.is_empty());
    assert_eq!(d.to_string(), "no device tree");
    // Bounded.
    let long = vec![b'x'; 3 * select::MAX_PROPERTY_BYTES];
    let d = DeviceTree::from_bytes(Some(&long), Some(&long));
    assert_eq!(d.model.unwrap().len(), select::MAX_PROPERTY_BYTES);
}

#[test]
fn fixture_device_trees_select_their_boards() {
    // model, compatible, the board, what matched.
    type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, &'a str, &'a str);
    let cases: [Case; 9] = [
        (
            Some(b"Raspberry Pi 4 Model B Rev 1.4\0"),
            Some(b"raspberrypi,4-model-b\0brcm,bcm2711\0"),
            "rpi4",
            "compatible \"raspberrypi,4-model-b\"",
        ),
        (
            Some(b"Raspberry Pi 5 Model B Rev 1.0\0"),
            Some(b"raspberrypi,5-model-b\0brcm,bcm2712\0"),
            "rpi5",
            "compatible \"raspberrypi,5-model-b\"",
        ),
        // A board the profile does not list by name: its SoC's compatible.
        (
            Some(b"Radxa ROCK 5B\0"),
            Some(b"radxa,rock-5b\0rockchip,rk3588\0"),
            "rk3588",
            "compatible \"rockchip,rk3588\"",
        ),
        (
            Some(b"Xunlong Orange Pi 5\0"),
            Some(b"rockchip,rk3588s-orangepi-5\0rockchip,rk3588s\0"),
            "rk3588",
            "compatible \"rockchip,rk3588s\"",
        ),
        (
            Some(b"NXP i.MX8MPlus EVK board\0"),
            Some(b"fsl,imx8mp-evk\0fsl,imx8mp\0"),
            "imx8mp",
            "compatible \"fsl,imx8mp\"",
        ),
        (
            Some(b"NVIDIA Jetson AGX Orin Developer Kit\0"),
            Some(b"nvidia,p3737-0000+p3701-0005\0nvidia,p3701-0005\0nvidia,tegra234\0"),
            "jetson-orin",
            "compatible \"nvidia,tegra234\"",
        ),
        // QEMU's virt machine has a compatible and no model.
        (
            None,
            Some(b"linux,dummy-virt\0"),
            "qemu-arm64",
            "compatible \"linux,dummy-virt\"",
        ),
        // A model alone (an old or odd device tree): its prefix.
        (
            Some(b"Raspberry Pi Compute Module 4 Rev 1.0\0"),
            None,
            "rpi4",
            "model \"Raspberry Pi Compute Module 4 Rev 1.0\"",
        ),
        (
            Some(b"Raspberry Pi 500 Rev 1.0\0"),
            Some(b"vendor,unknown\0"),
            "rpi5",
            "model \"Raspberry Pi 500 Rev 1.0\"",
        ),
    ];
    for (model, compatible, board, by) in cases {
        let dir = dt_dir(model, compatible);
        let s = selected(&devicetree::read(dir.path()));
        assert_eq!(s.profile.name, board, "{:?}", s.device_tree);
        assert_eq!(s.chosen, Chosen::DeviceTree(by.into()));
        assert_eq!(s.source(), "device tree");
        assert!(s.reason().contains(by), "{}", s.reason());
    }
}

#[test]
fn a_machine_no_profile_matches_gets_the_generic_one_and_is_told_why() {
    let dir = dt_dir(
        Some(b"Pine64 RockPro64\0"),
        Some(b"pine64,rockpro64\0rockchip,rk3399\0"),
    );
    let s = selected(&devicetree::read(dir.path()));
    assert_eq!(s.profile.name, "generic");
    assert_eq!(s.chosen, Chosen::NoMatch);
    assert_eq!(s.source(), "default");
    assert!(
        s.reason().contains("Pine64 RockPro64") && s.reason().contains("software"),
        "{}",
        s.reason()
    );
    // A PC: no device tree at all.
    let empty = tempfile::tempdir().unwrap();
    let s = selected(&devicetree::read(&empty.path().join("absent")));
    assert_eq!(
        (s.profile.name.as_str(), &s.chosen),
        ("generic", &Chosen::NoMatch)
    );
    assert!(s.reason().contains("no device tree"), "{}", s.reason());
}

#[test]
fn a_named_board_wins_over_the_device_tree_and_an_unknown_name_lists_the_known_ones() {
    let pi5 = dt(
        Some("Raspberry Pi 5 Model B"),
        &["raspberrypi,5-model-b", "brcm,bcm2712"],
    );
    let s = select(Some(("rpi4", Chosen::Flag)), &pi5).unwrap();
    assert_eq!((s.profile.name.as_str(), s.source()), ("rpi4", "-board"));
    assert_eq!(s.device_tree, pi5, "the machine's tree is kept");
    let err = select(Some(("nosuch", Chosen::Flag)), &pi5).unwrap_err();
    let SelectError::Unknown(m) = &err else {
        panic!("{err:?}")
    };
    for name in builtin::NAMES {
        assert!(m.contains(name), "{m}");
    }
    assert!(
        m.contains("\"nosuch\"") && m.contains("profile file"),
        "{m}"
    );
}

#[test]
fn a_profile_file_is_read_by_path_and_a_broken_one_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("myboard.json");
    std::fs::write(
        &path,
        r#"{"name": "myboard", "description": "A test board",
            "camera": {"device": "/dev/video3", "width": 800, "height": 600, "fps": 15}}"#,
    )
    .unwrap();
    let s = select(
        Some((
            path.to_str().unwrap(),
            Chosen::ConfigFile("agent.json:1:11".into()),
        )),
        &DeviceTree::default(),
    )
    .unwrap();
    assert_eq!(s.profile.name, "myboard");
    assert_eq!(s.profile.origin, path.display().to_string());
    assert!(s.reason().contains("agent.json:1:11"), "{}", s.reason());
    assert_eq!(s.profile.camera.unwrap().device, "/dev/video3");

    std::fs::write(&path, "{\"name\": \"myboard\",\n\"description\": 3}").unwrap();
    let Err(SelectError::Profile(e)) = select(
        Some((path.to_str().unwrap(), Chosen::Flag)),
        &DeviceTree::default(),
    ) else {
        panic!("a broken profile must be an error")
    };
    assert_eq!(e.file.as_deref(), Some(path.as_path()));
    assert_eq!((e.line, e.field.as_str()), (2, "description"), "{e}");
    let missing = dir.path().join("none.json");
    let Err(SelectError::Profile(e)) = select(
        Some((missing.to_str().unwrap(), Chosen::Flag)),
        &DeviceTree::default(),
    ) else {
        panic!("a missing profile must be an error")
    };
    assert!(
        e.to_string().contains("none.json") && e.message.contains("cannot read"),
        "{e}"
    );
    assert!(select::is_path("./x") && select::is_path("x.json") && !select::is_path("rpi4"));
}

#[test]
fn the_hardware_encoder_is_used_when_gstreamer_has_it_else_the_fallback_says_why() {
    let rpi4 = named("rpi4");
    let absent = pick(&rpi4, VideoCodec::H264, |_| false);
    assert!(!absent.hardware);
    assert_eq!(absent.choice, EncoderChoice::software(VideoCodec::H264));
    assert!(
        absent.reason.contains("v4l2h264enc") && absent.reason.contains("software fallback"),
        "{}",
        absent.reason
    );
    let present = pick(&rpi4, VideoCodec::H264, |_| true);
    assert!(present.hardware, "{}", present.reason);
    assert_eq!(present.choice.element, "v4l2h264enc");
    assert_eq!(present.choice.convert, "videoconvert");
    assert_eq!(
        present.choice.caps,
        "video/x-h264,profile=constrained-baseline"
    );
    assert_eq!(present.choice.properties[0].0, "extra-controls");
    // VP8 has no hardware encoder on the Pi 4, whatever GStreamer has.
    let vp8 = pick(&rpi4, VideoCodec::Vp8, |_| true);
    assert!(!vp8.hardware);
    assert!(
        vp8.reason.contains("no hardware VP8 encoder"),
        "{}",
        vp8.reason
    );
    assert_eq!(vp8.choice, EncoderChoice::software(VideoCodec::Vp8));
    // The generic profile: software, and it says so.
    let g = pick(
        &Selection::generic(DeviceTree::default()).unwrap(),
        VideoCodec::H264,
        |_| true,
    );
    assert!(
        !g.hardware
            && g.reason
                .contains("board generic has no hardware H.264 encoder"),
        "{}",
        g.reason
    );
}

#[test]
fn every_element_of_a_hardware_encoder_must_exist() {
    let orin = dt(
        Some("NVIDIA Jetson AGX Orin Developer Kit"),
        &["nvidia,p3701-0005", "nvidia,tegra234"],
    );
    let s = selected(&orin);
    assert_eq!(s.profile.name, "jetson-orin");
    let hw = pick(&s, VideoCodec::H264, |_| true);
    assert!(hw.hardware);
    assert_eq!(hw.choice.convert, "nvvidconv");
    assert_eq!(
        hw.choice.input_caps.as_deref(),
        Some("video/x-raw(memory:NVMM),format=NV12")
    );
    assert_eq!(hw.choice.caps, "video/x-h264");
    // The encoder without its converter is no use.
    let no_conv = pick(&s, VideoCodec::H264, |e| e != "nvvidconv");
    assert!(!no_conv.hardware);
    assert!(no_conv.reason.contains("nvvidconv"), "{}", no_conv.reason);
    assert_eq!(no_conv.choice.element, "x264enc");
    assert!(
        no_conv
            .choice
            .properties
            .contains(&("threads".into(), "4".into()))
    );
}

#[test]
fn a_variant_without_the_hardware_encoder_is_recognised_by_its_device_tree() {
    // The Orin Nano has nvv4l2h264enc installed but no NVENC to run it.
    let nano = dt(
        Some("NVIDIA Jetson Orin Nano Developer Kit"),
        &[
            "nvidia,p3768-0000+p3767-0005",
            "nvidia,p3767-0005",
            "nvidia,tegra234",
        ],
    );
    for s in [
        selected(&nano),
        select(Some(("jetson-orin", Chosen::Flag)), &nano).unwrap(),
    ] {
        assert_eq!(s.profile.name, "jetson-orin");
        let p = pick(&s, VideoCodec::H264, |_| true);
        assert!(!p.hardware);
        assert!(
            p.reason.contains("Orin Nano") && p.reason.contains("nvidia,p3767-0005"),
            "{}",
            p.reason
        );
    }
}

#[test]
fn a_software_override_lays_its_properties_over_the_built_in_encoder() {
    let rpi5 = named("rpi5");
    let p = pick(&rpi5, VideoCodec::Vp8, |_| true);
    assert!(!p.hardware);
    let base = EncoderChoice::software(VideoCodec::Vp8);
    assert_eq!(p.choice.element, "vp8enc");
    assert_eq!(
        p.choice.properties.len(),
        base.properties.len(),
        "replaced in place"
    );
    let threads = p
        .choice
        .properties
        .iter()
        .position(|(k, _)| k == "threads")
        .unwrap();
    assert_eq!(p.choice.properties[threads].1, "2");
    assert_eq!(base.properties[threads].0, "threads", "at the same place");
    // A new key is added; another element is taken as written.
    let own = parse_text(
        r#"{"name": "b", "description": "d", "encoders": {
            "h264": {"software": {"properties": {"sliced-threads": true}}},
            "vp8": {"software": {"element": "vp8alt", "properties": {"speed": 9}}}}}"#,
    )
    .unwrap();
    let s = Selection {
        profile: own,
        chosen: Chosen::Flag,
        device_tree: DeviceTree::default(),
    };
    let h = pick(&s, VideoCodec::H264, |_| true).choice;
    assert_eq!(
        h.properties.last().unwrap(),
        &("sliced-threads".into(), "true".into())
    );
    let v = pick(&s, VideoCodec::Vp8, |_| true).choice;
    assert_eq!(
        (v.element.as_str(), v.properties.as_slice()),
        ("vp8alt", &[("speed".to_string(), "9".to_string())][..])
    );
    assert_eq!(v.caps, "video/x-vp8");
}

#[test]
fn the_first_hardware_encoder_gstreamer_has_is_used() {
    let p = parse_text(
        r#"{"name": "b", "description": "d", "encoders": {"h264": {"hardware": [
            {"element": "first", "output_caps": "video/x-h264,profile=baseline"},
            {"element": "second"}]}}}"#,
    )
    .unwrap();
    let s = Selection {
        profile: p,
        chosen: Chosen::Flag,
        device_tree: DeviceTree::default(),
    };
    let second = pick(&s, VideoCodec::H264, |e| e != "first");
    assert!(second.hardware);
    assert_eq!(second.choice.element, "second");
    let first = pick(&s, VideoCodec::H264, |_| true);
    assert_eq!(
        (first.choice.element.as_str(), first.choice.caps.as_str()),
        ("first", "video/x-h264,profile=baseline")
    );
    let none = pick(&s, VideoCodec::H264, |e| e == "videoconvert");
    assert!(!none.hardware);
    assert!(none.reason.contains("first, second"), "{}", none.reason);
}
