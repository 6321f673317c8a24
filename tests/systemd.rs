//! The agent under a service manager, as systemd runs it (sd_notify(3), sd_listen_fds(3),
//! systemd.exec(5)): READY, WATCHDOG, RELOADING, STOPPING and STATUS on a notify socket the
//! test binds; DNS sockets passed in by `systemd-socket-activate`; journal priorities on
//! stderr; the unit files under `systemd-analyze verify` and `security --offline=yes`; the
//! agent (and, with the media feature, a playing stream) under the unit's seccomp filters:
//! system calls, address families, MemoryDenyWriteExecute. Needs `dig`, `curl`, the
//! `systemd` package (systemd-analyze, systemd-socket-activate; systemd need not be running)
//! and Debian's `python3-seccomp` (for `tests/systemd/sandbox.py`); it fails, never skips,
//! without them.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin, curl, dig, require_curl, require_dig, write};

/// The notify socket a service manager listens on, bound by the test.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
    /// When each WATCHDOG=1 arrived, in order.
    pings: Vec<Instant>,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        // Not in /tmp, which one test hides behind a private mount.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            socket,
            path,
            _dir: dir,
            pings: Vec::new(),
        }
    }

    /// The next datagram within `timeout`.
    fn recv(&mut self, timeout: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg == "WATCHDOG=1\n" {
            self.pings.push(Instant::now());
        }
        Some(msg)
    }

    /// The next message that is not a watchdog ping, within `within` (pings are recorded).
    fn next_state(&mut self, within: Duration, agent: &Proc) -> String {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(m) if m == "WATCHDOG=1\n" => continue,
                Some(m) => return m,
                None => break,
            }
        }
        panic!(
            "no notification within {within:?}; agent log:\n{}",
            agent.log()
        );
    }

    /// Receives for `d`, recording the pings; returns the other messages.
    fn listen_for(&mut self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut other = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(m) if m == "WATCHDOG=1\n" => {}
                Some(m) => other.push(m),
                None => {}
            }
        }
        other
    }
}

/// The value of `KEY=` in a notification.
fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// A process whose stderr is collected; killed on drop.
struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Proc { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Its exit status, waiting up to `within`.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("did not exit within {within:?}; log:\n{}", self.log());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `outpost agent` with `args`, run through `sh` so that `WATCHDOG_PID` can be the agent's
/// own PID (sh execs the agent, which keeps the PID), as systemd sets it; `watchdog_pid`
/// `None` means "the agent's".
fn agent_command(args: &[&str], watchdog_pid: Option<u32>) -> Command {
    let pid = watchdog_pid.map_or("$$".to_string(), |p| p.to_string());
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("WATCHDOG_PID={pid} exec \"$0\" \"$@\""))
        .arg(bin())
        .arg("agent")
        .args(args);
    cmd.env_remove("JOURNAL_STREAM")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    cmd
}

/// The agent's flags in these tests: `-dev` (in memory) with `conf` as its config dir, every
/// port on 127.0.0.1 chosen by the kernel, no HTTPS.
fn dev_args(conf: &Path) -> Vec<String> {
    [
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
        "-serf-lan-port",
        "0",
    ]
    .map(String::from)
    .to_vec()
}

/// The address after `what ` in the READY status line (`serving DNS 127.0.0.1:1234, ...`).
fn served(status: &str, what: &str) -> SocketAddr {
    let rest = status
        .split(&format!("{what} "))
        .nth(1)
        .unwrap_or_else(|| panic!("no {what} in {status:?}"));
    let addr: String = rest
        .chars()
        .take_while(|c| !matches!(c, ',' | ';' | '/'))
        .collect();
    addr.parse()
        .unwrap_or_else(|e| panic!("{addr:?} in {status:?}: {e}"))
}

#[test]
fn readiness_watchdog_reload_and_stop_are_told_to_the_service_manager() {
    require_dig();
    require_curl();
    let conf = tempfile::tempdir().unwrap();
    write(
        conf.path(),
        "web.json",
        r#"{"service": {"name": "web", "port": 80}}"#,
    );
    let mut notify = NotifySocket::new();
    let watchdog = Duration::from_millis(400);
    let args = dev_args(conf.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = agent_command(&args, None);
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string());
    let mut agent = Proc::spawn(cmd);

    // READY=1 comes first, with the addresses, and everything answers at once.
    let ready = notify.next_state(Duration::from_secs(20), &agent);
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready:?}");
    assert!(notify.pings.is_empty(), "watchdog pings before READY=1");
    let status = field(&ready, "STATUS").unwrap();
    let (dns, http) = (served(status, "DNS"), served(status, "HTTP"));
    let a = dig(dns.port(), &["web.service.consul", "A"]);
    assert_eq!(a.status, "NOERROR", "{}", a.raw);
    assert_eq!(a.answers("A"), ["127.0.0.1"], "{}", a.raw);
    let r = curl(&[&format!("http://{http}/v1/catalog/service/web")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["ServiceName"], "web", "{}", r.body);

    // WATCHDOG=1 at least twice per interval, never a whole interval apart.
    let others = notify.listen_for(watchdog * 5);
    assert!(others.is_empty(), "unexpected notifications: {others:?}");
    let pings = &notify.pings;
    assert!(
        pings.len() >= 10,
        "{} watchdog pings in 5 intervals",
        pings.len()
    );
    let longest = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        longest < watchdog,
        "pings {longest:?} apart, watchdog {watchdog:?}"
    );

    // SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 once the new config is in.
    write(
        conf.path(),
        "api.json",
        r#"{"service": {"name": "api", "port": 8080}}"#,
    );
    agent.signal("HUP");
    let reloading = notify.next_state(Duration::from_secs(10), &agent);
    assert_eq!(field(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let t1: u64 = field(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    let ready = notify.next_state(Duration::from_secs(10), &agent);
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready:?}");
    assert!(
        field(&ready, "STATUS").unwrap().contains("config reloaded"),
        "{ready:?}"
    );
    assert_eq!(
        dig(dns.port(), &["api.service.consul", "A"]).answers("A"),
        ["127.0.0.1"]
    );

    // A broken config: still RELOADING=1 then READY=1, the old config stays, STATUS says so.
    write(
        conf.path(),
        "broken.json",
        r#"{"service": {"name": "db", "port": "#,
    );
    agent.signal("HUP");
    let reloading = notify.next_state(Duration::from_secs(10), &agent);
    assert_eq!(field(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let t2: u64 = field(&reloading, "MONOTONIC_USEC")
        .unwrap()
        .parse()
        .unwrap();
    assert!(t2 > t1, "MONOTONIC_USEC {t2} after {t1}");
    let ready = notify.next_state(Duration::from_secs(10), &agent);
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready:?}");
    let status = field(&ready, "STATUS").unwrap();
    assert!(
        status.contains("reload failed")
            && status.contains("previous config stays in force")
            && status.contains("broken.json"),
        "{ready:?}"
    );
    assert_eq!(
        dig(dns.port(), &["api.service.consul", "A"]).answers("A"),
        ["127.0.0.1"]
    );
    assert_eq!(
        dig(dns.port(), &["db.service.consul", "A"]).status,
        "NXDOMAIN"
    );

    // SIGTERM: STOPPING=1 and a clean exit.
    agent.signal("TERM");
    let stopping = notify.next_state(Duration::from_secs(10), &agent);
    assert_eq!(field(&stopping, "STOPPING"), Some("1"), "{stopping:?}");
    let st = agent.wait_exit(Duration::from_secs(10));
    assert!(st.success(), "exit {st:?}; log:\n{}", agent.log());
}

#[test]
fn the_watchdog_of_another_process_is_not_pinged() {
    let conf = tempfile::tempdir().unwrap();
    let mut notify = NotifySocket::new();
    let args = dev_args(conf.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // WATCHDOG_PID names another process (the variables were inherited, not meant for us).
    let mut cmd = agent_command(&args, Some(1));
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "100000");
    let agent = Proc::spawn(cmd);
    let ready = notify.next_state(Duration::from_secs(20), &agent);
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready:?}");
    let others = notify.listen_for(Duration::from_millis(600));
    assert!(others.is_empty(), "{others:?}");
    assert!(notify.pings.is_empty(), "{} pings", notify.pings.len());
}

#[test]
fn a_notify_socket_that_is_gone_is_reported_once_and_the_agent_serves_on() {
    require_dig();
    let conf = tempfile::tempdir().unwrap();
    write(
        conf.path(),
        "web.json",
        r#"{"service": {"name": "web", "port": 80}}"#,
    );
    let args = dev_args(conf.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = agent_command(&args, None);
    cmd.env("NOTIFY_SOCKET", "/nonexistent/notify")
        .env("WATCHDOG_USEC", "100000");
    let agent = Proc::spawn(cmd);
    common::eventually("the agent runs", || {
        agent.log().contains("outpost agent running")
    });
    // Twenty watchdog periods: one warning, not twenty.
    std::thread::sleep(Duration::from_secs(2));
    let log = agent.log();
    assert_eq!(
        log.matches("cannot notify NOTIFY_SOCKET=\"/nonexistent/notify\"")
            .count(),
        1,
        "{log}"
    );
    let dns = log
        .split("DNS listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .unwrap();
    assert_eq!(
        dig(dns.port(), &["web.service.consul", "A"]).answers("A"),
        ["127.0.0.1"]
    );
}

/// A port free now for both UDP and TCP on 127.0.0.1.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A DNS query for `name` A, with `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    use simple_dns::{CLASS, Name, Packet, QTYPE, Question, TYPE};
    let mut p = Packet::new_query(id);
    p.questions.push(Question::new(
        Name::new_unchecked(name),
        QTYPE::TYPE(TYPE::A),
        CLASS::IN.into(),
        false,
    ));
    p.build_bytes_vec().unwrap()
}

/// `systemd-socket-activate` opening a UDP and a TCP socket on `port`, both named `name`
/// (the first passes its UDP socket on to the second, which adds TCP), then running the
/// agent with `args` once a datagram arrives.
fn socket_activated(port: u16, name: &str, args: &[&str]) -> Command {
    let addr = format!("127.0.0.1:{port}");
    let fdname = format!("--fdname={name}");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-d", "-l", &addr, &fdname])
        .args(["systemd-socket-activate", "-l", &addr, &fdname])
        .arg(bin())
        .arg("agent")
        .args(args);
    cmd.env_remove("NOTIFY_SOCKET").env_remove("JOURNAL_STREAM");
    cmd
}

fn require_socket_activate() {
    let ok = Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs systemd-socket-activate (Debian package systemd); the README's test \
         command installs it"
    );
}

#[test]
fn dns_sockets_passed_by_the_service_manager_are_served_from_the_first_query() {
    require_dig();
    require_socket_activate();
    let conf = tempfile::tempdir().unwrap();
    write(
        conf.path(),
        "web.json",
        r#"{"service": {"name": "web", "port": 80}}"#,
    );
    let port = free_port();
    let mut args = dev_args(conf.path());
    // The agent's own DNS port stays unused: the passed sockets take its place.
    let at = args.iter().position(|a| a == "-dns-port").unwrap();
    args[at + 1] = "-1".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Proc::spawn(socket_activated(port, "dns", &args));

    // The query that wakes the service is answered by the agent it starts.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1500];
    let (n, from) = loop {
        // Until systemd-socket-activate listens; the first datagram to arrive starts the agent.
        let _ = client.send_to(&query(7, "web.service.consul"), ("127.0.0.1", port));
        if let Ok(got) = client.recv_from(&mut buf) {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "no answer on the activated socket; log:\n{}",
            agent.log()
        );
    };
    assert_eq!(from.port(), port);
    let reply = simple_dns::Packet::parse(&buf[..n]).unwrap();
    assert_eq!(reply.id(), 7);
    assert_eq!(reply.answers.len(), 1, "{reply:?}");

    // Both sockets serve: UDP and TCP, and the agent says it took them.
    let udp = dig(port, &["web.service.consul", "A"]);
    assert_eq!(udp.answers("A"), ["127.0.0.1"], "{}", udp.raw);
    let tcp = dig(port, &["+tcp", "web.service.consul", "SRV"]);
    assert_eq!(tcp.status, "NOERROR", "{}", tcp.raw);
    assert_eq!(tcp.answers("SRV").len(), 1, "{}", tcp.raw);
    let log = agent.log();
    for proto in ["UDP", "TCP"] {
        let line = format!("DNS listening on 127.0.0.1:{port} ({proto}, from the service manager)");
        assert!(log.contains(&line), "no {line:?} in\n{log}");
    }
}

#[test]
fn a_passed_socket_that_is_not_for_dns_stops_the_start_with_a_message() {
    require_socket_activate();
    let conf = tempfile::tempdir().unwrap();
    let port = free_port();
    let args = dev_args(conf.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = Proc::spawn(socket_activated(port, "http", &args));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let _ = client.send_to(b"wake up", ("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(100));
        if agent.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break;
        }
    }
    let st = agent.wait_exit(Duration::from_secs(5));
    assert_eq!(st.code(), Some(1), "{st:?}");
    let log = agent.log();
    assert!(
        log.contains("outpost: socket activation: descriptor 3 (named \"http\"): outpost takes only DNS sockets"),
        "{log}"
    );
}

/// The agent's stderr lines until `until` appears (or 20 s pass), with JOURNAL_STREAM set to
/// `journal(stderr's device and inode)`.
fn stderr_lines(args: &[&str], journal: impl Fn(u64, u64) -> String, until: &str) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let (reader, writer) = std::io::pipe().unwrap();
    let meta = std::fs::File::from(std::os::fd::OwnedFd::from(writer.try_clone().unwrap()))
        .metadata()
        .unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("agent")
        .args(args)
        .env("JOURNAL_STREAM", journal(meta.dev(), meta.ino()))
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(writer);
    let child = cmd.spawn().unwrap();
    drop(cmd); // closes the parent's copy of the write end
    let mut guard = Proc {
        child,
        log: Arc::default(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let until = until.to_string();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let done = line.contains(&until);
            lines.push(line);
            if done {
                break;
            }
        }
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(Duration::from_secs(20)).expect("agent log");
    guard.signal("TERM");
    let _ = guard.wait_exit(Duration::from_secs(10));
    lines
}

#[test]
fn logs_carry_syslog_priorities_and_no_timestamps_when_stderr_is_the_journal_and_no_colour_off_a_terminal()
 {
    let conf = tempfile::tempdir().unwrap();
    // A service whose check cannot run makes a warning; everything else is info.
    write(
        conf.path(),
        "web.json",
        r#"{"service": {"name": "web", "port": 80}}"#,
    );
    let mut args = dev_args(conf.path());
    args.extend(["-recursor".into(), "not-an-address".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // A bad recursor is refused at start: an error line.
    let lines = stderr_lines(&args, |d, i| format!("{d}:{i}"), "recursor");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<3>outpost: ") && l.contains("not-an-address")),
        "{lines:#?}"
    );

    let args = dev_args(conf.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lines = stderr_lines(&args, |d, i| format!("{d}:{i}"), "outpost agent running");
    let running = lines.last().unwrap();
    assert!(
        running.starts_with("<6>outpost agent running: "),
        "{lines:#?}"
    );
    for l in &lines {
        let level = l.get(..3).unwrap_or_default();
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&level),
            "line without a priority: {l:?}"
        );
        assert!(!l.contains('\x1b'), "colour codes in {l:?}");
        assert!(!l.contains("INFO"), "level word in {l:?}");
        assert!(!l.contains("Z "), "timestamp in {l:?}");
    }

    // JOURNAL_STREAM inherited from elsewhere (stderr is not that stream): the usual format.
    let lines = stderr_lines(
        &args,
        |d, i| format!("{d}:{}", i + 1),
        "outpost agent running",
    );
    let running = lines.last().unwrap();
    assert!(!running.starts_with('<'), "{running:?}");
    assert!(running.contains("INFO"), "{running:?}");
    // A pipe, not a terminal: no colour codes either.
    assert!(lines.iter().all(|l| !l.contains('\x1b')), "{lines:#?}");
}

/// The repository's `systemd/` directory.
fn unit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// `systemd-analyze ARGS`: (success, stdout, stderr).
fn systemd_analyze(args: &[&str], cwd: &Path) -> (bool, String, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .current_dir(cwd)
        .env("SYSTEMD_COLORS", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run systemd-analyze ({e}): install the systemd package (the README's \
                 test command does)"
            )
        });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The unit files in a directory of their own, `/usr/bin/outpost` replaced by the binary
/// under test (verify checks that ExecStart= is executable); nothing else changed.
fn units_for_verify() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["outpost.service", "outpost-dns.socket"] {
        let text = std::fs::read_to_string(unit_dir().join(f)).unwrap();
        let text = text.replace("/usr/bin/outpost ", &format!("{} ", bin().display()));
        std::fs::write(dir.path().join(f), text).unwrap();
    }
    dir
}

#[test]
fn the_unit_files_verify_without_a_word() {
    let dir = units_for_verify();
    let service = std::fs::read_to_string(dir.path().join("outpost.service")).unwrap();
    assert!(service.contains(&format!("ExecStart={} agent ", bin().display())));
    let (ok, out, err) = systemd_analyze(
        &["verify", "outpost.service", "outpost-dns.socket"],
        dir.path(),
    );
    assert!(ok && err.trim().is_empty(), "verify: {out}\n{err}");

    // The check itself catches a bad directive (verify exits 0 on those; stderr tells).
    let bad = service.replace("Restart=on-failure", "Restart=on-failure\nRestartt=always");
    std::fs::write(dir.path().join("outpost.service"), bad).unwrap();
    let (_, _, err) = systemd_analyze(&["verify", "outpost.service"], dir.path());
    assert!(err.contains("Restartt"), "{err}");
}

#[test]
fn the_service_is_hardened_to_an_exposure_of_at_most_two() {
    let unit = unit_dir().join("outpost.service");
    let (_, out, err) = systemd_analyze(
        &["security", "--offline=yes", &unit.display().to_string()],
        &unit_dir(),
    );
    let exposure: f64 = out
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for outpost.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}\n{err}"));
    eprintln!("exposure {exposure}");
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{out}");

    // The unit's promises, read back from what systemd parsed.
    let (_, json, _) = systemd_analyze(
        &[
            "security",
            "--offline=yes",
            "--json=short",
            &unit.display().to_string(),
        ],
        &unit_dir(),
    );
    let checks: serde_json::Value = serde_json::from_str(&json).unwrap();
    let set = |name: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in the report"))["set"]
            == true
    };
    for must in [
        "MemoryDenyWriteExecute=",
        "NoNewPrivileges=",
        "ProtectSystem=",
        "PrivateTmp=",
        "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "RestrictAddressFamilies=~AF_PACKET",
        "LockPersonality=",
        "NotifyAccess=",
    ] {
        assert!(set(must), "{must} is not in force");
    }
}

#[test]
fn the_unit_runs_the_agent_as_its_own_user_with_its_state_dir() {
    let service = std::fs::read_to_string(unit_dir().join("outpost.service")).unwrap();
    let has = |line: &str| service.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "Restart=on-failure",
        "User=outpost",
        "StateDirectory=outpost",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
        "SupplementaryGroups=video",
    ] {
        assert!(has(line), "no {line:?} in outpost.service");
    }
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert!(
        exec.starts_with(
            "/usr/bin/outpost agent -data-dir /var/lib/outpost -config-dir /etc/outpost.d"
        ),
        "{exec}"
    );
    // The flags parse: the agent's own CLI accepts them.
    let help = Command::new(bin()).args(["agent", "-h"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--data-dir", "--config-dir", "--server", "--bootstrap"] {
        assert!(help.contains(flag), "{flag}");
    }
    // systemd-sysusers makes the user and group from the file, into an empty root.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let conf = unit_dir().join("sysusers.d/outpost.conf");
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(&conf)
        .output()
        .expect("systemd-sysusers (package systemd)");
    assert!(out.status.success(), "{out:?}");
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("outpost:"))
        .unwrap_or_else(|| panic!("no outpost user in {passwd}"))
        .split(':')
        .collect();
    assert_eq!(
        user[5], "/var/lib/outpost",
        "home: the state directory (ORC writes there)"
    );
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    assert!(group.lines().any(|l| l.starts_with("outpost:")), "{group}");
    assert!(
        group
            .lines()
            .any(|l| l.starts_with("video:") && l.ends_with(":outpost")),
        "{group}"
    );
    let socket = std::fs::read_to_string(unit_dir().join("outpost-dns.socket")).unwrap();
    for line in [
        "ListenDatagram=53",
        "ListenStream=53",
        "FileDescriptorName=dns",
        "Service=outpost.service",
    ] {
        assert!(socket.lines().any(|l| l.trim() == line), "no {line:?}");
    }
}

/// `tests/systemd/sandbox.py OPTIONS -- COMMAND`: the command under seccomp filters made from
/// the unit (`--unit FILE`) or the kernel's MDWE (`--mdwe-prctl`), its environment kept.
fn sandboxed(options: &[&str], inner: Command) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/systemd/sandbox.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script)
        .args(options)
        .arg("--")
        .arg(inner.get_program());
    cmd.args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

fn unit_file() -> String {
    unit_dir().join("outpost.service").display().to_string()
}

#[test]
fn the_sandbox_applies_the_units_filters() {
    // The control for the tests below: what the unit forbids fails inside the sandbox, and
    // works outside it (the probes themselves are sound).
    let probes = [
        (
            "W+X memory",
            "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ|mmap.PROT_WRITE|mmap.PROT_EXEC)",
        ),
        (
            "a packet socket",
            "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)",
        ),
        ("a privileged call", "import os; os.setgroups([])"),
    ];
    let unit = unit_file();
    for (what, probe) in probes {
        let mut inner = Command::new("/usr/bin/python3");
        inner.args(["-c", probe]);
        let out = sandboxed(&["--unit", &unit], inner).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} was allowed");
        assert!(err.contains("Operation not permitted"), "{what}: {err}");
        let out = Command::new("/usr/bin/python3")
            .args(["-c", probe])
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {out:?}");
    }
    let (_, probe) = probes[0];
    let mut inner = Command::new("/usr/bin/python3");
    inner.args(["-c", probe]);
    let out = sandboxed(&["--mdwe-prctl"], inner).output().unwrap();
    assert!(!out.status.success(), "PR_SET_MDWE allowed W+X memory");
}

#[test]
fn the_agent_serves_under_the_units_system_call_filter() {
    require_dig();
    require_curl();
    let conf = tempfile::tempdir().unwrap();
    write(
        conf.path(),
        "web.json",
        r#"{"service": {"name": "web", "port": 80}}"#,
    );
    let home = tempfile::tempdir().unwrap();
    let mut notify = NotifySocket::new();
    let args = dev_args(conf.path());
    let mut inner = Command::new(bin());
    inner
        .arg("agent")
        .args(&args)
        .env("HOME", home.path())
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "1000000");
    let mut agent = Proc::spawn(sandboxed(&["--unit", &unit_file()], inner));
    let ready = notify.next_state(Duration::from_secs(20), &agent);
    let status = field(&ready, "STATUS").unwrap();
    let (dns, http) = (served(status, "DNS"), served(status, "HTTP"));
    assert_eq!(
        dig(dns.port(), &["web.service.consul", "A"]).answers("A"),
        ["127.0.0.1"]
    );
    assert_eq!(
        dig(dns.port(), &["+tcp", "web.service.consul", "SRV"])
            .answers("SRV")
            .len(),
        1
    );
    let r = curl(&[&format!("http://{http}/v1/agent/members")]);
    assert_eq!(r.status, 200, "{}", r.body);
    agent.signal("HUP");
    let _reloading = notify.next_state(Duration::from_secs(10), &agent);
    let ready = notify.next_state(Duration::from_secs(10), &agent);
    assert!(ready.contains("config reloaded"), "{ready:?}");
    assert!(!notify.pings.is_empty(), "no watchdog pings");
    agent.signal("TERM");
    assert_eq!(
        field(
            &notify.next_state(Duration::from_secs(10), &agent),
            "STOPPING"
        ),
        Some("1")
    );
    let st = agent.wait_exit(Duration::from_secs(10));
    assert!(st.success(), "{st:?}\n{}", agent.log());
    let log = agent.log();
    assert!(!log.contains("ERROR"), "{log}");
}

/// With the media feature: GStreamer's ORC compiles code at run time, and under
/// MemoryDenyWriteExecute it can only do so through a file it maps twice (writable, and
/// executable) in $HOME or /tmp; with neither usable it aborts the process. The unit gives it
/// both (the state directory is the user's home; PrivateTmp). Plays the `-dev` test stream
/// under the unit's seccomp filters (MDWE as systemd's seccomp form) and under the kernel's
/// PR_SET_MDWE, with such a home, and, as the control, shows the abort when neither $HOME
/// nor /tmp can hold executable code (a private noexec /tmp: needs root).
#[cfg(feature = "media")]
#[test]
fn a_stream_plays_under_memory_deny_write_execute() {
    require_curl();
    let unit = unit_file();
    for options in [&["--unit", &unit][..], &["--mdwe-prctl"]] {
        let home = tempfile::tempdir().unwrap();
        play_test_stream(options, home.path(), false)
            .unwrap_or_else(|e| panic!("{options:?}: {e}"));
    }
    let e = play_test_stream(&["--unit", &unit], Path::new("/proc"), true)
        .expect_err("ORC found executable memory with no usable HOME or /tmp");
    assert!(e.contains("ORC: ERROR"), "{e}");
    eprintln!(
        "control: {}",
        e.lines().rev().take(4).collect::<Vec<_>>().join(" | ")
    );
}

/// `sh -c` script: `N DIR... COMMAND...` runs COMMAND with a private, empty, noexec /tmp
/// (in its own mount namespace), the N directories bind-mounted back over it.
#[cfg(feature = "media")]
const KEEP_TMP_SCRIPT: &str = r#"set -e
n=$1; shift
stash=$(mktemp -d -p /run)
i=0
for d in "$@"; do
  [ "$i" -lt "$n" ] || break
  mkdir "$stash/$i"; mount --bind "$d" "$stash/$i"; i=$((i+1))
done
mount -t tmpfs -o noexec tmpfs /tmp
i=0
while [ "$i" -lt "$n" ]; do
  d=$1; shift
  mkdir -p "$d"; mount --bind "$stash/$i" "$d"; i=$((i+1))
done
exec "$@""#;

/// Runs a `-dev` agent under `sandbox.py OPTIONS` with `home` as $HOME (and, with
/// `noexec_tmp`, a private /tmp mounted noexec), watches its test stream through WHEP, and
/// waits until it plays. Err: how it failed, with the agent's log.
#[cfg(feature = "media")]
fn play_test_stream(options: &[&str], home: &Path, noexec_tmp: bool) -> Result<(), String> {
    let mut notify = NotifySocket::new();
    let mut inner = Command::new(bin());
    inner
        .args([
            "agent",
            "-dev",
            "-bind",
            "127.0.0.1",
            "-dns-port",
            "0",
            "-http-port",
            "0",
            "-https-port",
            "-1",
            "-serf-lan-port",
            "0",
        ])
        .env("HOME", home)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("ORC_DEBUG", "2")
        .env_remove("TMPDIR")
        .env_remove("XDG_RUNTIME_DIR");
    let mut cmd = sandboxed(options, inner);
    if noexec_tmp {
        // What the agent needs may itself live under /tmp (a checkout there): each such
        // directory is bind-mounted back over the private /tmp, keeping its own flags.
        let keep: Vec<PathBuf> = [
            PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
            bin().parent().unwrap().to_path_buf(),
        ]
        .into_iter()
        .filter(|p| p.starts_with("/tmp"))
        .collect();
        let mut wrapped = Command::new("unshare");
        wrapped
            .args(["-m", "sh", "-c"])
            .arg(KEEP_TMP_SCRIPT)
            .arg("sh");
        wrapped.arg(keep.len().to_string()).args(&keep);
        wrapped.arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        cmd = wrapped;
    }
    let mut agent = Proc::spawn(cmd);
    let ready = notify.next_state(Duration::from_secs(20), &agent);
    let http = served(field(&ready, "STATUS").unwrap(), "HTTP");
    let offer = {
        use str0m::Rtc;
        use str0m::media::{Direction, MediaKind};
        let mut rtc = Rtc::builder().build(Instant::now());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.apply().unwrap().0.to_sdp_string()
    };
    // The media task takes the config's streams just after READY=1: until then, 404.
    common::wait_for("a WHEP session", Duration::from_secs(10), || {
        let r = curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/sdp",
            "--data-binary",
            &offer,
            &format!("http://{http}/whep/test"),
        ]);
        match r.status {
            201 => Ok(()),
            _ => Err(format!("{} {}\n{}", r.status, r.body, agent.log())),
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = agent.child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(100)); // the last lines of the log
            return Err(format!("the agent died ({st:?}):\n{}", agent.log()));
        }
        // Plain curl: the agent may die under it, which the next turn reports.
        let out = Command::new("curl")
            .args(["-s", "--max-time", "2"])
            .arg(format!("http://{http}/v1/streams/test"))
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        let stream: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if stream["State"] == "playing" && stream["Fps"].as_f64() > Some(0.0) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("never played: {body}\n{}", agent.log()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = agent.log();
    if log.contains("ORC: ERROR") {
        return Err(log);
    }
    agent.signal("TERM");
    match agent.wait_exit(Duration::from_secs(10)) {
        st if st.success() => Ok(()),
        st => Err(format!("exit {st:?}:\n{}", agent.log())),
    }
}
