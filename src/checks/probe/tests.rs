//! Probes against real things on this machine: HTTP and TCP servers on 127.0.0.1 (ephemeral
//! ports), and real programs.

use std::rc::Rc;
use std::time::Instant;

use async_net::TcpListener;
use smol::LocalExecutor;

use super::*;
use crate::checks::runner::{OUTPUT_MAX, ProbeId};
use crate::http::client::tests::serve;

fn probe(kind: ProbeKind) -> Probe {
    Probe {
        id: ProbeId::test(0),
        check_id: "c".into(),
        kind,
        output_max: OUTPUT_MAX,
    }
}

fn http_probe(url: &str, timeout: Duration) -> Probe {
    probe(ProbeKind::Http {
        url: url.into(),
        method: "GET".into(),
        headers: Vec::new(),
        timeout,
        tls_skip_verify: false,
    })
}

fn run<T: std::future::Future>(f: impl FnOnce(Rc<LocalExecutor<'static>>) -> T) -> T::Output {
    let ex = Rc::new(LocalExecutor::new());
    let fut = f(ex.clone());
    smol::block_on(ex.run(fut))
}

#[test]
fn http_statuses_map_as_consul_with_consul_output() {
    let (addr, got) = run(|ex| async move {
        let addr = serve(&ex).await;
        let mut got = Vec::new();
        for code in [200, 204, 429, 500, 301] {
            let url = format!("http://{addr}/status/{code}");
            got.push(run_probe(http_probe(&url, 2 * SECOND)).await);
        }
        (addr, got)
    });
    let want = [
        (Health::Passing, "200 OK", "status 200"),
        (Health::Passing, "204 No Content", ""),
        (Health::Warning, "429 Too Many Requests", "status 429"),
        (Health::Critical, "500 Internal Server Error", "status 500"),
        (Health::Critical, "301 Moved Permanently", "status 301"),
    ];
    for (r, (status, line, body)) in got.iter().zip(want) {
        let code = &line[..3];
        assert_eq!(
            *r,
            ProbeResult {
                status,
                output: format!("HTTP GET http://{addr}/status/{code}: {line} Output: {body}")
            }
        );
    }
}

#[test]
fn http_sends_consul_user_agent_and_accept_unless_the_definition_sets_them() {
    let (default, custom) = run(|ex| async move {
        let addr = serve(&ex).await;
        let url = format!("http://{addr}/echo");
        let default = run_probe(http_probe(&url, 2 * SECOND)).await;
        let custom = run_probe(probe(ProbeKind::Http {
            url,
            method: "POST".into(),
            headers: vec![
                ("accept".into(), "application/json".into()),
                ("X-Check".into(), "1".into()),
            ],
            timeout: 2 * SECOND,
            tls_skip_verify: false,
        }))
        .await;
        (default, custom)
    });
    assert!(
        default
            .output
            .contains("\nuser-agent: Consul Health Check\n"),
        "{}",
        default.output
    );
    assert!(
        default
            .output
            .contains("\naccept: text/plain, text/*, */*\n"),
        "{}",
        default.output
    );
    assert!(
        custom.output.contains(": 200 OK Output: POST /echo\n"),
        "{}",
        custom.output
    );
    assert!(
        custom.output.contains("\naccept: application/json\n"),
        "{}",
        custom.output
    );
    assert_eq!(
        custom.output.matches("accept:").count(),
        1,
        "{}",
        custom.output
    );
    assert!(
        custom.output.contains("\nx-check: 1\n"),
        "{}",
        custom.output
    );
}

#[test]
fn http_that_never_answers_is_critical_after_the_timeout() {
    let (r, took, addr) = run(|ex| async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = ex.spawn(async move {
            let conn = listener.accept().await;
            future::pending::<()>().await;
            drop(conn);
        });
        let start = Instant::now();
        let r = run_probe(http_probe(&format!("http://{addr}/health"), MS_200)).await;
        (r, start.elapsed(), addr)
    });
    assert_eq!(
        r,
        ProbeResult {
            status: Health::Critical,
            output: format!(
                "HTTP GET http://{addr}/health: timed out after 200ms waiting for the response"
            )
        }
    );
    assert!(took >= MS_200 && took < 5 * SECOND, "{took:?}");
}

#[test]
fn http_to_a_closed_port_is_critical_naming_the_address() {
    let (r, addr) = run(|_| async move {
        let addr = closed_port().await;
        (
            run_probe(http_probe(&format!("http://{addr}/"), 2 * SECOND)).await,
            addr,
        )
    });
    assert_eq!(r.status, Health::Critical);
    assert!(
        r.output.starts_with(&format!(
            "HTTP GET http://{addr}/: cannot connect to {addr}: "
        )),
        "{}",
        r.output
    );
}

#[test]
fn http_body_is_read_only_up_to_the_output_limit() {
    let (r, addr) = run(|ex| async move {
        let addr = serve(&ex).await;
        let url = format!("http://{addr}/big/1000000");
        (run_probe(http_probe(&url, 5 * SECOND)).await, addr)
    });
    let prefix = format!("HTTP GET http://{addr}/big/1000000: 200 OK Output: ");
    assert_eq!(r.status, Health::Passing);
    assert!(r.output.starts_with(&prefix));
    assert_eq!(r.output.len(), prefix.len() + OUTPUT_MAX);
}

/// Consul's `tls_skip_verify`: an HTTPS check against a certificate no system CA signed is
/// critical (saying why) unless verification is skipped.
#[test]
fn https_checks_verify_the_certificate_unless_tls_skip_verify() {
    use crate::tls::testing::TestCa;
    use crate::tls::{HttpsServer, ServeOptions};
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestCa::new("probe CA").write_server_files(&tmp.path().join("pki"));
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("health"), "fine").unwrap();
    let server = HttpsServer::start(ServeOptions::new(&site, &pki.cert, &pki.key)).unwrap();
    let url = format!("https://localhost:{}/health", server.addr().port());
    let verified = smol::block_on(run_probe(http_probe(&url, 5 * SECOND)));
    assert_eq!(verified.status, Health::Critical);
    assert!(
        verified.output.contains("certificate"),
        "{}",
        verified.output
    );
    let mut skip = http_probe(&url, 5 * SECOND);
    if let ProbeKind::Http {
        tls_skip_verify, ..
    } = &mut skip.kind
    {
        *tls_skip_verify = true;
    }
    let r = smol::block_on(run_probe(skip));
    assert_eq!(r.status, Health::Passing, "{}", r.output);
    assert!(r.output.ends_with("200 OK Output: fine"), "{}", r.output);
}

async fn closed_port() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

#[test]
fn tcp_is_passing_while_the_port_listens_and_critical_once_closed() {
    let (open, closed, addr) = run(|_| async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = || {
            probe(ProbeKind::Tcp {
                addr: addr.to_string(),
                timeout: 2 * SECOND,
            })
        };
        let open = run_probe(tcp()).await;
        drop(listener);
        let closed = run_probe(tcp()).await;
        (open, closed, addr)
    });
    assert_eq!(
        open,
        ProbeResult {
            status: Health::Passing,
            output: format!("TCP connect {addr}: Success")
        }
    );
    assert_eq!(closed.status, Health::Critical);
    assert!(
        closed
            .output
            .starts_with(&format!("TCP connect {addr}: Connection refused")),
        "{}",
        closed.output
    );
}

#[test]
fn tcp_without_a_port_is_critical() {
    let r = smol::block_on(run_probe(probe(ProbeKind::Tcp {
        addr: "localhost".into(),
        timeout: SECOND,
    })));
    assert_eq!(r.status, Health::Critical);
    assert!(
        r.output.starts_with("TCP connect localhost: "),
        "{}",
        r.output
    );
}

const SECOND: Duration = Duration::from_secs(1);
const MS_200: Duration = Duration::from_millis(200);

fn script(args: &[&str], timeout: Duration) -> ProbeResult {
    smol::block_on(run_probe(probe(ProbeKind::Script {
        args: args.iter().map(|a| a.to_string()).collect(),
        timeout,
    })))
}

#[test]
fn script_exit_codes_map_as_consul() {
    assert_eq!(script(&["/bin/true"], 5 * SECOND).status, Health::Passing);
    assert_eq!(
        script(&["/bin/sh", "-c", "exit 1"], 5 * SECOND).status,
        Health::Warning
    );
    // Found on PATH, as Go's exec.Command does.
    assert_eq!(
        script(&["sh", "-c", "exit 2"], 5 * SECOND).status,
        Health::Critical
    );
    assert_eq!(
        script(&["sh", "-c", "kill -9 $$"], 5 * SECOND).status,
        Health::Critical,
        "killed by a signal"
    );
}

#[test]
fn script_output_is_stdout_and_stderr_in_the_order_written() {
    let r = script(
        &["sh", "-c", "echo out; echo err >&2; echo out2; exit 1"],
        5 * SECOND,
    );
    assert_eq!(
        r,
        ProbeResult {
            status: Health::Warning,
            output: "out\nerr\nout2\n".into()
        }
    );
}

#[test]
fn script_output_is_cut_but_the_script_is_never_blocked_by_it() {
    // 1 MB of output: far past the limit and any pipe buffer. The script finishes (and
    // passes) only if the rest is read and dropped.
    let r = script(
        &["sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x"],
        10 * SECOND,
    );
    assert_eq!(
        r.status,
        Health::Passing,
        "{}",
        &r.output[..r.output.len().min(80)]
    );
    assert_eq!(r.output, "x".repeat(OUTPUT_MAX));
}

#[test]
fn script_output_that_is_not_utf8_is_replaced_not_refused() {
    let r = script(&["sh", "-c", "printf '\\377ok'"], 5 * SECOND);
    assert_eq!(r.output, "\u{FFFD}ok");
}

#[test]
fn a_program_that_cannot_start_is_critical_naming_it() {
    let r = script(&["/nonexistent/check-thing", "-v"], 5 * SECOND);
    assert_eq!(
        r,
        ProbeResult {
            status: Health::Critical,
            output:
                "cannot run \"/nonexistent/check-thing\": No such file or directory (os error 2)"
                    .into()
        }
    );
    let r = script(&[], 5 * SECOND);
    assert_eq!(r.status, Health::Critical);
}

/// The state letter of process `pid` (`R`, `S`, `Z`, ...), or `None` when it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ..." where comm may hold spaces and parentheses.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Children of this test process still running `sleep` (zombies included).
fn sleeping_children() -> Vec<u32> {
    let me = std::process::id();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) && head.ends_with("(sleep") {
            v.push(pid);
        }
    }
    v
}

/// One test for everything that runs `sleep`, so that the check for leftover children
/// is not confused by another test's.
#[test]
fn a_script_past_its_timeout_is_killed_with_its_children_and_reaped() {
    // As written in a check definition: `sleep 10` with a 200 ms timeout.
    let start = Instant::now();
    let r = script(&["sleep", "10"], MS_200);
    let took = start.elapsed();
    assert_eq!(
        r,
        ProbeResult {
            status: Health::Critical,
            output: "Timed out (200ms) running check".into()
        }
    );
    assert!(
        took >= MS_200 && took < 2 * SECOND,
        "returned after {took:?}"
    );
    assert_eq!(
        sleeping_children(),
        Vec::<u32>::new(),
        "killed and reaped: no child, not even a zombie"
    );

    // The output so far is kept; `exec` keeps the PID the script printed.
    let r = script(&["sh", "-c", "echo $$; exec sleep 10"], MS_200);
    let (head, pid) = r
        .output
        .split_once("\n\n")
        .expect("timeout message, then output");
    assert_eq!(head, "Timed out (200ms) running check");
    let pid: u32 = pid.trim().parse().unwrap();
    assert_eq!(proc_state(pid), None, "process {pid} is gone");

    // A program the script started in the background dies too (the process group is
    // killed, as Consul does); it is not our child, so its reaping is init's job.
    let r = script(&["sh", "-c", "sleep 10 & echo $!; wait"], MS_200);
    let (_, pid) = r
        .output
        .split_once("\n\n")
        .expect("timeout message, then output");
    let pid: u32 = pid.trim().parse().unwrap();
    let deadline = Instant::now() + SECOND;
    while matches!(proc_state(pid), Some(s) if s != 'Z') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        matches!(proc_state(pid), None | Some('Z')),
        "background process {pid} still runs: {:?}",
        proc_state(pid)
    );
    assert_eq!(sleeping_children(), Vec::<u32>::new());
}

#[test]
fn health_mappings() {
    assert_eq!(http_health(200), Health::Passing);
    assert_eq!(http_health(299), Health::Passing);
    assert_eq!(http_health(429), Health::Warning);
    for code in [100, 199, 300, 404, 428, 430, 503] {
        assert_eq!(http_health(code), Health::Critical, "{code}");
    }
    assert_eq!(exit_health(Some(0)), Health::Passing);
    assert_eq!(exit_health(Some(1)), Health::Warning);
    assert_eq!(exit_health(Some(2)), Health::Critical);
    assert_eq!(exit_health(Some(-1)), Health::Critical);
    assert_eq!(exit_health(None), Health::Critical);
}

#[test]
fn text_drops_a_char_cut_in_half_and_replaces_invalid_bytes() {
    let euro = "€".as_bytes(); // 3 bytes
    assert_eq!(text(&[b'a', euro[0], euro[1]], 10), "a");
    assert_eq!(text(&[b'a', 0xff, b'b'], 10), "a\u{FFFD}b");
    assert_eq!(
        text("a€".as_bytes(), 3),
        "a",
        "cut to the limit after replacement"
    );
    assert_eq!(text(b"", 10), "");
}
