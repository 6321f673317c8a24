#!/usr/bin/env bash
# Runs every check and test of outpost: formatting, clippy, unit, property and integration
# tests (the real binary against dig, curl, openssl, its own CLI, py-consul and headless
# Chromium). Installs missing packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages build-essential pkg-config git bind9-dnsutils curl openssl python3-venv chromium iproute2 nftables systemd python3-seccomp $GSTREAMER_PACKAGES
# Node.js for the status page's browser test (playwright-core); any installed node will do.
command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
ensure_rust
scripts/check-yocto.sh # the Yocto layer: crate list = Cargo.lock, oelint-adv, kas schema
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
cargo test --locked --doc
# Without the media feature (no GStreamer, no WebRTC) outpost still builds and passes.
cargo clippy --locked --no-default-features --all-targets -- -D warnings
cargo test --locked --no-default-features --all-targets
# The same for 64-bit ARM boards: cross-built, its tests run under qemu-user; and the
# rust-version in Cargo.toml (Yocto's Rust) builds everything, with and without media.
scripts/cross.sh test
scripts/msrv.sh
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
echo "all checks and tests passed"
