//! The status page in a real browser: Debian's headless Chromium, driven by `playwright-core`
//! (`tests/ui/status_page.mjs`), against the real agent in dev mode. Needs `node` and `npm`
//! (Node.js 18 or later) and `/usr/bin/chromium` (Debian package `chromium`); it fails,
//! never skips, without them. Screenshots are left in `CARGO_TARGET_TMPDIR/ui-artifacts/`.

mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Agent;

/// The node test script and its pinned dependencies.
const SCRIPT: &str = "status_page.mjs";
const NPM_FILES: [&str; 2] = ["package.json", "package-lock.json"];
/// `npm ci` of one small package: generous for a slow registry, yet bounded.
const NPM_TIMEOUT: Duration = Duration::from_secs(240);
/// The browser run (the script has its own watchdog of 100 s).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(150);

fn chromium() -> PathBuf {
    std::env::var_os("OUTPOST_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

/// Runs `cmd` with stdout and stderr into `log`, killed after `timeout`: its output, or an
/// error naming what failed, with the output.
fn run_bounded(
    mut cmd: Command,
    what: &str,
    log: &Path,
    timeout: Duration,
) -> Result<String, String> {
    let out = File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(text),
        Some(s) => Err(format!("{what} failed ({s}):\n{text}")),
        None => Err(format!(
            "{what} took longer than {timeout:?}; killed:\n{text}"
        )),
    }
}

fn require(program: &str, package: &str) {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the status page test needs `{program}` (Debian package {package}); the README's test command installs it"
    );
}

/// Installs the pinned `playwright-core` into a directory under the target dir with `npm ci`
/// (never a browser download), unless the same lock file is installed there already.
fn node_deps() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-node");
    fs::create_dir_all(&dir).unwrap();
    for f in NPM_FILES.iter().chain([&SCRIPT]) {
        fs::copy(src.join(f), dir.join(f)).unwrap_or_else(|e| panic!("copy tests/ui/{f}: {e}"));
    }
    let lock = fs::read(src.join("package-lock.json")).unwrap();
    let stamp = dir.join("node_modules/.outpost-installed-lock");
    let installed = dir
        .join("node_modules/playwright-core/package.json")
        .exists()
        && fs::read(&stamp).is_ok_and(|s| s == lock);
    if !installed {
        let mut npm = Command::new("npm");
        npm.args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        if let Err(e) = run_bounded(
            npm,
            "npm ci (tests/ui)",
            &dir.join("npm-ci.log"),
            NPM_TIMEOUT,
        ) {
            panic!("{e}");
        }
        fs::write(&stamp, &lock).unwrap();
    }
    dir
}

#[test]
fn status_page_shows_the_node_and_its_services_and_follows_the_catalog_live() {
    require("node", "nodejs");
    require("npm", "npm");
    let browser = chromium();
    assert!(
        browser.exists(),
        "the status page test needs Chromium at {} (Debian package chromium; or set OUTPOST_CHROMIUM)",
        browser.display()
    );
    let deps = node_deps();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-artifacts");
    let _ = fs::remove_dir_all(&artifacts);
    fs::create_dir_all(&artifacts).unwrap();

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
    let log = agent.log();
    let https = log
        .split("HTTPS listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no HTTPS listener in the agent's log:\n{log}"));
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
