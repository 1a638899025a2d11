"""Installing on a board: the offline installer (make installer) and raman-device install, staged in a directory.

The installer is built for this machine's platform (``--target host``, the same code path as the board's
``bookworm-aarch64``; pip fetches the wheels from the package index, as the test environment's own
installation did), and its ``install.sh`` is run exactly as on the board, only rooted in a directory.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHIPPED_MODELS

import device
from device.service.config import ConfigError, parse_config
from device.service.install import (
    InstallError,
    check_sums,
    install,
    parse_usb_id,
    system_steps,
    udev_rule,
    usb_identity,
)

ROOT = Path(__file__).resolve().parents[1]
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


@pytest.fixture(scope="module")
def installer(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    before = checkout_state()
    r = subprocess.run([sys.executable, str(ROOT / "deploy" / "build_installer.py"), "--target", "host",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert checkout_state() == before  # nothing written into the checkout (no build/, no *.egg-info)
    (tree,) = out.glob("raman-edge-*-host")
    assert sorted(p.name for p in out.iterdir()) == [tree.name, f"{tree.name}.tar.gz"]
    return tree


def checkout_state() -> str:
    """Every file of the checkout git sees, ignored ones included, but the caches of Python and the tools."""
    r = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    caches = ("__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis")
    return "\n".join(ln for ln in r.stdout.splitlines() if not any(c in ln for c in caches))


@pytest.fixture(scope="module")
def staged(installer, tmp_path_factory):
    """The installer's install.sh run as on the board, rooted in a directory; (root, its output)."""
    root = tmp_path_factory.mktemp("board")
    env = dict(os.environ, RAMAN_EDGE_ROOT=str(root), PYTHON=BASE_PYTHON)
    r = subprocess.run(["sh", str(installer / "install.sh"), "--usb-id", "0403:6001:A9XYZ", "--operator", "pi"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return root, r.stdout


def linked_copy(installer: Path, dest: Path) -> Path:
    """A copy of the installer made of hard links (replace a file before changing it)."""
    shutil.copytree(installer, dest, copy_function=os.link)
    return dest


def replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


@pytest.mark.slow
def test_installer_pins_every_wheel_by_hash(installer):
    wheels = sorted(p.name for p in (installer / "wheelhouse").glob("*.whl"))
    lines = [ln for ln in (installer / "wheelhouse" / "requirements.txt").read_text().splitlines()
             if not ln.startswith("#")]
    assert len(lines) == len(wheels) and all("==" in ln and "--hash=sha256:" in ln for ln in lines)
    names = {w.split("-")[0].lower() for w in wheels}
    assert {"raman_edge", "numpy", "pyserial", "ai_edge_litert", "gpiozero", "lgpio"} <= names
    assert not any(w.endswith(".tar.gz") for w in wheels)
    check_sums(installer)  # every file listed and intact
    info = (installer / "INSTALLER").read_text().splitlines()
    assert info[0] == f"version={device.__version__}" and info[2] == "python=%d.%d" % sys.version_info[:2]
    assert f"raman_edge-{device.__version__}-py3-none-any.whl" in wheels  # the one version source


@pytest.mark.slow
def test_staged_installation_lays_out_everything(staged, installer):
    root, out = staged
    venv = root / "opt/raman-edge/venv"
    assert (root / "etc/systemd/system/raman-edge.service").read_bytes() == \
        (ROOT / "deploy/raman-edge.service").read_bytes()
    config = parse_config((root / "etc/raman-edge/raman-edge.toml").read_text())
    assert (root / config.model.bundle.relative_to("/") / "model.json").is_file()
    assert config.data_directory == Path("/var/lib/raman-edge")
    assert (root / "var/lib/raman-edge").stat().st_mode & 0o777 == 0o750
    assert os.readlink(root / "usr/local/bin/raman-device") == "/opt/raman-edge/venv/bin/raman-device"
    rule = (root / "etc/udev/rules.d/99-raman-edge.rules").read_text()
    assert 'ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", ATTRS{serial}=="A9XYZ"' in rule
    assert 'SYMLINK+="raman-spectrometer"' in rule
    installed = sorted(p.name for p in (root / "opt/raman-edge/models").iterdir())
    assert installed == sorted(("LICENSES",) + SHIPPED_MODELS)
    steps = out[out.index("would now run:"):]
    assert "systemd-sysusers" in steps and "usermod --append --groups raman-edge pi" in steps
    # the environment holds the device runtime from the wheelhouse, and no ML framework
    r = subprocess.run([str(venv / "bin/python"), "-c",
                        "import numpy, serial, gpiozero, lgpio, ai_edge_litert, importlib.util as u; "
                        "print(u.find_spec('tensorflow') is None and u.find_spec('scipy') is None)"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "True", r.stderr


@pytest.mark.parametrize("backend", ["numpy", "tflite"])
@pytest.mark.parametrize("name", SHIPPED_MODELS)
@pytest.mark.slow
def test_installed_command_classifies_every_installed_model(staged, name, backend):
    root, _ = staged
    model = root / "opt/raman-edge/models" / name
    examples = sorted(model.glob("examples/*/*"))
    r = subprocess.run([str(root / "opt/raman-edge/venv/bin/raman-device"), "classify", "--model", str(model),
                        "--backend", backend, *map(str, examples)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    labels = [line.split('"label": "')[1].split('"')[0] for line in r.stdout.splitlines()]
    assert labels == [p.parent.name for p in examples]


@pytest.mark.slow
def test_sysusers_entry_creates_the_service_user(staged):
    if not shutil.which("systemd-sysusers"):
        pytest.fail("systemd-sysusers is needed (Debian package systemd)")
    root, _ = staged
    r = subprocess.run(["systemd-sysusers", f"--root={root}", "raman-edge.conf"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    passwd = (root / "etc/passwd").read_text()
    assert "raman-edge:x:" in passwd and ":/var/lib/raman-edge:/usr/sbin/nologin" in passwd
    groups = {ln.split(":")[0]: ln.split(":")[3] for ln in (root / "etc/group").read_text().splitlines()}
    assert "raman-edge" in groups["dialout"] and "raman-edge" in groups["gpio"]


@pytest.mark.slow
def test_reinstall_keeps_the_edited_configuration(staged, installer):
    root, _ = staged
    config = root / "etc/raman-edge/raman-edge.toml"
    edited = config.read_text().replace("min_confidence = 0.8", "min_confidence = 0.9")
    config.write_text(edited)
    lines = []
    install(installer, root, log=lines.append)
    assert config.read_text() == edited
    assert any("(kept)" in ln for ln in lines)


@pytest.mark.slow
def test_a_given_configuration_is_checked_before_anything_is_written(installer, tmp_path):
    bad = tmp_path / "my.toml"
    bad.write_text((ROOT / "deploy/raman-edge.toml").read_text().replace('"obp"', '"usb"')
                   .replace("averages = 4", "averages = 0"))
    root = tmp_path / "board"
    with pytest.raises(ConfigError) as exc:
        install(installer, root, config=bad, log=lambda m: None)
    assert str(bad) in str(exc.value) and "spectrometer.protocol" in str(exc.value) \
        and "spectrometer.averages" in str(exc.value)
    assert not root.exists()


@pytest.mark.slow
def test_a_configuration_naming_a_model_nobody_ships_is_refused(installer, tmp_path):
    cfg = tmp_path / "my.toml"
    cfg.write_text((ROOT / "deploy/raman-edge.toml").read_text().replace("sers-pesticides", "my-model"))
    with pytest.raises(InstallError, match="model.bundle /opt/raman-edge/models/my-model is neither"):
        install(installer, tmp_path / "board", config=cfg, log=lambda m: None)


@pytest.mark.parametrize("damage, expected", [
    (lambda b: replace(b / "models/sers-pesticides/model.npz", b"not a model"),
     "models/sers-pesticides/model.npz: damaged"),
    (lambda b: (b / "deploy/raman-edge.service").unlink(), "deploy/raman-edge.service: missing"),
    (lambda b: replace(b / "SHA256SUMS", b"garbage\n"), "SHA256SUMS line 1"),
    (lambda b: (b / "SHA256SUMS").unlink(), "not an unpacked offline installer"),
])
@pytest.mark.slow
def test_a_damaged_installer_is_refused_and_nothing_is_written(installer, tmp_path, damage, expected):
    copy = linked_copy(installer, tmp_path / "copy")
    damage(copy)
    root = tmp_path / "board"
    with pytest.raises(InstallError, match=expected):
        install(copy, root, log=lambda m: None)
    assert not root.exists()


def test_cli_reports_install_errors_without_a_traceback(tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent / "raman-device"), "install", "--from", str(tmp_path),
                        "--root", str(tmp_path / "board")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "make installer" in r.stderr
    assert "Traceback" not in r.stderr


def fake_sysfs(tmp_path: Path, tty: str, chain: list[str], ids: dict) -> Path:
    """/sys/class/tty/TTY/device -> /sys/devices/CHAIN..., with idVendor etc. in the directory ``ids`` names."""
    sysfs = tmp_path / "sys"
    node = sysfs / "devices" / Path(*chain)
    node.mkdir(parents=True)
    for name, value in ids.items():
        where, key = name.split("/")
        (sysfs / "devices" / Path(*chain[:int(where)]) / key).write_text(value + "\n")
    (sysfs / "class/tty" / tty).mkdir(parents=True)
    (sysfs / "class/tty" / tty / "device").symlink_to(node)
    return sysfs


def test_usb_identity_of_an_ftdi_adapter_and_a_cdc_acm_device(tmp_path):
    ftdi = fake_sysfs(tmp_path / "a", "ttyUSB0", ["usb1", "1-1", "1-1:1.0", "ttyUSB0"],
                      {"2/idVendor": "0403", "2/idProduct": "6001", "2/serial": "A9XYZ"})
    assert usb_identity("/dev/ttyUSB0", ftdi) == ("0403", "6001", "A9XYZ")
    acm = fake_sysfs(tmp_path / "b", "ttyACM0", ["usb1", "1-2", "1-2:1.0"],
                     {"2/idVendor": "2457", "2/idProduct": "4200"})
    assert usb_identity("/dev/ttyACM0", acm) == ("2457", "4200", None)


def test_usb_identity_refuses_a_builtin_uart_and_a_missing_port(tmp_path):
    uart = fake_sysfs(tmp_path, "ttyAMA0", ["platform", "fe201000.serial"], {})
    with pytest.raises(InstallError, match="not a USB serial port"):
        usb_identity("/dev/ttyAMA0", uart)
    with pytest.raises(InstallError, match="no such serial port"):
        usb_identity("/dev/ttyUSB7", uart)


def test_usb_id_option_and_rule():
    assert parse_usb_id("0403:6001") == ("0403", "6001", None)
    assert parse_usb_id("2457:4200:FLMS1234") == ("2457", "4200", "FLMS1234")
    for bad in ("0403", "403:6001", "0403:6001:a b", '0403:6001:A"', "0403:6001:" + "x" * 65):
        with pytest.raises(InstallError, match="--usb-id"):
            parse_usb_id(bad)
    template = (ROOT / "deploy/99-raman-edge.rules").read_text()
    rule = udev_rule(template, "2457", "4200", None)
    assert 'ATTRS{idVendor}=="2457", ATTRS{idProduct}=="4200", SYMLINK+="raman-spectrometer"' in rule
    assert "serial" not in rule.splitlines()[1] and len(rule.splitlines()) == 2


def test_system_steps_create_the_user_before_using_it_and_reload_before_starting():
    steps = [" ".join(s) for s in system_steps(rule=True, operator="pi", enable=True)]
    order = ["systemd-sysusers", "chown raman-edge:raman-edge", "usermod", "systemctl daemon-reload",
             "udevadm control", "udevadm trigger", "systemctl enable", "systemctl restart"]
    assert [next(i for i, s in enumerate(steps) if s.startswith(o)) for o in order] == list(range(len(order)))
    assert not any(s.startswith(("udevadm", "usermod", "systemctl enable")) for s in
                   map(" ".join, system_steps(rule=False, operator=None, enable=False)))


def test_shipped_example_configuration_is_valid():
    from device.service.config import load_config

    cfg = load_config(ROOT / "deploy/raman-edge.toml")
    assert cfg.data_directory == Path("/var/lib/raman-edge")
    assert cfg.model.bundle == Path("/opt/raman-edge/models/sers-pesticides")
