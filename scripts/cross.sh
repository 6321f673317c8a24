#!/usr/bin/env bash
# Cross-builds outpost for 64-bit ARM boards (aarch64-unknown-linux-gnu, without the media
# feature) and runs its tests under qemu-user. Installs what is missing first.
#
#   scripts/cross.sh build   the stripped release binary; prints its path and size
#   scripts/cross.sh test    the unit and integration tests (those without media), each test
#                            binary and every agent a test starts emulated by qemu-aarch64
#
# Media is built natively only: the amd64 and arm64 GStreamer -dev packages cannot be
# installed side by side, so a cross build with media needs a sysroot (the Yocto recipe has one).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

TARGET=aarch64-unknown-linux-gnu
# Tests that cannot pass under qemu-user; they run natively (and the booted arm64 image in
# image/qemu runs the agent under the unit's real filters):
# - qemu-user runs a vfork-style clone as a plain fork, so glibc's posix_spawn cannot report
#   that a program failed to start (the child just exits 127): a script check naming a
#   missing program;
# - the unit's system call filter applied to the emulator itself: MemoryDenyWriteExecute
#   forbids the executable memory qemu translates into.
SKIP_UNDER_QEMU=(
  checks::probe::tests::a_program_that_cannot_start_is_critical_naming_it
  the_agent_serves_under_the_units_system_call_filter
)

ensure_packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static binfmt-support
ensure_rust
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
fi

# The kernel runs aarch64 executables through qemu-aarch64 once binfmt_misc knows it: the tests
# start the agent binary as any other program, so a cargo runner alone would not do. Debian's
# qemu-user looks for the guest's loader and libraries under /etc/qemu-binfmt/aarch64 first:
# pointed at the cross libc, every emulated program finds them, also one started with a
# cleared environment (systemd-socket-activate), which QEMU_LD_PREFIX would not reach.
enable_binfmt() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  [ -e /proc/sys/fs/binfmt_misc/status ] ||
    $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
    $sudo update-binfmts --enable qemu-aarch64
  grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
    echo "cross.sh: binfmt_misc has no enabled qemu-aarch64 entry" >&2
    exit 1
  }
  if [ ! -e /etc/qemu-binfmt/aarch64 ]; then
    $sudo mkdir -p /etc/qemu-binfmt
    $sudo ln -s /usr/aarch64-linux-gnu /etc/qemu-binfmt/aarch64
  fi
  [ -e /etc/qemu-binfmt/aarch64/lib/ld-linux-aarch64.so.1 ] || {
    echo "cross.sh: /etc/qemu-binfmt/aarch64 has no lib/ld-linux-aarch64.so.1" >&2
    exit 1
  }
}

case "${1:-test}" in
  build)
    cargo build --locked --release --target "$TARGET" --no-default-features
    bin="${CARGO_TARGET_DIR:-target}/$TARGET/release/outpost"
    echo "$bin: $(stat -c %s "$bin") bytes"
    ;;
  test)
    enable_binfmt
    skip=()
    for t in "${SKIP_UNDER_QEMU[@]}"; do
      echo "cross.sh: not under qemu-user (runs natively): $t" >&2
      skip+=(--skip "$t")
    done
    cargo test --locked --target "$TARGET" --no-default-features --lib --bins --tests -- "${skip[@]}"
    ;;
  *)
    echo "usage: scripts/cross.sh [build|test]" >&2
    exit 2
    ;;
esac
