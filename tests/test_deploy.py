"""The shipped systemd unit passes systemd's own checks, and its exposure stays low."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "raman-edge.service"


def rendered(tmp_path) -> Path:
    """The unit with ExecStart pointing at this environment's raman-device (verify checks it exists)."""
    exe = Path(sys.executable).parent / "raman-device"
    unit = tmp_path / "raman-edge.service"
    unit.write_text(UNIT.read_text().replace("/opt/raman-edge/venv/bin/raman-device", str(exe)))
    return unit


def test_unit_verifies(tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze is needed (Debian package systemd)"
    r = subprocess.run(["systemd-analyze", "verify", str(rendered(tmp_path))], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_unit_exposure_is_low(tmp_path):
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(rendered(tmp_path))],
                       capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout).group(1))
    assert score <= 1.0, r.stdout


def test_unit_essentials():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=raman-edge",
                 "SupplementaryGroups=dialout gpio", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "StateDirectory=raman-edge", "PrivateTmp=yes",
                 "SystemCallFilter=mbind",  # numpy's OpenBLAS calls it at import: SIGSYS without (make unit-test)
                 "ExecStart=/opt/raman-edge/venv/bin/raman-device run --config /etc/raman-edge/raman-edge.toml"):
        assert line in text, line


def unit_settings() -> dict:
    """``key -> [values]`` of the unit's settings, comments left out."""
    settings = {}
    for line in UNIT.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_working_directory_is_the_services_own():
    """The working directory is one the service owns.

    lgpio makes its notification pipes (.lgd-nfy*) there; with none set it is /, which the service user
    cannot write, and no pin library starts.
    """
    s = unit_settings()
    (directory,) = s["WorkingDirectory"]
    owned = [f"/run/{d}" for d in s.get("RuntimeDirectory", [])] + [f"/var/lib/{d}" for d in s["StateDirectory"]]
    assert directory in owned


def test_board_detection_is_not_hidden():
    """The board model stays readable: gpiozero reads /proc/cpuinfo or /proc/device-tree (ProcSubset=pid hides both)."""
    s = unit_settings()
    assert s.get("ProcSubset", ["all"]) == ["all"]
    assert s["ProtectProc"] == ["invisible"]  # other processes stay hidden


UPLINK_UNIT = ROOT / "deploy" / "raman-edge-uplink.service"


def test_uplink_unit_verifies_and_its_exposure_stays_low(tmp_path):
    """The uplink needs the network (so more exposure than the service's), and nothing else."""
    exe = Path(sys.executable).parent / "raman-edge-uplink"
    unit = tmp_path / "raman-edge-uplink.service"
    unit.write_text(UPLINK_UNIT.read_text().replace("/opt/raman-edge/venv/bin/raman-edge-uplink", str(exe)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout).group(1))
    assert score <= 2.0, r.stdout
    text = UPLINK_UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "User=raman-edge", "StateDirectory=raman-edge", "PrivateDevices=yes",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "ProtectSystem=strict",
                 "ExecStart=/opt/raman-edge/venv/bin/raman-edge-uplink --config /etc/raman-edge/raman-edge.toml"):
        assert line in text, line
    assert "PrivateNetwork=yes" in UNIT.read_text()  # the measuring service itself keeps no network
