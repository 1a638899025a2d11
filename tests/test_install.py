"""Installing on a board: the offline installer (make installer) and raman-device install, staged in a directory.

The installer is built for this machine's platform (``--target host``, the same code path as the board's
targets; pip fetches the wheels from the package index, as the test environment's own installation did),
and its ``install.sh`` is run exactly as on the board, only rooted in a directory. The same installers on an
emulated board, offline, under qemu: ``make board-test`` (tools/board).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHIPPED_LIBRARIES, SHIPPED_MODELS

import device
from device.service.config import ConfigError, parse_config
from device.service.install import (
    CONFIG,
    SIGNING_KEY,
    InstallError,
    Layout,
    check_sums,
    install,
    parse_usb_id,
    requiring_signatures,
    system_steps,
    udev_rule,
    usb_identity,
)
from tools.installer import TARGETS, target_settings

ROOT = Path(__file__).resolve().parents[1]
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


@pytest.fixture(scope="module")
def installer(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    before = checkout_state()
    r = subprocess.run([sys.executable, "-m", "tools", "installer", "--target", "host", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert checkout_state() == before  # nothing written into the checkout (no build/, no *.egg-info)
    (tree,) = out.glob("raman-edge-*-host")
    assert sorted(p.name for p in out.iterdir()) == [tree.name, f"{tree.name}.tar.gz"]
    return tree


def checkout_state() -> str:
    """Every file of the checkout git sees, ignored ones included, but caches (Python, tools, emulated boards)."""
    r = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    caches = ("__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "build/roots/", "build/wheels/",
              "build/board-test")
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
    assert venv.is_symlink() and os.readlink(venv).startswith("venv-0")  # relative, so also right on the board
    assert sorted(p.name for p in venv.parent.glob("venv*")) == ["venv", os.readlink(venv)]
    assert (root / "etc/systemd/system/raman-edge.service").read_bytes() == \
        (ROOT / "deploy/raman-edge.service").read_bytes()
    assert (root / "etc/systemd/system/raman-edge-uplink.service").read_bytes() == \
        (ROOT / "deploy/raman-edge-uplink.service").read_bytes()
    config = parse_config((root / "etc/raman-edge/raman-edge.toml").read_text())
    assert (root / config.model.bundle.relative_to("/") / "model.json").is_file()
    assert config.data_directory == Path("/var/lib/raman-edge")
    assert (root / "var/lib/raman-edge").stat().st_mode & 0o777 == 0o750
    assert os.readlink(root / "usr/local/bin/raman-device") == "/opt/raman-edge/venv/bin/raman-device"
    rule = (root / "etc/udev/rules.d/99-raman-edge.rules").read_text()
    assert 'ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", ATTRS{serial}=="A9XYZ"' in rule
    assert 'SYMLINK+="raman-spectrometer"' in rule
    installed = sorted(p.name for p in (root / "opt/raman-edge/models").iterdir())
    assert installed == sorted(("LICENSES", "libraries") + SHIPPED_MODELS)
    assert sorted(p.name for p in (root / "opt/raman-edge/models/libraries").iterdir()) == sorted(SHIPPED_LIBRARIES)
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


def run_install_sh(installer: Path, root: Path, *args: str, python: str = BASE_PYTHON) -> subprocess.CompletedProcess:
    """``install.sh ARGS`` staged under ``root``."""
    env = dict(os.environ, RAMAN_EDGE_ROOT=str(root), PYTHON=python)
    return subprocess.run(["sh", str(installer / "install.sh"), *args], capture_output=True, text=True, env=env)


def test_targets_name_release_machine_and_runtime():
    assert set(TARGETS) == {"bookworm-aarch64", "bookworm-aarch64-legacy", "trixie-aarch64", "bookworm-x86_64",
                            "bookworm-x86_64-legacy", "trixie-x86_64"}
    bookworm, trixie = target_settings("bookworm-aarch64"), target_settings("trixie-aarch64")
    assert (bookworm["python"], trixie["python"]) == ("3.11", "3.13")
    assert bookworm["platforms"][0] == "manylinux_2_36_aarch64" and trixie["platforms"][0] == "manylinux_2_41_aarch64"
    assert "linux_aarch64" in trixie["platforms"] and not any("x86_64" in p for p in trixie["platforms"])
    assert bookworm["extras"] == "device,gpio,uplink"
    assert target_settings("bookworm-aarch64-legacy")["extras"] == "tflite,gpio,uplink"
    assert list(trixie["from_source"]) == ["lgpio==0.2.2.0"] and bookworm["from_source"] == {}
    with pytest.raises(ValueError, match="unknown target 'trixie-aarch64-legacy'"):
        target_settings("trixie-aarch64-legacy")  # tflite-runtime has no wheel for Python 3.13


@pytest.mark.slow
def test_installer_carries_pip_so_the_board_needs_no_python3_venv(installer):
    (pip_wheel,) = (installer / "wheelhouse").glob("pip-*.whl")
    assert pip_wheel.name.split("-")[1] in (installer / "wheelhouse/requirements.txt").read_text()


@pytest.mark.slow
def test_a_port_with_nothing_plugged_in_is_refused_before_anything_is_made(installer, tmp_path):
    root = tmp_path / "board"
    r = run_install_sh(installer, root, "--port", str(tmp_path / "ttyUSB0"))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"install.sh: --port {tmp_path / 'ttyUSB0'}: no such serial port on this board")
    assert not root.exists()  # not even the environment's directory


@pytest.mark.slow
def test_another_python_is_refused_naming_the_installer_to_use(installer, tmp_path):
    other = tmp_path / "python3"
    other.write_text("#!/bin/sh\necho 3.13\n")
    other.chmod(0o755)
    r = run_install_sh(installer, tmp_path / "board", python=str(other))
    assert r.returncode == 1 and "is for Python %d.%d, but" % sys.version_info[:2] in r.stderr
    assert "use the installer for this board's release" in r.stderr and not (tmp_path / "board").exists()


@pytest.mark.slow
def test_a_failed_installation_leaves_the_board_as_it_was(installer, tmp_path):
    """A step that fails after the environment, models and configuration were laid out undoes all of them."""
    root = tmp_path / "board"
    assert run_install_sh(installer, root, "--usb-id", "0403:6001").returncode == 0
    venv = root / "opt/raman-edge/venv"
    config = root / "etc/raman-edge/raman-edge.toml"
    config.write_text(config.read_text().replace("min_confidence = 0.8", "min_confidence = 0.85"))
    (root / "usr/lib/sysusers.d/raman-edge.conf").unlink()
    (root / "usr/lib/sysusers.d/raman-edge.conf").mkdir()  # the unit's user entry cannot be written now
    before = tree_state(root)
    given = tmp_path / "new.toml"
    given.write_text(config.read_text().replace("min_confidence = 0.85", "min_confidence = 0.95"))
    r = run_install_sh(installer, root, "--config", str(given))
    assert r.returncode != 0
    assert "undone: the installation stopped" in r.stdout and "the board keeps what it had" in r.stderr
    assert tree_state(root) == before  # configuration, models, links: as they were; no new environment left
    assert "min_confidence = 0.85" in config.read_text() and venv.is_symlink()


@pytest.mark.slow
def test_reinstalling_makes_a_new_environment_and_keeps_only_the_one_before(installer, tmp_path):
    root = tmp_path / "board"
    links = []
    for _ in range(3):
        assert run_install_sh(installer, root).returncode == 0
        links.append(os.readlink(root / "opt/raman-edge/venv"))
    assert len(set(links)) == 3
    assert sorted(p.name for p in (root / "opt/raman-edge").glob("venv-*")) == sorted(links[1:])
    (root / "opt/raman-edge/models/sers-pesticides/stale-file").write_text("from an older installer")
    assert run_install_sh(installer, root).returncode == 0
    assert not (root / "opt/raman-edge/models/sers-pesticides/stale-file").exists()  # bundles replaced whole


@pytest.mark.slow
def test_an_environment_of_an_older_installer_is_replaced_by_the_link(installer, tmp_path):
    """Installers before this one made /opt/raman-edge/venv a directory; it is replaced, and restored on failure."""
    root = tmp_path / "board"
    old = root / "opt/raman-edge/venv"
    old.mkdir(parents=True)
    (old / "stale-wheel").write_text("ml-dtypes requiring numpy 2")
    assert run_install_sh(installer, root).returncode == 0
    assert old.is_symlink() and not (root / "opt/raman-edge/.venv.previous").exists()


def tree_state(root: Path) -> dict:
    """Every path under ``root``: a link's target, a file's bytes, or 'dir'."""
    state = {}
    for p in sorted(root.rglob("*")):
        if "__pycache__" in p.parts:
            continue
        key = str(p.relative_to(root))
        state[key] = os.readlink(p) if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
    return state


def test_layout_undo_restores_files_links_and_directories(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/a.conf").write_text("old")
    (root / "opt/models/m").mkdir(parents=True)
    (root / "opt/models/m/model.json").write_text("old model")
    (root / "opt/venv").mkdir()  # an old environment directory
    new_model = tmp_path / "new-m"
    new_model.mkdir()
    (new_model / "model.json").write_text("new model")
    before = tree_state(root)
    layout = Layout(root)
    layout.write(Path("/etc/a.conf"), b"new")
    layout.write(Path("/etc/b.conf"), b"created")
    layout.directory(new_model, Path("/opt/models/m"))
    layout.link(Path("/opt/venv"), "venv-2")
    layout.link(Path("/usr/bin/cmd"), "/opt/venv/bin/cmd")
    assert (root / "etc/a.conf").read_text() == "new" and (root / "opt/models/m/model.json").read_text() == "new model"
    assert layout.undo() == []
    assert tree_state(root) == before
    layout = Layout(root)
    layout.write(Path("/etc/a.conf"), b"new")
    layout.link(Path("/opt/venv"), "venv-2")
    layout.done()
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["a.conf"]  # nothing kept beside it
    assert os.readlink(root / "opt/venv") == "venv-2" and not (root / "opt/.venv.previous").exists()


def test_without_systemd_only_the_user_steps_run():
    steps = [" ".join(s) for s in system_steps(rule=True, operator="pi", enable=True, systemd=False)]
    assert steps == ["systemd-sysusers /usr/lib/sysusers.d/raman-edge.conf",
                     "chown raman-edge:raman-edge /var/lib/raman-edge", "usermod --append --groups raman-edge pi"]
    assert system_steps(rule=False, operator=None, enable=False)[-1] == ["systemctl", "try-restart", "raman-edge"]


@pytest.mark.slow
def test_an_image_that_is_not_a_root_file_system_is_refused(installer, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAMAN_EDGE_ROOT"}
    if os.geteuid() != 0:
        pytest.skip("--image needs root")
    r = subprocess.run(["sh", str(installer / "install.sh"), "--image", str(tmp_path)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 1 and "not the root file system of an image (no etc/os-release)" in r.stderr
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text("ID=debian\n")
    r = subprocess.run(["sh", str(installer / "install.sh"), "--image", str(tmp_path), "--port", "/dev/ttyUSB0"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "give --usb-id" in r.stderr


def test_requiring_signatures_replaces_the_section_and_keeps_the_others():
    example = (ROOT / "deploy/raman-edge.toml").read_text()
    once = requiring_signatures(example)
    config = parse_config(once, CONFIG)
    assert config.signatures.required and config.signatures.public_key == SIGNING_KEY
    assert config.library.path == parse_config(example, CONFIG).library.path
    elsewhere = once.replace(str(SIGNING_KEY), "/etc/old.pub") + "[sst]\nvalidity_h = 24\n"
    again = parse_config(requiring_signatures(elsewhere.replace("required = true", "required = false")), CONFIG)
    assert again.signatures.public_key == SIGNING_KEY and again.signatures.required
    assert again.sst.validity_h == 24


@pytest.mark.slow
def test_signing_key_installs_the_public_key_and_requires_signatures(installer, tmp_path):
    from device.inference.signature import key_id, load_public_keys
    from trainer.signing import PRIVATE_FILE, PUBLIC_FILE, keygen, load_private_key, sign

    keygen(tmp_path / "keys")
    key, public = load_private_key(tmp_path / "keys" / PRIVATE_FILE), tmp_path / "keys" / PUBLIC_FILE
    unsigned_board = tmp_path / "unsigned-board"
    with pytest.raises(InstallError, match="model.bundle /opt/raman-edge/models/sers-pesticides would be refused "
                                           "with --signing-key.*it is not signed"):
        install(installer, unsigned_board, signing_key=public, log=lambda m: None)
    assert not unsigned_board.exists()
    copy = linked_copy(installer, tmp_path / "copy")
    for d in (copy / "models/sers-pesticides", copy / "models/libraries/sers-pesticides"):
        sign(d, key)  # a new file beside the linked ones: the installer itself is unchanged
    root = tmp_path / "board"
    lines = []
    install(copy, root, signing_key=public, log=lines.append)
    assert (root / SIGNING_KEY.relative_to("/")).read_bytes() == public.read_bytes()
    config = parse_config((root / CONFIG.relative_to("/")).read_text(), CONFIG)
    assert config.signatures.required and config.signatures.public_key == SIGNING_KEY
    keys = load_public_keys(root / SIGNING_KEY.relative_to("/"))
    assert any(key_id(key.public_key()) in ln for ln in lines) and list(keys) == [key_id(key.public_key())]
    assert (root / "opt/raman-edge/models/sers-pesticides/signature.json").is_file()
