//! The real binary driven by the Python Consul client (`py-consul`, pinned in
//! `tests/py/requirements.txt`), as a program written for Consul would use it: the steps and
//! their asserts are in `tests/py/test_client.py`; this test makes the venv, starts the agent
//! and runs that program against it.
//!
//! Needs `python3` (3.10 or later) with the `venv` module (Debian packages `python3` and
//! `python3-venv`), and PyPI on the first run (pip's cache serves later ones).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Agent;

/// How long the Python program may run (it takes about 7 s: two 5 s blocking queries are its
/// slowest steps, and one of them ends early).
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `pip install` may take (a cold cache downloads half a dozen small wheels).
const PIP_TIMEOUT: Duration = Duration::from_secs(300);

/// What a finished (or killed) program said.
struct Output {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// Runs `cmd` to completion or until `timeout`, then kills it; output is collected either way.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            break (Some(st), false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break (child.wait().ok(), true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        success: !timed_out && status.is_some_and(|s| s.success()),
        status: match status {
            Some(s) if timed_out => format!("killed after {timeout:?} ({s})"),
            Some(s) => s.to_string(),
            None => "unknown".into(),
        },
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out,
    }
}

fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

/// A venv under the cargo target dir holding `tests/py/requirements.txt`; pip runs only when
/// the requirements changed since the last install (a stamp file keeps their text).
fn venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv");
    let python = venv.join("bin/python");
    let requirements = py_dir().join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .unwrap_or_else(|e| panic!("read {}: {e}", requirements.display()));
    let stamp = venv.join("outpost-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return python;
    }
    let version = Command::new("python3")
        .args([
            "-c",
            "import sys, venv, ensurepip; print(sys.version_info >= (3, 10))",
        ])
        .output();
    match version {
        Ok(o) if o.status.success() && o.stdout.starts_with(b"True") => {}
        Ok(o) if o.status.success() => {
            panic!("this test needs Python 3.10 or later for py-consul 1.8; `python3` is older")
        }
        _ => panic!(
            "this test needs `python3` with its venv module (Debian packages python3 and \
             python3-venv: apt-get install python3 python3-venv)"
        ),
    }
    let _ = std::fs::remove_dir_all(&venv);
    let made = run_bounded(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        Duration::from_secs(120),
    );
    assert!(
        made.success,
        "python3 -m venv {} failed ({}); on Debian install python3-venv\n{}{}",
        venv.display(),
        made.status,
        made.stdout,
        made.stderr
    );
    let pip = run_bounded(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-r",
            ])
            .arg(&requirements),
        PIP_TIMEOUT,
    );
    assert!(
        pip.success,
        "pip install -r {} failed ({}; it needs PyPI or pip's cache):\n{}{}",
        requirements.display(),
        pip.status,
        pip.stdout,
        pip.stderr
    );
    std::fs::write(&stamp, wanted).expect("write the venv's stamp file");
    python
}

/// py-consul's calls (agent, catalog, health, status, KV with cas, flags and blocking queries)
/// give what Consul's documentation says, against a fresh `-dev` agent.
#[test]
fn py_consul_client_sees_a_consul_agent() {
    let python = venv();
    let agent = Agent::start(&[
        "-dev",
        "-dns-port",
        "0",
        "-http-port",
        "0",
        "-https-port",
        "-1",
    ]);
    let http = agent.http.expect("HTTP listener");
    let out = run_bounded(
        Command::new(&python)
            .arg(py_dir().join("test_client.py"))
            .arg(http.to_string())
            // Every step runs, so one failing run names every incompatibility at once.
            .arg("--keep-going")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("CONSUL_HTTP_ADDR")
            .env_remove("CONSUL_HTTP_SSL")
            .env_remove("CONSUL_HTTP_SSL_VERIFY"),
        PROGRAM_TIMEOUT,
    );
    assert!(
        out.success,
        "tests/py/test_client.py against the agent at {} failed ({}{}):\n\
         --- program output ---\n{}{}\n--- agent log ---\n{}",
        http,
        out.status,
        if out.timed_out { ", timed out" } else { "" },
        out.stdout,
        out.stderr,
        agent.log()
    );
    assert!(
        out.stdout.contains("py-consul steps passed"),
        "the program exited 0 without its closing line:\n{}",
        out.stdout
    );
    print!("{}", out.stdout);
}
