"""Runs a command under the seccomp filters a systemd unit would give it, without systemd.

usage: sandbox.py [--unit FILE] [--mdwe-prctl] [--] COMMAND [ARG...]

--unit FILE   applies FILE's SystemCallFilter= (groups expanded by `systemd-analyze
              syscall-filter`), SystemCallErrorNumber=, RestrictAddressFamilies= and
              MemoryDenyWriteExecute= as systemd's seccomp filters do: calls outside the
              filter and sockets of other families fail with the error number; with MDWE,
              mmap with PROT_WRITE and PROT_EXEC together, mprotect/pkey_mprotect adding
              PROT_EXEC, and shmat with SHM_EXEC fail with EPERM.
--mdwe-prctl  the kernel's PR_SET_MDWE(PR_MDWE_REFUSE_EXEC_GAIN) (Linux 6.3+), the other way
              systemd can apply MemoryDenyWriteExecute=.

The mount, user and device settings of a unit are not applied here. Needs Debian's
python3-seccomp (run with /usr/bin/python3) and systemd-analyze.
"""
import ctypes
import errno
import os
import socket
import subprocess
import sys

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def unit_settings(path):
    """The [Service] settings of a unit file: name -> list of values, in order."""
    settings, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                k, v = line.split("=", 1)
                settings.setdefault(k.strip(), []).append(v.strip())
    return settings


def syscall_groups():
    """Each @group of `systemd-analyze syscall-filter`: its calls and nested groups."""
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True, text=True, check=True,
    ).stdout
    groups, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith("    ") and current is not None and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    calls = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            if n not in groups:
                sys.exit("sandbox.py: unknown system call group %s" % n)
            calls |= expand(groups[n], groups, seen)
        else:
            calls.add(n)
    return calls


def allowed_calls(values, groups):
    """SystemCallFilter= lines as systemd reads them: the first names an allow list (or,
    with ~, a deny list); later ~ lines take from the allow list."""
    allow, deny = None, set()
    for v in values:
        negate = v.startswith("~")
        names = v.lstrip("~").split()
        if allow is None and not negate:
            allow = expand(names, groups)
        elif negate:
            if allow is None:
                deny |= expand(names, groups)
            else:
                allow -= expand(names, groups)
        else:
            allow |= expand(names, groups)
    return allow, deny


def apply_unit(path):
    import seccomp

    s = unit_settings(path)
    # MDWE first: once the system call filter is in, no further filter can be loaded.
    if s.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
        m = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        deny = seccomp.ERRNO(errno.EPERM)
        wx = PROT_WRITE | PROT_EXEC
        m.add_rule(deny, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
        for call in ("mprotect", "pkey_mprotect"):
            m.add_rule(deny, call, seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        m.add_rule(deny, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
        m.load()

    err = errno.EPERM
    if "SystemCallErrorNumber" in s:
        err = getattr(errno, s["SystemCallErrorNumber"][-1])
    allow, deny = allowed_calls(s.get("SystemCallFilter", []), syscall_groups())
    families = None
    for v in s.get("RestrictAddressFamilies", []):
        families = [getattr(socket, name) for name in v.split()]
    if allow is not None:
        f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(err))
        rule, calls = seccomp.ALLOW, allow
    else:
        f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        rule, calls = seccomp.ERRNO(err), deny
    for call in sorted(calls):
        if call == "socket" and families is not None and rule == seccomp.ALLOW:
            continue
        try:
            f.add_rule(rule, call)
        except (RuntimeError, ValueError):
            pass  # not a system call of this architecture
    if families is not None:
        if rule == seccomp.ALLOW:
            for fam in families:
                f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, fam))
        else:
            # Without an allow list: refuse the other families one by one.
            for fam in range(1, 46):
                if fam not in families:
                    f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket",
                               seccomp.Arg(0, seccomp.EQ, fam))
    f.load()

def mdwe_prctl():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit("sandbox.py: prctl(PR_SET_MDWE): %s" % os.strerror(ctypes.get_errno()))
    if libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) != PR_MDWE_REFUSE_EXEC_GAIN:
        sys.exit("sandbox.py: PR_GET_MDWE does not report the protection")


def main():
    args = sys.argv[1:]
    unit, prctl = None, False
    while args and args[0].startswith("--"):
        a = args.pop(0)
        if a == "--":
            break
        if a == "--unit" and args:
            unit = args.pop(0)
        elif a == "--mdwe-prctl":
            prctl = True
        else:
            sys.exit(__doc__)
    if not args:
        sys.exit(__doc__)
    if prctl:
        mdwe_prctl()
    if unit:
        apply_unit(unit)
    os.execv(args[0], args)


main()
