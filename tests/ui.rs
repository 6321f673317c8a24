//! The status page in a real browser: Debian's headless Chromium, driven by `playwright-core`
//! (`tests/ui/status_page.mjs`), against the real agent in dev mode. Needs `node` and `npm`
//! (Node.js 18 or later) and `/usr/bin/chromium` (Debian package `chromium`); it fails,
//! never skips, without them. Screenshots are left in `CARGO_TARGET_TMPDIR/ui-artifacts/`.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use browser::{artifacts_dir, node_deps, require_browser, run_bounded};
use common::Agent;

/// The node test script and its pinned dependencies.
const SCRIPT: &str = "status_page.mjs";
/// The browser run (the script has its own watchdog of 100 s).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(150);

#[test]
fn status_page_shows_the_node_and_its_services_and_follows_the_catalog_live() {
    let browser = require_browser();
    let deps = node_deps("ui", &[SCRIPT]);
    let artifacts = artifacts_dir("ui-artifacts");

    let agent = Agent::start(&[
        "-dev",
        "-dns-port",
        "0",
        "-http-port",
        "0",
        "-https-port",
        "0",
    ]);
    let url = format!("http://{}/", agent.http.expect("HTTP listener"));
    // The browser opens the page where people do: the agent's HTTPS port.
    let https = agent.https.expect("HTTPS listener");
    let page = format!("https://{https}/");
    let mut node = Command::new("node");
    let dns = agent.dns.expect("DNS listener").to_string();
    node.arg(deps.join(SCRIPT))
        .arg(&url)
        .arg(&artifacts)
        .arg(&dns)
        .arg(&page)
        .current_dir(&deps)
        .env("OUTPOST_CHROMIUM", &browser);
    let log = artifacts.join("browser.log");
    let start = Instant::now();
    let out = run_bounded(
        node,
        "the browser test (tests/ui/status_page.mjs)",
        &log,
        BROWSER_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent.log()));
    eprintln!("{out}browser test took {:?}", start.elapsed());
    for shot in ["desktop-1280x800", "phone-390x844", "phone-390x844-dark"] {
        let png = artifacts.join(format!("{shot}.png"));
        let head = fs::read(&png).unwrap_or_else(|e| panic!("screenshot {}: {e}", png.display()));
        assert!(
            head.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            png.display()
        );
    }
    assert!(out.contains("PASS"), "the script did not say PASS:\n{out}");
}

/// The dev test stream in the viewer page over WHEP: encoded only while watched, decoded
/// at 640x480 by Chromium, its viewer freed when the page closes.
#[cfg(feature = "media")]
#[test]
fn the_viewer_page_plays_the_dev_test_stream_over_whep() {
    let browser = require_browser();
    let deps = node_deps("ui", &["viewer_page.mjs"]);
    let artifacts = artifacts_dir("viewer-artifacts");
    let agent = Agent::start(&[
        "-dev",
        "-dns-port",
        "0",
        "-http-port",
        "0",
        "-https-port",
        "0",
    ]);
    let api = format!("http://{}/", agent.http.expect("HTTP listener"));
    let https = agent.https.expect("HTTPS listener");
    let mut node = Command::new("node");
    node.arg(deps.join("viewer_page.mjs"))
        .arg(format!("https://{https}/streams/test"))
        .arg(&api)
        .arg(&artifacts)
        .current_dir(&deps)
        .env("OUTPOST_CHROMIUM", &browser);
    let out = run_bounded(
        node,
        "the viewer page test (tests/ui/viewer_page.mjs)",
        &artifacts.join("browser.log"),
        BROWSER_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent.log()));
    eprintln!("{out}");
    assert!(out.contains("PASS"), "the script did not say PASS:\n{out}");
}
