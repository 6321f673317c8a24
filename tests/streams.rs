//! Streams through the real agent (`outpost agent`): RTP from the Janus streaming demo's
//! kind of sender (an external `gst-launch-1.0`) watched by four headless Chromium viewers
//! over WHEP with the refusals a browser can meet; streams added, changed and removed by a
//! reload without a restart; a camera stream whose device is missing. Needs GStreamer's
//! base and good plugins with `gst-launch-1.0` (Debian `gstreamer1.0-tools`), `node`/`npm`
//! and `/usr/bin/chromium`; it fails, never skips, without them. The browser's log is left
//! in `CARGO_TARGET_TMPDIR/streams-artifacts/`.
#![cfg(feature = "media")]

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use browser::{artifacts_dir, node_deps, require_browser, run_bounded};
use common::{Agent, HttpReply, curl, eventually, require_curl, write};

/// The browser run (the script has its own watchdog of 120 s).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(150);

/// A UDP port nobody uses now on 127.0.0.1 (the kernel's pick, released).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Janus streaming demo's sender, as its `rtp` mountpoint takes it: test pattern in VP8
/// (payload type 100) and a tone in Opus (111) as RTP over UDP to 127.0.0.1, a keyframe a
/// second, 640x480 at 30 fps, about 1 Mbit/s. Killed on drop.
struct Sender(Child);

impl Sender {
    fn start(video_port: u16, audio_port: u16) -> Sender {
        let line = format!(
            "videotestsrc is-live=true pattern=smpte horizontal-speed=4 \
             ! video/x-raw,width=640,height=480,framerate=30/1 ! videoconvert \
             ! queue max-size-buffers=2 leaky=downstream \
             ! vp8enc deadline=1 cpu-used=8 lag-in-frames=0 end-usage=cbr target-bitrate=1000000 \
               keyframe-max-dist=30 error-resilient=default threads=1 \
             ! rtpvp8pay pt=100 mtu=1200 picture-id-mode=15-bit \
             ! udpsink host=127.0.0.1 port={video_port} sync=false async=false \
             audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert ! audioresample \
             ! audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=64000 frame-size=20 \
             ! rtpopuspay pt=111 \
             ! udpsink host=127.0.0.1 port={audio_port} sync=false async=false"
        );
        let child = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(line.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run gst-launch-1.0 ({e}): install gstreamer1.0-tools (the README's \
                     test command does)"
                )
            });
        Sender(child)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An agent with `conf` as its config dir (plus `-dev`'s test stream), HTTP on a kernel-chosen
/// port of 127.0.0.1.
fn agent(conf: &Path) -> Agent {
    Agent::start(&[
        "-dev",
        "-bind",
        "127.0.0.1",
        "-config-dir",
        &conf.display().to_string(),
        "-dns-port",
        "0",
        "-http-port",
        "0",
        "-https-port",
        "-1",
    ])
}

fn get(agent: &Agent, path: &str) -> HttpReply {
    curl(&[&format!("http://{}{path}", agent.http.unwrap())])
}

/// `/v1/streams/<name>` once it says `state` (within 10 s).
fn wait_state(agent: &Agent, name: &str, state: &str) -> serde_json::Value {
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let r = get(agent, &format!("/v1/streams/{name}"));
        if r.status == 200 && r.json()["State"] == state {
            return r.json();
        }
        last = Some(r);
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "stream {name} never became {state}: {last:?}\n{}",
        agent.log()
    );
}

/// A WHEP offer as a browser's (audio and video, receive only), made by str0m.
fn offer() -> String {
    use str0m::Rtc;
    use str0m::media::{Direction, MediaKind};
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.apply().unwrap().0.to_sdp_string()
}

fn post_offer(agent: &Agent, stream: &str) -> HttpReply {
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/sdp",
        "--data-binary",
        &offer(),
        &format!("http://{}/whep/{stream}", agent.http.unwrap()),
    ])
}

#[test]
fn the_janus_demo_sender_feeds_an_rtp_stream_that_four_chromium_viewers_watch() {
    let browser = require_browser();
    let deps = node_deps("whep", &["viewers.mjs", "player.html"]);
    let artifacts = artifacts_dir("streams-artifacts");
    let conf = tempfile::tempdir().unwrap();
    let (video, audio) = (free_udp_port(), free_udp_port());
    write(
        conf.path(),
        "demo.json",
        &format!(
            r#"{{"stream": {{"name": "demo", "source": "rtp", "video_port": {video},
                "video_pt": 100, "video_codec": "vp8", "audio_port": {audio}, "audio_pt": 111,
                "audio_codec": "opus", "max_viewers": 4}}}}"#
        ),
    );
    let agent = agent(conf.path());
    // Nobody watches: nothing listens for the RTP yet.
    let idle = wait_state(&agent, "demo", "idle");
    assert_eq!(idle["Source"], "rtp", "{idle}");
    let _sender = Sender::start(video, audio);

    let mut node = Command::new("node");
    node.arg(deps.join("viewers.mjs"))
        .arg(format!("http://{}/", agent.http.unwrap()))
        .arg("demo")
        .arg("4")
        .arg("agent")
        .current_dir(&deps)
        .env("OUTPOST_CHROMIUM", &browser);
    let out = run_bounded(
        node,
        "the browser test (tests/whep/viewers.mjs, agent mode)",
        &artifacts.join("browser.log"),
        BROWSER_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent.log()));
    eprintln!("{out}");
    assert!(out.contains("PASS"), "the script did not say PASS:\n{out}");
    // The last viewer gone, the RTP source is closed again.
    wait_state(&agent, "demo", "idle");
}

#[test]
fn streams_are_added_changed_and_removed_by_a_reload_without_a_restart() {
    require_curl();
    let conf = tempfile::tempdir().unwrap();
    write(
        conf.path(),
        "cams.json",
        r#"{"stream": {"name": "yard", "source": "test", "pattern": "ball"}}"#,
    );
    let agent = agent(conf.path());
    wait_state(&agent, "yard", "idle");
    assert_eq!(get(&agent, "/v1/streams/gate").status, 404);

    // A viewer of `yard` (it never connects: no ICE; its session stands until reaped).
    let joined = post_offer(&agent, "yard");
    assert_eq!(joined.status, 201, "{joined:?}\n{}", agent.log());
    let session = joined.header("location").unwrap().to_string();
    eventually("the viewer counts", || {
        get(&agent, "/v1/streams/yard").json()["Viewers"] == 1
    });

    // `gate` added, `yard` removed, `test` (from -dev) unchanged: applied by SIGHUP.
    write(
        conf.path(),
        "cams.json",
        r#"{"stream": {"name": "gate", "source": "test", "pattern": "snow", "codec": "h264",
            "width": 320, "height": 240, "bitrate": 300}}"#,
    );
    agent.signal("HUP");
    // Applied once `yard` takes no viewers and `gate` does.
    eventually("yard is gone from the gateway", || {
        post_offer(&agent, "yard").status == 404
    });
    let gate = get(&agent, "/v1/streams/gate").json();
    assert_eq!(gate["Codec"], "h264", "{gate}");
    assert_eq!(gate["Width"], 320, "{gate}");
    let names: Vec<String> = get(&agent, "/v1/streams")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["gate", "test"]);
    // Its viewer was ended with it.
    let gone = curl(&[
        "-X",
        "DELETE",
        &format!("http://{}{session}", agent.http.unwrap()),
    ]);
    assert_eq!(gone.status, 404, "{gone:?}");
    // The new stream takes viewers.
    eventually("gate takes a viewer", || {
        post_offer(&agent, "gate").status == 201
    });
    assert_eq!(get(&agent, "/v1/streams/gate").json()["Viewers"], 1);

    // A broken stream file changes nothing: the running streams stay.
    write(
        conf.path(),
        "cams.json",
        r#"{"stream": {"name": "gate", "source": "webcam"}}"#,
    );
    agent.signal("HUP");
    agent.wait_log("config reload failed");
    assert!(agent.log().contains("webcam"), "{}", agent.log());
    let gate = get(&agent, "/v1/streams/gate").json();
    assert_eq!(gate["Codec"], "h264", "{gate}");
    assert_eq!(gate["Viewers"], 1, "{gate}");
    // DNS and HTTP served throughout.
    assert_eq!(get(&agent, "/v1/status/leader").status, 200);
}

/// The pids of the agent's `outpost-media` children.
fn media_processes(agent: &Agent) -> Vec<u32> {
    let pid = agent.child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter(|c| {
            std::fs::read(format!("/proc/{c}/cmdline")).is_ok_and(|cmd| {
                cmd.split(|&b| b == 0)
                    .next()
                    .is_some_and(|a| a.ends_with(b"/outpost-media"))
            })
        })
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// Sends `sig` to process `pid`.
fn kill(sig: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{sig} {pid}");
}

/// Whether process `pid` has GStreamer's core library mapped.
fn maps_gstreamer(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .contains("libgstreamer-1.0")
}

#[test]
fn the_agent_never_loads_gstreamer_and_a_killed_media_process_is_restarted() {
    require_curl();
    let conf = tempfile::tempdir().unwrap();
    let agent = agent(conf.path());
    wait_state(&agent, "test", "idle");
    // GStreamer lives in the media process only.
    let m = media_processes(&agent);
    assert_eq!(m.len(), 1, "{m:?}");
    let first = m[0];
    assert!(
        maps_gstreamer(first),
        "the media process runs the pipelines"
    );
    assert!(
        !maps_gstreamer(agent.child.id()),
        "the agent loads no GStreamer"
    );

    // Watched, it plays.
    assert_eq!(post_offer(&agent, "test").status, 201);
    wait_state(&agent, "test", "playing");

    // A crash of the media process (as a plugin's segfault would end it): the stream is
    // offline with the reason, the agent answers throughout, and a new process plays the
    // stream to a new viewer (the old one's session was in the process that died).
    kill("KILL", first);
    let mut seen = serde_json::Value::Null;
    eventually("the stream says its media process died", || {
        seen = get(&agent, "/v1/streams/test").json();
        seen["State"] == "offline"
    });
    let reason = seen["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the media process exited (signal: 9 (SIGKILL)); restarting it in "),
        "{seen}"
    );
    assert_eq!(get(&agent, "/v1/status/leader").status, 200);
    let back = wait_state(&agent, "test", "idle");
    assert_eq!(back["Viewers"], 0, "{back}");
    let m = media_processes(&agent);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_ne!(m[0], first, "a new process");
    assert_eq!(post_offer(&agent, "test").status, 201);
    wait_state(&agent, "test", "playing");
    eventually("frames flow again", || {
        get(&agent, "/v1/streams/test").json()["MeasuredFps"].as_f64() > Some(1.0)
    });
}

#[test]
fn unwatched_the_media_process_stops_and_the_next_viewer_starts_it_again() {
    require_curl();
    let conf = tempfile::tempdir().unwrap();
    write(conf.path(), "media.json", r#"{"media_idle_timeout": "1s"}"#);
    let agent = agent(conf.path());
    wait_state(&agent, "test", "idle");
    let first = media_processes(&agent);
    assert_eq!(first.len(), 1, "{first:?}");
    // Nobody watches: the process stops (cleanly: no restart, no crash in the log) and
    // the stream stays idle, with its encoder.
    eventually("the unwatched media process stops", || {
        media_processes(&agent).is_empty()
    });
    assert!(exits(first[0]));
    let asleep = get(&agent, "/v1/streams/test").json();
    assert_eq!(asleep["State"], "idle", "{asleep}");
    assert_eq!(asleep["Encoder"], "vp8enc", "{asleep}");
    assert!(
        agent
            .log()
            .contains("the media process stops until the next one")
    );
    assert!(!agent.log().contains("restarting"), "{}", agent.log());
    // A viewer starts it again, and plays.
    let t = Instant::now();
    assert_eq!(post_offer(&agent, "test").status, 201);
    eprintln!(
        "the first viewer after the stop answered in {:?}",
        t.elapsed()
    );
    let second = media_processes(&agent);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
    wait_state(&agent, "test", "playing");
}

/// Whether process `pid` is gone (or a zombie) now.
fn exits_now(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Whether process `pid` is gone (or a zombie) within 5 s.
fn exits(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if exits_now(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn the_media_process_ends_with_the_agent_however_the_agent_ends() {
    require_curl();
    let conf = tempfile::tempdir().unwrap();
    // SIGTERM to both, as systemd stops a unit: the agent stops, and its media process,
    // which leaves SIGTERM to the agent, ends when the agent is gone, without the agent
    // taking it for a crash on the way.
    let mut agent = agent(conf.path());
    wait_state(&agent, "test", "idle");
    let media = media_processes(&agent)[0];
    // The media process first (systemd's order among a unit's processes is not defined).
    kill("TERM", media);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !exits_now(media),
        "the media process took SIGTERM for itself"
    );
    kill("TERM", agent.child.id());
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status}\n{}", agent.log());
    assert!(exits(media), "the media process outlived the agent");
    assert!(
        !agent.log().contains("media process exited"),
        "{}",
        agent.log()
    );

    // The agent killed outright: its media process sees its stdin end and stops.
    let mut agent = self::agent(conf.path());
    wait_state(&agent, "test", "idle");
    let media = media_processes(&agent)[0];
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    assert!(exits(media), "the media process outlived the agent");
}

#[test]
fn a_camera_stream_without_its_device_is_offline_and_says_why() {
    require_curl();
    let conf = tempfile::tempdir().unwrap();
    let device = (10..100)
        .map(|n| format!("/dev/video{n}"))
        .find(|d| !Path::new(d).exists())
        .unwrap();
    write(
        conf.path(),
        "cam.json",
        &format!(r#"{{"stream": {{"name": "porch", "source": "v4l2", "device": "{device}"}}}}"#),
    );
    let agent = agent(conf.path());
    // Unwatched, the camera is not opened, but its absence shows.
    let porch = wait_state(&agent, "porch", "offline");
    let reason = porch["Reason"].as_str().unwrap();
    assert!(
        reason.contains(&device) && reason.contains("absent"),
        "{porch}"
    );
    // Watched, the pipeline fails to open it and says so; it keeps retrying with backoff
    // while the other streams and the API go on.
    assert_eq!(post_offer(&agent, "porch").status, 201);
    let unwatched = reason.to_string();
    let mut porch = serde_json::Value::Null;
    eventually("the pipeline reports its own failure", || {
        porch = get(&agent, "/v1/streams/porch").json();
        porch["State"] == "offline" && porch["Reason"] != unwatched.as_str()
    });
    eprintln!("watched: {porch}");
    assert!(
        porch["Reason"].as_str().unwrap().contains(&device),
        "{porch}"
    );
    assert_eq!(porch["Viewers"], 1, "{porch}");
    assert_eq!(wait_state(&agent, "test", "idle")["Name"], "test");
    assert_eq!(get(&agent, "/v1/agent/self").status, 200);
}
