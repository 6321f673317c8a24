//! Closed-loop HTTP/1.1 write load for benches/raft, in the manner of wrk: CONNS keep-alive
//! connections on one thread (an event loop), each sending its next request as soon as the
//! last answer is read, for SECONDS (or until MAX answers in all; 0: no bound). Each write's
//! latency runs on the monotonic clock from its first byte written to the last byte of its
//! answer read, and every one is kept: the percentiles are of the samples as measured.
//! (wrk's own percentiles are not: after a run it adds, for each sample over twice the mean
//! interval between a connection's requests, synthetic samples below it, which turns a few
//! long stalls into a p99.)
//!
//! usage: kv_load SYSTEM HOST:PORT CONNS SECONDS PREFIX VALUE_BYTES MAX
//!   SYSTEM outpost: `PUT /v1/kv/PREFIX/<conn>/<n>` with the value as body; done when the
//!                   answer is 200 with body `true` (committed, fsynced and applied).
//!          etcd:    `POST /v3/kv/put` {"key": base64, "value": base64} on etcd's HTTP/JSON
//!                   gateway; done when the answer is 200.
//!   Every write is a new key; the value is VALUE_BYTES printable bytes, the same for both.
//! Prints one line: RESULT <tab> ok <tab> failed <tab> seconds (from the start to the last
//! answer) <tab> p50 ms <tab> p99 ms <tab> p99.9 ms <tab> max ms <tab> the first failure.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::TcpStream;
use base64::Engine;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use smol::LocalExecutor;

const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    system: String,
    addr: String,
    conns: usize,
    seconds: f64,
    prefix: String,
    value: String,
    max: u64,
}

fn parse_args() -> Result<Args, String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 7 || (a[0] != "outpost" && a[0] != "etcd") {
        return Err(
            "usage: kv_load outpost|etcd HOST:PORT CONNS SECONDS PREFIX VALUE_BYTES MAX".into(),
        );
    }
    let num = |i: usize| {
        a[i].parse::<f64>()
            .map_err(|e| format!("argument {}: {e}", i + 1))
    };
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let value = (1..=num(5)? as usize)
        .map(|i| alphabet[(i * 7) % alphabet.len()] as char)
        .collect();
    Ok(Args {
        system: a[0].clone(),
        addr: a[1].clone(),
        conns: num(2)? as usize,
        seconds: num(3)?,
        prefix: a[4].clone(),
        value,
        max: num(6)? as u64,
    })
}

fn request(args: &Args, conn: usize, n: u64) -> Vec<u8> {
    let key = format!("{}/{conn}/{n:09}", args.prefix);
    let (head, body) = if args.system == "outpost" {
        (format!("PUT /v1/kv/{key} HTTP/1.1\r\n"), args.value.clone())
    } else {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            b64.encode(&key),
            b64.encode(&args.value)
        );
        (
            "POST /v3/kv/put HTTP/1.1\r\nContent-Type: application/json\r\n".to_string(),
            body,
        )
    };
    format!(
        "{head}Host: {}\r\nContent-Length: {}\r\n\r\n{body}",
        args.addr,
        body.len()
    )
    .into_bytes()
}

/// Reads one answer: its status and body.
async fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, Vec<u8>)> {
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = resp.parse(buf) {
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .ok_or_else(|| std::io::Error::other("answer without Content-Length"))?;
            if buf.len() >= head + len {
                let status = resp.code.unwrap_or(0);
                let body = buf[head..head + len].to_vec();
                buf.drain(..head + len);
                return Ok((status, body));
            }
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// What one connection did: latencies of its successful writes, counts, its last answer.
struct Conn {
    latencies: Vec<Duration>,
    ok: u64,
    failed: u64,
    last: Instant,
    failure: Option<String>,
}

async fn connection(
    args: Rc<Args>,
    conn: usize,
    start: Instant,
    deadline: Instant,
    answers: Rc<Cell<u64>>,
) -> Conn {
    let mut c = Conn {
        latencies: Vec::with_capacity(1 << 16),
        ok: 0,
        failed: 0,
        last: start,
        failure: None,
    };
    let mut s = match TcpStream::connect(args.addr.as_str()).await {
        Ok(s) => s,
        Err(e) => {
            c.failed += 1;
            c.failure = Some(format!("connect: {e}"));
            return c;
        }
    };
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline && (args.max == 0 || answers.get() < args.max) {
        n += 1;
        let req = request(&args, conn + 1, n);
        let t0 = Instant::now();
        let answer = async {
            s.write_all(&req).await?;
            read_answer(&mut s, &mut buf).await
        }
        .or(async {
            Timer::after(ANSWER_TIMEOUT).await;
            Err(std::io::Error::other("no answer within 10 s"))
        })
        .await;
        c.last = Instant::now();
        answers.set(answers.get() + 1);
        match answer {
            Ok((200, body)) if args.system == "etcd" || body == b"true" => {
                c.ok += 1;
                c.latencies.push(c.last - t0);
            }
            Ok((status, body)) => {
                c.failed += 1;
                c.failure
                    .get_or_insert_with(|| format!("{status} {}", String::from_utf8_lossy(&body)));
            }
            Err(e) => {
                c.failed += 1;
                c.failure.get_or_insert_with(|| e.to_string());
                break;
            }
        }
    }
    c
}

fn main() {
    let args = match parse_args() {
        Ok(a) => Rc::new(a),
        Err(e) => {
            eprintln!("kv_load: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let answers = Rc::new(Cell::new(0u64));
    let ex = LocalExecutor::new();
    let tasks: Vec<_> = (0..args.conns)
        .map(|i| {
            ex.spawn(connection(
                args.clone(),
                i,
                start,
                deadline,
                answers.clone(),
            ))
        })
        .collect();
    let conns = futures_lite::future::block_on(ex.run(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    }));
    let mut lat: Vec<Duration> = Vec::new();
    let (mut ok, mut failed, mut last, mut first) = (0, 0, start, String::new());
    for c in conns {
        lat.extend(c.latencies);
        ok += c.ok;
        failed += c.failed;
        last = last.max(c.last);
        if first.is_empty() {
            first = c.failure.unwrap_or_default();
        }
    }
    lat.sort_unstable();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    // The nearest-rank percentile: the smallest latency at or above q % of the samples.
    let pct = |q: f64| {
        let rank = ((lat.len() as f64 * q / 100.0).ceil() as usize).clamp(1, lat.len().max(1));
        lat.get(rank - 1).map_or(0.0, ms)
    };
    let first: String = first
        .replace(['\t', '\r', '\n'], " ")
        .chars()
        .take(200)
        .collect();
    println!(
        "RESULT\t{ok}\t{failed}\t{:.6}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\t{first}",
        (last - start).as_secs_f64(),
        pct(50.0),
        pct(99.0),
        pct(99.9),
        lat.last().map_or(0.0, ms),
    );
}
