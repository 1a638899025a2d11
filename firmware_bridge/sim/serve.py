"""Building simulated spectrometers by protocol name, and serving them to drivers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .devices import (
    GroupGetsDevice,
    MicrospecDevice,
    OBPDevice,
    TCD1304Device,
    c12880_instrument,
    c12880_uno_instrument,
    sts_instrument,
    tcd1304_instrument,
)
from .faults import FaultInjector
from .instrument import Scene
from .line import SimulatedLine

PROTOCOLS = ("obp", "tcd1304", "microspec", "groupgets")
_DEFAULT_SCENE = Path(__file__).resolve().parents[2] / "models" / "sers-pesticides" / "examples"


def default_scene() -> Scene:
    """The shipped example spectra if present, else a single band at 1000 cm-1 on a slope."""
    if _DEFAULT_SCENE.is_dir():
        return Scene.from_path(_DEFAULT_SCENE)
    x = np.linspace(100, 3200, 3101)
    return Scene([(x, 1000 * np.exp(-0.5 * ((x - 1000) / 6) ** 2) + 50 + 0.02 * x)], ["test band"])


def make_device(protocol: str, scene: Scene | None = None, seed: int = 0, laser_nm: float | None = None,
                firmware: str = "2019"):
    """A simulated device of ``protocol`` (one of :data:`PROTOCOLS`) looking at ``scene``."""
    scene = scene or default_scene()
    if protocol == "obp":
        return OBPDevice(sts_instrument(laser_nm or 785.0), scene, seed)
    if protocol == "tcd1304":
        if firmware not in ("2017", "2019"):
            raise ValueError(f"firmware is 2017 or 2019, not {firmware!r}")
        return TCD1304Device(tcd1304_instrument(laser_nm or 785.0), scene, seed, firmware)
    if protocol == "microspec":
        return MicrospecDevice(c12880_instrument(laser_nm or 532.0), scene, seed)
    if protocol == "groupgets":
        return GroupGetsDevice(c12880_uno_instrument(laser_nm or 532.0), scene, seed)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def make_line(protocol: str, options: dict) -> SimulatedLine:
    """A line to a new simulated device, from ``sim://`` URL options."""
    unknown = set(options) - {"seed", "paced", "scene", "laser", "firmware", "faults"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}")
    scene = Scene.from_path(options["scene"]) if "scene" in options else None
    device = make_device(protocol, scene, int(options.get("seed", 0)),
                         float(options["laser"]) if "laser" in options else None, options.get("firmware", "2019"))
    faults = FaultInjector(float(options["faults"]), int(options.get("seed", 0)) + 1) if "faults" in options else None
    return SimulatedLine(device, paced=options.get("paced", "1") not in ("0", "false", "no"), faults=faults)

