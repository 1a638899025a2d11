"""Building simulated spectrometers by protocol name, and serving them to drivers."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from firmware_bridge.registry import protocol
from firmware_bridge.sim.faults import FaultInjector
from firmware_bridge.sim.instrument import Scene
from firmware_bridge.sim.line import SimulatedLine

#: The scene shown when none is given: the twelve example spectra of the sers-pesticides model (SERS of
#: pesticides on spinach, 500-2000 cm-1), on one Raman-shift axis; shipped with the package.
DEFAULT_SCENE = Path(__file__).with_name("default_scene.npz")
#: Options a ``sim://`` URL takes.
URL_OPTIONS = ("seed", "paced", "scene", "laser", "firmware", "faults", "response", "resolution", "axis_error",
               "brightness", "hold", "burn")
#: Largest wavelength-calibration error (nm) and widest line spread (pixels) a simulated instrument takes.
MAX_AXIS_ERROR_NM = 5.0
MAX_RESOLUTION_PIXELS = 50.0


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
    scene = Scene.from_path(options["scene"]) if "scene" in options else default_scene()
    scene.held = options.get("hold", "0") not in ("0", "false", "no")
    device = make_device(name, scene, int(options.get("seed", 0)),
                         float(options["laser"]) if "laser" in options else None, options.get("firmware"))
    device.instrument = _varied(device.instrument, options)
    if "burn" in options:
        device.burn_per_s = float(options["burn"])
        if not 0 <= device.burn_per_s <= 100:
            raise ValueError(f"burn {options['burn']!r}: give a share of the strongest band per second, 0 to 100")
    faults = FaultInjector(float(options["faults"]), int(options.get("seed", 0)) + 1) if "faults" in options else None
    return SimulatedLine(device, paced=options.get("paced", "1") not in ("0", "false", "no"), faults=faults)


def _varied(instrument, options: dict):
    """``instrument`` with the URL's ``response`` (C0:C1:...), ``resolution`` (px), ``axis_error`` (nm), ``brightness``.

    Another unit of the same model differs in the first three: its optics weight the range differently, its
    line spread is wider or narrower, and its wavelength polynomial is off by up to its calibration's error.
    ``brightness`` is the sample and the laser: laser power times the sample's Raman response, as a factor
    on the instrument's nominal signal.
    """
    changes = {}
    if "brightness" in options:
        factor = float(options["brightness"])
        if not 1e-4 <= factor <= 1e6:
            raise ValueError(f"brightness {options['brightness']!r}: give a factor from 0.0001 to 1000000")
        changes["gain"] = instrument.gain * factor
    if "response" in options:
        coefficients = tuple(float(c) for c in options["response"].split(":"))
        if not np.all(np.polynomial.polynomial.polyval(np.linspace(-1, 1, 201), coefficients) > 0):
            raise ValueError(f"response {options['response']!r}: must be positive over the detector (-1 to 1)")
        changes["response_coefficients"] = coefficients
    if "resolution" in options:
        changes["resolution_pixels"] = float(options["resolution"])
        if not 0.5 <= changes["resolution_pixels"] <= MAX_RESOLUTION_PIXELS:
            raise ValueError(f"resolution {options['resolution']!r}: give 0.5 to {MAX_RESOLUTION_PIXELS:g} pixels")
    if "axis_error" in options:
        changes["axis_error_nm"] = float(options["axis_error"])
        if not abs(changes["axis_error_nm"]) <= MAX_AXIS_ERROR_NM:
            raise ValueError(f"axis_error {options['axis_error']!r}: give at most {MAX_AXIS_ERROR_NM:g} nm either way")
    return replace(instrument, **changes)
