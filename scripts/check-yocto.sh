#!/usr/bin/env bash
# Checks the Yocto layer (image/meta-outpost) and the kas files (image/kas) as far as
# this machine can without bitbake: the crate list equals Cargo.lock, the recipe agrees
# with Cargo.toml, oelint-adv finds nothing in the layer, and every kas file validates
# against kas's schema and names a wrynose layer set and a MACHINE. Each checker is
# first shown a known-bad input, so a checker that stopped working fails here too.
# oelint-adv and kas are installed from PyPI, pinned, into a venv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages python3 python3-venv git

LAYER=image/meta-outpost
KAS_DIR=image/kas
INC=$LAYER/recipes-outpost/outpost/outpost-crates.inc
BOARDS="rpi4 rpi5 rk3588 imx8mp jetson-orin qemu-arm64"
PIP_PINS="oelint-adv==9.11.2 oelint-parser==8.13.2 oelint-data==1.5.26 kas==5.5"

VENV=target/yocto-venv
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/pins" 2>/dev/null)" != "$PIP_PINS" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086 # the pins are separate words
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PIP_PINS
  echo "$PIP_PINS" >"$VENV/pins"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAILED: $*" >&2; }

# --- the crate list generator, on crafted locks ------------------------------------
sum_a=0000000000000000000000000000000000000000000000000000000000000001
sum_b=00000000000000000000000000000000000000000000000000000000000000ab
cat >"$tmp/ok.lock" <<EOF
version = 4

[[package]]
name = "a-crate"
version = "1.2.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "$sum_a"

[[package]]
name = "outpost"
version = "0.1.0"

[[package]]
name = "b_crate"
version = "0.1.0+build.5"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "$sum_b"
EOF
cat >"$tmp/ok.expected" <<EOF
# Generated from Cargo.lock by scripts/yocto-crates.py: do not edit.
# scripts/check-yocto.sh fails when this file and Cargo.lock disagree.

# from Cargo.lock
# Laid out as oe-core's cargo-update-recipe-crates writes it (oelint prefers no space):
# nooelint: oelint.vars.inconspaces,oelint.vars.notneededspace
SRC_URI += " \\
    crate://crates.io/a-crate/1.2.3 \\
    crate://crates.io/b_crate/0.1.0+build.5 \\
"

SRC_URI[a-crate-1.2.3.sha256sum] = "$sum_a"
SRC_URI[b_crate-0.1.0+build.5.sha256sum] = "$sum_b"
EOF
if python3 scripts/yocto-crates.py --lock "$tmp/ok.lock" --output "$tmp/ok.inc" &&
  diff -u "$tmp/ok.expected" "$tmp/ok.inc"; then
  ok "yocto-crates.py lists crates.io packages in lock order, skips the path package"
else
  fail "yocto-crates.py output differs from the expected crate list (above)"
fi

# refuses LOCK-SUFFIX MESSAGE-PART: the generator must exit 1 with MESSAGE-PART on
# stderr, write nothing, and print no Python traceback.
refuses() {
  local lock=$1 want=$2 what=$3 err
  rm -f "$tmp/out.inc"
  if python3 scripts/yocto-crates.py --lock "$lock" --output "$tmp/out.inc" 2>"$tmp/err"; then
    fail "yocto-crates.py accepted $what"
    return
  fi
  err=$(cat "$tmp/err")
  if [[ $err == *"$want"* && $err != *Traceback* && ! -e $tmp/out.inc ]]; then
    ok "yocto-crates.py refuses $what: $err"
  else
    fail "yocto-crates.py on $what said: $err (wanted: $want)"
  fi
}
sed 's|^source = "registry+https://github.com/rust-lang/crates.io-index"|source = "git+https://example.org/b.git?branch=main#0123456"|;/^checksum/d' \
  "$tmp/ok.lock" >"$tmp/git.lock"
refuses "$tmp/git.lock" "a-crate 1.2.3 comes from a git repository" "a git dependency"
sed 's|rust-lang/crates.io-index|example/other-index|' "$tmp/ok.lock" >"$tmp/reg.lock"
refuses "$tmp/reg.lock" "comes from a registry" "a crate of another registry"
grep -v "^checksum = \"$sum_b\"" "$tmp/ok.lock" >"$tmp/nosum.lock"
refuses "$tmp/nosum.lock" "b_crate 0.1.0+build.5 has no checksum" "a crate without checksum"
printf 'version = 4\n[[package]\nname = "x"\n' >"$tmp/bad.lock"
refuses "$tmp/bad.lock" "not valid TOML" "a malformed lock file"
refuses "$tmp/missing.lock" "cannot read" "a missing lock file"

# --- the committed crate list is Cargo.lock's ---------------------------------------
if python3 scripts/yocto-crates.py --output "$tmp/crates.inc" && diff -u "$INC" "$tmp/crates.inc" >"$tmp/crates.diff"; then
  ok "$INC matches Cargo.lock ($(grep -c 'crate://' "$INC") crates)"
else
  cat "$tmp/crates.diff" >&2
  fail "$INC does not match Cargo.lock: run scripts/yocto-crates.py and commit the result"
fi

# --- the recipe agrees with Cargo.toml and the layer with the release ---------------
if "$VENV/bin/python" - "$LAYER" <<'EOF'; then
import glob, os, re, sys, tomllib

layer = sys.argv[1]
cargo = tomllib.load(open("Cargo.toml", "rb"))["package"]
problems = []
recipes = glob.glob(os.path.join(layer, "recipes-outpost/outpost/outpost_*.bb"))
if len(recipes) != 1:
    problems.append(f"expected one outpost_<version>.bb, found {recipes}")
else:
    recipe = recipes[0]
    version = os.path.basename(recipe)[len("outpost_"):-len(".bb")]
    if version != cargo["version"]:
        problems.append(f"{recipe}: version {version}, Cargo.toml says {cargo['version']}")
    text = open(recipe).read()
    lic = re.search(r'^LICENSE = "([^"]*)"', text, re.M)
    if not lic or lic.group(1) != cargo["license"]:
        problems.append(f"{recipe}: LICENSE {lic and lic.group(1)!r}, Cargo.toml says {cargo['license']!r}")
    if "require ${BPN}-crates.inc" not in text:
        problems.append(f"{recipe}: does not require the crate list")
conf = open(os.path.join(layer, "conf/layer.conf")).read()
if not re.search(r'^LAYERSERIES_COMPAT_outpost = "wrynose"$', conf, re.M):
    problems.append("conf/layer.conf: LAYERSERIES_COMPAT_outpost is not \"wrynose\"")
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
  ok "the recipe's version and LICENSE are Cargo.toml's; the layer is for wrynose"
else
  fail "the recipe or layer.conf disagrees (above)"
fi

# --- oelint-adv: a known-bad recipe is caught, then the layer is clean --------------
export OELINT_CONFIG="$PWD/$LAYER/.oelint.cfg"
mkdir -p "$tmp/lint/recipes-x/x"
printf 'SUMMARY = "x"\nLICENSE = "MIT"\nDEPENDS += " foo"\n' >"$tmp/lint/recipes-x/x/x_1.0.bb"
if ! "$VENV/bin/oelint-adv" --quiet "$tmp/lint/recipes-x/x/x_1.0.bb" >"$tmp/lint.out" 2>&1 &&
  grep -q ':oelint\.vars\.inconspaces:' "$tmp/lint.out"; then
  ok "oelint-adv flags a bad recipe ($(grep -c ':oelint\.' "$tmp/lint.out") findings)"
else
  cat "$tmp/lint.out" >&2
  fail "oelint-adv did not flag DEPENDS += \" foo\" in a test recipe"
fi
mapfile -t layer_files < <(find "$LAYER" -type f \( -name '*.bb' -o -name '*.bbappend' -o -name '*.inc' -o -name '*.conf' \) | sort)
if "$VENV/bin/oelint-adv" --quiet "${layer_files[@]}" >"$tmp/lint.out" 2>&1; then
  ok "oelint-adv: no findings in ${#layer_files[@]} files of $LAYER"
else
  cat "$tmp/lint.out" >&2
  fail "oelint-adv findings in $LAYER (above); fix them, or suppress one in $LAYER/.oelint.cfg with the reason"
fi

# --- kas files: kas's own schema and includes, then what a board build needs -------
# kas_check FILE...: loads each file as kas 5.5 does (schema validation, includes, a
# lock file beside it).
kas_check() {
  "$VENV/bin/python" - "$LAYER" "$@" <<'EOF'
import argparse, logging, os, sys
from kas.context import create_global_context
from kas.includehandler import IncludeHandler

logging.disable(logging.CRITICAL)  # kas logs each schema error; the exception says enough
create_global_context(argparse.Namespace(no_color=True))
layer, files = sys.argv[1], sys.argv[2:]
machines_doc = open(os.path.join(layer, "docs/machines.md")).read()
problems = []
for f in files:
    name = os.path.basename(f)
    try:
        cfg, missing = IncludeHandler([os.path.abspath(f)], use_lock=True).get_config()
    except Exception as e:  # kas raises its own error types; all of them mean "invalid"
        problems.append(f"{f}: {type(e).__name__}: {e}")
        continue
    if missing:
        problems.append(f"{f}: includes from repositories kas would have to fetch: {missing}")
    if name == "base.yml":
        continue
    machine = cfg.get("machine")
    if not machine:
        problems.append(f"{f}: no machine")
    elif f"`{machine}`" not in machines_doc:
        problems.append(f"{f}: machine {machine} is not described in {layer}/docs/machines.md")
    if cfg.get("target") != ["outpost-image"]:
        problems.append(f"{f}: target is {cfg.get('target')!r}, not outpost-image")
    default_branch = cfg.get("defaults", {}).get("repos", {}).get("branch")
    ours = cfg["repos"].get("outpost")
    if ours is None or ours.get("url"):
        problems.append(f"{f}: the outpost repository must be this one (no url)")
    else:
        for path in ours.get("layers", {}):
            if not os.path.isfile(os.path.join(path, "conf/layer.conf")):
                problems.append(f"{f}: layer {path} has no conf/layer.conf")
    for repo, spec in cfg["repos"].items():
        if repo == "outpost":
            continue
        branch = (spec or {}).get("branch", default_branch)
        want = "2.18" if repo == "bitbake" else "wrynose"
        if not (spec or {}).get("url") or branch != want:
            problems.append(f"{f}: repository {repo} should have a url and branch {want}, has {spec} (default branch {default_branch})")
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
}
printf 'header:\n  version: 14\nmachine: qemuarm64\nmachin: typo\n' >"$tmp/bad-kas.yml"
if kas_check "$tmp/bad-kas.yml" 2>"$tmp/kas.err"; then
  fail "kas accepted a file with an unknown key"
else
  ok "kas rejects a file with an unknown key: $(head -c 120 "$tmp/kas.err")"
fi
missing_boards=()
for b in $BOARDS; do [ -f "$KAS_DIR/$b.yml" ] || missing_boards+=("$b"); done
if [ ${#missing_boards[@]} -eq 0 ]; then
  ok "every board profile has a kas file: $BOARDS"
else
  fail "no kas file for board(s): ${missing_boards[*]}"
fi
# A lock file (kas lock) is loaded with the file it pins, not on its own.
mapfile -t kas_files < <(find "$KAS_DIR" -maxdepth 1 -name '*.yml' ! -name '*.lock.yml' | sort)
if kas_check "${kas_files[@]}"; then
  ok "kas validates ${#kas_files[@]} files: schema, includes, machine, wrynose layers, this layer"
else
  fail "kas files (above)"
fi

echo "check-yocto: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
