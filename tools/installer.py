"""Build the offline installer for a board (``make installer``), on a workstation with network.

The installer is one directory, also packed as ``.tar.gz``, and nothing else is written (the raman-edge
wheel is built from a copy of the checkout in a temporary directory)::

    raman-edge-VERSION-TARGET/
        install.sh        run on the board as root: checks, a new venv from the wheels, ``raman-device install``
        INSTALLER         version, target, Python version and extras (key=value lines)
        wheelhouse/       the raman-edge wheel, pip and every dependency, binary wheels only
        wheelhouse/requirements.txt   each wheel pinned with its SHA-256 (pip --require-hashes)
        models/           the shipped model bundles and their data licences
        deploy/           systemd unit, udev rule, sysusers entry, example configuration
        LICENSE
        SHA256SUMS        of every file above

A target is ``RELEASE-ARCH`` or ``RELEASE-ARCH-legacy`` (:data:`TARGETS`): the Debian release of a Raspberry
Pi OS image (bookworm: Python 3.11, glibc 2.36; trixie: Python 3.13, glibc 2.41), the machine (``aarch64`` for
64-bit Pi OS on a Pi 3/4/5, ``x86_64`` for PCs), and with ``-legacy`` the frozen ``tflite-runtime`` 2.14 with
NumPy < 2 instead of LiteRT (bookworm only: it has no wheel for newer Pythons). ``host`` is this machine's
platform and Python, for trying the installation here. A dependency with no binary wheel on the package index
for the target's Python (lgpio on Python 3.13) is built from its source in an emulated root of that release
(:mod:`tools.board.native_wheels`, ``make installer``) and given with ``--wheels DIR``.

Usage: ``python -m tools installer [--target TARGET] [--wheels DIR] [--out dist]``
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from device.fileio import sha256_file

ROOT = Path(__file__).resolve().parents[1]
#: What the raman-edge wheel is built from (pyproject.toml, its packages, readme and licence).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "device", "trainer", "firmware_bridge", "fleet")
DEPLOY_FILES = ("raman-edge.service", "raman-edge-uplink.service", "99-raman-edge.rules", "raman-edge.sysusers",
                "raman-edge.toml")
#: Debian release of each Raspberry Pi OS image -> (its CPython, its glibc's minor version).
RELEASES = {"bookworm": ("3.11", 36), "trixie": ("3.13", 41)}
ARCHES = ("aarch64", "x86_64")
#: raman-edge extras of the default targets and of the ``-legacy`` ones (uplink: the fleet's MQTT client and the
#: signature check).
EXTRAS = {"": "device,gpio,uplink", "-legacy": "tflite,gpio,uplink"}
#: Dependencies with no binary wheel on the package index for a release's Python, by release: built from
#: their source in an emulated root (lgpio's PyPI wheels stop at Python 3.12), with the build's environment.
FROM_SOURCE = {"trixie": {"lgpio==0.2.2.0": {"PYPI": "1"}}}  # PYPI=1: liblgpio linked in, as its PyPI wheels


def target_settings(target: str) -> dict:
    """``release``, ``arch``, ``python``, ``extras``, pip's ``platforms`` and the ``from_source`` builds of a target.

    Raises
    ------
    ValueError
        For a name that is not one of :data:`TARGETS`.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    release, arch, *legacy = target.split("-")
    python, glibc = RELEASES[release]
    return {"release": release, "arch": arch, "python": python, "extras": EXTRAS["-legacy" if legacy else ""],
            # any manylinux tag up to the release's glibc runs there, and wheels built on it (linux_*)
            "platforms": [f"manylinux_2_{v}_{arch}" for v in range(glibc, 16, -1)]
            + [f"manylinux2014_{arch}", f"linux_{arch}"],
            "from_source": FROM_SOURCE.get(release, {})}


TARGETS = tuple(f"{release}-{arch}{variant}" for release in RELEASES for arch in ARCHES for variant in EXTRAS
                if not (variant == "-legacy" and RELEASES[release][0] != "3.11"))


def pip(*args: str) -> None:
    """Run pip with ``args``; exit with its error output when it fails."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"installer: {' '.join(cmd[3:6])} ... failed:\n{r.stderr.strip()[-3000:]}")


def build_wheel(dest: Path) -> Path:
    """The raman-edge wheel, built in ``dest`` from a copy of :data:`WHEEL_SOURCES`, the checkout untouched."""
    with tempfile.TemporaryDirectory(prefix="raman-edge-wheel-") as tmp:
        for name in WHEEL_SOURCES:
            src, copy = ROOT / name, Path(tmp) / name
            if src.is_dir():
                shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
            else:
                shutil.copy2(src, copy)
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), tmp)
    return next(dest.glob("raman_edge-*.whl"))


def wheel_requirement(path: Path) -> str:
    """``name==version --hash=sha256:...`` for one wheel file (names and versions as in the file name)."""
    name, version = path.name.split("-")[:2]
    return f"{name}=={version} --hash=sha256:{sha256_file(path)}"


def build(target: str, out: Path, wheels: Path | None = None) -> Path:
    """Write the installer for ``target`` (or ``host``) under ``out``; its directory.

    ``wheels`` holds the wheels built from source for the target (:mod:`tools.board.native_wheels`).
    """
    settings = target_settings(target) if target != "host" else None
    python = settings["python"] if settings else "%d.%d" % sys.version_info[:2]
    extras = settings["extras"] if settings else EXTRAS[""]
    with tempfile.TemporaryDirectory(prefix="raman-edge-wheel-") as tmp:
        built = build_wheel(Path(tmp))
        version = built.name.split("-")[1]  # the wheel's, that is device.__version__
        name = f"raman-edge-{version}-{target}"
        tree = out / name
        shutil.rmtree(tree, ignore_errors=True)
        wheelhouse = tree / "wheelhouse"
        wheelhouse.mkdir(parents=True)
        own = Path(shutil.move(built, wheelhouse / built.name))
    platform = []
    if settings:
        platform = [a for p in settings["platforms"] for a in ("--platform", p)]
        platform += ["--python-version", python, "--implementation", "cp", "--abi", "cp" + python.replace(".", "")]
    links = ["--find-links", str(wheels)] if wheels else []
    # pip itself too: install.sh runs it from its wheel, so the board needs no python3-venv (ensurepip)
    pip("download", "--quiet", "--only-binary=:all:", *platform, *links, "--dest", str(wheelhouse),
        f"{own}[{extras}]", "pip")
    files = sorted(wheelhouse.glob("*.whl"))
    (wheelhouse / "requirements.txt").write_text(
        "# Every wheel of this installer, pinned by hash: pip install --no-index --require-hashes -r ...\n"
        + "".join(wheel_requirement(w) + "\n" for w in files))

    for model in sorted((ROOT / "models").iterdir()):
        if (model / "model.json").exists() or model.name in ("LICENSES", "libraries"):
            shutil.copytree(model, tree / "models" / model.name)
    (tree / "deploy").mkdir()
    for f in DEPLOY_FILES:
        shutil.copy2(ROOT / "deploy" / f, tree / "deploy" / f)
    shutil.copy2(ROOT / "deploy" / "install.sh", tree / "install.sh")
    shutil.copy2(ROOT / "LICENSE", tree / "LICENSE")
    (tree / "INSTALLER").write_text(f"version={version}\ntarget={target}\npython={python}\nextras={extras}\n")

    listed = sorted(p for p in tree.rglob("*") if p.is_file())
    (tree / "SHA256SUMS").write_text("".join(f"{sha256_file(p)}  {p.relative_to(tree)}\n" for p in listed))
    archive = out / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname=name)
    size = sum(p.stat().st_size for p in files) / 1e6
    print(f"{archive}: {len(files)} wheels ({size:.1f} MB), "
          f"{sum(1 for _ in (tree / 'models').glob('*/model.json'))} models, "
          f"{sum(1 for _ in (tree / 'models').glob('libraries/*/library.json'))} libraries, Python {python}, "
          f"extras {extras}")
    return tree


def make_installer(target: str, out: Path, log=print) -> Path:
    """The installer for ``target`` under ``out`` (its ``.tar.gz``), first building the wheels it needs from source."""
    wheels = None
    if target != "host" and target_settings(target)["from_source"]:
        from tools.board.native_wheels import build_native_wheels  # it needs the targets of this module

        wheels = ROOT / "build" / "wheels" / target
        build_native_wheels(target, wheels, log=log)
    out.mkdir(parents=True, exist_ok=True)
    tree = build(target, out, wheels)
    return tree.with_name(tree.name + ".tar.gz")
