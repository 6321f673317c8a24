//! The HTTPS file server, in-process (a rustls client against `HttpsServer` on a free port)
//! and as the real `outpost serve-tls` against `curl` and `openssl s_client`.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use outpost::tls::testing::{ServerFiles, TestCa, TestResponse, https_get, https_request};
use outpost::tls::{HttpsServer, ServeError, ServeOptions};

// ---------------------------------------------------------------------------------------
// Helpers

/// A served directory `site/` (with files) and the PKI files beside it, in a temp dir.
struct Fixture {
    tmp: tempfile::TempDir,
    ca: TestCa,
    pki: ServerFiles,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let ca = TestCa::new("outpost test CA");
        let pki = ca.write_server_files(&tmp.path().join("pki"));
        let site = tmp.path().join("site");
        std::fs::create_dir_all(site.join("docs")).unwrap();
        std::fs::create_dir_all(site.join("app")).unwrap();
        std::fs::write(site.join("hello.txt"), "hello, world\n").unwrap();
        std::fs::write(site.join("app/index.html"), "<h1>the app</h1>\n").unwrap();
        std::fs::write(site.join("docs/<b>&\"x\".txt"), "tricky\n").unwrap();
        std::fs::write(site.join("docs/plain.md"), "# doc\n").unwrap();
        std::fs::create_dir(site.join("docs/sub dir")).unwrap();
        // Outside the served directory.
        std::fs::write(tmp.path().join("secret.txt"), "TOP SECRET\n").unwrap();
        Fixture { tmp, ca, pki }
    }

    fn site(&self) -> PathBuf {
        self.tmp.path().join("site")
    }

    fn options(&self) -> ServeOptions {
        ServeOptions::new(self.site(), &self.pki.cert, &self.pki.key)
    }

    fn start(&self) -> HttpsServer {
        HttpsServer::start(self.options()).expect("start the server")
    }

    fn get(&self, server: &HttpsServer, target: &str) -> TestResponse {
        https_get(server.addr(), self.ca.client_config(None), target)
            .unwrap_or_else(|e| panic!("GET {target}: {e}"))
    }
}

/// A 5 s read timeout: a connection the server should close must be closed by then.
fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until the server closes the connection and returns what came; panics if it is
/// still open after the read timeout.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The library server, in-process

#[test]
fn a_file_is_served_with_its_bytes_content_type_and_length() {
    let f = Fixture::new();
    // Larger than one read chunk, and not text: streamed, byte for byte.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(f.site().join("picture.png"), &big).unwrap();
    let server = f.start();

    let r = f.get(&server, "/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello, world\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    let r = f.get(&server, "/picture.png");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("content-length"), Some("300000"));
    assert!(r.body == big, "the PNG came back different");

    // A name with a space, percent-encoded.
    std::fs::write(f.site().join("a b.json"), "{}").unwrap();
    let r = f.get(&server, "/a%20b.json?ignored=1");
    assert_eq!((r.status, r.text().as_str()), (200, "{}"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn a_directory_is_listed_with_escaped_names_and_index_html_wins() {
    let f = Fixture::new();
    let server = f.start();

    let r = f.get(&server, "/docs/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    assert!(html.contains("Index of /docs/"), "{html}");
    assert!(
        html.contains(">&lt;b&gt;&amp;&quot;x&quot;.txt</a>"),
        "{html}"
    );
    assert!(!html.contains("<b>"), "an unescaped name: {html}");
    assert!(
        html.contains("<a href=\"./plain.md\">plain.md</a>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"./sub%20dir/\">sub dir/</a>"),
        "{html}"
    );
    // The link of the tricky name leads to it.
    let href = html
        .split("href=\"./")
        .find(|s| s.starts_with("%3Cb"))
        .and_then(|s| s.split('"').next())
        .expect("a link to the tricky file");
    let r = f.get(&server, &format!("/docs/{href}"));
    assert_eq!((r.status, r.text().as_str()), (200, "tricky\n"));

    // The root is listed too.
    let root = f.get(&server, "/").text();
    assert!(
        root.contains("./hello.txt") && root.contains("./app/"),
        "{root}"
    );

    // index.html instead of a listing.
    let r = f.get(&server, "/app/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>the app</h1>\n");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));

    // Without the slash: a redirect to it (so relative links work).
    let r = f.get(&server, "/app");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/app/"));
    // Never to another host.
    let r = f.get(&server, "//app");
    assert_eq!(r.header("location"), Some("/app/"));
}

#[test]
fn missing_files_are_404_and_only_get_and_head_are_answered() {
    let f = Fixture::new();
    let server = f.start();
    assert_eq!(f.get(&server, "/nope.txt").status, 404);
    assert_eq!(f.get(&server, "/docs/nope/").status, 404);
    // A file asked for as a directory.
    assert_eq!(f.get(&server, "/hello.txt/").status, 404);

    let head = https_request(
        server.addr(),
        f.ca.client_config(None),
        "HEAD",
        "/hello.txt",
    )
    .expect("HEAD");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    assert_eq!(
        head.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(head.body.is_empty(), "HEAD sent a body: {:?}", head.text());

    let head = https_request(server.addr(), f.ca.client_config(None), "HEAD", "/docs/")
        .expect("HEAD of a directory");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = https_request(
            server.addr(),
            f.ca.client_config(None),
            method,
            "/hello.txt",
        )
        .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[test]
fn no_traversal_form_reaches_a_file_outside_the_directory() {
    let f = Fixture::new();
    let site = f.site();
    let outside = f.tmp.path();
    std::os::unix::fs::symlink(outside.join("secret.txt"), site.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(outside, site.join("up")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", site.join("rel-leak.txt")).unwrap();
    // An index.html that leads out is not served either.
    std::fs::create_dir(site.join("trap")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), site.join("trap/index.html")).unwrap();
    // A symlink that stays inside is followed.
    std::os::unix::fs::symlink("hello.txt", site.join("alias.txt")).unwrap();
    let server = f.start();

    for target in [
        "/../secret.txt",
        "/docs/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%2fsecret.txt",
        "/docs%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/%5c..%5csecret.txt",
        "/secret.txt%00.html",
        "/hello.txt%00",
        &format!("/{}", outside.join("secret.txt").display()),
        &format!("/%2f{}", outside.join("secret.txt").display()),
        "http://localhost/../secret.txt",
        "/leak.txt",
        "/rel-leak.txt",
        "/up/secret.txt",
        "/up/",
        "/trap/index.html",
    ] {
        let r = f.get(&server, target);
        assert!(
            r.status == 403 || r.status == 404,
            "{target}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("TOP SECRET"), "{target} leaked the file");
    }
    assert_eq!(f.get(&server, "/%2e%2e/secret.txt").status, 403);
    assert_eq!(f.get(&server, "/leak.txt").status, 404);
    // The trap directory holds only its (refused) index.html: it is listed instead.
    let trap = f.get(&server, "/trap/");
    assert_eq!(trap.status, 200);
    assert!(trap.text().contains("Index of /trap/"));

    let r = f.get(&server, "/alias.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "hello, world\n"));
}

#[test]
fn client_certificates_must_chain_to_the_client_ca() {
    let f = Fixture::new();
    let client_ca = TestCa::new("client CA");
    let ca_path = client_ca.write_ca(&f.tmp.path().join("clients"));
    let mut opts = f.options();
    opts.client_ca = Some(ca_path);
    let server = HttpsServer::start(opts).unwrap();

    // A client that trusts the server, with: no certificate, one from another CA, the right one.
    let config = |cert| f.ca.client_config(cert);
    let r = https_get(server.addr(), config(None), "/hello.txt");
    assert!(r.is_err(), "served without a client certificate: {r:?}");

    let stranger = TestCa::new("another CA").client_cert("mallory");
    let r = https_get(server.addr(), config(Some(&stranger)), "/hello.txt");
    assert!(r.is_err(), "served to a certificate of another CA: {r:?}");

    let good = client_ca.client_cert("alice");
    let r = https_get(server.addr(), config(Some(&good)), "/hello.txt").expect("alice");
    assert_eq!((r.status, r.text().as_str()), (200, "hello, world\n"));
}

#[test]
fn plain_http_and_junk_close_their_connection_only() {
    let f = Fixture::new();
    let server = f.start();

    let mut plain = raw_connect(server.addr());
    plain
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let got = String::from_utf8_lossy(&read_until_closed(&mut plain)).into_owned();
    assert!(got.starts_with("HTTP/1.0 400 "), "{got:?}");
    assert!(got.contains("use https://"), "{got:?}");
    assert!(!got.contains("hello, world"));

    let mut junk = raw_connect(server.addr());
    junk.write_all(b"\x00\x01\x02 not TLS at all \xff\xfe")
        .unwrap();
    assert!(!read_until_closed(&mut junk).starts_with(b"HTTP"));

    // A TLS record header followed by garbage: the handshake fails and the socket closes.
    let mut bad_hello = raw_connect(server.addr());
    bad_hello
        .write_all(b"\x16\x03\x01\x00\x10garbage garbage!")
        .unwrap();
    read_until_closed(&mut bad_hello);

    let r = f.get(&server, "/hello.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "hello, world\n"));
}

#[test]
fn a_stalled_handshake_is_closed_after_the_handshake_timeout() {
    let f = Fixture::new();
    let timeout = Duration::from_millis(300);
    let mut opts = f.options();
    opts.handshake_timeout = timeout;
    let server = HttpsServer::start(opts).unwrap();

    // One says nothing, one starts a ClientHello and stops; a good request meanwhile works.
    let start = Instant::now();
    let mut silent = raw_connect(server.addr());
    let mut partial = raw_connect(server.addr());
    partial.write_all(b"\x16\x03\x01\x02\x00\x01").unwrap();
    let r = f.get(&server, "/hello.txt");
    assert_eq!(r.status, 200);

    assert!(read_until_closed(&mut silent).is_empty());
    assert!(read_until_closed(&mut partial).is_empty());
    let took = start.elapsed();
    assert!(took >= timeout, "closed before the timeout: {took:?}");

    let r = f.get(&server, "/hello.txt");
    assert_eq!(r.status, 200);
}

#[test]
fn connections_over_the_bound_are_closed_at_once() {
    let f = Fixture::new();
    let mut opts = f.options();
    opts.max_connections = 2;
    opts.handshake_timeout = Duration::from_secs(60);
    let server = HttpsServer::start(opts).unwrap();

    let first = raw_connect(server.addr());
    let second = raw_connect(server.addr());
    // Accepted after the first two, which are open: closed at once, long before the
    // handshake timeout.
    let mut third = raw_connect(server.addr());
    let start = Instant::now();
    read_until_closed(&mut third);
    assert!(start.elapsed() < Duration::from_secs(5));

    drop((first, second));
    // Once the server sees them gone, there is room again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match https_get(server.addr(), f.ca.client_config(None), "/hello.txt") {
            Ok(r) => {
                assert_eq!(r.status, 200);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no room after the connections closed: {e}"),
        }
    }
}

#[test]
fn dropping_the_server_closes_its_listener() {
    let f = Fixture::new();
    let server = f.start();
    let addr = server.addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(f.get(&server, "/hello.txt").status, 200);
    // An idle open connection does not hold the drop up.
    let _idle = raw_connect(addr);
    drop(server);
    let e = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
}

#[test]
fn bad_files_are_refused_before_listening_naming_the_file() {
    let f = Fixture::new();
    let dir = f.tmp.path();
    let start_err = |opts: ServeOptions| -> String {
        match HttpsServer::start(opts) {
            Ok(s) => panic!("started on {}", s.addr()),
            Err(e) => e.to_string(),
        }
    };

    let mut o = f.options();
    o.cert = dir.join("missing.crt.pem");
    let e = start_err(o);
    assert!(
        e.contains("missing.crt.pem") && e.contains("cannot read"),
        "{e}"
    );

    let other = TestCa::new("x")
        .server_cert()
        .write(&dir.join("other"), "other");
    let mut o = f.options();
    o.key = other.1.clone();
    let e = start_err(o);
    assert!(
        e.contains("other.private_key.pem") && e.contains("does not match"),
        "{e}"
    );

    let mut o = f.options();
    o.client_ca = Some(f.site().join("hello.txt"));
    let e = start_err(o);
    assert!(
        e.contains("hello.txt") && e.contains("no certificate"),
        "{e}"
    );

    let mut o = f.options();
    o.dir = dir.join("no-such-dir");
    let e = start_err(o);
    assert!(e.contains("no-such-dir"), "{e}");

    let mut o = f.options();
    o.dir = f.site().join("hello.txt");
    let e = start_err(o);
    assert!(
        e.contains("hello.txt") && e.contains("not a directory"),
        "{e}"
    );

    // A taken port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = f.options();
    o.addr = taken.local_addr().unwrap();
    match HttpsServer::start(o) {
        Err(ServeError::Bind { addr, .. }) => assert_eq!(addr, taken.local_addr().unwrap()),
        Err(e) => panic!("not a bind error: {e}"),
        Ok(_) => panic!("started on a taken port"),
    }
}

#[test]
fn a_swapped_identity_is_presented_to_new_connections() {
    let f = Fixture::new();
    let server = f.start();
    let before = server.fingerprint_sha256();
    let ca2 = TestCa::new("second CA");
    let (cert, key) = ca2
        .server_cert()
        .write(&f.tmp.path().join("pki2"), "server");
    server
        .identity()
        .set(outpost::tls::load_identity(&cert, &key).unwrap());
    assert_ne!(server.fingerprint_sha256(), before);
    // The old CA no longer verifies it; the new one does.
    assert!(https_get(server.addr(), f.ca.client_config(None), "/hello.txt").is_err());
    let r = https_get(server.addr(), ca2.client_config(None), "/hello.txt").unwrap();
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------------------
// The real binary, against curl and openssl

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outpost"))
}

fn require(tool: &str, version_arg: &str, package: &str) {
    let ok = Command::new(tool)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests need `{tool}` (Debian package {package}); the README's test command installs it"
    );
}

fn require_tools() {
    require("curl", "--version", "curl");
    require("openssl", "version", "openssl");
}

/// Runs `cmd` with `stdin` as its input, killing it after `limit`; panics if it had to.
fn run_bounded(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("{cmd:?} still running after {limit:?}");
        }
    }
}

/// A running `outpost serve-tls`; killed on drop.
struct Served {
    child: Child,
    addr: SocketAddr,
    /// stdout up to and including the "serving" line.
    stdout: String,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let mut child = Command::new(bin())
            .arg("serve-tls")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run outpost");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if let Some(url) = line.split(" on https://").nth(1) {
                        let addr = url.trim().parse().expect("the address in the serving line");
                        assert!(line.starts_with("serving "), "{line}");
                        return Served {
                            child,
                            addr,
                            stdout: seen,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "serve-tls did not start; stdout:\n{seen}stderr:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Sends `sig` and waits (at most 10 s) for the exit status.
    fn stop_with(mut self, sig: nix::sys::signal::Signal) -> std::process::ExitStatus {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("serve-tls did not stop on {sig:?}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -s ARGS` (20 s at most): its exit code and stdout.
fn curl(args: &[&str]) -> (i32, String) {
    let out = run_bounded(
        Command::new("curl")
            .args(["-s", "--max-time", "20"])
            .args(args),
        b"",
        Duration::from_secs(30),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

#[test]
fn serve_tls_serves_files_to_curl_and_stops_on_sigint() {
    require_tools();
    let f = Fixture::new();
    let s = Served::start(&[
        path_str(&f.site()),
        "-cert",
        path_str(&f.pki.cert),
        "-key",
        path_str(&f.pki.key),
        "-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(s.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(s.addr.port(), 0);
    assert!(
        s.stdout
            .contains(&format!("serving {} on https://", f.site().display())),
        "{}",
        s.stdout
    );
    assert!(!s.stdout.contains("self-signed"));
    let ca = path_str(&f.pki.ca);
    let (code, body) = curl(&["--cacert", ca, &s.url("/hello.txt")]);
    assert_eq!((code, body.as_str()), (0, "hello, world\n"));
    let (code, body) = curl(&["--cacert", ca, &s.url("/app/")]);
    assert_eq!((code, body.as_str()), (0, "<h1>the app</h1>\n"));
    let (code, out) = curl(&[
        "--cacert",
        ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--path-as-is",
        &s.url("/../secret.txt"),
    ]);
    assert_eq!((code, out.as_str()), (0, "403"));
    // Without the CA, curl does not trust it.
    let (code, _) = curl(&[&s.url("/hello.txt")]);
    assert_ne!(code, 0);

    let addr = s.addr;
    let status = s.stop_with(nix::sys::signal::Signal::SIGINT);
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_err());
}

#[test]
fn serve_tls_with_a_client_ca_wants_a_client_certificate_from_curl() {
    require_tools();
    let f = Fixture::new();
    let client_ca = TestCa::new("client CA");
    let clients = f.tmp.path().join("clients");
    let client_ca_path = client_ca.write_ca(&clients);
    let (cert, key) = client_ca.client_cert("alice").write(&clients, "client");
    let (other_cert, other_key) = TestCa::new("other")
        .client_cert("mallory")
        .write(&clients, "other");
    let s = Served::start(&[
        path_str(&f.site()),
        "-cert",
        path_str(&f.pki.cert),
        "-key",
        path_str(&f.pki.key),
        "-client-ca",
        path_str(&client_ca_path),
        "-addr",
        "127.0.0.1:0",
    ]);
    let ca = path_str(&f.pki.ca);
    let url = s.url("/hello.txt");
    let (code, body) = curl(&[
        "--cacert",
        ca,
        "--cert",
        path_str(&cert),
        "--key",
        path_str(&key),
        &url,
    ]);
    assert_eq!((code, body.as_str()), (0, "hello, world\n"));
    let (code, body) = curl(&["--cacert", ca, &url]);
    assert!(
        code != 0 && body.is_empty(),
        "no client cert: {code} {body:?}"
    );
    let (code, body) = curl(&[
        "--cacert",
        ca,
        "--cert",
        path_str(&other_cert),
        "--key",
        path_str(&other_key),
        &url,
    ]);
    assert!(code != 0 && body.is_empty(), "other CA: {code} {body:?}");
}

/// `openssl s_client` against `addr` with `args`; stdout and stderr together.
fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = run_bounded(
        Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args(args),
        b"",
        Duration::from_secs(20),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn serve_tls_speaks_tls_1_2_and_1_3_only() {
    require_tools();
    let f = Fixture::new();
    let s = Served::start(&[
        path_str(&f.site()),
        "-cert",
        path_str(&f.pki.cert),
        "-key",
        path_str(&f.pki.key),
        "-addr",
        "127.0.0.1:0",
    ]);
    let ca = path_str(&f.pki.ca);
    for (flag, version) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let (ok, out) = s_client(
            s.addr,
            &[flag, "-brief", "-CAfile", ca, "-verify_return_error"],
        );
        assert!(ok, "{flag}: {out}");
        assert!(
            out.contains(&format!("Protocol version: {version}")),
            "{flag}: {out}"
        );
    }
    // SECLEVEL=0 so that OpenSSL itself is willing to offer TLS 1.1: the refusal below is
    // the server's (an alert), not the client declining to try.
    let (ok, out) = s_client(
        s.addr,
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", ca],
    );
    assert!(!ok, "TLS 1.1 was accepted: {out}");
    assert!(
        out.contains("alert") && !out.contains("no protocols available"),
        "TLS 1.1 not refused by the server: {out}"
    );
    assert!(out.contains("no peer certificate available"), "{out}");
}

#[test]
fn serve_tls_without_a_certificate_serves_a_self_signed_one_with_the_printed_fingerprint() {
    require_tools();
    let f = Fixture::new();
    let s = Served::start(&[path_str(&f.site()), "-addr", "127.0.0.1:0"]);
    assert!(
        s.stdout.contains("self-signed certificate for ")
            && s.stdout.contains("localhost, 127.0.0.1, ::1"),
        "{}",
        s.stdout
    );
    let printed = s
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("SHA-256 fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint line in {}", s.stdout))
        .trim()
        .to_string();
    assert_eq!(printed.len(), 32 * 3 - 1, "{printed}");

    let (_, shown) = s_client(s.addr, &["-servername", "localhost"]);
    let begin = shown
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from s_client: {shown}"));
    let end = shown.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let pem = format!("{}\n", &shown[begin..end]);
    let x509 = run_bounded(
        Command::new("openssl").args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-ext",
            "subjectAltName",
        ]),
        pem.as_bytes(),
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&x509.stdout);
    assert!(x509.status.success(), "{text}");
    let served = text
        .lines()
        .find_map(|l| l.split_once("Fingerprint=").map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no fingerprint from openssl x509: {text}"));
    assert_eq!(served.to_ascii_uppercase(), printed);
    for san in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(text.contains(san), "{san} missing: {text}");
    }
    // curl, told to trust it, gets the file.
    let (code, body) = curl(&["-k", &s.url("/hello.txt")]);
    assert_eq!((code, body.as_str()), (0, "hello, world\n"));

    let status = s.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "{status:?}");
}

/// Runs `outpost serve-tls ARGS` expecting it to refuse: a non-zero exit, without having
/// served, and one line on stderr, which is returned.
fn refused(args: &[&str]) -> String {
    let out = run_bounded(
        Command::new(bin()).arg("serve-tls").args(args),
        b"",
        Duration::from_secs(20),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stdout}");
    assert_ne!(out.status.code(), None, "killed by a signal: {stderr}");
    assert!(!stdout.contains("serving"), "{args:?} served: {stdout}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    stderr
}

#[test]
fn serve_tls_refuses_bad_files_with_one_line_naming_the_file() {
    require_tools();
    let f = Fixture::new();
    let site = path_str(&f.site()).to_string();
    let cert = path_str(&f.pki.cert).to_string();
    let key = path_str(&f.pki.key).to_string();
    let dir = f.tmp.path();
    let addr = ["-addr", "127.0.0.1:0"];
    let with = |extra: &[&str]| -> String {
        let mut args: Vec<&str> = vec![&site];
        args.extend_from_slice(extra);
        args.extend_from_slice(&addr);
        refused(&args)
    };

    // A key of another certificate.
    let (_, other_key) = TestCa::new("x")
        .server_cert()
        .write(&dir.join("x"), "other");
    let e = with(&["-cert", &cert, "-key", path_str(&other_key)]);
    assert!(
        e.contains("other.private_key.pem") && e.contains("does not match"),
        "{e}"
    );

    // Missing files.
    let missing = dir.join("missing.pem");
    let e = with(&["-cert", path_str(&missing), "-key", &key]);
    assert!(
        e.contains("missing.pem") && e.contains("cannot read"),
        "{e}"
    );
    let e = with(&["-cert", &cert, "-key", path_str(&missing)]);
    assert!(e.contains("missing.pem"), "{e}");
    let e = with(&[
        "-cert",
        &cert,
        "-key",
        &key,
        "-client-ca",
        path_str(&missing),
    ]);
    assert!(e.contains("missing.pem"), "{e}");

    // An encrypted key, as openssl writes one.
    let enc = dir.join("encrypted.pem");
    let out = run_bounded(
        Command::new("openssl").args([
            "pkcs8",
            "-topk8",
            "-in",
            &key,
            "-out",
            path_str(&enc),
            "-passout",
            "pass:secret",
        ]),
        b"",
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{:?}", out);
    let e = with(&["-cert", &cert, "-key", path_str(&enc)]);
    assert!(
        e.contains("encrypted.pem") && e.contains("encrypted"),
        "{e}"
    );

    // The key given as the certificate.
    let e = with(&["-cert", &key, "-key", &key]);
    assert!(
        e.contains("server.private_key.pem") && e.contains("no certificate"),
        "{e}"
    );

    // Half a pair.
    let e = with(&["-cert", &cert]);
    assert!(e.contains("-key"), "{e}");
    let e = with(&["-key", &key]);
    assert!(e.contains("-cert"), "{e}");

    // A directory that is not there.
    let e = refused(&[path_str(&dir.join("nowhere")), "-addr", "127.0.0.1:0"]);
    assert!(e.contains("nowhere"), "{e}");

    // An address that is not one.
    let e = refused(&[&site, "-addr", "localhost"]);
    assert!(e.contains("-addr") && e.contains("localhost"), "{e}");
}
