"""``raman-device install``: lay out the service on a board from the unpacked offline installer.

The installer (``make installer``, ``deploy/build_installer.py``) has ``wheelhouse/``, ``models/``, ``deploy/`` and
``SHA256SUMS``. Its ``install.sh`` makes the virtual environment ``/opt/raman-edge/venv`` from the wheels
and then runs this, which checks every checksum and the configuration before writing anything, and lays
out under ``root`` (``/`` on the board; any directory to stage and inspect an installation):

=========================================  ==================================================
``/opt/raman-edge/models/NAME``            each model bundle, verified as the service loads it
``/etc/raman-edge/raman-edge.toml``        the configuration: ``--config FILE``, else the one
                                           already there, else the installer's example
``/var/lib/raman-edge``                    the data directory (mode 0750)
``/etc/systemd/system/raman-edge.service`` the unit
``/etc/udev/rules.d/99-raman-edge.rules``  ``/dev/raman-spectrometer`` for the spectrometer's USB
                                           identity (``--usb-id``, or read from ``--port`` in sysfs)
``/usr/lib/sysusers.d/raman-edge.conf``    the service user ``raman-edge`` in ``dialout``, ``gpio``
``/usr/local/bin/raman-device``            a link to the environment's command, for operators
=========================================  ==================================================

On the live system (root ``/``) it then runs :func:`system_steps`: creates the user, gives ``--operator``
the group that may talk to the service, reloads systemd and udev, and with ``--enable`` (re)starts it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from device.errors import RamanEdgeError
from device.fileio import publish_directory, sha256_file, write_replacing

PREFIX = Path("/opt/raman-edge")
CONFIG = Path("/etc/raman-edge/raman-edge.toml")
DATA = Path("/var/lib/raman-edge")
UNIT = Path("/etc/systemd/system/raman-edge.service")
RULE = Path("/etc/udev/rules.d/99-raman-edge.rules")
SYSUSERS = Path("/usr/lib/sysusers.d/raman-edge.conf")
COMMAND = Path("/usr/local/bin/raman-device")
USER = "raman-edge"
SERVICE = "raman-edge"
STABLE_PORT = "/dev/raman-spectrometer"


class InstallError(RamanEdgeError):
    """The installer, the options or the system do not allow the installation; nothing further was written."""


def check_sums(src: Path) -> None:
    """Check every file listed in ``src/SHA256SUMS``; raise :class:`InstallError` naming each bad one."""
    sums = src / "SHA256SUMS"
    if not sums.is_file():
        raise InstallError(f"{src} is not an unpacked offline installer (no SHA256SUMS); "
                           "build one with 'make installer'")
    bad = []
    for n, line in enumerate(sums.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        path = src / name
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or ".." in Path(name).parts:
            bad.append(f"SHA256SUMS line {n}: not 'SHA256  FILE'")
        elif not path.is_file():
            bad.append(f"{name}: missing")
        elif sha256_file(path) != digest:
            bad.append(f"{name}: damaged (its checksum differs)")
    if bad:
        raise InstallError(f"the installer {src} is damaged; copy it again:\n  " + "\n  ".join(bad))


def parse_usb_id(text: str) -> tuple[str, str, str | None]:
    """``VID:PID[:SERIAL]`` (hexadecimal USB ids, as ``lsusb`` prints them) -> (vid, pid, serial or None)."""
    m = re.fullmatch(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?::([A-Za-z0-9._-]{1,64}))?", text)
    if not m:
        raise InstallError(f"--usb-id {text!r}: give VID:PID or VID:PID:SERIAL, e.g. 0403:6001:A12345 "
                           "(see lsusb, or udevadm info -a -n /dev/ttyUSB0)")
    return m.group(1).lower(), m.group(2).lower(), m.group(3)


def usb_identity(port: str, sys_root: Path = Path("/sys")) -> tuple[str, str, str | None]:
    """(vendor id, product id, serial or None) of the USB device behind a serial port such as /dev/ttyUSB0."""
    device = sys_root / "class" / "tty" / Path(os.path.realpath(port)).name / "device"
    if not device.exists():
        raise InstallError(f"{port}: no such serial port on this board; plug the spectrometer in, "
                           "or give --usb-id VID:PID[:SERIAL]")
    node = device.resolve()
    for d in (node, *node.parents):
        if d == sys_root or d == d.parent:
            break
        if (d / "idVendor").is_file() and (d / "idProduct").is_file():
            serial = (d / "serial").read_text().strip() if (d / "serial").is_file() else ""
            return (d / "idVendor").read_text().strip(), (d / "idProduct").read_text().strip(), \
                (serial if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", serial) else None)
    raise InstallError(f"{port} is not a USB serial port (a built-in UART keeps its name); "
                       "set spectrometer.port to it instead of using a udev rule")


def udev_rule(template: str, vid: str, pid: str, serial: str | None) -> str:
    """The example rule's rule line with this USB identity (no serial match when there is none)."""
    line = next(ln for ln in template.splitlines() if ln.strip() and not ln.startswith("#"))
    line = re.sub(r'ATTRS\{idVendor\}=="[^"]*"', f'ATTRS{{idVendor}}=="{vid}"', line)
    line = re.sub(r'ATTRS\{idProduct\}=="[^"]*"', f'ATTRS{{idProduct}}=="{pid}"', line)
    line = re.sub(r', ATTRS\{serial\}=="[^"]*"', f', ATTRS{{serial}}=="{serial}"' if serial else "", line)
    who = f"USB {vid}:{pid}" + (f" serial {serial}" if serial else " (any serial: one such adapter only)")
    return f"# The spectrometer, {who}, as {STABLE_PORT}; written by raman-device install.\n{line}\n"


def system_steps(rule: bool, operator: str | None, enable: bool) -> list[list[str]]:
    """The commands that finish an installation on the live system, in order."""
    steps = [["systemd-sysusers", str(SYSUSERS)], ["chown", f"{USER}:{USER}", str(DATA)]]
    if operator:
        steps.append(["usermod", "--append", "--groups", USER, operator])
    steps.append(["systemctl", "daemon-reload"])
    if rule:
        steps += [["udevadm", "control", "--reload-rules"], ["udevadm", "trigger", "--subsystem-match=tty"]]
    if enable:
        steps += [["systemctl", "enable", SERVICE], ["systemctl", "restart", SERVICE]]
    return steps


def _at(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _models(src: Path) -> list[Path]:
    return sorted(p.parent for p in (src / "models").glob("*/model.json"))


def _check_config(src: Path, root: Path, given: Path | None, rule: bool, log) -> tuple[str, str]:
    """The configuration text to install and where it came from, checked; raises on any problem."""
    from device.service.config import ConfigError, parse_config

    dest = _at(root, CONFIG)
    source = given or (dest if dest.exists() else src / "deploy" / "raman-edge.toml")
    try:
        text = source.read_text(encoding="utf-8")
        cfg = parse_config(text, CONFIG)  # paths in it are those of the board
    except ConfigError as exc:
        raise ConfigError(source, exc.problems) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"cannot read the configuration {source}: {exc}") from None
    shipped = {PREFIX / "models" / m.name for m in _models(src)}
    if cfg.model.bundle not in shipped and not _at(root, cfg.model.bundle).is_dir():
        raise InstallError(f"{source}: model.bundle {cfg.model.bundle} is neither in this installer "
                           f"({', '.join(sorted(str(p) for p in shipped))}) nor on the board")
    if cfg.data_directory != DATA:
        log(f"warning: data.directory is {cfg.data_directory}, but the unit lets the service write only {DATA}; "
            "add ReadWritePaths= in a drop-in (systemctl edit raman-edge) or use the default")
    if cfg.spectrometer.port == STABLE_PORT and not rule and not _at(root, RULE).exists():
        log(f"warning: spectrometer.port is {STABLE_PORT}, but no udev rule gives that name yet; rerun with "
            "--port /dev/ttyUSB0 (spectrometer plugged in) or --usb-id VID:PID[:SERIAL]")
    origin = f"from {given}" if given else "kept" if source == dest else "the example: edit it for your device"
    return text, origin


def _copy_tree(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    shutil.copytree(src, tmp, dirs_exist_ok=True)
    publish_directory(tmp, dest)


def install(src: Path, root: Path = Path("/"), config: Path | None = None, port: str | None = None,
            usb_id: str | None = None, operator: str | None = None, enable: bool = False, log=print) -> None:
    """Lay out the service from the unpacked installer ``src`` under ``root`` (see the module docstring).

    Everything is checked first (checksums, models, configuration, the spectrometer's identity), so an
    error leaves the system as it was. Raises :class:`InstallError`, ``ConfigError`` or ``BundleError``.
    """
    from device.inference.bundle import load_bundle

    src, root = src.resolve(), root.resolve()
    live = root == Path("/")
    if live and os.geteuid() != 0:
        raise InstallError("installing on this system needs root: run it with sudo (or stage it with --root DIR)")
    if operator and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", operator):
        raise InstallError(f"--operator {operator!r} is not a user name")
    check_sums(src)
    identity = parse_usb_id(usb_id) if usb_id else usb_identity(port) if port else None
    bundles = [load_bundle(m) for m in _models(src)]
    if not bundles:
        raise InstallError(f"the installer {src} holds no model; build it with 'make installer' from a checkout")
    config_text, origin = _check_config(src, root, config, identity is not None, log)

    for m, b in zip(_models(src), bundles):
        _copy_tree(m, _at(root, PREFIX / "models" / m.name))
        log(f"model    {PREFIX / 'models' / m.name}  ({b.model_id})")
    if (src / "models" / "LICENSES").is_dir():
        _copy_tree(src / "models" / "LICENSES", _at(root, PREFIX / "models" / "LICENSES"))
    write_replacing(_at(root, CONFIG), config_text.encode())
    log(f"config   {CONFIG}  ({origin})")
    _at(root, DATA).mkdir(parents=True, exist_ok=True)
    os.chmod(_at(root, DATA), 0o750)
    log(f"data     {DATA}")
    write_replacing(_at(root, UNIT), (src / "deploy" / "raman-edge.service").read_bytes())
    write_replacing(_at(root, SYSUSERS), (src / "deploy" / "raman-edge.sysusers").read_bytes())
    log(f"unit     {UNIT}; user {USER} ({SYSUSERS})")
    if identity:
        rule = udev_rule((src / "deploy" / "99-raman-edge.rules").read_text(), *identity)
        write_replacing(_at(root, RULE), rule.encode())
        log(f"udev     {RULE}: USB {identity[0]}:{identity[1]}"
            + (f" serial {identity[2]}" if identity[2] else "") + f" -> {STABLE_PORT}")
    link = _at(root, COMMAND)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp_link = link.with_name(f".{link.name}.new")
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(PREFIX / "venv" / "bin" / "raman-device")
    os.replace(tmp_link, link)
    log(f"command  {COMMAND}")

    steps = system_steps(identity is not None, operator, enable)
    if not live:
        log(f"staged under {root}; on the board these would now run:")
        for cmd in steps:
            log("  " + " ".join(cmd))
        return
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise InstallError(f"'{' '.join(cmd)}' failed: {(r.stderr or r.stdout).strip()}")
        log("ran      " + " ".join(cmd))
    if not enable:
        log(f"done; edit {CONFIG} if needed, then: sudo systemctl enable --now {SERVICE}")
