//! The agent's side against fake workers (shell scripts) that fail in the ways a real one
//! can: missing, exiting, writing garbage, answering out of turn, dying after the open.
//! The real worker is exercised end to end in `tests/streams.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::rc::Rc;

use super::*;
use crate::config::VideoCodec;

/// A worker program that runs `body` as /bin/sh.
fn fake(dir: &Path, body: &str) -> WorkerCommand {
    let program = dir.join("outpost-media");
    std::fs::write(&program, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    WorkerCommand {
        program,
        log_level: "info".into(),
    }
}

/// `Opened(Ok(()))` as the worker frames it, as printf octal escapes.
const OPENED_OK: &str = r"\002\000\000\000\001\000";

fn probe(cmd: &WorkerCommand) -> Result<Vec<bool>, String> {
    smol::block_on(async {
        let mut w = Spawned::spawn(cmd, "cam")?;
        w.probe(&["v4l2h264enc".into()]).await
    })
}

#[test]
fn a_missing_worker_program_is_named_with_where_it_belongs() {
    let cmd = WorkerCommand {
        program: "/nonexistent/outpost-media".into(),
        log_level: "info".into(),
    };
    let err = Spawned::spawn(&cmd, "cam").err().unwrap();
    assert!(
        err.starts_with("cannot start the media worker /nonexistent/outpost-media: ")
            && err.ends_with("(it is installed beside outpost)"),
        "{err}"
    );
}

#[test]
fn a_worker_that_exits_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let err = probe(&fake(dir.path(), "exit 3")).unwrap_err();
    assert!(
        err.contains("the media worker exited (exit status: 3)"),
        "{err}"
    );
}

#[test]
fn garbage_from_a_worker_is_an_error_not_a_message() {
    let dir = tempfile::tempdir().unwrap();
    // A length of 4 GiB.
    let err = probe(&fake(dir.path(), r"printf '\377\377\377\377'; sleep 5")).unwrap_err();
    assert!(
        err.contains(
            "the media worker sent a bad message (a message of 4294967295 bytes is longer"
        ),
        "{err}"
    );
    // An answer of the wrong kind.
    let err = probe(&fake(dir.path(), &format!("printf '{OPENED_OK}'; sleep 5"))).unwrap_err();
    assert_eq!(err, "the media worker answered a probe with Opened");
}

#[test]
fn a_worker_that_dies_after_the_open_is_restarted_with_backoff_and_the_stream_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    // Each run counts itself, answers the open, and dies a moment later.
    let cmd = fake(
        dir.path(),
        &format!(
            "echo run >> {}; printf '{OPENED_OK}'; sleep 0.2; exit 7",
            starts.display()
        ),
    );
    let ex = Rc::new(LocalExecutor::new());
    let spec = StreamSpec::dev_test();
    let encoder = EncoderChoice::software(VideoCodec::Vp8);
    let (tx, _rx) = async_channel::bounded(4);
    smol::block_on(ex.run(async {
        let mut w = Spawned::spawn(&cmd, "test").unwrap();
        w.open(&spec, &encoder).await.unwrap();
        let worker = w.run(cmd.clone(), spec.clone(), encoder.clone(), tx, &ex);
        worker.start();
        // Dead after 0.2 s; offline for 1 s before the first restart.
        until("the first death", || worker.state() != StreamState::Stopped).await;
        let stats = worker.stats();
        let StreamState::Offline { reason } = &stats.state else {
            panic!("{stats:?}")
        };
        assert_eq!(
            reason,
            "the media worker exited (exit status: 7); restarting it in 1 s"
        );
        assert_eq!(stats.last_error.as_deref(), Some(reason.as_str()));
        // Restarted after 1 s, dead again, then 2 s before the next try.
        until("the second death", || {
            matches!(worker.state(), StreamState::Offline { reason } if reason.ends_with("restarting it in 2 s"))
        })
        .await;
        assert_eq!(std::fs::read_to_string(&starts).unwrap().lines().count(), 2);
        // Closing during the backoff ends at once, without another run.
        let closed = Instant::now();
        worker.close().await;
        assert!(closed.elapsed() < Duration::from_millis(500));
    }));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(std::fs::read_to_string(&starts).unwrap().lines().count(), 2);
}

/// Waits (up to 10 s) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        smol::Timer::after(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_refused_pipeline_is_refused_not_a_worker_failure() {
    let dir = tempfile::tempdir().unwrap();
    // Opened(Err("no")): variant 1, Err is variant 1, then the string.
    let cmd = fake(
        dir.path(),
        r"printf '\005\000\000\000\001\001\002no'; sleep 5",
    );
    let opened = smol::block_on(async {
        let mut w = Spawned::spawn(&cmd, "test")?;
        Ok::<_, String>(
            w.open(
                &StreamSpec::dev_test(),
                &EncoderChoice::software(VideoCodec::Vp8),
            )
            .await,
        )
    })
    .unwrap();
    assert_eq!(opened, Err(OpenError::Refused("no".into())));
}
