#!/usr/bin/env bash
# Boots the cross-built outpost and the repository's systemd units in a minimal Debian arm64
# system under qemu-system-aarch64 (-M virt) and checks it from the host: dig answers through
# a forwarded port; the HTTP API answers and names the board profile the device tree chose;
# over ssh, systemd reports the service active, its type, user and watchdog, the journal has
# outpost's levels, a kill -9 of the daemon is followed by a restart, and, when the unit sets
# WatchdogSec=, a stopped daemon (SIGSTOP, so no more WATCHDOG=1) is restarted by the watchdog.
#
# The Debian root file system (mmdebstrap), the kernel (Debian's linux-image-arm64, unpacked
# on the host) and busybox for the initrd are cached under $OUTPOST_QEMU_CACHE (default
# ${CARGO_TARGET_DIR:-target}/qemu-arm64); a rerun only builds the binary and injects it and
# the units into a fresh disk image. Needs root (mmdebstrap, chroot, binfmt_misc).
#
#   image/qemu/boot-test.sh              build the binary (scripts/cross.sh build), boot, check
#   OUTPOST_BIN=path image/qemu/boot-test.sh      boot with that aarch64 binary instead
#
# Every step of the boot is bounded by `timeout`; the summary (timings, RSS) goes to stdout and to
# $OUTPOST_QEMU_CACHE/last-run.txt, the guest's console to .../run/console.log and outpost's
# journal to .../run/journal.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

SUITE=bookworm
# The image: systemd as init, udev, sshd for the checks, nothing else of note.
PACKAGES=systemd-sysv,udev,dbus,openssh-server,iproute2,procps
# Kernel modules, in load order, that the initrd needs to mount the root disk (virtio PCI,
# virtio block, ext4 and the crc32c it asks the crypto API for); the rootfs gets these and
# the ones udev loads later (network, entropy).
INITRD_MODULES="virtio_pci virtio_blk crc32c_generic ext4"
ROOTFS_MODULES="$INITRD_MODULES virtio_net virtio-rng"
BOOT_TIMEOUT=${OUTPOST_QEMU_BOOT_TIMEOUT:-300}

ensure_packages mmdebstrap arch-test qemu-system-arm qemu-user-static binfmt-support \
  e2fsprogs cpio kmod file bind9-dnsutils curl openssh-client python3
[ "$(id -u)" -eq 0 ] || {
  echo "boot-test.sh: needs root (mmdebstrap, chroot into the arm64 rootfs)" >&2
  exit 1
}

cache=${OUTPOST_QEMU_CACHE:-${CARGO_TARGET_DIR:-target}/qemu-arm64}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(ms)
# Seconds since $1 (milliseconds; default: the start of the script), to a tenth.
elapsed() {
  local d=$(($(ms) - ${1:-$t0}))
  printf '%d.%d' $((d / 1000)) $((d % 1000 / 100))
}
secs() { echo $((($(ms) - $1) / 1000)); }
say() { echo "[$(elapsed)s] $*"; }
fail() {
  echo "boot-test.sh: FAILED: $*" >&2
  [ -f "$cache/run/console.log" ] && {
    echo "--- last lines of the guest console ($cache/run/console.log):" >&2
    tail -n 40 "$cache/run/console.log" >&2
  }
  exit 1
}

# --- the aarch64 binary
if [ -n "${OUTPOST_BIN:-}" ]; then
  bin=$OUTPOST_BIN
else
  scripts/cross.sh build
  bin="${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/release/outpost"
fi
file -L "$bin" | grep -q 'ARM aarch64' || fail "$bin is not an aarch64 executable"
say "binary: $bin ($(stat -L -c %s "$bin") bytes)"

# --- the cached base: Debian rootfs, kernel, modules, busybox. Keyed by what goes into it.
key=$(echo "$SUITE $PACKAGES $ROOTFS_MODULES v1" | sha256sum | cut -c1-12)
base="$cache/base-$key"
if [ ! -f "$base/done" ]; then
  say "building the Debian $SUITE arm64 base (once; several minutes)"
  [ -e /proc/sys/fs/binfmt_misc/status ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
  rm -rf "$base" && mkdir -p "$base/debs"
  # The kernel and busybox are only downloaded (apt inside the new rootfs, so they match its
  # release), then unpacked on the host: installing the kernel under emulation would build
  # its initramfs there, which takes over half an hour.
  timeout 1800 mmdebstrap --variant=minbase --architectures=arm64 --include="$PACKAGES" \
    --customize-hook='chroot "$1" apt-get install --download-only -y --no-install-recommends linux-image-arm64 busybox-static' \
    --customize-hook="cp \"\$1\"/var/cache/apt/archives/linux-image-*.deb \"\$1\"/var/cache/apt/archives/busybox-static_*.deb '$base/debs/'" \
    "$SUITE" "$base/rootfs.tar" >"$base/mmdebstrap.log" 2>&1 ||
    fail "mmdebstrap (log: $base/mmdebstrap.log)"
  x="$base/unpack"
  mkdir -p "$x"
  for deb in "$base"/debs/linux-image-[0-9]*.deb "$base"/debs/busybox-static_*.deb; do
    dpkg-deb -x "$deb" "$x"
  done
  kver=$(basename "$(ls -d "$x"/lib/modules/*)")
  cp "$x/boot/vmlinuz-$kver" "$base/vmlinuz"
  cp "$x/bin/busybox" "$base/busybox"
  # The module subset and its load order, from the kernel's own dependency list.
  depmod -b "$x" "$kver"
  mods="$base/modules/lib/modules/$kver"
  mkdir -p "$mods"
  order() { # module names -> their .ko paths, dependencies first, each once
    local m path deps seen=" "
    for m in "$@"; do
      path=$(grep -E "/$m\.ko:" "$x/lib/modules/$kver/modules.dep" | cut -d: -f1)
      [ -n "$path" ] || fail "module $m is not in the $kver kernel"
      deps=$(grep -E "^$path:" "$x/lib/modules/$kver/modules.dep" | cut -d: -f2)
      for p in $(echo "$deps" | tr ' ' '\n' | tac) "$path"; do
        case "$seen" in *" $p "*) ;; *) echo "$p"; seen="$seen$p " ;; esac
      done
    done
  }
  # shellcheck disable=SC2086 # the lists are words
  order $INITRD_MODULES >"$base/initrd-modules"
  # shellcheck disable=SC2086
  rootfs_modules=$(order $ROOTFS_MODULES)
  for p in $rootfs_modules; do
    mkdir -p "$mods/$(dirname "$p")"
    cp "$x/lib/modules/$kver/$p" "$mods/$p"
  done
  cp "$x/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$mods/"
  depmod -b "$base/modules" "$kver"
  echo "$kver" >"$base/kernel-version"
  rm -rf "$x" "$base/debs"
  touch "$base/done"
  say "base cached in $base"
fi
kver=$(cat "$base/kernel-version")

# --- this run: initrd, root file system with outpost injected, disk image
run="$cache/run"
rm -rf "$run" && mkdir -p "$run"
ir="$run/initrd"
mkdir -p "$ir/bin" "$ir/lib/modules" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/root"
cp "$base/busybox" "$ir/bin/busybox"
cp image/qemu/initrd-init "$ir/init"
cp "$base/initrd-modules" "$ir/modules"
for p in $(cat "$base/initrd-modules"); do
  mkdir -p "$ir/lib/modules/$(dirname "$p")"
  cp "$base/modules/lib/modules/$kver/$p" "$ir/lib/modules/$p"
done
(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1 >"$run/initrd.img")

root="$run/rootfs"
mkdir -p "$root"
tar -C "$root" -xf "$base/rootfs.tar"
cp -a "$base/modules/lib/modules" "$root/usr/lib/"
install -m 0755 "$bin" "$root/usr/bin/outpost"
# The repository's units, as a package would install them.
unitdir="$root/usr/lib/systemd/system"
for f in systemd/*.service systemd/*.socket; do
  [ -e "$f" ] && install -m 0644 "$f" "$unitdir/"
done
for d in sysusers.d tmpfiles.d; do
  for f in systemd/"$d"/*.conf; do
    [ -e "$f" ] && install -D -m 0644 "$f" "$root/usr/lib/$d/$(basename "$f")"
  done
done
[ -d "$root/usr/lib/sysusers.d" ] && systemd-sysusers --root="$root" >/dev/null 2>&1
systemctl --root="$root" enable outpost.service systemd-networkd.service >/dev/null 2>&1 ||
  fail "cannot enable outpost.service in the image"
# What the checks need: a service to look up, the API reachable through qemu's forwarding
# (which reaches the guest's address, not its loopback), DHCP, and root's key for ssh.
install -d -m 0755 "$root/etc/outpost.d"
cat >"$root/etc/outpost.d/10-qemu-test.json" <<'EOF'
{
  "client_addr": "0.0.0.0",
  "services": [{"name": "web", "port": 80, "tags": ["qemu"]}]
}
EOF
chmod 0644 "$root/etc/outpost.d/10-qemu-test.json"
cat >"$root/etc/systemd/network/10-eth.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
EOF
echo outpost-qemu >"$root/etc/hostname"
echo "/dev/vda / ext4 rw 0 1" >"$root/etc/fstab"
ssh-keygen -q -t ed25519 -N "" -f "$run/id" -C outpost-boot-test
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$run/id.pub" "$root/root/.ssh/authorized_keys"
truncate -s 2G "$run/disk.img"
mkfs.ext4 -q -F -L root -d "$root" "$run/disk.img"
rm -rf "$root" "$ir"
say "disk image ready"

# --- boot
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_'"$1"'); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dns=$(free_port DGRAM)
http=$(free_port STREAM)
sshp=$(free_port STREAM)
fwd="hostfwd=udp:127.0.0.1:$dns-:8600,hostfwd=tcp:127.0.0.1:$dns-:8600"
fwd="$fwd,hostfwd=tcp:127.0.0.1:$http-:8500,hostfwd=tcp:127.0.0.1:$sshp-:22"
tb=$(ms)
timeout $((BOOT_TIMEOUT + 300)) qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 \
  -kernel "$base/vmlinuz" -initrd "$run/initrd.img" \
  -append "console=ttyAMA0 net.ifnames=0 panic=-1" \
  -drive "file=$run/disk.img,format=raw,if=none,id=hd0" -device virtio-blk-pci,drive=hd0 \
  -netdev "user,id=net0,$fwd" -device virtio-net-pci,netdev=net0,romfile= -device virtio-rng-pci \
  -display none -monitor none -serial "file:$run/console.log" -no-reboot &
qemu=$!
cleanup() { kill "$qemu" 2>/dev/null || true; }
trap cleanup EXIT
say "qemu (pid $qemu) booting; DNS on 127.0.0.1:$dns, HTTP on :$http, ssh on :$sshp"

answer() { dig +short +time=1 +tries=1 @127.0.0.1 -p "$dns" web.service.consul A 2>/dev/null | grep -E '^[0-9.]+$' || true; }
gssh() {
  timeout 30 ssh -i "$run/id" -p "$sshp" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=10 -o BatchMode=yes root@127.0.0.1 "$@"
}
until [ -n "$(answer)" ]; do
  kill -0 "$qemu" 2>/dev/null || fail "qemu exited before outpost answered"
  [ "$(secs "$tb")" -lt "$BOOT_TIMEOUT" ] || fail "no DNS answer ${BOOT_TIMEOUT}s after boot"
  sleep 1
done
boot_to_answer=$(elapsed "$tb")
say "dig web.service.consul: $(answer | tr '\n' ' ')(boot to answer ${boot_to_answer}s)"

services=$(curl -fsS --max-time 10 "http://127.0.0.1:$http/v1/catalog/services") ||
  fail "HTTP API: GET /v1/catalog/services"
echo "$services" | grep -q '"web"' || fail "HTTP API: web missing from $services"
self=$(curl -fsS --max-time 10 "http://127.0.0.1:$http/v1/agent/self") || fail "HTTP API: GET /v1/agent/self"
# The node is the image's host name; the board profile is the one the device tree of QEMU's
# virt machine names (compatible "linux,dummy-virt").
node_board=$(echo "$self" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["Config"]["NodeName"], d["Board"]["Name"])') ||
  fail "HTTP API: /v1/agent/self: $self"
[ "$node_board" = "outpost-qemu qemu-arm64" ] ||
  fail "HTTP API: /v1/agent/self names node and board \"$node_board\", expected \"outpost-qemu qemu-arm64\""
say "HTTP API: /v1/catalog/services and /v1/agent/self answer (node outpost-qemu, board qemu-arm64)"

until gssh true 2>/dev/null; do
  [ "$(secs "$tb")" -lt "$BOOT_TIMEOUT" ] || fail "no ssh ${BOOT_TIMEOUT}s after boot"
  sleep 2
done
prop() { gssh systemctl show -p "$1" --value outpost.service; }
state=$(gssh systemctl is-active outpost.service || true)
[ "$state" = active ] || fail "systemctl is-active outpost: $state"
pid=$(prop MainPID)
watchdog=$(prop WatchdogUSec)
unit_type=$(prop Type)
user=$(prop User)
restarts=$(prop NRestarts)
rss=$(gssh ps -o rss= -p "$pid" | tr -d ' ')
# From exec to active: for Type=notify, to READY=1.
ready_us=$(($(prop ActiveEnterTimestampMonotonic) - $(prop ExecMainStartTimestampMonotonic)))
ready="$((ready_us / 1000)) ms"
# Levels reach the journal: the listening lines are info (6), not the default notice (5).
gssh journalctl -b _SYSTEMD_UNIT=outpost.service -o json --output-fields=PRIORITY,MESSAGE |
  python3 -c 'import json, sys
lines = [json.loads(l) for l in sys.stdin if l.strip()]
sys.exit(not any(l.get("PRIORITY") == "6" and "HTTP listening on" in str(l.get("MESSAGE")) for l in lines))' ||
  fail "outpost's journal has no info-level (6) \"HTTP listening on\" line"
say "systemd: outpost.service active, Type=$unit_type, MainPID=$pid, User=${user:-root}, WatchdogUSec=$watchdog, exec to active $ready, RSS ${rss} KiB, journal levels"
if grep -Eq '^WatchdogSec=[^0]' systemd/outpost.service; then
  case "$watchdog" in 0 | infinity | "") fail "the unit sets WatchdogSec= but systemd reports WatchdogUSec=$watchdog" ;; esac
  watch_note="watchdog $watchdog"
else
  watch_note="no watchdog (the unit sets no WatchdogSec=)"
fi

# replaced PID WHAT SECONDS: waits until systemd runs a new outpost (not PID) that is active
# and answers DNS; prints the seconds that took.
replaced() {
  local old=$1 what=$2 limit=$3 t now
  t=$(ms)
  while :; do
    [ "$(secs "$t")" -lt "$limit" ] || fail "not restarted within $limit s of $what (MainPID $old)"
    now=$(prop MainPID 2>/dev/null || echo "$old")
    if [ "$now" != "$old" ] && [ "$now" != 0 ] &&
      [ "$(gssh systemctl is-active outpost.service || true)" = active ]; then
      break
    fi
    sleep 0.5
  done
  until [ -n "$(answer)" ]; do
    [ "$(secs "$t")" -lt "$limit" ] || fail "no DNS answer within $limit s of $what"
    sleep 0.5
  done
  elapsed "$t"
}

# --- kill -9: systemd restarts it (Restart=on-failure) and it answers again
gssh kill -9 "$pid"
restart_to_answer=$(replaced "$pid" "kill -9" 60)
newpid=$(prop MainPID)
newrestarts=$(prop NRestarts)
[ "$newrestarts" -gt "$restarts" ] || fail "NRestarts did not grow ($restarts -> $newrestarts)"
say "kill -9 $pid: restarted as $newpid (NRestarts $restarts -> $newrestarts), answering again after ${restart_to_answer}s"

# --- a stuck main loop (SIGSTOP: no more WATCHDOG=1) is killed by the watchdog and restarted
if [ "$watch_note" != "${watch_note#watchdog}" ]; then
  gssh kill -STOP "$newpid"
  stuck_to_answer=$(replaced "$newpid" "SIGSTOP (watchdog $watchdog)" 120)
  gssh journalctl -b -u outpost.service --no-pager -o cat | grep -q 'Watchdog timeout' ||
    fail "outpost was restarted after SIGSTOP, but not by its watchdog (no \"Watchdog timeout\" in the journal)"
  say "kill -STOP $newpid: watchdog timeout, restarted as $(prop MainPID), answering again after ${stuck_to_answer}s"
  watch_note="$watch_note, a stopped agent restarted by it and answering in ${stuck_to_answer}s"
fi

gssh journalctl -b -u outpost.service --no-pager -o short-monotonic >"$run/journal.log" 2>&1 || true
gssh systemctl poweroff >/dev/null 2>&1 || true
for _ in $(seq 60); do kill -0 "$qemu" 2>/dev/null || break; sleep 1; done
summary="$(date -u +%F) qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 (TCG), Debian $SUITE, kernel $kver: \
boot to first DNS answer ${boot_to_answer}s; HTTP API answers; outpost.service active $ready after exec (Type=$unit_type, $watch_note); \
kill -9 -> restarted and answering in ${restart_to_answer}s; RSS ${rss} KiB; whole run $(elapsed)s"
echo "$summary" | tee "$cache/last-run.txt"
echo "boot test passed"
