//! Runs one probe for real: an HTTP request, a TCP connect or a script, each bounded by the
//! probe's timeout, its output by the probe's `output_max`. The only file that touches I/O.

use std::io;
use std::time::Duration;

use async_io::{Async, Timer};
use async_net::TcpStream;
use bytes::Bytes;
use futures_lite::{AsyncReadExt, future};

use super::runner::{Probe, ProbeKind, ProbeResult, cut_output};
use crate::catalog::Health;
use crate::http::client::{self, ClientRequest};

/// How long to wait for a killed script to be reaped. Past it the child is left to
/// async-process's reaper, so a process stuck in uninterruptible sleep cannot hold the probe.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// Runs `probe` and tells what it found. Never fails: every error is a critical result whose
/// output says what went wrong. Returns within the probe's timeout (plus, for a script
/// that had to be killed, the time to reap it).
pub async fn run_probe(probe: Probe) -> ProbeResult {
    let max = probe.output_max;
    match probe.kind {
        ProbeKind::Http {
            url,
            method,
            headers,
            timeout,
            tls_skip_verify,
        } => http(url, method, headers, timeout, tls_skip_verify, max).await,
        ProbeKind::Tcp { addr, timeout } => tcp(&addr, timeout).await,
        ProbeKind::Script { args, timeout } => script(&args, timeout, max).await,
    }
}

/// Consul's mapping of an HTTP status: 2xx passing, 429 Too Many Requests warning, the rest
/// critical.
pub fn http_health(code: u16) -> Health {
    match code {
        200..=299 => Health::Passing,
        429 => Health::Warning,
        _ => Health::Critical,
    }
}

/// Consul's mapping of a script's exit: 0 passing, 1 warning, anything else (other codes,
/// killed by a signal) critical.
pub fn exit_health(code: Option<i32>) -> Health {
    match code {
        Some(0) => Health::Passing,
        Some(1) => Health::Warning,
        _ => Health::Critical,
    }
}

async fn http(
    url: String,
    method: String,
    mut headers: Vec<(String, String)>,
    timeout: Duration,
    tls_skip_verify: bool,
    max: usize,
) -> ProbeResult {
    // Consul's defaults, unless the definition sets them.
    for (name, value) in [
        ("User-Agent", "Consul Health Check"),
        ("Accept", "text/plain, text/*, */*"),
    ] {
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            headers.push((name.into(), value.into()));
        }
    }
    let req = ClientRequest {
        method: method.clone(),
        url: url.clone(),
        headers,
        body: Bytes::new(),
        timeout,
        max_body: max,
        tls: tls_skip_verify.then(client::insecure_tls_config),
    };
    match client::request(req).await {
        Ok(resp) => {
            let status = match resp.status.canonical_reason() {
                Some(reason) => format!("{} {reason}", resp.status.as_u16()),
                None => resp.status.as_u16().to_string(),
            };
            let body = text(&resp.body, max);
            ProbeResult {
                status: http_health(resp.status.as_u16()),
                output: format!("HTTP {method} {url}: {status} Output: {body}"),
            }
        }
        Err(e) => ProbeResult {
            status: Health::Critical,
            output: format!("HTTP {method} {url}: {e}"),
        },
    }
}

async fn tcp(addr: &str, timeout: Duration) -> ProbeResult {
    let connect = async {
        let addrs = async_net::resolve(addr).await?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no addresses");
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    let expire = async {
        Timer::after(timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out after {timeout:?}"),
        ))
    };
    match future::or(connect, expire).await {
        Ok(()) => ProbeResult {
            status: Health::Passing,
            output: format!("TCP connect {addr}: Success"),
        },
        Err(e) => ProbeResult {
            status: Health::Critical,
            output: format!("TCP connect {addr}: {e}"),
        },
    }
}

/// Runs `args` (no shell) in its own process group, stdout and stderr into one pipe as
/// Consul does. On timeout, kills the whole group and reaps the child.
async fn script(args: &[String], timeout: Duration, max: usize) -> ProbeResult {
    let critical = |output: String| ProbeResult {
        status: Health::Critical,
        output,
    };
    let Some((program, rest)) = args.split_first() else {
        return critical("a script check needs a program to run; \"args\" is empty".into());
    };
    let (mut child, reader) = match spawn(program, rest) {
        Ok(v) => v,
        Err(e) => return critical(format!("cannot run {program:?}: {e}")),
    };
    let mut captured = Capture::new(max);
    // Done when the program has exited and every holder of the pipe has closed it.
    let finished = async {
        let read = async {
            let mut reader = reader;
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => captured.push(&buf[..n]),
                }
            }
        };
        Some(future::zip(read, child.status()).await.1)
    };
    let expire = async {
        Timer::after(timeout).await;
        None
    };
    let outcome = future::or(finished, expire).await;
    let output = captured.text();
    match outcome {
        Some(Ok(status)) => ProbeResult {
            status: exit_health(status.code()),
            output,
        },
        None => {
            kill_group(&mut child);
            let _ = future::or(async { child.status().await.map(drop) }, async {
                Timer::after(REAP_WAIT).await;
                Ok(())
            })
            .await;
            let mut msg = format!("Timed out ({timeout:?}) running check");
            if !output.is_empty() {
                msg.push_str("\n\n");
                msg.push_str(&output);
            }
            critical(msg)
        }
        Some(Err(e)) => {
            kill_group(&mut child);
            critical(format!("waiting for {program:?} to exit: {e}"))
        }
    }
}

/// Starts the program with stdin from /dev/null and stdout and stderr into one pipe, as the
/// leader of a new process group.
fn spawn(
    program: &str,
    args: &[String],
) -> io::Result<(async_process::Child, Async<io::PipeReader>)> {
    use std::os::unix::process::CommandExt;
    let (reader, writer) = io::pipe()?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).process_group(0);
    // Stdio is set on the async command: converting from std's drops std's settings.
    let mut cmd = async_process::Command::from(cmd);
    cmd.stdin(std::process::Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .kill_on_drop(true);
    let child = cmd.spawn()?;
    // `cmd` holds the pipe's write ends until dropped; the reader sees EOF only after.
    drop(cmd);
    Ok((child, Async::new(reader)?))
}

/// Kills the child's whole process group (the child leads it), so that programs the script
/// started die with it, as Consul's `KillCommandSubtree` does. The ID is still the
/// script's group: either its leader is not reaped yet, or (it exited, but a program it
/// started keeps the output pipe open) a member lives on, and Linux does not reuse the ID of
/// a live group.
fn kill_group(child: &mut async_process::Child) {
    if let Ok(pid) = i32::try_from(child.id())
        && pid > 0
    {
        use nix::sys::signal::{Signal, killpg};
        let _ = killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
}

/// The first `max` bytes written to it, and how many there were in all.
struct Capture {
    buf: Vec<u8>,
    max: usize,
    total: usize,
}

impl Capture {
    fn new(max: usize) -> Capture {
        Capture {
            buf: Vec::new(),
            max,
            total: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.total += data.len();
        let room = self.max - self.buf.len();
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn text(&self) -> String {
        text(&self.buf, self.max)
    }
}

/// Output bytes as text of at most `max` bytes: invalid UTF-8 becomes U+FFFD, and a
/// character cut in half at the end (by a byte limit) is dropped.
fn text(bytes: &[u8], max: usize) -> String {
    let bytes = match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    };
    let s = String::from_utf8_lossy(bytes);
    cut_output(&s, max).to_string()
}

#[cfg(test)]
mod tests;
