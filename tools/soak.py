"""``raman-device soak``: the measurement service against each simulator with injected serial faults.

For each protocol and each of a few example spectra of the model (one sample under the laser, so a
driver's retries cannot put another sample in front of it), the service first measures the sample on a
clean line (the reference verdict), then repeatedly on a faulty one: bytes dropped, duplicated,
corrupted or truncated, garbage, stalls, device resets and NACKs, and the port vanishing and returning
(:mod:`firmware_bridge.sim.faults`). Counted:

* acquisitions and faults injected (by kind);
* errors reported and recoveries (a verdict right after an error);
* wrong verdicts: a label other than the reference, where the reference was confident (>= 0.9) and the
  detector resolves Raman bands (not the C12880MA): a fault must give an error, never another answer
  (must be 0);
* crashes: an exception out of :meth:`Service.measure` (must be 0);
* laser left on after a measurement that did not say so (must be 0); a laser that cannot be switched off
  because the port is gone is reported (a ``LaserError``: "cut its power") and counted apart;
* records written against replies (must be equal) and reported verdicts missing from the record (0).
"""
from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path

from device.inference.bundle import load_bundle
from device.service.config import parse_config
from device.service.measurement import Service
from firmware_bridge import registry

#: protocol: (its configuration beyond port and laser line, verdicts checkable). The C12880MA's ~15 nm
#: resolution cannot resolve Raman bands: its verdicts vary between clean measurements of one sample, so only
#: the loop is checked. The laser line is the simulator's (the registry's ``simulated_laser_nm``).
PROTOCOLS = {"obp": ("integration_s = 0.05\n", True),
             "tcd1304": ("integration_s = 0.05\ncoefficients = [772.5, 0.086, -2.1e-6]\n", True),
             "microspec": ("", False)}
SAMPLES = 3
#: Least reference confidence for a verdict to be checkable.
CHECKABLE = 0.9


def _service(protocol: str, url: str, bundle: Path, data: Path) -> Service:
    extra, _ = PROTOCOLS[protocol]
    laser = registry.protocol(protocol).simulated_laser_nm
    return Service(parse_config(f'[spectrometer]\nprotocol = "{protocol}"\nport = "{url}"\nlaser_nm = {laser}\n'
                                f'{extra}[model]\nbundle = "{bundle}"\n[data]\ndirectory = "{data}"\n'
                                'reserve_mb = 0\n'))


def _line(svc: Service):
    s = svc._spectrometer
    return None if s is None or s.port is None else getattr(s.port, "line", None)


def soak(model, protocols=tuple(PROTOCOLS), acquisitions: int = 300, fault_rate: float = 0.05, seed: int = 0,
         log=print) -> dict:
    """Run the soak (see the module docstring); returns the counts per protocol."""
    bundle = load_bundle(model)
    picks, seen = [], set()
    for path, label in bundle.examples:
        if label not in seen:
            picks.append(path)
            seen.add(label)
    picks = picks[:SAMPLES]
    results = {}
    with tempfile.TemporaryDirectory(prefix="raman-edge-soak-") as tmp:
        for protocol in protocols:
            t0 = time.perf_counter()
            c = {"acquisitions": 0, "faults": {}, "errors": 0, "recoveries": 0, "verdicts": 0, "checkable": 0,
                 "wrong_verdicts": 0, "crashes": 0, "laser_left_on": 0, "laser_errors": 0, "replies": 0, "records": 0,
                 "reported_not_recorded": 0, "error_kinds": {}}
            for k, sample in enumerate(picks):
                base = f"sim://{protocol}?paced=0&seed={seed + k}&scene={sample}"
                ref_svc = _service(protocol, base, bundle.path, Path(tmp) / f"ref-{protocol}-{k}")
                ref = ref_svc.measure("reference")
                ref_svc.close()
                checkable = PROTOCOLS[protocol][1] and ref.get("ok") and (ref["confidence"] or 0) >= CHECKABLE
                svc = _service(protocol, f"{base}&faults={fault_rate}", bundle.path, Path(tmp) / f"{protocol}-{k}")
                lines, reported, failed_before = {}, {}, False
                n = acquisitions // len(picks) + (k < acquisitions % len(picks))
                for _ in range(n):
                    c["acquisitions"] += 1
                    try:
                        r = svc.measure("soak")
                    except Exception:  # the point of the soak: nothing may escape
                        c["crashes"] += 1
                        log(f"CRASH ({protocol}): {traceback.format_exc(limit=3)}")
                        continue
                    c["replies"] += 1
                    laser_error = "laser could not be switched off" in r.get("error", "")
                    c["laser_errors"] += laser_error
                    line = _line(svc)
                    if line is not None:
                        lines[id(line)] = line
                        if svc._spectrometer.has_laser and not laser_error:  # on, and nobody was told
                            c["laser_left_on"] += bool(line.device.laser_on)
                    if r.get("ok"):
                        c["verdicts"] += 1
                        c["recoveries"] += failed_before
                        reported[r["id"]] = r["verdict"]
                        if checkable:
                            c["checkable"] += 1
                            c["wrong_verdicts"] += r["label"] != ref["label"]
                        failed_before = False
                    else:
                        c["errors"] += 1
                        kind = r["error"].split(":")[0][:60]
                        c["error_kinds"][kind] = c["error_kinds"].get(kind, 0) + 1
                        failed_before = True
                if svc.store is not None:
                    c["records"] += svc.store.count()
                    recorded = {rec.id: rec.verdict for rec in svc.store.query()}
                    c["reported_not_recorded"] += sum(recorded.get(i) != v for i, v in reported.items())
                svc.close()
                for line in lines.values():
                    for kind, count in (line.faults.counts if line.faults is not None else {}).items():
                        c["faults"][kind] = c["faults"].get(kind, 0) + count
            c["seconds"] = round(time.perf_counter() - t0, 1)
            results[protocol] = c
            log(summary_line(protocol, c))
    return results


def summary_line(protocol: str, c: dict) -> str:
    """One line of a protocol's soak counts ``c`` (as :func:`soak` returns them per protocol)."""
    return (f"{protocol:9s} acquisitions {c['acquisitions']}, faults injected {sum(c['faults'].values())}, "
            f"errors reported {c['errors']}, recoveries {c['recoveries']}, verdicts {c['verdicts']} "
            f"({c['checkable']} checkable), wrong verdicts {c['wrong_verdicts']}, crashes {c['crashes']}, "
            f"laser left on {c['laser_left_on']} (laser errors reported {c['laser_errors']}), "
            f"records {c['records']} / replies {c['replies']}, "
            f"reported but not recorded {c['reported_not_recorded']} ({c['seconds']} s)")


def passed(results: dict) -> bool:
    """Every promise kept: no wrong verdict, crash, laser left on or lost record."""
    return all(c["wrong_verdicts"] == 0 and c["crashes"] == 0 and c["laser_left_on"] == 0
               and c["records"] == c["replies"] and c["reported_not_recorded"] == 0 for c in results.values())
