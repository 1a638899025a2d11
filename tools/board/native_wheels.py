"""Wheels built from source for a target whose Python has none on the package index (lgpio on Python 3.13).

Each requirement of the target's ``from_source`` (:func:`tools.installer.target_settings`) is downloaded as a
source distribution here, then built into a wheel with the release's own compiler and Python in an emulated
root of that release (:mod:`tools.board.roots`), offline. The wheels land in ``out`` and are reused while there;
``make installer`` then gives ``out`` to the installer build, which pins them by hash like every other wheel.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.board.roots import BoardError, copy_root, in_root, mounted, remove_root, root_file_system
from tools.installer import target_settings

#: What a build of a C extension with SWIG needs in the root (lgpio's is one).
BUILD_PACKAGES = ("python3-dev", "python3-pip", "python3-setuptools", "python3-wheel", "gcc", "libc6-dev", "swig")


def wheel_for(requirement: str, directory: Path) -> Path | None:
    """The wheel of ``name==version`` in ``directory``, or None."""
    return next(iter(sorted(directory.glob(requirement.replace("==", "-") + "-*.whl"))), None)


def build_native_wheels(target: str, out: Path, log=print) -> list[Path]:
    """Build the target's ``from_source`` wheels into ``out`` (those not there yet); every such wheel.

    Raises
    ------
    BoardError
        When a source cannot be downloaded or does not build.
    """
    settings = target_settings(target)
    wanted = settings["from_source"]
    out.mkdir(parents=True, exist_ok=True)
    todo = {req: env for req, env in wanted.items() if wheel_for(req, out) is None}
    if todo:
        base = root_file_system(settings["release"], settings["arch"], BUILD_PACKAGES)
        with tempfile.TemporaryDirectory(prefix="raman-edge-sources-") as tmp:
            sources = Path(tmp)
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary=:all:",
                                "--dest", str(sources), *todo], capture_output=True, text=True)
            if r.returncode != 0:
                raise BoardError(f"downloading the sources of {', '.join(todo)} failed: {r.stderr.strip()[-2000:]}")
            root = copy_root(base, base.with_name(base.name + "-build"))
            try:
                shutil.copytree(sources, root / "var/tmp/sources")
                with mounted(root, cpuinfo=None):
                    for req, env in todo.items():
                        name = req.split("==")[0]
                        (sdist,) = (root / "var/tmp/sources").glob(f"{name}-*.tar.gz")
                        log(f"building {req} for Python {settings['python']} on {settings['release']} "
                            f"{settings['arch']} (emulated)")
                        cmd = in_root(root, ["python3", "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                                             "--no-build-isolation", "--wheel-dir", "/var/tmp/wheels",
                                             f"/var/tmp/sources/{sdist.name}"], env=env)
                        r = subprocess.run(cmd, capture_output=True, text=True)
                        if r.returncode != 0:
                            raise BoardError(f"building {req} failed:\n{(r.stdout + r.stderr).strip()[-3000:]}")
                for wheel in (root / "var/tmp/wheels").glob("*.whl"):
                    shutil.copy2(wheel, out / wheel.name)
            finally:
                remove_root(root)
    built = [wheel_for(req, out) for req in wanted]
    for req, wheel in zip(wanted, built):
        if wheel is None:
            raise BoardError(f"building {req} gave no wheel")
        log(f"{wheel}")
    return built
