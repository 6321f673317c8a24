#!/usr/bin/env bash
# Checks that outpost builds with the Rust of its Cargo.toml `rust-version` (the Rust that
# Yocto's current LTS ships), with and without media, tests and benches included. Installs
# that toolchain with rustup (minimal profile) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_rust

msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$msrv" ] || {
  echo "msrv.sh: Cargo.toml has no rust-version" >&2
  exit 1
}
command -v rustup >/dev/null 2>&1 || {
  echo "msrv.sh: rustup is needed to install Rust $msrv" >&2
  exit 1
}
rustup run "$msrv" rustc --version >/dev/null 2>&1 ||
  rustup toolchain install "$msrv" --profile minimal
echo "rust-version $msrv: $(rustup run "$msrv" rustc --version)"
cargo "+$msrv" check --locked --all-targets
cargo "+$msrv" check --locked --all-targets --no-default-features
