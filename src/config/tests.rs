use std::path::PathBuf;

use super::*;
use crate::catalog::Health;

fn host() -> HostInfo {
    HostInfo {
        hostname: "box1".into(),
        addresses: vec![
            "127.0.0.1".parse().unwrap(),
            "192.168.1.20".parse().unwrap(),
        ],
        ..HostInfo::default()
    }
}

fn src(name: &str, text: &str) -> Source {
    Source {
        name: PathBuf::from(name),
        text: text.into(),
        scope: 0,
    }
}

fn flags_with_dir() -> AgentFlags {
    AgentFlags {
        data_dir: Some("/tmp/x".into()),
        ..AgentFlags::default()
    }
}

fn build_one(text: &str) -> Result<AgentConfig, ConfigError> {
    build(&flags_with_dir(), &[src("web.json", text)], &host())
}

#[test]
fn walkthrough_service_file_loads_with_consul_defaults() {
    let c = build_one(r#"{"service": {"name": "web", "tags": ["rails"], "port": 80}}"#).unwrap();
    assert_eq!(c.node_name, "box1");
    assert_eq!(c.datacenter, "dc1");
    assert_eq!(c.domain, "consul");
    assert_eq!(c.ports.dns, Some(8600));
    assert_eq!(c.ports.http, Some(8500));
    assert_eq!(c.dns_addrs, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        c.advertise_addr,
        "192.168.1.20".parse::<IpAddr>().unwrap(),
        "first private address, as Consul"
    );
    assert_eq!(c.services.len(), 1);
    let s = &c.services[0].service;
    assert_eq!((s.id.as_str(), s.name.as_str(), s.port), ("web", "web", 80));
    assert_eq!(s.tags, vec!["rails"]);
}

#[test]
fn services_list_and_checks_get_consul_ids() {
    let c = build_one(
        r#"{"services": [
            {"name": "web", "port": 80, "checks": [
                {"http": "http://localhost/health", "interval": "10s"},
                {"tcp": "localhost:80", "interval": "5s", "timeout": "1s"}]},
            {"id": "db1", "name": "db", "port": 5432, "check": {"ttl": "30s", "status": "passing"}}
        ]}"#,
    )
    .unwrap();
    let ids: Vec<&str> = c
        .services
        .iter()
        .flat_map(|d| d.checks.iter().map(|c| c.id.as_str()))
        .collect();
    assert_eq!(ids, ["service:web:1", "service:web:2", "service:db1"]);
    let db = &c.services[1].checks[0];
    assert_eq!(db.status, Health::Passing);
    assert_eq!(db.definition.ttl_ms, 30_000);
    assert_eq!(
        c.services[0].checks[0].status,
        Health::Critical,
        "checks start critical, as in Consul"
    );
    assert_eq!(c.services[0].checks[1].definition.timeout_ms, 1000);
}

#[test]
fn agent_settings_in_files_and_flags_override_them() {
    let text = r#"{"node_name": "from-file", "datacenter": "east", "domain": "Example.", "ports": {"dns": 8653},
        "recursors": ["127.0.0.1:5300"], "dns_config": {"node_ttl": "10s", "service_ttl": {"web*": "5s", "*": "1s"},
        "only_passing": true, "enable_truncate": true, "udp_answer_limit": 5}}"#;
    let mut f = flags_with_dir();
    f.node = Some("from-flag".into());
    f.recursor = vec!["::1".into()];
    let c = build(&f, &[src("a.json", text)], &host()).unwrap();
    assert_eq!(c.node_name, "from-flag");
    assert_eq!(c.datacenter, "east");
    assert_eq!(c.domain, "example");
    assert_eq!(c.ports.dns, Some(8653));
    assert_eq!(
        c.recursors,
        vec![
            "127.0.0.1:5300".parse().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    let d = c.dns_settings();
    assert_eq!(d.node_ttl, 10);
    assert_eq!(d.service_ttl("web-frontend"), 5);
    assert_eq!(d.service_ttl("db"), 1);
    assert!(d.only_passing && d.enable_truncate && d.recursion);
    assert_eq!(d.udp_answer_limit, 5);
}

#[test]
fn later_files_override_earlier_scalars_and_append_services() {
    let a = src(
        "a.json",
        r#"{"datacenter": "one", "service": {"name": "a"}}"#,
    );
    let b = src(
        "b.json",
        r#"{"datacenter": "two", "service": {"name": "b"}}"#,
    );
    let c = build(&flags_with_dir(), &[a, b], &host()).unwrap();
    assert_eq!(c.datacenter, "two");
    assert_eq!(c.services.len(), 2);
}

/// Every error names file, line, column and field, and says what would be accepted.
#[test]
fn errors_point_at_the_culprit() {
    let cases: &[(&str, &str)] = &[
        (
            "{\"service\": {\"name\": \"web\",\n  \"port\": 70000}}",
            "web.json:2:11: service.port: port 70000 is out of range: expected 0-65535",
        ),
        (
            "{\"service\": {\"name\": \"web\", \"prot\": 80}}",
            "web.json:1:34: service.prot: unknown field `prot`, expected one of",
        ),
        (
            "{\"service\": {\"name\": \"web\", \"port\": \"80\"}}",
            "web.json:1:40: service.port: invalid type: string \"80\", expected i64",
        ),
        (
            "{\"service\": {\"name\": \"web\"",
            "web.json:1:26: EOF while parsing an object",
        ),
        (
            "{\"service\": {\"name\": \"web\"}} x",
            "web.json:1:30: trailing characters",
        ),
        (
            "{\"services\": [{\"name\": \"a\"}, {\"name\": \"b\", \"address\": \"not an ip!\"}]}",
            "web.json:1:55: services[1].address: address \"not an ip!\": expected an IP address or a host name",
        ),
        (
            "{\"ports\": {\"http\": -2}}",
            "web.json:1:20: ports.http: port -2 for http is out of range: expected 0-65535, or -1 to disable",
        ),
        (
            "{\"bind_addr\": \"1.2.3\"}",
            "web.json:1:15: bind_addr: \"1.2.3\": expected an IP address",
        ),
        (
            "{\"dns_config\": {\"node_ttl\": \"10\"}}",
            "web.json:1:29: dns_config.node_ttl: invalid duration \"10\": expected a number with a unit",
        ),
        (
            "{\"service\": {\"name\": \"web\", \"check\": {\"http\": \"http://x\"}}}",
            "web.json:1:38: service.check.interval: a http check needs an \"interval\"",
        ),
        (
            "{\"service\": {\"name\": \"web\", \"check\": {\"args\": [\"/bin/true\"], \"interval\": \"1s\"}}}",
            "service.check.args: script checks are disabled",
        ),
        (
            "{\"encrypt\": \"c2hvcnQ=\"}",
            "web.json:1:13: encrypt: key is 5 bytes: expected 32 bytes",
        ),
        (
            "{\"dns_config\": {\"udp_answer_limit\": 0}}",
            "dns_config.udp_answer_limit: 0 is out of range: expected 1-8",
        ),
        (
            "{\"service\": {\"port\": 80}}",
            "web.json:1:13: service.name: a service needs a \"name\"",
        ),
        ("  [1, 2]", "web.json:1:3: expected a JSON object"),
    ];
    for (text, want) in cases {
        let err = build_one(text).expect_err(text).to_string();
        assert!(
            err.starts_with(want) || err.contains(want),
            "for {text}\n  got:  {err}\n  want: {want}"
        );
    }
}

#[test]
fn duplicate_service_ids_name_both_places() {
    let a = src("a.json", r#"{"service": {"name": "web", "port": 80}}"#);
    let b = src(
        "b.json",
        "{\n \"service\": {\"id\": \"web\", \"name\": \"web2\"}}",
    );
    let err = build(&flags_with_dir(), &[a, b], &host())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "b.json:2:20: service.id: duplicate service ID \"web\": already defined at a.json:1:22; give one of them a different \"id\""
    );
}

#[test]
fn flag_errors_name_the_flag() {
    let mut f = flags_with_dir();
    f.dns_port = Some(70000);
    assert_eq!(
        build(&f, &[], &host()).unwrap_err().to_string(),
        "-dns-port: port 70000 for dns is out of range: expected 0-65535, or -1 to disable"
    );
    let mut f = flags_with_dir();
    f.bootstrap = true;
    f.server = true;
    f.bootstrap_expect = Some(3);
    assert!(
        build(&f, &[], &host())
            .unwrap_err()
            .to_string()
            .contains("cannot be combined with bootstrap")
    );
    let f = AgentFlags::default();
    assert!(
        build(&f, &[], &host())
            .unwrap_err()
            .to_string()
            .starts_with("-data-dir: must be set")
    );
}

#[test]
fn dev_mode_needs_no_flags_and_serves_examples_on_loopback() {
    let f = AgentFlags {
        dev: true,
        ..AgentFlags::default()
    };
    let sources = read_sources(&f).unwrap();
    let c = build(&f, &sources, &host()).unwrap();
    assert!(c.server && c.bootstrap && c.data_dir.is_none());
    assert_eq!(c.bind_addr, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(c.advertise_addr, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(c.node_name, "box1");
    let web = c
        .services
        .iter()
        .find(|s| s.service.name == "web")
        .expect("web example");
    assert_eq!(web.service.tags, vec!["rails"]);
    assert_eq!(web.service.port, 80);
}

#[test]
fn sub_directory_with_node_block_defines_an_external_node() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("web.json"),
        r#"{"service": {"name": "web", "port": 80}}"#,
    )
    .unwrap();
    let n = dir.path().join("node-000");
    std::fs::create_dir(&n).unwrap();
    std::fs::write(
        n.join("node.json"),
        r#"{"node": {"name": "node-000", "address": "127.77.0.1"}}"#,
    )
    .unwrap();
    std::fs::write(
        n.join("svc-1.json"),
        r#"{"service": {"id": "web", "name": "web", "port": 81}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let f = AgentFlags {
        config_dir: vec![dir.path().into()],
        ..flags_with_dir()
    };
    let c = load(&f, &host()).unwrap();
    assert_eq!(
        c.services.len(),
        1,
        "the same ID on another node is no duplicate"
    );
    assert_eq!(c.external_nodes.len(), 1);
    assert_eq!(c.external_nodes[0].node.address, "127.77.0.1");
    assert_eq!(c.external_nodes[0].services[0].service.port, 81);
}

#[test]
fn hcl_files_are_refused_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.hcl"), "service { name = \"web\" }").unwrap();
    let f = AgentFlags {
        config_dir: vec![dir.path().into()],
        ..flags_with_dir()
    };
    assert!(
        load(&f, &host())
            .unwrap_err()
            .to_string()
            .contains("HCL config files are not supported")
    );
}

#[test]
fn missing_config_dir_is_an_error_naming_it() {
    let f = AgentFlags {
        config_dir: vec!["/nonexistent/outpost.d".into()],
        ..flags_with_dir()
    };
    let e = load(&f, &host()).unwrap_err().to_string();
    assert!(
        e.starts_with("/nonexistent/outpost.d: cannot read config dir"),
        "{e}"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = r#"{"node_name": "n1", "ports": {"dns": 8600}, "dns_config": {"node_ttl": "1s"},
        "services": [{"name": "web", "tags": ["a"], "port": 80, "check": {"ttl": "5s"}}]}"#;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// Random text never panics the loader, and an error always carries a position.
        #[test]
        fn random_text_gives_a_located_error_or_a_config(text in ".{0,200}") {
            if let Err(e) = build_one(&text) {
                prop_assert!(e.file.is_some());
                prop_assert!(!e.message.is_empty());
            }
        }

        /// Mutations of a valid file (byte edits, cuts) never panic, and errors are located
        /// inside the text.
        #[test]
        fn mutated_valid_file_never_panics(edits in prop::collection::vec((0usize..200, any::<u8>()), 1..6), cut in 0usize..400) {
            let mut bytes = VALID.as_bytes().to_vec();
            for (pos, b) in edits {
                let p = pos % bytes.len();
                bytes[p] = b;
            }
            bytes.truncate(cut.max(1));
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Err(e) = build_one(&text) {
                let lines = text.split('\n').count();
                prop_assert!(e.line <= lines, "line {} of {}", e.line, lines);
            }
        }
    }
}

#[test]
fn tls_and_acl_blocks_read_as_consul_writes_them() {
    let c = build_one(
        r#"{"ports": {"https": 8501},
            "tls": {"defaults": {"cert_file": "/etc/o/s.crt", "key_file": "/etc/o/s.key",
                                 "ca_file": "/etc/o/ca.crt", "verify_incoming": true}},
            "acl": {"enabled": true, "default_policy": "deny",
                    "tokens": {"initial_management": "s3cret"}}}"#,
    )
    .unwrap();
    assert_eq!(c.ports.https, Some(8501));
    assert_eq!(c.tls.cert_file, Some(PathBuf::from("/etc/o/s.crt")));
    assert!(c.tls.verify_incoming);
    assert!(c.acl.enabled && c.acl.deny_by_default);
    assert_eq!(c.acl.management_token, "s3cret");
    let plain = build_one("{}").unwrap();
    assert_eq!(plain.ports.https, None, "HTTPS is off unless asked for");
    assert!(!plain.acl.enabled);
}

#[test]
fn tls_and_acl_mistakes_point_at_the_culprit() {
    let e = build_one(r#"{"tls": {"defaults": {"cert_file": "a.crt"}}}"#).unwrap_err();
    assert_eq!(e.field, "tls.defaults.cert_file");
    assert!(e.message.contains("key_file"), "{e}");
    let e = build_one(r#"{"tls": {"defaults": {"verify_incoming": true}}}"#).unwrap_err();
    assert!(e.message.contains("ca_file"), "{e}");
    let e = build_one(r#"{"acl": {"enabled": true}}"#).unwrap_err();
    assert_eq!((e.field.as_str(), e.line), ("acl.enabled", 1));
    assert!(e.message.contains("initial_management"), "{e}");
    let e = build_one(r#"{"acl": {"default_policy": "maybe"}}"#).unwrap_err();
    assert!(e.message.contains("\"deny\""), "{e}");
    let e = build_one(r#"{"tls": {"defaults": {"cert": "x"}}}"#).unwrap_err();
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn streams_read_with_defaults_and_the_janus_demo_sender_as_an_rtp_source() {
    let c = build_one(
        r#"{"streams": [
            {"name": "cam", "source": "v4l2", "device": "/dev/video0", "codec": "h264", "width": 1280, "height": 720},
            {"name": "janus-demo", "source": "rtp", "video_port": 5004, "video_pt": 100,
             "video_codec": "vp8", "audio_port": 5002, "audio_pt": 111, "audio_codec": "opus"}
        ]}"#,
    )
    .unwrap();
    assert_eq!(c.streams.len(), 2, "no dev test stream outside dev mode");
    let cam = &c.streams[0];
    assert_eq!(
        (cam.codec, cam.width, cam.height, cam.fps),
        (VideoCodec::H264, 1280, 720, 30)
    );
    assert!(!cam.audio, "cameras have no audio");
    let rtp = &c.streams[1];
    assert_eq!(
        rtp.source,
        StreamSource::Rtp {
            video_port: 5004,
            video_pt: 100,
            video_codec: VideoCodec::Vp8,
            audio_port: 5002,
            audio_pt: 111,
            video_rtcp_port: 0
        }
    );
    assert!(rtp.audio);
    let dev = build(
        &AgentFlags {
            dev: true,
            ..AgentFlags::default()
        },
        &[],
        &host(),
    )
    .unwrap();
    assert_eq!(dev.streams, vec![StreamSpec::dev_test()]);
}

#[test]
fn the_media_idle_timeout_defaults_to_30s_and_0_keeps_the_process_running() {
    let t = |text: &str| build_one(text).map(|c| c.media_idle_timeout);
    assert_eq!(t("{}").unwrap(), Some(std::time::Duration::from_secs(30)));
    assert_eq!(
        t(r#"{"media_idle_timeout": "5m"}"#).unwrap(),
        Some(std::time::Duration::from_secs(300))
    );
    assert_eq!(t(r#"{"media_idle_timeout": "0s"}"#).unwrap(), None);
    let x = t(r#"{"media_idle_timeout": "soon"}"#).unwrap_err();
    assert_eq!(x.field, "media_idle_timeout", "{x}");
}

#[test]
fn stream_mistakes_point_at_the_culprit() {
    let e = |text: &str| build_one(text).unwrap_err();
    let x = e(r#"{"stream": {"name": "Cam One"}}"#);
    assert_eq!(x.field, "stream.name");
    let x = e(r#"{"stream": {"name": "c", "source": "hdmi"}}"#);
    assert!(x.message.contains("\"rtp\""), "{x}");
    let x = e(r#"{"stream": {"name": "c", "source": "v4l2"}}"#);
    assert_eq!(x.field, "stream.device");
    let x = e(r#"{"stream": {"name": "c", "source": "rtp"}}"#);
    assert!(x.message.contains("5004"), "{x}");
    let x = e(r#"{"stream": {"name": "c", "codec": "av1"}}"#);
    assert!(x.message.contains("\"h264\""), "{x}");
    let x = e(r#"{"stream": {"name": "c", "fps": 1000}}"#);
    assert_eq!((x.field.as_str(), x.line), ("stream.fps", 1));
    let x = e(r#"{"streams": [{"name": "a"}, {"name": "a"}]}"#);
    assert!(x.message.contains("duplicate stream name"), "{x}");
    let x = e(r#"{"stream": {"name": "c", "source": "rtp", "video_port": 5004, "video_pt": 8}}"#);
    assert!(x.message.contains("96-127"), "{x}");
    let x = e(
        r#"{"streams": [{"name": "a", "source": "rtp", "video_port": 5004},
                              {"name": "b", "source": "rtp", "video_port": 5006, "audio_port": 5004}]}"#,
    );
    assert_eq!(x.field, "streams[1].audio_port");
    assert!(x.message.contains("\"a\""), "{x}");
}

#[test]
fn a_camera_stream_without_device_or_mode_gets_the_boards_camera() {
    let flags = AgentFlags {
        board: Some("rpi4".into()),
        ..flags_with_dir()
    };
    let text = r#"{"streams": [{"name": "cam", "source": "v4l2", "codec": "h264"},
                                {"name": "small", "source": "v4l2", "device": "/dev/video2", "width": 320},
                                {"name": "pattern", "source": "test"}]}"#;
    let c = build(&flags, &[src("cams.json", text)], &host()).unwrap();
    assert_eq!(c.board.profile.name, "rpi4");
    assert_eq!(c.board.chosen, crate::board::Chosen::Flag);
    let cam = &c.streams[0];
    assert_eq!(
        cam.source,
        StreamSource::V4l2 {
            device: "/dev/video0".into()
        }
    );
    assert_eq!((cam.width, cam.height, cam.fps), (1280, 720, 30));
    let small = &c.streams[1];
    assert_eq!(
        (small.width, small.height, small.source.clone()),
        (
            320,
            720,
            StreamSource::V4l2 {
                device: "/dev/video2".into()
            }
        ),
        "what the stream says wins"
    );
    assert_eq!(
        (c.streams[2].width, c.streams[2].height),
        (640, 480),
        "test streams keep their own default"
    );
    // A board without a camera (and the generic profile) wants the device named.
    let flags = AgentFlags {
        board: Some("qemu-arm64".into()),
        ..flags_with_dir()
    };
    let e = build(
        &flags,
        &[src(
            "cams.json",
            r#"{"stream": {"name": "c", "source": "v4l2"}}"#,
        )],
        &host(),
    )
    .unwrap_err();
    assert_eq!(e.field, "stream.device");
    assert!(
        e.message.contains("qemu-arm64 has no default camera"),
        "{e}"
    );
}

#[test]
fn the_board_comes_from_the_flag_the_config_or_the_device_tree() {
    let pi5 = HostInfo {
        device_tree: crate::board::DeviceTree::from_bytes(
            Some(b"Raspberry Pi 5 Model B Rev 1.0\0"),
            Some(b"raspberrypi,5-model-b\0brcm,bcm2712\0"),
        ),
        ..host()
    };
    let c = build(&flags_with_dir(), &[], &pi5).unwrap();
    assert_eq!(
        (c.board.profile.name.as_str(), c.board.source()),
        ("rpi5", "device tree")
    );
    let c = build(&flags_with_dir(), &[], &host()).unwrap();
    assert_eq!(
        (c.board.profile.name.as_str(), c.board.source()),
        ("generic", "default")
    );
    let file = src("agent.json", "{\n  \"board\": \"rk3588\"\n}");
    let c = build(&flags_with_dir(), std::slice::from_ref(&file), &pi5).unwrap();
    assert_eq!(c.board.profile.name, "rk3588");
    assert_eq!(
        c.board.chosen,
        crate::board::Chosen::ConfigFile("agent.json:2:12".into())
    );
    let flags = AgentFlags {
        board: Some("imx8mp".into()),
        ..flags_with_dir()
    };
    let c = build(&flags, &[file], &pi5).unwrap();
    assert_eq!(
        c.board.profile.name, "imx8mp",
        "the flag wins over the file"
    );
}

#[test]
fn an_unknown_board_names_the_known_ones_where_it_was_set() {
    let flags = AgentFlags {
        board: Some("nosuch".into()),
        ..flags_with_dir()
    };
    let e = build(&flags, &[], &host()).unwrap_err();
    assert_eq!(e.field, "-board");
    assert!(
        e.message
            .contains("rpi4, rpi5, rk3588, imx8mp, jetson-orin, qemu-arm64, generic"),
        "{e}"
    );
    let e = build_one("{\"node_name\": \"a\",\n \"board\": \"pi4\"}").unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line, e.column),
        ("board", 2, 11),
        "{e}"
    );
    // A broken profile file stops the build, naming the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    std::fs::write(&path, r#"{"name": "b", "description": "d", "camera": {}}"#).unwrap();
    let flags = AgentFlags {
        board: Some(path.display().to_string()),
        ..flags_with_dir()
    };
    let e = build(&flags, &[], &host()).unwrap_err();
    assert_eq!(e.file.as_deref(), Some(path.as_path()), "{e}");
    assert!(e.message.contains("missing field `device`"), "{e}");
}
