//! Helpers for integration tests: run the real `outpost` binary and query it with `dig`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running agent; killed on drop. Its stderr is collected for assertions.
pub struct Agent {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
    pub dns: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub gossip: Option<SocketAddr>,
    /// A server's Raft address (its `-server-port`), once Raft runs.
    pub raft: Option<SocketAddr>,
    /// The network namespace it runs in, if not the test's own.
    pub netns: Option<String>,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outpost"))
}

/// The address logged after `prefix` on some line of `log`.
fn logged_addr(log: &str, prefix: &str) -> Option<SocketAddr> {
    let rest = log.split(prefix).nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

impl Agent {
    /// Starts `outpost agent ARGS` and waits until it has bound its listeners (it logs
    /// "outpost agent running" once they are up). Gossip takes a kernel-chosen port unless
    /// ARGS say `-serf-lan-port`, so that agents of parallel tests never meet.
    pub fn start(args: &[&str]) -> Agent {
        Agent::start_in(None, args)
    }

    /// As [`Agent::start`], inside the network namespace `netns` if given (`ip netns
    /// exec`, which execs the agent: the child is the agent itself).
    pub fn start_in(netns: Option<&str>, args: &[&str]) -> Agent {
        let mut args = args.to_vec();
        if !args.contains(&"-serf-lan-port") {
            args.extend(["-serf-lan-port", "0"]);
        }
        if args.contains(&"-server") && !args.contains(&"-server-port") {
            args.extend(["-server-port", "0"]);
        }
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = cmd
            .arg("agent")
            .args(&args)
            // glibc writes its fatal messages (a corrupted heap, a failed assertion) to the
            // terminal unless told otherwise: into the log, so that a failure names its cause.
            .env("LIBC_FATAL_STDERR_", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run outpost");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
                if line.contains("outpost agent running") {
                    let _ = tx.send(());
                }
            }
        });
        let mut agent = Agent {
            child,
            log,
            dns: None,
            http: None,
            https: None,
            gossip: None,
            raft: None,
            netns: netns.map(String::from),
        };
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            panic!("agent did not start; log:\n{}", agent.log());
        }
        let log = agent.log();
        agent.dns = logged_addr(&log, "DNS listening on ");
        agent.http = logged_addr(&log, "HTTP listening on ");
        agent.https = logged_addr(&log, "HTTPS listening on ");
        agent.gossip = logged_addr(&log, "gossip (LAN) on ");
        agent
    }

    /// A bootstrap server named `box1` on 127.0.0.1 serving the config dir `conf` with its
    /// data dir `data`, DNS, HTTP and Raft on kernel-chosen ports; `extra` flags are added.
    /// Returns once its config is in the (replicated) catalog.
    pub fn start_box1(data: &Path, conf: &Path, extra: &[&str]) -> Agent {
        let (data, conf) = (data.display().to_string(), conf.display().to_string());
        let mut args = vec![
            "-server",
            "-bootstrap",
            "-node",
            "box1",
            "-bind",
            "127.0.0.1",
            "-data-dir",
            &data,
            "-config-dir",
            &conf,
            "-dns-port",
            "0",
            "-http-port",
            "0",
        ];
        args.extend_from_slice(extra);
        let mut agent = Agent::start(&args);
        // A server with a data dir replicates through Raft: its config is in the catalog
        // once it has elected itself and written it.
        agent.wait_log("this agent's config is in the catalog");
        agent.raft = logged_addr(&agent.log(), "raft on ");
        agent
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn port(&self) -> u16 {
        self.dns.expect("dns listener").port()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits until the log contains `needle` (or panics after 10 s, showing the log).
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("log never showed {needle:?}:\n{}", self.log());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record from dig's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub rtype: String,
    pub data: String,
}

/// dig's reply, parsed.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
    pub raw: String,
}

impl Reply {
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    /// Sorted rdata of answer records of `rtype`.
    pub fn answers(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.data.clone())
            .collect();
        v.sort();
        v
    }

    pub fn additional(&self, rtype: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .additional
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| (r.name.clone(), r.data.clone()))
            .collect();
        v.sort();
        v
    }
}

pub fn require_dig() {
    let ok = Command::new("dig")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests need `dig` (Debian package bind9-dnsutils); the README's test command installs it"
    );
}

/// `dig @127.0.0.1 -p PORT ARGS...`, parsed.
pub fn dig(port: u16, args: &[&str]) -> Reply {
    dig_at("127.0.0.1", port, args)
}

pub fn dig_at(server: &str, port: u16, args: &[&str]) -> Reply {
    let out = Command::new("dig")
        .arg(format!("@{server}"))
        .args([
            "-p",
            &port.to_string(),
            "+time=3",
            "+tries=1",
            "+norec",
            "+nocmd",
            "+noall",
            "+comments",
            "+answer",
            "+authority",
            "+additional",
        ])
        .args(args)
        .output()
        .expect("run dig");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_dig(&raw)
}

pub fn parse_dig(raw: &str) -> Reply {
    let mut r = Reply {
        raw: raw.to_string(),
        ..Reply::default()
    };
    let mut section = "";
    for line in raw.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            r.status = rest
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            let flags = rest.split(';').next().unwrap_or_default();
            r.flags = flags.split_whitespace().map(String::from).collect();
        }
        if line.starts_with(";; ANSWER SECTION") {
            section = "ans";
            continue;
        }
        if line.starts_with(";; AUTHORITY SECTION") {
            section = "auth";
            continue;
        }
        if line.starts_with(";; ADDITIONAL SECTION") {
            section = "add";
            continue;
        }
        if line.is_empty() || line.starts_with(';') {
            if line.is_empty() {
                section = "";
            }
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 5 {
            continue;
        }
        let rr = Rr {
            name: parts[0].to_string(),
            ttl: parts[1].parse().unwrap_or(0),
            rtype: parts[3].to_string(),
            data: parts[4..].join(" "),
        };
        match section {
            "ans" => r.answer.push(rr),
            "auth" => r.authority.push(rr),
            "add" => r.additional.push(rr),
            _ => {}
        }
    }
    r
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, text: &str) {
    if let Some(parent) = dir.join(name).parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(dir.join(name), text).unwrap();
}

/// `outpost ARGS` against `agent`'s HTTP API: (ok, stdout, stderr).
pub fn outpost(agent: &Agent, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("CONSUL_HTTP_TOKEN")
        .env("CONSUL_HTTP_ADDR", agent.http.unwrap().to_string())
        .output()
        .expect("run outpost");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// As [`outpost`], which must succeed: its stdout.
pub fn ok(agent: &Agent, args: &[&str]) -> String {
    let (ok, out, err) = outpost(agent, args);
    assert!(ok, "outpost {args:?} failed: {err}\n{out}");
    out
}

/// Retries `f` every 50 ms until it gives a value, or panics after `within` with `what`
/// and the last error it gave.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen within {within:?}: {last}");
}

/// Retries `f` until it returns true or 10 s pass.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never happened: {what}");
}

/// An HTTP reply as curl saw it.
#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// `X-Consul-Index`.
    pub fn index(&self) -> u64 {
        self.header("x-consul-index")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-Consul-Index in {:?}", self.headers))
    }
}

pub fn require_curl() {
    let ok = Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests need `curl` (Debian package curl); the README's test command installs it"
    );
}

/// `curl -s -i ARGS...` (at most 20 s), parsed into status, headers and body.
pub fn curl(args: &[&str]) -> HttpReply {
    curl_in(None, args)
}

/// As [`curl`], inside the network namespace `netns` if given.
pub fn curl_in(netns: Option<&str>, args: &[&str]) -> HttpReply {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => Command::new("curl"),
    };
    let out = cmd
        .args(["-s", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl");
    let mut raw = String::from_utf8_lossy(&out.stdout).into_owned();
    // Interim `100 Continue` replies come first.
    while raw.starts_with("HTTP/1.1 100") {
        raw = raw
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, r)| r.to_string());
    }
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP reply from curl {args:?}: {raw:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Reads one HTTP/1.1 response (head and Content-Length body) from `r`: for tests that
/// speak HTTP on a socket of their own (keep-alive, pipelining, TLS).
pub fn read_response<R: BufRead>(r: &mut R) -> (String, String) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "connection closed after {head:?}"
        );
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    std::io::Read::read_exact(r, &mut body).unwrap();
    (head, String::from_utf8(body).unwrap())
}
