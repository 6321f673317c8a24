#!/usr/bin/env bash
# Builds outpost and runs `outpost agent -dev`: in memory, on 127.0.0.1, example services,
# DNS on port 8600, the HTTP API on 8500, HTTPS and the status page on 8501. Extra arguments
# go to the agent. Installs missing build packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages build-essential pkg-config git $GSTREAMER_PACKAGES
ensure_rust
cargo build --release --locked
exec "${CARGO_TARGET_DIR:-target}/release/outpost" agent -dev "$@"
