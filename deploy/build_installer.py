"""Build the offline installer for a board (``make installer``), on a workstation with network.

The installer is one directory, also packed as ``.tar.gz``, and nothing else is written (the raman-edge
wheel is built from a copy of the checkout in a temporary directory)::

    raman-edge-VERSION-TARGET/
        install.sh        run on the board as root: venv, wheels, then ``raman-device install``
        INSTALLER         version, target platform, Python version and extras (key=value lines)
        wheelhouse/       the raman-edge wheel and every dependency, binary wheels only
        wheelhouse/requirements.txt   each wheel pinned with its SHA-256 (pip --require-hashes)
        models/           the shipped model bundles and their data licences
        deploy/           systemd unit, udev rule, sysusers entry, example configuration
        LICENSE
        SHA256SUMS        of every file above

Targets: ``bookworm-aarch64`` (Raspberry Pi OS bookworm 64-bit: CPython 3.11, glibc 2.36) and ``host``
(this machine's platform and Python, for trying the installation here).

Usage: ``python deploy/build_installer.py [--target bookworm-aarch64|host] [--extras device,gpio] [--out dist]``
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from device.fileio import sha256_file

ROOT = Path(__file__).resolve().parents[1]
#: What the raman-edge wheel is built from (pyproject.toml, its packages, readme and licence).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "device", "trainer", "firmware_bridge")
DEPLOY_FILES = ("raman-edge.service", "99-raman-edge.rules", "raman-edge.sysusers", "raman-edge.toml")
# Raspberry Pi OS bookworm: CPython 3.11 and glibc 2.36, so any manylinux tag up to 2_36 runs there.
TARGETS = {
    "bookworm-aarch64": {
        "python": "3.11",
        "platforms": [f"manylinux_2_{v}_aarch64" for v in range(36, 16, -1)] + ["manylinux2014_aarch64",
                                                                                "linux_aarch64"],
    },
}


def pip(*args: str) -> None:
    """Run pip with ``args``; exit with its error output when it fails."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"build_installer: {' '.join(cmd[3:6])} ... failed:\n{r.stderr.strip()[-3000:]}")


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


def build(target: str, extras: str, out: Path) -> Path:
    """Write the installer for ``target`` with raman-edge ``extras`` under ``out``; its directory."""
    python = TARGETS[target]["python"] if target in TARGETS else "%d.%d" % sys.version_info[:2]
    with tempfile.TemporaryDirectory(prefix="raman-edge-wheel-") as tmp:
        built = build_wheel(Path(tmp))
        version = built.name.split("-")[1]  # the wheel's, that is device.__version__
        name = f"raman-edge-{version}-{target}"
        tree = out / name
        shutil.rmtree(tree, ignore_errors=True)
        wheels = tree / "wheelhouse"
        wheels.mkdir(parents=True)
        own = Path(shutil.move(built, wheels / built.name))
    platform = []
    if target in TARGETS:
        platform = [a for p in TARGETS[target]["platforms"] for a in ("--platform", p)]
        platform += ["--python-version", python, "--implementation", "cp", "--abi", "cp" + python.replace(".", "")]
    pip("download", "--quiet", "--only-binary=:all:", *platform, "--dest", str(wheels), f"{own}[{extras}]")
    files = sorted(wheels.glob("*.whl"))
    (wheels / "requirements.txt").write_text(
        "# Every wheel of this installer, pinned by hash: pip install --no-index --require-hashes -r ...\n"
        + "".join(wheel_requirement(w) + "\n" for w in files))

    for model in sorted((ROOT / "models").iterdir()):
        if (model / "model.json").exists() or model.name == "LICENSES":
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
          f"{sum(1 for _ in (tree / 'models').glob('*/model.json'))} models, Python {python}")
    return tree


def main(argv=None) -> int:
    """Build the installer the command line asks for."""
    p = argparse.ArgumentParser(description="Build the offline installer for a board.")
    p.add_argument("--target", default="bookworm-aarch64", choices=[*TARGETS, "host"])
    p.add_argument("--extras", default="device,gpio", help="raman-edge extras to install on the board")
    p.add_argument("--out", type=Path, default=ROOT / "dist")
    args = p.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    build(args.target, args.extras, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
