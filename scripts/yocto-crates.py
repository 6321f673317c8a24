#!/usr/bin/env python3
"""Writes the Yocto crate list of the outpost recipe from Cargo.lock.

The output has the format of oe-core's `cargo-update-recipe-crates` class (what
`bitbake -c update_crates outpost` writes): one `crate://` entry in SRC_URI per
crates.io package, in Cargo.lock's order, and its sha256sum. bitbake fetches exactly
these, so the recipe builds offline with `cargo --frozen`.

A dependency that does not come from crates.io (a git repository, another registry)
cannot be listed this way: it is refused with its name, rather than left out for the
build to find later.

Usage: scripts/yocto-crates.py [--lock Cargo.lock] [--output FILE|-]
"""

import argparse
import os
import re
import sys
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LOCK = os.path.join(REPO, "Cargo.lock")
DEFAULT_OUTPUT = os.path.join(
    REPO, "image", "meta-outpost", "recipes-outpost", "outpost", "outpost-crates.inc"
)
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"

# What may stand in a crate name and a version inside a bitbake string and URL.
NAME = re.compile(r"^[A-Za-z0-9_-]+$")
VERSION = re.compile(r"^[0-9A-Za-z.+-]+$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LockError(Exception):
    """Cargo.lock cannot be turned into a crate list; the message says why."""


def crates(lock_text, lock_name="Cargo.lock"):
    """The (name, version, checksum) of every crates.io package, in lock order."""
    try:
        lock = tomllib.loads(lock_text)
    except tomllib.TOMLDecodeError as e:
        raise LockError(f"{lock_name}: not valid TOML: {e}") from None
    packages = lock.get("package")
    if not isinstance(packages, list):
        raise LockError(f"{lock_name}: no [[package]] entries")
    out, refused = [], []
    for i, p in enumerate(packages):
        if not isinstance(p, dict) or "name" not in p or "version" not in p:
            raise LockError(f"{lock_name}: package #{i + 1} lacks a name or a version")
        name, version = str(p["name"]), str(p["version"])
        source = p.get("source")
        if source is None:
            continue  # a path dependency: this workspace's own crate(s)
        if source != CRATES_IO:
            kind = "git repository" if source.startswith("git+") else "registry"
            refused.append(f"{name} {version} comes from a {kind} ({source})")
            continue
        if not NAME.match(name) or not VERSION.match(version):
            raise LockError(f"{lock_name}: package {name!r} {version!r}: unexpected characters")
        checksum = p.get("checksum")
        if checksum is None:
            # Lock format 1 keeps checksums in [metadata]; cargo rewrites it on any update.
            raise LockError(
                f"{lock_name}: {name} {version} has no checksum (an old lock format?): "
                "run `cargo update --workspace` to rewrite Cargo.lock"
            )
        if not SHA256.match(str(checksum)):
            raise LockError(f"{lock_name}: {name} {version}: checksum {checksum!r} is not a sha256")
        out.append((name, version, str(checksum)))
    if refused:
        raise LockError(
            f"{lock_name}: only crates.io packages can be listed as crate:// sources; "
            + "; ".join(refused)
            + ". Publish them, vendor them, or add a git SRC_URI entry with "
            "name=<crate>;destsuffix=<dir> to the recipe by hand."
        )
    if not out:
        raise LockError(f"{lock_name}: no crates.io packages")
    return out


def render(entries):
    """The .inc text, laid out as cargo-update-recipe-crates lays it out."""
    lines = [
        "# Generated from Cargo.lock by scripts/yocto-crates.py: do not edit.",
        "# scripts/check-yocto.sh fails when this file and Cargo.lock disagree.",
        "",
        "# from Cargo.lock",
        "# Laid out as oe-core's cargo-update-recipe-crates writes it (oelint prefers no space):",
        "# nooelint: oelint.vars.inconspaces,oelint.vars.notneededspace",
        'SRC_URI += " \\',
    ]
    lines += [f"    crate://crates.io/{n}/{v} \\" for n, v, _ in entries]
    lines += ['"', ""]
    lines += [f'SRC_URI[{n}-{v}.sha256sum] = "{c}"' for n, v, c in entries]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lock", default=DEFAULT_LOCK, help="Cargo.lock to read")
    ap.add_argument("--output", default=DEFAULT_OUTPUT, help="file to write, or - for stdout")
    args = ap.parse_args(argv)
    try:
        with open(args.lock, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print(f"yocto-crates: cannot read {args.lock}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        inc = render(crates(text, args.lock))
    except LockError as e:
        print(f"yocto-crates: {e}", file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.write(inc)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(inc)
    except OSError as e:
        print(f"yocto-crates: cannot write {args.output}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
