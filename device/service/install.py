"""``raman-device install``: lay out the service on a board from the unpacked offline installer.

The installer (``make installer``, ``tools/installer.py``) has ``wheelhouse/``, ``models/``, ``deploy/`` and
``SHA256SUMS``. Its ``install.sh`` checks the board, makes a new virtual environment
``/opt/raman-edge/venv-VERSION-STAMP`` from the wheels and then runs this, which checks every checksum, the
models, the configuration, the spectrometer's identity and the operator before writing anything, and lays
out under ``root`` (``/`` on the board; any directory to stage and inspect an installation):

=========================================  ==================================================
``/opt/raman-edge/venv``                   a link to the new environment (``--venv``); the one
                                           before is kept until the next installation
``/opt/raman-edge/models/NAME``            each model bundle, verified as the service loads it
``/opt/raman-edge/models/libraries/NAME``  each reference library, verified likewise
``/etc/raman-edge/raman-edge.toml``        the configuration: ``--config FILE``, else the one
                                           already there, else the installer's example
``/etc/raman-edge/fleet-signing.pub``      the fleet's public key (``--signing-key``); the
                                           configuration's ``[signatures]`` then requires it
``/var/lib/raman-edge``                    the data directory (mode 0750)
``/etc/systemd/system/raman-edge.service`` the unit
``/etc/udev/rules.d/99-raman-edge.rules``  ``/dev/raman-spectrometer`` for the spectrometer's USB
                                           identity (``--usb-id``, or read from ``--port`` in sysfs)
``/usr/lib/sysusers.d/raman-edge.conf``    the service user ``raman-edge`` in ``dialout``, ``gpio``
``/usr/local/bin/raman-device``            a link to the environment's command, for operators
=========================================  ==================================================

Every change is recorded as it is made (:class:`Layout`); if a later step fails, the earlier ones are
undone, so the board keeps the installation it had. On the live system (root ``/``) it then runs
:func:`system_steps`: creates the user, gives ``--operator`` the group that may talk to the service, and
where systemd runs, reloads systemd and udev and with ``--enable`` (re)starts the service (without
``--enable``, a running service is restarted on the new installation). Where no systemd runs (the chroot of
an SD-card image, ``install.sh --image``), ``--enable`` links the unit into ``multi-user.target.wants``,
as ``systemctl enable`` would, and the service starts at the next boot.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from device.errors import RamanEdgeError
from device.fileio import publish_directory, sha256_file, write_replacing

PREFIX = Path("/opt/raman-edge")
VENV = PREFIX / "venv"
CONFIG = Path("/etc/raman-edge/raman-edge.toml")
DATA = Path("/var/lib/raman-edge")
UNIT = Path("/etc/systemd/system/raman-edge.service")
#: The uplink's unit: installed, enabled by hand once the configuration has an [uplink] section.
UPLINK_UNIT = Path("/etc/systemd/system/raman-edge-uplink.service")
RULE = Path("/etc/udev/rules.d/99-raman-edge.rules")
SYSUSERS = Path("/usr/lib/sysusers.d/raman-edge.conf")
SIGNING_KEY = Path("/etc/raman-edge/fleet-signing.pub")
COMMAND = Path("/usr/local/bin/raman-device")
WANTS = Path("/etc/systemd/system/multi-user.target.wants/raman-edge.service")
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


def system_steps(rule: bool, operator: str | None, enable: bool, systemd: bool = True) -> list[list[str]]:
    """The commands that finish an installation on the live system, in order.

    ``systemd`` is whether systemd runs here; without it (a chroot) only the user and group steps remain,
    and enabling is a link laid out by :func:`install`.
    """
    steps = [["systemd-sysusers", str(SYSUSERS)], ["chown", f"{USER}:{USER}", str(DATA)]]
    if operator:
        steps.append(["usermod", "--append", "--groups", USER, operator])
    if not systemd:
        return steps
    steps.append(["systemctl", "daemon-reload"])
    if rule:
        steps += [["udevadm", "control", "--reload-rules"], ["udevadm", "trigger", "--subsystem-match=tty"]]
    if enable:
        steps += [["systemctl", "enable", SERVICE], ["systemctl", "restart", SERVICE]]
    else:
        steps.append(["systemctl", "try-restart", SERVICE])  # a running service moves to the new installation
    return steps


def systemd_running() -> bool:
    """Whether this system was booted with systemd and it runs (``sd_booted()``: not in a chroot)."""
    return Path("/run/systemd/system").is_dir()


class Layout:
    """The changes of one installation under ``root``, made so that :meth:`undo` can take them all back.

    Each file, link or directory replaced is kept beside it (``.NAME.previous``) until :meth:`done`.
    """

    def __init__(self, root: Path):
        self.root = root
        self._undo: list = []
        self._kept: list[Path] = []

    def _keep(self, dest: Path):
        """How to restore ``dest`` as it is now, and the copy of it kept beside it for that (or None)."""
        if dest.is_symlink() or dest.is_file():
            kept = dest.with_name(f".{dest.name}.previous")
            shutil.copy2(dest, kept, follow_symlinks=False)
            return (lambda: os.replace(kept, dest)), kept
        return (lambda: dest.unlink(missing_ok=True)), None

    def _replace(self, dest: Path, put, directory_aside: bool = False) -> None:
        """``put()`` a new ``dest``, recorded to be undone; if it fails, nothing is left behind.

        With ``directory_aside``, a directory at ``dest`` is moved aside first (and back on undo).
        """
        self._make_parents(dest)
        if directory_aside and dest.is_dir() and not dest.is_symlink():
            kept = dest.with_name(f".{dest.name}.previous")
            shutil.rmtree(kept, ignore_errors=True)
            os.rename(dest, kept)
            undo = lambda: (dest.unlink(missing_ok=True), os.rename(kept, dest))  # noqa: E731
        else:
            undo, kept = self._keep(dest)
        try:
            put()
        except BaseException:
            if kept is not None and kept.is_dir():  # the old directory, moved aside: back in its place
                undo()
            elif kept is not None:  # the copy of the old file or link: not needed
                kept.unlink()
            raise
        self._undo.append(undo)
        if kept is not None:
            self._kept.append(kept)

    def _make_parents(self, dest: Path) -> None:
        """Create the missing directories above ``dest``, to be removed on undo if still empty."""
        missing = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]
        dest.parent.mkdir(parents=True, exist_ok=True)
        for d in reversed(missing):  # undone last first: the deepest first
            self._undo.append(lambda d=d: d.rmdir() if not any(d.iterdir()) else None)

    def write(self, path: Path, data: bytes) -> None:
        """Replace the file ``path`` (a path on the board) with ``data``, atomically."""
        dest = _at(self.root, path)
        self._replace(dest, lambda: write_replacing(dest, data))

    def link(self, path: Path, target: Path | str) -> None:
        """Make ``path`` a symbolic link to ``target``, atomically; an old directory there is moved aside."""
        dest = _at(self.root, path)

        def put():
            new = dest.with_name(f".{dest.name}.new")
            new.unlink(missing_ok=True)
            new.symlink_to(target)
            os.replace(new, dest)

        self._replace(dest, put, directory_aside=True)  # an environment of an older installer was a directory

    def directory(self, src: Path, path: Path) -> None:
        """Put a copy of the directory ``src`` at ``path``, replacing the old one whole."""
        dest = _at(self.root, path)
        self._make_parents(dest)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        if dest.exists():
            kept = dest.with_name(f".{dest.name}.previous")
            shutil.rmtree(kept, ignore_errors=True)
            publish_directory(tmp, dest, keep=kept)
            self._kept.append(kept)
            self._undo.append(lambda: publish_directory(kept, dest))
        else:
            publish_directory(tmp, dest)
            self._undo.append(lambda: shutil.rmtree(dest))

    def undo(self) -> list[str]:
        """Take back every change, last first; the problems met (none, normally)."""
        problems = []
        for step in reversed(self._undo):
            try:
                step()
            except OSError as exc:
                problems.append(str(exc))
        self._undo.clear()
        return problems

    def done(self) -> None:
        """Keep the changes: remove what was kept to undo them."""
        for kept in self._kept:
            if kept.is_dir() and not kept.is_symlink():
                shutil.rmtree(kept, ignore_errors=True)
            else:
                kept.unlink(missing_ok=True)
        self._undo.clear()


def _at(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _models(src: Path) -> list[Path]:
    return sorted(p.parent for p in (src / "models").glob("*/model.json"))


def _libraries(src: Path) -> list[Path]:
    return sorted(p.parent for p in (src / "models" / "libraries").glob("*/library.json"))


def requiring_signatures(text: str) -> str:
    """A configuration's text with its ``[signatures]`` section replaced by one requiring :data:`SIGNING_KEY`."""
    kept, inside = [], False
    for line in text.splitlines():
        header = re.match(r"\s*\[([^\]]*)\]", line)
        if header:
            inside = header.group(1).strip() == "signatures"
        if not inside:
            kept.append(line)
    return "\n".join(kept).rstrip("\n") + (f"\n\n[signatures]                  # written by raman-device install "
                                           f"--signing-key\nrequired = true\npublic_key = \"{SIGNING_KEY}\"\n")


def _check_signed(src: Path, root: Path, cfg, keys: dict, source: Path) -> None:
    """The configured model and library must be signed by ``keys``, or the service would not start with them."""
    from device.errors import SignatureError
    from device.inference.bundle import load_bundle
    from device.inference.library import load_library

    for where, path, load in (("model.bundle", cfg.model.bundle, load_bundle),
                              ("library.path", cfg.library.path, load_library)):
        if path is None:
            continue
        shipped = src / path.relative_to(PREFIX) if path.is_relative_to(PREFIX) else None
        try:
            load(shipped if shipped is not None and shipped.is_dir() else _at(root, path), keys)
        except SignatureError as exc:
            raise InstallError(f"{source}: {where} {path} would be refused with --signing-key, so the service could "
                               f"not start: {exc} Install signed ones (raman-train sign, then make installer), or "
                               "name them in --config") from None


def _check_config(src: Path, root: Path, given: Path | None, rule: bool, keys: dict | None,
                  log) -> tuple[str, str]:
    """The configuration text to install and where it came from, checked; raises on any problem.

    With ``keys`` (``--signing-key``), its ``[signatures]`` requires them, and the configured model and
    library must be signed by them.
    """
    from device.service.config import ConfigError, parse_config

    dest = _at(root, CONFIG)
    source = given or (dest if dest.exists() else src / "deploy" / "raman-edge.toml")
    try:
        text = source.read_text(encoding="utf-8")
        if keys is not None:
            text = requiring_signatures(text)
        cfg = parse_config(text, CONFIG)  # paths in it are those of the board
    except ConfigError as exc:
        raise ConfigError(source, exc.problems) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"cannot read the configuration {source}: {exc}") from None
    shipped = {PREFIX / "models" / m.name for m in _models(src)}
    if cfg.model.bundle not in shipped and not _at(root, cfg.model.bundle).is_dir():
        raise InstallError(f"{source}: model.bundle {cfg.model.bundle} is neither in this installer "
                           f"({', '.join(sorted(str(p) for p in shipped))}) nor on the board")
    libraries = {PREFIX / "models" / "libraries" / m.name for m in _libraries(src)}
    if cfg.library.path is not None and cfg.library.path not in libraries and not _at(root, cfg.library.path).is_dir():
        raise InstallError(f"{source}: library.path {cfg.library.path} is neither in this installer "
                           f"({', '.join(sorted(str(p) for p in libraries)) or 'no library'}) nor on the board")
    if keys is not None:
        _check_signed(src, root, cfg, keys, source)
    if cfg.data_directory != DATA:
        log(f"warning: data.directory is {cfg.data_directory}, but the unit lets the service write only {DATA}; "
            "add ReadWritePaths= in a drop-in (systemctl edit raman-edge) or use the default")
    if cfg.spectrometer.port == STABLE_PORT and not rule and not _at(root, RULE).exists():
        log(f"warning: spectrometer.port is {STABLE_PORT}, but no udev rule gives that name yet; rerun with "
            "--port /dev/ttyUSB0 (spectrometer plugged in) or --usb-id VID:PID[:SERIAL]")
    origin = f"from {given}" if given else "kept" if source == dest else "the example: edit it for your device"
    if keys is not None:
        origin += f"; signatures required, by {SIGNING_KEY}"
    return text, origin


def _check_operator(operator: str | None, root: Path) -> None:
    """The operator login must be a user name and, on the live system, exist."""
    if not operator:
        return
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", operator):
        raise InstallError(f"--operator {operator!r} is not a user name")
    if root == Path("/"):
        try:
            pwd.getpwnam(operator)
        except KeyError:
            raise InstallError(f"--operator {operator}: no such user on this system; create it first "
                               "(sudo adduser NAME) or leave the option out") from None


def _environment(venv: str | None, root: Path) -> Path | None:
    """The new virtual environment ``--venv`` (a directory beside :data:`VENV`), checked; None without one."""
    if venv is None:
        return None
    path = Path(venv)
    if path.parent != PREFIX or not path.name.startswith("venv-"):
        raise InstallError(f"--venv {venv}: give an environment made by install.sh, {PREFIX}/venv-...")
    if not (_at(root, path) / "bin" / "raman-device").is_file():
        raise InstallError(f"--venv {venv}: no environment with raman-device there")
    return path


def _old_environments(root: Path, current: Path, previous: str | None) -> list[Path]:
    """Environments of earlier installations but the one just replaced (kept to go back to by hand)."""
    return [p for p in _at(root, PREFIX).glob("venv-*")
            if p.name not in (current.name, previous) and p.is_dir() and not p.is_symlink()]


def install(src: Path, root: Path = Path("/"), config: Path | None = None, port: str | None = None,
            usb_id: str | None = None, operator: str | None = None, enable: bool = False, venv: str | None = None,
            signing_key: Path | None = None, log=print) -> None:
    """Lay out the service from the unpacked installer ``src`` under ``root`` (see the module docstring).

    Everything is checked first (checksums, models, configuration, the spectrometer's identity, the
    operator, the environment, the signing key and the signatures it requires), so an error leaves the
    system as it was; a step that fails later undoes the earlier ones. Raises :class:`InstallError`,
    ``ConfigError``, ``BundleError`` or ``SigningKeyError``.
    """
    from device.inference.bundle import load_bundle
    from device.inference.library import load_library
    from device.inference.signature import load_public_keys

    src, root = src.resolve(), root.resolve()
    live = root == Path("/")
    if live and os.geteuid() != 0:
        raise InstallError("installing on this system needs root: run it with sudo (or stage it with --root DIR)")
    _check_operator(operator, root)
    check_sums(src)
    environment = _environment(venv, root)
    identity = parse_usb_id(usb_id) if usb_id else usb_identity(port) if port else None
    bundles = [load_bundle(m) for m in _models(src)]
    libraries = [load_library(m) for m in _libraries(src)]
    if not bundles:
        raise InstallError(f"the installer {src} holds no model; build it with 'make installer' from a checkout")
    keys = load_public_keys(signing_key) if signing_key is not None else None
    key_file = signing_key.read_bytes() if signing_key is not None else None
    config_text, origin = _check_config(src, root, config, identity is not None, keys, log)
    systemd = live and systemd_running()
    steps = system_steps(identity is not None, operator, enable, systemd)
    previous = os.readlink(_at(root, VENV)) if _at(root, VENV).is_symlink() else None

    layout = Layout(root)
    try:
        _lay_out(layout, src, bundles, libraries, config_text, origin, identity, environment,
                 enable and live and not systemd, log)
        if key_file is not None:
            layout.write(SIGNING_KEY, key_file)
            log(f"key      {SIGNING_KEY}  (key id {', '.join(keys)})")
        if live:
            for cmd in steps:
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    raise InstallError(f"'{' '.join(cmd)}' failed: {(r.stderr or r.stdout).strip()}")
                log("ran      " + " ".join(cmd))
    except BaseException as exc:
        problems = layout.undo()
        note = "; undoing it failed for: " + "; ".join(problems) if problems else ""
        log(f"undone: the installation stopped ({type(exc).__name__}), and the board keeps what it had{note}")
        if isinstance(exc, OSError):
            raise InstallError(f"cannot write {exc.filename}: {exc.strerror or exc}; free it (is it a directory, "
                               "or on a read-only file system?) and install again") from None
        raise
    layout.done()
    if environment is not None:
        for old in _old_environments(root, environment, previous):
            shutil.rmtree(old, ignore_errors=True)
            log(f"removed  {PREFIX / old.name} (an older environment)")
    if not live:
        log(f"staged under {root}; on the board these would now run:")
        for cmd in steps:
            log("  " + " ".join(cmd))
    elif not systemd:
        log(f"done; no systemd runs here (a chroot or an image): the service "
            f"{'starts at the next boot' if enable else 'is not enabled (give --enable to start it at boot)'}")
    elif not enable:
        log(f"done; edit {CONFIG} if needed, then: sudo systemctl enable --now {SERVICE}")


def _lay_out(layout: Layout, src: Path, bundles, libraries, config_text: str, origin: str, identity,
             environment: Path | None, link_wants: bool, log) -> None:
    """Every file, link and directory of the installation, recorded in ``layout``."""
    for m, b in zip(_models(src), bundles):
        layout.directory(m, PREFIX / "models" / m.name)
        log(f"model    {PREFIX / 'models' / m.name}  ({b.model_id})")
    for m, lib in zip(_libraries(src), libraries):
        layout.directory(m, PREFIX / "models" / "libraries" / m.name)
        log(f"library  {PREFIX / 'models' / 'libraries' / m.name}  ({lib.library_id})")
    if (src / "models" / "LICENSES").is_dir():
        layout.directory(src / "models" / "LICENSES", PREFIX / "models" / "LICENSES")
    layout.write(CONFIG, config_text.encode())
    log(f"config   {CONFIG}  ({origin})")
    data = _at(layout.root, DATA)
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o750)
    log(f"data     {DATA}")
    layout.write(UNIT, (src / "deploy" / "raman-edge.service").read_bytes())
    layout.write(SYSUSERS, (src / "deploy" / "raman-edge.sysusers").read_bytes())
    log(f"unit     {UNIT}; user {USER} ({SYSUSERS})")
    layout.write(UPLINK_UNIT, (src / "deploy" / "raman-edge-uplink.service").read_bytes())
    log(f"unit     {UPLINK_UNIT} (the fleet uplink: enable it once the configuration has an [uplink] section)")
    if identity:
        rule = udev_rule((src / "deploy" / "99-raman-edge.rules").read_text(), *identity)
        layout.write(RULE, rule.encode())
        log(f"udev     {RULE}: USB {identity[0]}:{identity[1]}"
            + (f" serial {identity[2]}" if identity[2] else "") + f" -> {STABLE_PORT}")
    if environment is not None:
        layout.link(VENV, environment.name)  # relative: the same link staged under a root and on the board
        log(f"venv     {VENV} -> {environment.name}")
    layout.link(COMMAND, VENV / "bin" / "raman-device")
    log(f"command  {COMMAND}")
    if link_wants:
        layout.link(WANTS, UNIT)
        log(f"enabled  {WANTS} -> {UNIT}")
