//! For the tests that drive Debian's headless Chromium with `playwright-core` from npm (the
//! status page, WHEP viewers): where Chromium is, the pinned node packages installed once
//! under the target dir (never a browser download), and child processes bounded in time.
#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `npm ci` of one small package: generous for a slow registry, yet bounded.
pub const NPM_TIMEOUT: Duration = Duration::from_secs(240);
const NPM_FILES: [&str; 2] = ["package.json", "package-lock.json"];

pub fn chromium() -> PathBuf {
    std::env::var_os("OUTPOST_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

/// Fails (never skips) when `program` is missing, naming the Debian package.
pub fn require(program: &str, package: &str) {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs `{program}` (Debian package {package}); the README's test command installs it"
    );
}

/// Fails unless node, npm and Chromium are there; returns Chromium's path.
pub fn require_browser() -> PathBuf {
    require("node", "nodejs");
    require("npm", "npm");
    let browser = chromium();
    assert!(
        browser.exists(),
        "this test needs Chromium at {} (Debian package chromium; or set OUTPOST_CHROMIUM)",
        browser.display()
    );
    browser
}

/// Runs `cmd` with stdout and stderr into `log`, killed after `timeout`: its output, or an
/// error naming what failed, with the output.
pub fn run_bounded(
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

/// An empty directory `name` under the target dir, for a test's screenshots and logs.
pub fn artifacts_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies `tests/<folder>/` (the pinned package files and `scripts`) into a directory under
/// the target dir and installs the pinned `playwright-core` there with `npm ci`, unless the
/// same lock file is installed there already.
pub fn node_deps(folder: &str, scripts: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(folder);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{folder}-node"));
    fs::create_dir_all(&dir).unwrap();
    for f in NPM_FILES.iter().chain(scripts) {
        fs::copy(src.join(f), dir.join(f))
            .unwrap_or_else(|e| panic!("copy tests/{folder}/{f}: {e}"));
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
            &format!("npm ci (tests/{folder})"),
            &dir.join("npm-ci.log"),
            NPM_TIMEOUT,
        ) {
            panic!("{e}");
        }
        fs::write(&stamp, &lock).unwrap();
    }
    dir
}
