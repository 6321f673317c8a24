//! The agent's side against fake media processes (shell scripts) that behave, or fail, as
//! a real one can: missing, exiting, writing garbage, answering. The real process is
//! exercised end to end in `tests/streams.rs` and `tests/whep.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

/// A media program that runs `body` as /bin/sh.
fn fake(dir: &Path, body: &str) -> MediaCommand {
    let program = dir.join("outpost-media");
    std::fs::write(&program, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    MediaCommand {
        program,
        bind: "127.0.0.1".parse().unwrap(),
        log_level: "info".into(),
    }
}

fn board() -> Selection {
    Selection::generic(Default::default()).unwrap()
}

/// The config message for `-dev`'s test stream on [`board`], as the process receives it.
fn dev_test_apply() -> Vec<u8> {
    proto::encode(&ToMedia::Apply {
        streams: vec![StreamSpec::dev_test()],
        board: serde_json::to_string(&board()).unwrap(),
    })
    .unwrap()
}

/// Runs `f` with a media process from `cmd` on a fresh executor, then closes it.
fn with_media<F: std::future::Future<Output = ()>>(
    cmd: MediaCommand,
    f: impl FnOnce(Rc<MediaProcess>) -> F,
) {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let media = MediaProcess::start(cmd, &ex);
        f(media.clone()).await;
        let closing = Instant::now();
        media.close().await;
        assert!(closing.elapsed() < Duration::from_secs(2), "closed at once");
    }));
}

/// Waits (up to 10 s) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        smol::Timer::after(Duration::from_millis(20)).await;
    }
}

fn reason(media: &MediaProcess) -> String {
    match media.status("test") {
        Some(s) if s.state == "offline" => s.reason,
        other => format!("not offline: {other:?}"),
    }
}

fn request() -> WhepRequest {
    WhepRequest {
        method: "POST".into(),
        path: "/whep/test".into(),
        content_type: Some("application/sdp".into()),
        body: b"v=0\r\n".to_vec(),
    }
}

#[test]
fn a_missing_program_leaves_the_streams_offline_with_where_it_belongs() {
    let cmd = MediaCommand {
        program: "/nonexistent/outpost-media".into(),
        bind: "127.0.0.1".parse().unwrap(),
        log_level: "info".into(),
    };
    with_media(cmd, |media| async move {
        media.apply(&[StreamSpec::dev_test()], &board());
        until("offline", || reason(&media).contains("restarting")).await;
        let why = reason(&media);
        assert!(
            why.starts_with("cannot start the media process /nonexistent/outpost-media: ")
                && why.ends_with("(it is installed beside outpost); restarting it in 1 s"),
            "{why}"
        );
        // WHEP says so at once.
        let r = media.whep(request()).await;
        assert_eq!(r.status, 503);
        let body = String::from_utf8(r.body).unwrap();
        assert_eq!(body, format!("streams are unavailable: {why}\n"));
        // An offer too big to read is refused before anything else.
        let mut huge = request();
        huge.body = vec![b'a'; MAX_OFFER + 1];
        let r = media.whep(huge).await;
        assert_eq!(r.status, 413);
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            format!(
                "the offer has {} bytes; at most {MAX_OFFER} are read\n",
                MAX_OFFER + 1
            )
        );
        // A stream that is not configured has no status.
        assert_eq!(media.status("other"), None);
    });
}

#[test]
fn a_process_that_dies_is_restarted_with_backoff_and_given_the_config_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Each run keeps what it was sent for 0.3 s, then dies.
    let cmd = fake(
        dir.path(),
        &format!("n=$(ls {d} | grep -c '^in'); timeout 0.3 cat > {d}/in.$n; exit 7"),
    );
    let streams = [StreamSpec::dev_test()];
    let expected = dev_test_apply();
    with_media(cmd, |media| async move {
        media.apply(&streams, &board());
        until("the first death", || {
            reason(&media).ends_with("restarting it in 1 s")
        })
        .await;
        assert_eq!(
            reason(&media),
            "the media process exited (exit status: 7); restarting it in 1 s"
        );
        until("the second death", || {
            reason(&media).ends_with("restarting it in 2 s")
        })
        .await;
        // Both runs were given the config first.
        for run in ["in.0", "in.1"] {
            let got = std::fs::read(dir.path().join(run)).unwrap();
            assert!(got.starts_with(&expected), "{run}: {got:?}");
        }
    });
}

#[test]
fn garbage_from_the_process_is_an_error_and_the_process_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // A length of 4 GiB, then silence.
    let cmd = fake(
        dir.path(),
        &format!(
            r"echo $$ >> {}; printf '\377\377\377\377'; exec sleep 30",
            runs.display()
        ),
    );
    with_media(cmd, |media| async move {
        media.apply(&[StreamSpec::dev_test()], &board());
        until("the bad message", || reason(&media).contains("bad message")).await;
        assert_eq!(
            reason(&media),
            format!(
                "the media process sent a bad message (a message of 4294967295 bytes is longer than the {} allowed); restarting it in 1 s",
                proto::MAX_MESSAGE
            )
        );
        // The one that said it is gone (killed), not left running.
        let pid = std::fs::read_to_string(&runs).unwrap().trim().to_string();
        until("the bad process is killed", || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z "))
        })
        .await;
    });
}

#[test]
fn whep_requests_and_the_streams_state_go_through_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut status = BTreeMap::new();
    status.insert(
        "test".to_string(),
        StreamStatus {
            state: "playing",
            viewers: 1,
            fps: 30.0,
            ..StreamStatus::initial()
        },
    );
    let status_msg = FromMedia::Status {
        streams: status.clone(),
        encoders: Vec::new(),
    };
    let reply = WireReply {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/sdp".into()),
            ("location".into(), "/whep/test/s1".into()),
        ],
        body: b"v=0\r\nanswer\r\n".to_vec(),
    };
    let request_len = proto::encode(&ToMedia::Whep {
        id: 1,
        request: request(),
    })
    .unwrap()
    .len();
    std::fs::write(
        dir.path().join("status"),
        proto::encode(&status_msg).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("reply"),
        proto::encode(&FromMedia::Whep {
            id: 1,
            reply: reply.clone(),
        })
        .unwrap(),
    )
    .unwrap();
    let d = dir.path().display();
    // Says its state, reads one request, answers it, then waits for the end of stdin.
    let cmd = fake(
        dir.path(),
        &format!(
            "cat {d}/status; head -c {request_len} > /dev/null; cat {d}/reply; cat > /dev/null"
        ),
    );
    with_media(cmd, |media| async move {
        until("the state arrives", || media.status("test").is_some()).await;
        assert_eq!(media.status("test"), status.get("test").cloned());
        assert_eq!(media.whep(request()).await, reply);
    });
}

/// A fake media process that says `status` (viewers and all), then answers the WHEP
/// request with `id` after the config: it logs each run's start and end in `runs`.
fn answering(dir: &Path, status: &FromMedia, id: u64, reply: &WireReply) -> MediaCommand {
    let apply_len = dev_test_apply().len();
    let whep_len = proto::encode(&ToMedia::Whep {
        id,
        request: request(),
    })
    .unwrap()
    .len();
    std::fs::write(dir.join("status"), proto::encode(status).unwrap()).unwrap();
    let answer = FromMedia::Whep {
        id,
        reply: reply.clone(),
    };
    std::fs::write(dir.join("reply"), proto::encode(&answer).unwrap()).unwrap();
    let d = dir.display();
    fake(
        dir,
        &format!(
            "echo start >> {d}/runs; cat {d}/status; head -c {} > {d}/got; \
             [ $(wc -c < {d}/got) = {} ] && cat {d}/reply; cat > /dev/null; echo end >> {d}/runs",
            apply_len + whep_len,
            apply_len + whep_len,
        ),
    )
}

fn runs(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("runs")).unwrap_or_default()
}

fn status_with(viewers: usize) -> FromMedia {
    let encoder = StreamStatus {
        state: if viewers > 0 { "playing" } else { "idle" },
        viewers,
        encoder: "vp8enc".into(),
        encoder_reason: "board generic has no hardware VP8 encoder: software".into(),
        ..StreamStatus::initial()
    };
    FromMedia::Status {
        streams: [("test".to_string(), encoder)].into_iter().collect(),
        encoders: Vec::new(),
    }
}

fn created() -> WireReply {
    WireReply {
        status: 201,
        headers: vec![("location".into(), "/whep/test/s1".into())],
        body: b"v=0\r\n".to_vec(),
    }
}

#[test]
fn unwatched_the_process_stops_and_the_next_viewer_starts_it_with_the_config_first() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = answering(dir.path(), &status_with(0), 1, &created());
    let path = dir.path().to_path_buf();
    with_media(cmd, |media| async move {
        media.set_idle_timeout(Some(Duration::from_millis(300)));
        media.apply(&[StreamSpec::dev_test()], &board());
        until("the first run stops for want of viewers", || {
            runs(&path) == "start\nend\n"
        })
        .await;
        // Asleep, not down: idle, with what it encodes with; no restart follows.
        let asleep = media.status("test").unwrap();
        assert_eq!((asleep.state, asleep.encoder.as_str()), ("idle", "vp8enc"));
        smol::Timer::after(Duration::from_millis(1500)).await;
        assert_eq!(runs(&path), "start\nend\n", "started again unasked");
        // A viewer: a new run gets the config, then the request, and answers it.
        let started = Instant::now();
        let r = media.whep(request()).await;
        assert_eq!(r, created(), "{:?}", String::from_utf8_lossy(&r.body));
        eprintln!("answered {:?} after the wake-up", started.elapsed());
        assert_eq!(runs(&path), "start\nend\nstart\n");
        // Its request went after the config.
        let got = std::fs::read(path.join("got")).unwrap();
        assert!(got.starts_with(&dev_test_apply()));
    });
}

#[test]
fn a_watched_process_keeps_running_and_so_does_one_without_an_idle_timeout() {
    for (viewers, timeout) in [(1, Some(Duration::from_millis(300))), (0, None)] {
        let dir = tempfile::tempdir().unwrap();
        let cmd = answering(dir.path(), &status_with(viewers), 1, &created());
        let path = dir.path().to_path_buf();
        with_media(cmd, |media| async move {
            media.set_idle_timeout(timeout);
            media.apply(&[StreamSpec::dev_test()], &board());
            until("the state arrives", || media.status("test").is_some()).await;
            smol::Timer::after(Duration::from_millis(2500)).await;
            assert_eq!(
                runs(&path),
                "start\n",
                "{viewers} viewers, timeout {timeout:?}"
            );
        });
    }
}

#[test]
fn asleep_a_camera_stream_says_when_its_device_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("video0");
    std::fs::write(&device, "").unwrap();
    let mut cam = StreamSpec::dev_test();
    cam.source = crate::config::StreamSource::V4l2 {
        device: device.display().to_string(),
    };
    // Says the stream is idle, then waits for the end of its input.
    let status = status_with(0);
    std::fs::write(dir.path().join("status"), proto::encode(&status).unwrap()).unwrap();
    let d = dir.path().display();
    let cmd = fake(
        dir.path(),
        &format!("cat {d}/status; cat > /dev/null; echo end >> {d}/runs"),
    );
    let path = dir.path().to_path_buf();
    with_media(cmd, |media| async move {
        media.set_idle_timeout(Some(Duration::from_millis(200)));
        media.apply(&[cam], &board());
        until("asleep", || runs(&path) == "end\n").await;
        assert_eq!(media.status("test").unwrap().state, "idle");
        std::fs::remove_file(&device).unwrap();
        let gone = media.status("test").unwrap();
        assert_eq!(gone.state, "offline");
        assert_eq!(
            gone.reason,
            format!("camera {} is absent", device.display())
        );
    });
}

#[test]
fn the_idle_time_counts_from_when_the_last_viewer_left() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("watched"),
        proto::encode(&status_with(1)).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("left"),
        proto::encode(&status_with(0)).unwrap(),
    )
    .unwrap();
    // One viewer for 2 s, then none.
    let cmd = fake(
        dir.path(),
        &format!(
            "echo start >> {d}/runs; cat {d}/watched; sleep 2; cat {d}/left; cat > /dev/null; \
             echo end >> {d}/runs"
        ),
    );
    let path = dir.path().to_path_buf();
    with_media(cmd, |media| async move {
        media.set_idle_timeout(Some(Duration::from_millis(1500)));
        media.apply(&[StreamSpec::dev_test()], &board());
        until("a viewer", || {
            media.status("test").is_some_and(|s| s.viewers == 1)
        })
        .await;
        until("no viewer", || {
            media.status("test").is_some_and(|s| s.viewers == 0)
        })
        .await;
        let left = Instant::now();
        smol::Timer::after(Duration::from_millis(700)).await;
        assert_eq!(
            runs(&path),
            "start\n",
            "stopped before its idle time since the viewer left"
        );
        until("stopped", || runs(&path) == "start\nend\n").await;
        // (`left` is a poll after the agent saw the viewer leave: a little slack.)
        assert!(
            left.elapsed() >= Duration::from_millis(1400),
            "{:?}",
            left.elapsed()
        );
    });
}
