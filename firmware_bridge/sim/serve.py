"""Building simulated spectrometers by protocol name, and serving them to drivers."""
from __future__ import annotations

from pathlib import Path

from firmware_bridge.registry import protocol
from firmware_bridge.sim.faults import FaultInjector
from firmware_bridge.sim.instrument import Scene
from firmware_bridge.sim.line import SimulatedLine

#: The scene shown when none is given: the twelve example spectra of the sers-pesticides model (SERS of
#: pesticides on spinach, 500-2000 cm-1), on one Raman-shift axis; shipped with the package.
DEFAULT_SCENE = Path(__file__).with_name("default_scene.npz")
#: Options a ``sim://`` URL takes.
URL_OPTIONS = ("seed", "paced", "scene", "laser", "firmware", "faults")


def default_scene() -> Scene:
    """The scene of :data:`DEFAULT_SCENE`."""
    return Scene.from_path(DEFAULT_SCENE)


def make_device(name: str, scene: Scene | None = None, seed: int = 0, laser_nm: float | None = None,
                firmware: str | None = None):
    """A simulated device of the registered protocol ``name`` looking at ``scene`` (default: :func:`default_scene`).

    Raises
    ------
    ValueError
        An unknown protocol, or a firmware generation it does not have.
    """
    return protocol(name).simulated_device(scene or default_scene(), seed, laser_nm, firmware)


def make_line(name: str, options: dict) -> SimulatedLine:
    """A line to a new simulated device of protocol ``name``, from ``sim://`` URL options (:data:`URL_OPTIONS`)."""
    unknown = set(options) - set(URL_OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}")
    scene = Scene.from_path(options["scene"]) if "scene" in options else None
    device = make_device(name, scene, int(options.get("seed", 0)),
                         float(options["laser"]) if "laser" in options else None, options.get("firmware"))
    faults = FaultInjector(float(options["faults"]), int(options.get("seed", 0)) + 1) if "faults" in options else None
    return SimulatedLine(device, paced=options.get("paced", "1") not in ("0", "false", "no"), faults=faults)
