"""``raman-bridge``: spectrometers over serial: simulate, probe, acquire, calibrate."""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from firmware_bridge.commandline import add_subcommand, refuse_existing, run
from firmware_bridge.errors import BridgeError, CalibrationError
from firmware_bridge.registry import PROTOCOLS, firmware_generations, make_driver

#: Integration time set when ``--integration`` is not given, s (devices whose time is fixed get none).
DEFAULT_INTEGRATION_S = 0.1


def _floats(text: str, option: str) -> tuple:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) for v in values):
        raise BridgeError(f"{option}: expected comma-separated finite numbers, got {text!r}")
    return values


def _number(kind, valid, what: str):
    """An argparse type: a finite ``kind`` (int or float) for which ``valid`` holds.

    Anything else gives the one error ``argument --x: expected WHAT, got 'TEXT'``.
    """
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not valid(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


LASER_NM = _number(float, lambda v: 200 <= v <= 1100, "the laser line in nm, 200-1100")


def _driver(args):
    """The driver the device options ask for (not yet open)."""
    coefficients = _floats(args.coefficients, "--coefficients") if args.coefficients else None
    return make_driver(args.protocol, args.port, args.baud, coefficients, args.firmware)


def _configure(spec, args) -> None:
    """Apply ``--integration`` (when not given, the default, unless the device's is fixed) and ``--averages``."""
    if args.integration is not None or not spec.fixed_integration:
        spec.set_integration_time(DEFAULT_INTEGRATION_S if args.integration is None else args.integration)
    spec.set_averages(args.averages)


def _measure(args):
    from firmware_bridge.measure import measure

    with _driver(args) as spec:
        _configure(spec, args)
        return spec.identify(), measure(spec, args.laser, dark_frame=not args.no_dark)


def cmd_simulate(args) -> int:
    """``raman-bridge simulate``: serve a simulated spectrometer on a pty until Ctrl-C or SIGTERM.

    Prints the pty's path, then ``laser on`` or ``laser off`` at each change of the simulated laser, so
    that an observer outside the driver can tell whether it was left on.
    """
    from firmware_bridge.sim.faults import FaultInjector
    from firmware_bridge.sim.instrument import Scene
    from firmware_bridge.sim.line import SimulatedLine
    from firmware_bridge.sim.pty import PtyServer
    from firmware_bridge.sim.serve import make_device

    device = make_device(args.protocol, Scene.from_path(args.scene) if args.scene else None, args.seed,
                         args.laser, args.firmware)
    faults = FaultInjector(args.faults, args.seed + 1) if args.faults else None
    link = Path(args.link) if args.link else None
    if link is not None and link.exists() and not link.is_symlink():
        raise BridgeError(f"--link {link}: a file that is not a symbolic link is there; choose another path")
    device.on_laser = lambda on: print(f"laser {'on' if on else 'off'}", flush=True)
    server = PtyServer(SimulatedLine(device, paced=not args.instant, faults=faults)).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if link is not None:
            made = link.with_name(f".{link.name}.{os.getpid()}")
            made.symlink_to(server.path)
            os.replace(made, link)
        print(f"{args.protocol} simulator on {server.path}" + (f" (also {link})" if link else "")
              + f"  (laser {device.instrument.laser_nm:g} nm; Ctrl-C stops)", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if link is not None and link.is_symlink() and os.readlink(link) == server.path:
            link.unlink()
        server.stop()
        if faults is not None:
            print(f"faults injected: {faults.counts}", flush=True)
    return 0


def cmd_probe(args) -> int:
    """``raman-bridge probe``: identify the device and print one calibrated spectrum's summary as JSON."""
    info, m = _measure(args)
    top = int(np.argmax(m.intensity))
    print(json.dumps({**info, "points": int(m.shift.size),
                      "shift_range_cm-1": [round(float(m.shift[0]), 2), round(float(m.shift[-1]), 2)],
                      "max_intensity": round(float(m.intensity[top]), 2), "at_cm-1": round(float(m.shift[top]), 2),
                      "raw_max": float(m.raw.max()), "dark_subtracted": m.meta["dark_subtracted"],
                      "integration_s": m.meta["integration_s"], "averages": args.averages, "laser_nm": args.laser},
                     indent=2))
    return 0


def cmd_acquire(args) -> int:
    """``raman-bridge acquire``: save one calibrated spectrum as CSV."""
    refuse_existing(args.out, args.force)  # before the device is touched
    info, m = _measure(args)
    header = "\n".join(f"# {k}: {v}" for k, v in {**info, "integration_s": m.meta["integration_s"],
                                                   "averages": args.averages, "laser_nm": args.laser,
                                                   "dark_subtracted": m.meta["dark_subtracted"]}.items())
    body = "".join(f"{x:.4f},{y:.4f}\n" for x, y in zip(m.shift, m.intensity))
    with open(args.out, "w") as f:
        f.write(header + "\nraman_shift_cm-1,intensity\n" + body)
    print(f"wrote {m.shift.size} points ({m.shift[0]:.1f} to {m.shift[-1]:.1f} cm-1) to {args.out}")
    return 0


def cmd_calibrate(args) -> int:
    """``raman-bridge calibrate``: fit the wavelength polynomial to a reference's lines."""
    from firmware_bridge.calibration import fit_wavelengths, raman_shift, wavelength_of_shift
    from firmware_bridge.measure import acquire_signal
    from firmware_bridge.raman_standards import RAMAN_STANDARDS

    refuse_existing(args.out, args.force)  # before the device is touched

    if args.reference in RAMAN_STANDARDS:
        lines_nm = wavelength_of_shift(RAMAN_STANDARDS[args.reference], args.laser)
    else:
        values = np.loadtxt(Path(args.reference), comments="#", ndmin=1, usecols=0)
        lines_nm = values if args.unit == "nm" else wavelength_of_shift(values, args.laser)
    guess = _floats(args.guess, "--guess") if args.guess else None
    with _driver(args) as spec:
        _configure(spec, args)
        signal, _, _ = acquire_signal(spec, dark_frame=not args.no_dark)
        if guess is None:
            guess = tuple(np.polynomial.polynomial.polyfit(np.arange(signal.size), spec.wavelengths(), args.degree))
    fit = fit_wavelengths(signal, lines_nm, guess, args.degree, min_lines=args.min_lines, max_rms_nm=args.max_rms)
    print(f"{'pixel':>9} {'reference nm':>13} {'residual nm':>12} {'residual cm-1':>14}")
    for p, r, e in zip(fit.pixels, fit.reference_nm, fit.residual_nm):
        print(f"{p:9.2f} {r:13.3f} {e:12.4f} {raman_shift(r, args.laser) - raman_shift(r - e, args.laser):14.3f}")
    if fit.unresolved_nm:
        print(f"left out, unresolved at a line width of {fit.line_width:.1f} pixels: "
              + ", ".join(f"{r:.3f}" for r in fit.unresolved_nm) + " nm")
    print(f"{len(fit.pixels)} of {fit.in_range} lines in range, rms residual {fit.rms_nm:.4f} nm; "
          "coefficients (nm, pixel from 0): " + ",".join(f"{c:.10g}" for c in fit.coefficients))
    if args.out:
        Path(args.out).write_text(json.dumps({"coefficients": fit.coefficients, "laser_nm": args.laser,
                                              "reference": args.reference, "lines": len(fit.pixels),
                                              "rms_residual_nm": fit.rms_nm,
                                              "pixels": [round(float(p), 3) for p in fit.pixels],
                                              "reference_nm": [float(r) for r in fit.reference_nm]},
                                             indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def cmd_calibrate_response(args) -> int:
    """``raman-bridge calibrate-response``: the instrument's relative response from a measured standard."""
    from firmware_bridge.calibration import raman_shift
    from firmware_bridge.measure import acquire_signal
    from firmware_bridge.response import STANDARDS, fit_response, standard_from_file

    refuse_existing(args.out, args.force)  # before the device is touched
    standard = STANDARDS[args.standard] if args.standard in STANDARDS else standard_from_file(args.standard)
    dark = read_dark(args.dark) if args.dark else None
    with _driver(args) as spec:
        _configure(spec, args)
        signal, raw, meta = acquire_signal(spec, dark_frame=not args.no_dark)
        shift = raman_shift(spec.wavelengths(), args.laser)
    if dark is not None:
        if meta["dark_subtracted"]:
            raise CalibrationError(f"--dark {args.dark}: this device takes its own dark frame; drop --dark")
        if dark[1].size != signal.size or not (dark[0][0] <= shift.min() + 1 and dark[0][-1] >= shift.max() - 1):
            raise CalibrationError(f"--dark {args.dark}: {dark[1].size} points over {dark[0][0]:.0f}-{dark[0][-1]:.0f} "
                                   f"cm-1, the spectrometer has {signal.size} pixels over {shift.min():.0f}-"
                                   f"{shift.max():.0f}: acquire the dark on this device with the same --laser")
        signal = signal - np.interp(shift, *dark)
    elif not meta["dark_subtracted"]:
        raise CalibrationError("the standard was measured without a dark frame (the device cannot switch its light "
                               "itself, or --no-dark): with the source off or covered, save a dark with raman-bridge "
                               "acquire ... --out dark.csv at the same integration and averages, and give it with "
                               "--dark dark.csv")
    response = fit_response(shift, signal, standard, args.laser, raw=raw, full_scale=meta.get("full_scale"),
                            inverted=bool(meta.get("inverted")), max_gain=args.max_gain)
    masked = response.masked_ranges(shift)
    print(f"response of {response.values.size} pixels from {standard.name}: lowest {response.values.min():.3f} of "
          f"the peak; masked (correction above {response.max_gain:g}x or outside the standard's range): "
          + (", ".join(f"{a:.0f}-{b:.0f}" for a, b in masked) + " cm-1" if masked else "none"))
    Path(args.out).write_text(json.dumps({**response.to_json(), "source": standard.source,
                                          "serial": meta.get("serial")}, indent=1) + "\n")
    print(f"wrote {args.out}; give it as spectrometer.response in the service's configuration")
    return 0


def read_dark(path) -> tuple[np.ndarray, np.ndarray]:
    """A dark spectrum saved by ``raman-bridge acquire`` (its ``#`` header and column names skipped).

    Returns
    -------
    shift, counts : ndarray, shape (N,)
        Raman shift (cm-1, ascending) and the counts there.

    Raises
    ------
    CalibrationError
        If a line is not two numbers, or the file has no rows.
    """
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.startswith("#") or not line.strip() or line.startswith("raman_shift"):
                continue
            try:
                x, y = (float(v) for v in line.split(","))
            except ValueError:
                raise CalibrationError(f"--dark {path}, line {number}: expected two numbers (cm-1,counts) as "
                                       f"raman-bridge acquire writes them, got {line.strip()[:40]!r}") from None
            rows.append((x, y))
    if not rows:
        raise CalibrationError(f"--dark {path}: no spectrum in it; save one with raman-bridge acquire")
    data = np.array(sorted(rows))
    return data[:, 0], data[:, 1]


def _names(which) -> str:
    """The names of the registered protocols for which ``which(protocol)`` holds, for help texts."""
    return ", ".join(name for name, p in PROTOCOLS.items() if which(p))


def _firmware_option(p) -> None:
    p.add_argument("--firmware", choices=firmware_generations(),
                   help=f"firmware generation ({_names(lambda q: q.firmware_generations)}; default: the newest)")


def _device_options(p, laser_required=True) -> None:
    p.add_argument("--protocol", choices=PROTOCOLS, required=True)
    p.add_argument("--port", required=True, help="serial port (/dev/ttyACM0, /dev/ttyUSB0, a simulator's /dev/pts/N)")
    p.add_argument("--baud", type=int, help="baud rate (default: the protocol's: " + "; ".join(
        f"{name} {q.default_baud} of {min(q.baud_rates)}-{max(q.baud_rates)}" for name, q in PROTOCOLS.items()) + ")")
    p.add_argument("--laser", type=LASER_NM, required=laser_required, help="measured laser line, nm")
    p.add_argument("--integration", type=_number(float, lambda v: v > 0, "an integration time in seconds, above 0"),
                   help=f"integration time, s (default {DEFAULT_INTEGRATION_S:g}; not for "
                        f"{_names(lambda q: q.fixed_integration)}, whose firmware fixes it)")
    p.add_argument("--averages", type=_number(int, lambda v: v >= 1, "a whole number of scans, 1 or more"),
                   default=1, help="scans to average (default 1, at most 5000)")
    p.add_argument("--coefficients", help="wavelength polynomial c0,c1,... nm (not for "
                                          f"{_names(lambda q: q.stores_calibration)}, whose device stores its own; "
                                          "required for " + _names(lambda q: q.needs_calibration) + "; default: the "
                                          "driver's)")
    _firmware_option(p)
    p.add_argument("--no-dark", action="store_true",
                   help=f"do not take a dark frame ({_names(lambda q: q.has_laser)}: devices with a laser line)")


def build_parser() -> argparse.ArgumentParser:
    """The ``raman-bridge`` argument parser; its protocol choices are the registry's."""
    p = argparse.ArgumentParser(prog="raman-bridge", description="Spectrometers over serial: "
                                + ", ".join(q.description for q in PROTOCOLS.values()) + ".")
    sub = p.add_subparsers(dest="command", required=True)
    s = add_subcommand(sub, "simulate", help="serve a simulated spectrometer on a pseudo-terminal")
    s.add_argument("--protocol", choices=PROTOCOLS, required=True)
    s.add_argument("--scene", help="Raman spectra to show: .npz (X, wavenumber), a two-column file or a folder "
                                   "(default: the shipped example spectra)")
    s.add_argument("--faults", type=_number(float, lambda v: 0 <= v <= 1, "a fault rate from 0 to 1"), default=0.0,
                   help="fault rate per reply, 0-1 (default 0)")
    s.add_argument("--seed", type=_number(int, lambda v: v >= 0, "a whole number, 0 or more"), default=0,
                   help="seed of the simulated noise and faults")
    s.add_argument("--laser", type=LASER_NM, help="the simulated laser line, nm (default: the protocol's: " + ", ".join(
        f"{name} {q.simulated_laser_nm:g}" for name, q in PROTOCOLS.items()) + ")")
    _firmware_option(s)
    s.add_argument("--instant", action="store_true", help="answer at once instead of at the real transfer rate")
    s.add_argument("--link", help="also reach the pty as this path: a symbolic link made at start and removed at "
                                  "exit, a stable name as a udev rule gives a real device (default: none)")
    s.set_defaults(func=cmd_simulate)
    pr = add_subcommand(sub, "probe", help="identify a device and summarise one calibrated spectrum")
    _device_options(pr)
    pr.set_defaults(func=cmd_probe)
    a = add_subcommand(sub, "acquire", help="save one calibrated spectrum as CSV (Raman shift, intensity)")
    _device_options(a)
    a.add_argument("--out", required=True, help="CSV file to write (an existing one only with --force)")
    a.add_argument("--force", action="store_true", help="replace --out if it exists")
    a.set_defaults(func=cmd_acquire)
    c = add_subcommand(sub, "calibrate", help="fit the pixel -> wavelength polynomial to a reference")
    _device_options(c)
    c.add_argument("--reference", required=True,
                   help="polystyrene, cyclohexane, or a file of line positions (one per line; see --unit)")
    c.add_argument("--unit", choices=("nm", "cm-1"), default="nm", help="unit of a reference file (lamps: nm, air)")
    c.add_argument("--guess", help="starting polynomial c0,c1,... nm (default: the device's or --coefficients)")
    c.add_argument("--degree", type=_number(int, lambda v: 1 <= v <= 5, "a polynomial degree from 1 to 5"),
                   default=3, help="degree of the polynomial (default 3)")
    c.add_argument("--min-lines", type=_number(int, lambda v: v >= 1, "a whole number of lines, 1 or more"),
                   help="lines the fit must use (default: degree + 3, and half the resolved reference lines in "
                        "range; never fewer than degree + 2)")
    c.add_argument("--max-rms", type=_number(float, lambda v: v > 0, "an rms residual in nm, above 0"),
                   help="largest accepted rms residual, nm (default: a quarter pixel)")
    c.add_argument("--out", help="write the fit (coefficients, residual) as JSON (an existing file only with --force; "
                                 "default: print only)")
    c.add_argument("--force", action="store_true", help="replace --out if it exists")
    c.set_defaults(func=cmd_calibrate)
    r = add_subcommand(sub, "calibrate-response", help="measure the relative intensity response with a standard")
    _device_options(r)
    r.add_argument("--standard", default="srm2241",
                   help="srm2241 (NIST SRM 2241, 785 nm; default) or a file of the standard's curve: Raman shift "
                        "(cm-1) and relative intensity, e.g. from a calibrated white-light source's certificate")
    r.add_argument("--dark", metavar="FILE",
                   help="a dark spectrum (raman-bridge acquire --out, the source off or covered, same integration "
                        "and averages) for a device that cannot take its own dark frame (default: the device's own)")
    r.add_argument("--max-gain", type=_number(float, lambda v: v > 1, "a correction factor above 1"), default=10.0,
                   help="largest correction of any pixel; pixels needing more are masked (default 10)")
    r.add_argument("--out", required=True, help="response file to write (JSON; an existing one only with --force)")
    r.add_argument("--force", action="store_true", help="replace --out if it exists")
    r.set_defaults(func=cmd_calibrate_response)
    return p


def main(argv=None) -> int:
    """Run ``raman-bridge`` with ``argv`` (default: the command line); returns the exit status."""
    return run(lambda a: a.func(a), build_parser().parse_args(argv), (BridgeError, OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
