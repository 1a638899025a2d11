"""Debian root file systems of a board, made with debootstrap and run under qemu-user emulation.

A root is made once per release, architecture and package set and cached under ``build/roots/`` (a
``.complete`` marker tells a whole one from one a stopped run left half made). Commands run in it through
``chroot``, offline in a network namespace of their own (``unshare --net``), with ``/proc``, ``/dev`` and
``/sys`` mounted; a foreign architecture runs through binfmt_misc and qemu-user-static, which are installed
and registered here when missing. Everything here needs root.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from device.errors import RamanEdgeError

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "roots"
MIRROR = "http://deb.debian.org/debian"
DEBIAN_ARCH = {"aarch64": "arm64", "x86_64": "amd64"}
#: A Raspberry Pi 4's ``/proc/cpuinfo``, shown to emulated programs in place of this machine's (LiteRT crashes
#: under qemu on an x86 one; gpiozero reads the board's revision from it).
PI4_CPUINFO = Path(__file__).with_name("pi4-cpuinfo.txt")
#: The CPU qemu emulates for aarch64: a Raspberry Pi 4's Cortex-A72 (``cortex-a76`` would be a Pi 5's).
QEMU_CPU = "cortex-a72"


class BoardError(RamanEdgeError):
    """A root cannot be made or run here; the message says what to do."""


def require_root() -> None:
    """Stop unless running as root (debootstrap, chroot and mounts need it)."""
    if os.geteuid() != 0:
        raise BoardError("this needs root (debootstrap, chroot, mounts): run it with sudo")


def ensure_commands(needed: dict[str, str]) -> None:
    """Install the Debian package of each missing command (``{command: package}``) with apt-get."""
    missing = sorted({pkg for cmd, pkg in needed.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise BoardError(f"missing commands; install the packages {' '.join(missing)}")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if r.returncode != 0:
            raise BoardError(f"'{' '.join(cmd)}' failed: {r.stderr.strip()[-2000:]}")


def ensure_emulation(arch: str) -> None:
    """Make this machine run ``arch`` programs: qemu-user-static registered with binfmt_misc (fix-binary)."""
    if arch == platform.machine():
        return
    ensure_commands({f"qemu-{arch}-static": "qemu-user-static", "update-binfmts": "binfmt-support"})
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)])
    entry = binfmt / f"qemu-{arch}"
    if not entry.exists():
        _run(["update-binfmts", "--enable", f"qemu-{arch}"])
    fields = dict(line.partition(" ")[::2] for line in entry.read_text().splitlines()[1:]) if entry.exists() else {}
    flags = fields.get("flags:", "")
    if "F" not in flags:
        raise BoardError(f"binfmt_misc has no qemu-{arch} entry with flag F (fix binary): install qemu-user-static")
    if "C" not in flags:
        # C (credentials): a set-user-ID program such as sudo runs with its owner's rights under qemu too. Debian
        # registers without it; the entry is registered again with it, until the next boot.
        magic, mask = (re.sub("(..)", r"\\x\1", fields[k]) for k in ("magic", "mask"))
        entry.write_text("-1")
        (binfmt / "register").write_text(f":qemu-{arch}:M:{fields['offset']}:{magic}:{mask}:"
                                         f"{fields['interpreter']}:{flags}C")


def root_file_system(release: str, arch: str, packages: tuple[str, ...], cache: Path = CACHE) -> Path:
    """A minimal Debian ``release`` root for ``arch`` with ``packages``, made by debootstrap unless cached.

    Raises
    ------
    BoardError
        When debootstrap fails (no network, an unknown release); the half-made root is removed.
    """
    require_root()
    ensure_commands({"debootstrap": "debootstrap"})
    ensure_emulation(arch)
    digest = hashlib.sha256(" ".join(sorted(packages)).encode()).hexdigest()[:8]
    root = cache / f"{release}-{DEBIAN_ARCH[arch]}-{digest}"
    if (root / ".complete").exists():
        return root
    remove_root(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["debootstrap", "--variant=minbase", f"--arch={DEBIAN_ARCH[arch]}", f"--include={','.join(packages)}",
           release, str(root), MIRROR]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        remove_root(root)
        raise BoardError(f"debootstrap of {release} {arch} failed:\n{(r.stdout + r.stderr).strip()[-3000:]}")
    (root / ".complete").write_text(" ".join(cmd) + "\n")
    return root


def mounts_under(path: Path) -> list[Path]:
    """The mount points at or below ``path``, deepest first."""
    path = path.resolve()
    points = [Path(line.split()[1].encode().decode("unicode_escape")) for line in
              Path("/proc/self/mounts").read_text().splitlines()]
    return sorted((p for p in points if p == path or path in p.parents), key=lambda p: len(p.parts), reverse=True)


def remove_root(root: Path) -> None:
    """Delete a root, after unmounting whatever is mounted in it (never deleting through a mount of /dev)."""
    for point in mounts_under(root):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
    left = mounts_under(root)
    if left:
        raise BoardError(f"cannot unmount {', '.join(map(str, left))}; unmount them, then delete {root}")
    shutil.rmtree(root, ignore_errors=True)


def copy_root(base: Path, dest: Path) -> Path:
    """A fresh copy of the root ``base`` at ``dest`` (so that a test leaves the cached one untouched)."""
    remove_root(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run(["cp", "-a", str(base), str(dest)])
    return dest


@contextlib.contextmanager
def mounted(root: Path, cpuinfo: Path | None = PI4_CPUINFO):
    """``/proc``, ``/dev`` (with ptys) and ``/sys`` (read-only) mounted in ``root``, ``cpuinfo`` over /proc/cpuinfo."""
    done: list[Path] = []
    try:
        for target, cmd in ((root / "proc", ["mount", "-t", "proc", "proc"]),
                            (root / "dev", ["mount", "--rbind", "/dev"]),
                            (root / "sys", ["mount", "--rbind", "-o", "ro", "/sys"])):
            _run([*cmd, str(target)])
            done.append(target)
        if cpuinfo is not None:
            _run(["mount", "--bind", str(cpuinfo), str(root / "proc" / "cpuinfo")])
            done.append(root / "proc" / "cpuinfo")
        yield root
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-R", "-l", str(target)], capture_output=True)
        if mounts_under(root / "dev") or mounts_under(root / "proc") or mounts_under(root / "sys"):
            raise BoardError(f"{root}: /dev, /proc or /sys is still mounted there; unmount it before deleting")


def in_root(root: Path, argv: list[str], user: str | None = None, offline: bool = True,
            env: dict | None = None) -> list[str]:
    """The command line that runs ``argv`` in ``root`` as ``user`` (in its home directory), offline.

    The environment is kept (not a login's) so that ``QEMU_CPU`` reaches every program started.
    """
    inner = ["chroot", str(root)]
    if user:
        inner += ["runuser", "-u", user, "--", "env", f"HOME=/home/{user}", f"USER={user}", f"LOGNAME={user}"]
    environment = {"QEMU_CPU": QEMU_CPU, "LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                   **(env or {})}
    return ["env", *(f"{k}={v}" for k, v in environment.items()), *(["unshare", "--net"] if offline else []),
            *inner, *argv]


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BoardError(f"'{' '.join(cmd)}' failed: {(r.stderr or r.stdout).strip()}")
