"""``make board-test``: the offline installer on an emulated Raspberry Pi, offline, used as the README says.

For a target (``bookworm-aarch64``, ``trixie-aarch64``, ``bookworm-aarch64-legacy``) it builds the installer,
takes a fresh copy of a cached Debian root of that release for arm64 (:mod:`tools.board.roots`: python3,
sudo, systemd installed but not running; no python3-venv, no network) with a user ``pi`` who has sudo,
and runs it under qemu-user emulation of a Pi 4's Cortex-A72 that sees a Pi 4's ``/proc/cpuinfo``:

1. ``install.sh --image ROOT --enable``, from this machine, as an SD card is prepared: the unit enabled by a
   link, the user made, the udev rule, without a running systemd;
2. on the board, as ``pi``, offline (its own network namespace): ``install.sh --port`` with nothing plugged
   in fails before anything changes; ``sudo ./install.sh --operator pi`` reinstalls over the image's
   installation with a new environment; ``info``; ``classify`` of every shipped model's examples with both
   backends (labels right, probabilities within 1e-6 of each other); the service with a simulated
   spectrometer triggered from its control port and from a mock button
   (:mod:`tools.board.service_session`); ``history`` and ``export`` of the record;
3. for ``-legacy``: its installer over the default one, which must leave an environment with
   tflite-runtime and NumPy < 2 and none of LiteRT's wheels.

Each step is timed (emulation times, not a Pi's) and printed as a table; the run fails on any
failed step.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tools.board.roots import CACHE, copy_root, in_root, mounted, remove_root, root_file_system
from tools.installer import make_installer, target_settings

#: What the emulated board has besides a minimal Debian: what Raspberry Pi OS Lite has of what install.sh uses.
BOARD_PACKAGES = ("python3", "sudo", "systemd", "procps")
SESSION = Path(__file__).with_name("service_session.py")
USB_ID = "0403:6001:A12345"


class Steps:
    """The board test's steps: name, passed, seconds, what was seen."""

    def __init__(self, log):
        self.rows: list[tuple[str, bool, float, str]] = []
        self.log = log

    def run(self, name: str, cmd: list[str], check, timeout: float = 1800) -> subprocess.CompletedProcess:
        """Run ``cmd``, then ``check(result) -> (passed, detail)``; record and print the row."""
        start = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        seconds = time.monotonic() - start
        try:
            passed, detail = check(r)
        except Exception as exc:  # a check that cannot even read the output is a failed step
            passed, detail = False, f"{type(exc).__name__}: {exc}"
        if not passed:
            detail += f" | exit {r.returncode} | {(r.stderr or r.stdout).strip()[-1500:]}"
        self.record(name, passed, seconds, detail)
        return r

    def record(self, name: str, passed: bool, seconds: float, detail: str) -> None:
        """Add and print a row."""
        self.rows.append((name, passed, seconds, detail))
        self.log(f"{'PASS' if passed else 'FAIL'}  {name}  ({seconds:.1f} s)  {detail}")

    def table(self) -> str:
        """The steps as a Markdown table."""
        lines = ["| step | result | emulated time | seen |", "|---|---|---|---|"]
        lines += [f"| {n} | {'pass' if p else 'FAIL'} | {s:.1f} s | {d.split(' | ')[0]} |" for n, p, s, d in self.rows]
        return "\n".join(lines)

    @property
    def passed(self) -> bool:
        """Whether every step passed."""
        return bool(self.rows) and all(p for _, p, _, _ in self.rows)


def prepare_board(base: Path, target: str, archives: list[Path]) -> Path:
    """A fresh copy of ``base`` with the user ``pi`` (sudo, no password) and the installers in its home."""
    board = copy_root(base, CACHE / f"board-{target}")
    subprocess.run(["chroot", str(board), "useradd", "--create-home", "--shell", "/bin/sh", "pi"], check=True)
    (board / "etc/sudoers.d/pi").write_text('pi ALL=(ALL) NOPASSWD: ALL\nDefaults env_keep += "QEMU_CPU"\n')
    (board / "etc/sudoers.d/pi").chmod(0o440)
    (board / "etc/hostname").write_text("raspberrypi\n")
    # the board shares this machine's host name (no UTS namespace): sudo looks it up
    (board / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 raspberrypi {socket.gethostname()}\n")
    for archive in archives:
        shutil.copy2(archive, board / "home/pi" / archive.name)
    shutil.copy2(SESSION, board / "var/tmp" / SESSION.name)
    subprocess.run(["chroot", str(board), "chown", "-R", "pi:pi", "/home/pi"], check=True)
    return board


def environments(board: Path) -> tuple[str, list[str]]:
    """Where ``/opt/raman-edge/venv`` links to, and every environment directory there."""
    prefix = board / "opt/raman-edge"
    link = (prefix / "venv").readlink().as_posix() if (prefix / "venv").is_symlink() else ""
    return link, sorted(p.name for p in prefix.glob("venv-*"))


def labelled(stdout: str) -> list[dict]:
    """The JSON lines ``raman-device classify`` printed."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def board_test(target: str, out: Path, log=print) -> bool:
    """Run the board test for ``target``; True if every step passed (the table is printed either way)."""
    settings = target_settings(target)
    default = target.removesuffix("-legacy")
    steps = Steps(log)
    start = time.monotonic()
    archives = [make_installer(default, out, log)]
    if default != target:
        archives.append(make_installer(target, out, log))
    base = root_file_system(settings["release"], settings["arch"], BOARD_PACKAGES)
    log(f"board root {base}; installers {', '.join(a.name for a in archives)}")
    board = prepare_board(base, target, archives)
    unpacked = [a.name.removesuffix(".tar.gz") for a in archives]
    for archive in archives:
        shutil.unpack_archive(archive, out)

    def as_pi(script: str) -> list[str]:
        return in_root(board, ["sh", "-c", f"cd /home/pi && {script}"], user="pi")

    try:
        _image_steps(steps, board, out / unpacked[0])
        with mounted(board):
            _install_steps(steps, board, unpacked[0], as_pi)
            _use_steps(steps, board, as_pi)
            if default != target:
                _legacy_steps(steps, board, unpacked[1], as_pi)
    finally:
        remove_root(board)
    log(f"\nboard test {target}, {time.strftime('%Y-%m-%d')}, {time.monotonic() - start:.0f} s in all "
        f"(emulated: qemu-user {settings['arch']}, Cortex-A72)\n")
    log(steps.table())
    log(f"\nboard test {target}: {'passed' if steps.passed else 'FAILED'}")
    return steps.passed


def _image_steps(steps: Steps, board: Path, installer: Path) -> None:
    """``install.sh --image`` from this machine, as an SD card's root is prepared."""
    def check(r):
        wants = board / "etc/systemd/system/multi-user.target.wants/raman-edge.service"
        passwd = (board / "etc/passwd").read_text()
        group = {ln.split(":")[0]: ln.split(":")[3] for ln in (board / "etc/group").read_text().splitlines()}
        link, _ = environments(board)
        ok = (r.returncode == 0 and wants.is_symlink() and "raman-edge:x:" in passwd and "pi" in group["raman-edge"]
              and (board / "etc/udev/rules.d/99-raman-edge.rules").is_file() and link.startswith("venv-"))
        return ok, f"unit enabled by link, user raman-edge, udev rule, venv -> {link}"

    steps.run("install.sh --image ROOT --enable (from the PC)",
              ["unshare", "--net", "env", "QEMU_CPU=cortex-a72", "sh", str(installer / "install.sh"), "--image",
               str(board), "--enable", "--operator", "pi", "--usb-id", USB_ID], check)


def _install_steps(steps: Steps, board: Path, unpacked: str, as_pi) -> None:
    """On the board: a port check that fails before any change, then the README's installation."""
    steps.run("tar xzf (the installer)", as_pi(f"tar xzf {unpacked}.tar.gz"), lambda r: (r.returncode == 0, ""))
    before = environments(board)

    def refused(r):
        return (r.returncode != 0 and "no such serial port" in r.stderr and environments(board) == before,
                "refused before any change: " + r.stderr.strip().splitlines()[-1][:90])

    steps.run("install.sh --port /dev/ttyUSB0, nothing plugged in",
              as_pi(f"cd {unpacked} && sudo ./install.sh --port /dev/ttyUSB0"), refused)

    def installed(r):
        link, dirs = environments(board)
        return (r.returncode == 0 and link != before[0] and link in dirs and before[0] in dirs and len(dirs) == 2,
                f"venv -> {link}; the one before kept: {before[0]}")

    steps.run("sudo ./install.sh --operator pi (over the image's)",
              as_pi(f"cd {unpacked} && sudo ./install.sh --operator pi"), installed)


def _use_steps(steps: Steps, board: Path, as_pi) -> None:
    """On the board: info, classify with both backends, the service, history, export."""
    models = sorted(p.parent.name for p in (board / "opt/raman-edge/models").glob("*/model.json"))
    steps.run("raman-device info", as_pi(" && ".join(f"raman-device info --model /opt/raman-edge/models/{m}"
                                                       for m in models)),
              lambda r: (r.returncode == 0, f"{len(models)} models verified"))
    for model in models:
        _classify_steps(steps, board, model, as_pi)

    # The shipped configuration names GPIO pins, and the emulated board has no GPIO chip: one line, exit 6.
    # From / (a unit without a working directory of its own) lgpio cannot make its notification pipe and
    # says so first; that is the negative control of the check.
    run = "sudo -u raman-edge sh -c 'cd {} && exec raman-device run --config /etc/raman-edge/raman-edge.toml'"
    steps.run("no GPIO here: one line (working directory the service's own)", as_pi(run.format("/var/lib/raman-edge")),
              lambda r: (r.returncode == 6 and len(r.stderr.strip().splitlines()) == 1
                         and r.stderr.startswith("error: no GPIO on this machine"), r.stderr.strip()[:100]))
    steps.run("negative control: from / lgpio cannot make its pipe", as_pi(run.format("/")),
              lambda r: (r.returncode == 6 and ".lgd-nfy" in r.stderr,
                         f"{len(r.stderr.strip().splitlines())} lines: " + r.stderr.strip().splitlines()[0][:80]))

    def session(r):
        line = json.loads(r.stdout.strip().splitlines()[-1])
        ok = r.returncode == 0 and line["recorded"] == 2
        return ok, (f"control: {line['control'].get('verdict')}, button: {line['button'].get('verdict')}, "
                    f"exit {line['exit_status']}, {line['recorded']} recorded")

    steps.run("the service: control port and mock button",
              as_pi(f"sudo -u raman-edge env GPIOZERO_PIN_FACTORY=mock /opt/raman-edge/venv/bin/python "
                    f"/var/tmp/{SESSION.name}"), session)
    steps.run("raman-device history",
              as_pi("sudo -u raman-edge raman-device history --db /var/lib/raman-edge/record.db"),
              lambda r: (r.returncode == 0 and len(re.findall(r"\b(control|button)\b", r.stdout)) >= 2,
                         f"{len(r.stdout.strip().splitlines())} lines"))
    count = "import numpy, sys; print(numpy.load(sys.argv[1])['X'].shape[0])"
    steps.run("raman-device export",
              as_pi("sudo -u raman-edge raman-device export --db /var/lib/raman-edge/record.db --model "
                    "/opt/raman-edge/models/sers-pesticides --format npz --out /tmp/export.npz && "
                    f"/opt/raman-edge/venv/bin/python -c \"{count}\" /tmp/export.npz"),
              lambda r: (r.returncode == 0 and r.stdout.split()[-1] == "2",
                         f"{r.stdout.split()[-1] if r.stdout.split() else 0} spectra as training data (.npz)"))


def _classify_steps(steps: Steps, board: Path, model: str, as_pi) -> None:
    """Every example of ``model`` classified with both backends: labels right, the same probabilities."""
    examples = sorted((board / "opt/raman-edge/models" / model).glob("examples/*/*"))
    files = " ".join(f"'/{p.relative_to(board)}'" for p in examples)
    results = {}

    def right(r, backend):
        rows = labelled(r.stdout)
        results[backend] = rows
        good = sum(row["label"] == Path(row["file"]).parent.name for row in rows)
        return r.returncode == 0 and good == len(examples), f"{good} of {len(examples)} right"

    for backend in ("numpy", "tflite"):
        steps.run(f"classify {model} --backend {backend}",
                  as_pi(f"raman-device classify --model /opt/raman-edge/models/{model} --backend {backend} {files}"),
                  lambda r, backend=backend: right(r, backend))
    if len(results) == 2 and len(results["numpy"]) == len(results["tflite"]) == len(examples):
        gap = max(abs(a["probabilities"][k] - b["probabilities"][k])
                  for a, b in zip(results["numpy"], results["tflite"]) for k in a["probabilities"])
        steps.record(f"{model}: numpy and tflite agree", gap <= 1e-6, 0.0, f"largest difference {gap:.1e}")


def _legacy_steps(steps: Steps, board: Path, unpacked: str, as_pi) -> None:
    """The legacy installer over the default one: a clean environment with tflite-runtime."""
    probe = ("import importlib.util as u, numpy; "
             "print(numpy.__version__, *(u.find_spec(m) is not None for m in "
             "('tflite_runtime', 'ai_edge_litert', 'ml_dtypes')))")

    def clean(r):
        version, tflite, litert, dtypes = r.stdout.split()[-4:]
        ok = r.returncode == 0 and version.split(".")[0] == "1" and tflite == "True" and litert == dtypes == "False"
        return ok, f"numpy {version}, tflite_runtime {tflite}, ai_edge_litert {litert}, ml_dtypes {dtypes}"

    steps.run("legacy installer over the default",
              as_pi(f"tar xzf {unpacked}.tar.gz && cd {unpacked} && sudo ./install.sh --operator pi && "
                    f"/opt/raman-edge/venv/bin/python -c \"{probe}\""), clean)
    model = "/opt/raman-edge/models/sers-pesticides"
    steps.run("legacy: classify --backend tflite",
              as_pi(f"raman-device classify --model {model} --backend tflite {model}/examples/*/*"),
              lambda r: (r.returncode == 0 and all(row["label"] == Path(row["file"]).parent.name
                                                   for row in labelled(r.stdout)),
                         f"{len(labelled(r.stdout))} right"))
