"""The measurement service: one spectrometer, one model, one record; triggers call :meth:`Service.measure`.

A measurement: laser on, acquire (with a dark frame where the laser can be gated), laser off on every
path, calibrate, classify, decide (:mod:`device.inference.verdict`: below the configured confidence the
verdict is ``uncertain``), record
durably, and only then reply. A spectrum unlike every trained class (the bundle's out-of-distribution
detector, :mod:`device.inference.ood`) gets the verdict ``unknown``; a saturated, flat or too weak one
(:mod:`device.inference.quality`) is recorded and refused with the reason instead of classified. Measurements are
serialised: a trigger while one runs is answered ``busy``. At start (and on RELOAD) the model is
verified and checked on its own example spectra; if they do not come back with their expected labels,
the service stays up but refuses to report verdicts (or keeps its previous model), and says why. The
same holds for a model whose Raman-shift axis the spectrometer cannot cover (its wavelength calibration
over its pixels, for the configured laser line), checked once the spectrometer is open. Where
``[signatures] required`` is set, the model and the library must be signed by the fleet's key
(:mod:`device.inference.signature`): at start an unsigned or wrongly signed one is an error, on RELOAD it
is refused and the model in use keeps serving.
Likewise when the record cannot be written (read-only or full file system, below the configured
reserve, or the database cannot be opened): measurements are refused, before the laser is switched on,
until it can, and STATUS says why.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from device.errors import RamanEdgeError
from device.inference.analysis import identify, verify
from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier
from device.inference.library import load_library
from device.inference.quality import problems as quality_problems
from device.inference.readers import read_spectra
from device.inference.relevance import relevance, top_bands
from device.inference.resample import covers
from device.inference.resolution import coarsest_accepted, resolution_problem
from device.inference.signature import fleet_keys
from device.inference.spectrum import Spectrum
from device.inference.stopping import FULL_SCANS, StopRule
from device.inference.verdict import verdict
from device.service.acquisition import QUICK_LOOK, AdaptiveStop
from device.service.config import Config
from device.service.record import RECORD_FILE, Record, RecordError, RecordStore, iso_time
from firmware_bridge.calibration import raman_shift
from firmware_bridge.errors import BridgeError, CalibrationError, LaserError, TooBrightError
from firmware_bridge.exposure import auto_expose
from firmware_bridge.measure import accumulate, measure, signal_calibrator, switch_off
from firmware_bridge.registry import make_driver
from firmware_bridge.response import Response
from firmware_bridge.suitability import system_suitability

#: Evidence arrays of the unmixing that a model verdict's record keeps (with each ``component.I``).
UNMIXING_EVIDENCE = ("fit", "background", "residual")
#: Why an adaptive measurement with a saturated scan is rejected.
SATURATED_SCAN = ("saturated: a scan reached the detector's full scale; shorten the integration time (or set "
                  "acquisition.exposure = \"auto\") or lower the laser power")
#: What to do about a bundle that fails its self-test.
NO_EXAMPLES_FIX = ("retrain with raman-train fit (which stores self-test examples; or give them with --examples "
                   "DIR) and install the result with raman-device update-model BUNDLE")
WRONG_LABELS_FIX = ("the bundle is damaged or was built wrong: rebuild it with raman-train fit and install it with "
                    "raman-device update-model BUNDLE, or go back with raman-device update-model --rollback")


def self_test(bundle, classifier) -> dict:
    """Classify the bundle's example spectra; every expected label must come back.

    The ``reason`` of a failure says what to do about it.
    """
    failures = []
    for path, label in bundle.examples:
        try:
            got = classifier.classify(read_spectra(path)[0]).label
        except RamanEdgeError as exc:
            got = f"error: {exc}"
        if got != label:
            failures.append(f"{path.name}: expected {label}, got {got}")
    passed = bool(bundle.examples) and not failures
    if passed:
        reason = None
    elif not bundle.examples:
        reason = f"the bundle has no example spectra to check it with; {NO_EXAMPLES_FIX}"
    else:
        reason = f"{'; '.join(failures)}; {WRONG_LABELS_FIX}"
    return {"passed": passed, "examples": len(bundle.examples), "reason": reason}


def response_problem(bundle, response_path) -> str | None:
    """Why ``bundle`` cannot classify this spectrometer's spectra for want of a response correction, or None.

    A model trained on response-corrected spectra (:attr:`~device.inference.bundle.ModelBundle.response_corrected`)
    sees another instrument's shape unless the spectrometer corrects its own (``spectrometer.response``).
    """
    if bundle.response_corrected and response_path is None:
        return ("the model was trained on intensity-response-corrected spectra and spectrometer.response is not "
                "set: measure the response with raman-bridge calibrate-response and give the file as "
                "spectrometer.response")
    return None


def axis_problem(axis, shift_range: tuple[float, float], laser_nm: float) -> str | None:
    """Why a model on ``axis`` cannot classify this spectrometer's spectra, or None if it can.

    Parameters
    ----------
    axis : Axis
        The model's Raman-shift axis.
    shift_range : (float, float)
        Lowest and highest Raman shift the spectrometer delivers, cm-1.
    laser_nm : float
        The configured laser line, nm.
    """
    lo, hi = shift_range
    if covers(lo, hi, axis):
        return None
    return (f"the model's axis {axis.start:g}..{axis.stop:g} cm-1 is outside what the spectrometer covers, "
            f"{lo:.0f}..{hi:.0f} cm-1 with laser {laser_nm:g} nm; install a model trained for this range "
            "(raman-device update-model BUNDLE, or --rollback), or check spectrometer.laser_nm and the "
            "wavelength calibration")


class Service:
    """Everything a trigger needs, for one configuration.

    Parameters
    ----------
    config : Config
    laser : callable, optional
        ``laser(True/False)`` for a spectrometer without its own laser line (a GPIO output).
    indicate : callable, optional
        ``indicate(reply)`` after each measurement (status LEDs, buzzer).
    """

    def __init__(self, config: Config, laser=None, indicate=None):
        self.config = config
        self.laser = laser
        self.indicate = indicate
        self._lock = threading.Lock()
        self._spectrometer = None
        self.spectrometer_error = None
        #: The intensity response applied to every measurement (firmware_bridge.response), once it is open.
        self.response = None
        #: Lowest and highest Raman shift the spectrometer delivers, cm-1, known once it has been opened.
        self.shift_range = None
        self.counts = {"measurements": 0, "errors": 0, "busy": 0}
        keys = fleet_keys(config.signatures)
        self.bundle = load_bundle(config.model.bundle, keys)
        self.classifier = self._classifier(self.bundle)
        self.self_test = self_test(self.bundle, self._example_classifier(self.classifier))
        self.library = self._load_library(keys)
        self.store = None
        self.storage_error = self._storage_problem()
        #: (time, passed) of the last recorded suitability test, from the record (it outlives a restart).
        self._last_sst = self._recorded_sst()
        self.started = time.time()

    def _classifier(self, bundle) -> Classifier:
        """``bundle``'s classifier, broadening to its resolution from the spectrometer's when that can be done.

        When it cannot (not configured, or coarser), :meth:`_model_problem` refuses verdicts with the reason.
        """
        instrument = self.config.spectrometer.resolution_cm1
        usable = resolution_problem(instrument, bundle.resolution_cm1) is None
        return Classifier(bundle, self.config.model.backend, resolution_cm1=instrument if usable else None)

    @property
    def stop_rule(self) -> StopRule | None:
        """The model's calibrated rule for adaptive acquisition, or None (then it never stops early)."""
        return StopRule.from_card(self.bundle.card)

    def _example_classifier(self, classifier: Classifier) -> Classifier:
        """A classifier for the bundle's own examples, which are at the model's resolution already."""
        return classifier if classifier.broadening_cm1 == 0 else Classifier(classifier.bundle, classifier.backend)

    def _recorded_sst(self) -> tuple | None:
        """The time and outcome of the last suitability test in the record, or None."""
        rows = self.store.query(mode="sst", limit=1) if self.store is not None else []
        return (rows[0].time, rows[0].verdict == "PASS") if rows else None

    def _load_library(self, keys: dict | None):
        """The configured reference library, verified, with the default expected entry checked; None without one.

        ``keys``: the fleet's public keys, by one of which it must be signed (None: no signature is checked).

        Raises
        ------
        LibraryError
            A library that does not verify, or a ``library.expect`` it has no usable entry for.
        SignatureError
            With ``keys``, a library they did not sign.
        """
        settings = self.config.library
        if settings.path is None:
            return None
        library = load_library(settings.path, keys)
        if settings.expect is not None:
            library.variation(settings.expect)  # an unknown entry or too few replicates: refused at start
        return library

    def reload(self) -> dict:
        """Load the configured bundle (and library) again; switch only if it verifies and passes its self-test.

        Where signatures are required, both must be signed by the fleet's key (the key file is read again).
        Otherwise the model in use keeps serving, and the reply says why the new one was refused.
        """
        try:
            keys = fleet_keys(self.config.signatures)
            bundle = load_bundle(self.config.model.bundle, keys)
            classifier = self._classifier(bundle)
            library = self._load_library(keys)
        except RamanEdgeError as exc:  # the message names the bundle or the library
            return {"ok": False, "error": f"refused, still serving {self.bundle.model_id}: {exc}"}
        test = self_test(bundle, self._example_classifier(classifier))
        if not test["passed"]:
            return {"ok": False, "error": f"model refused, still serving {self.bundle.model_id}: it failed its "
                                          f"self-test ({test['reason']})"}
        problem = self._model_problem(bundle)
        if problem:
            return {"ok": False, "error": f"model refused, still serving {self.bundle.model_id}: {problem}"}
        with self._lock:  # never in the middle of a measurement
            previous = self.bundle.model_id
            self.bundle, self.classifier, self.self_test, self.library = bundle, classifier, test, library
        return {"ok": True, "model": bundle.model_id, "previous": previous,
                **({"library": library.library_id} if library is not None else {})}

    def _storage_problem(self) -> str | None:
        """Why a measurement could not be recorded now (opening the record if it is not open), or None."""
        if self.store is None:
            try:
                self.config.data_directory.mkdir(parents=True, exist_ok=True)
                self.store = RecordStore(self.config.data_directory / RECORD_FILE)
            except (RecordError, OSError) as exc:
                return str(exc) if isinstance(exc, RecordError) else \
                    f"the data directory {self.config.data_directory} cannot be created ({exc.strerror})"
        return self.store.storage_problem(self.config.data_reserve_mb * 1e6)

    def _model_problem(self, bundle) -> str | None:
        """Why ``bundle`` cannot classify the spectrometer's spectra, or None.

        Its intensity response and resolution are checked at once, its axis once the spectrometer's range is
        known.
        """
        problem = (response_problem(bundle, self.config.spectrometer.response)
                   or resolution_problem(self.config.spectrometer.resolution_cm1, bundle.resolution_cm1))
        if problem or self.shift_range is None:
            return problem
        return axis_problem(bundle.axis, self.shift_range, self.config.spectrometer.laser_nm)

    # -- spectrometer ---------------------------------------------------------------------------
    def spectrometer(self):
        """The open driver, opened on first use; raises BridgeError while it is missing."""
        if self._spectrometer is None:
            s = self.config.spectrometer
            driver = make_driver(s.protocol, s.port, s.baud, s.coefficients, s.firmware)
            try:
                driver.open()
                if driver.has_laser:
                    switch_off(driver.set_laser)  # a known, safe state on every (re)connection
                if not driver.fixed_integration:
                    driver.set_integration_time(s.integration_s)
                driver.set_averages(s.averages)
                shift = raman_shift(driver.wavelengths(), s.laser_nm)  # as firmware_bridge.measure computes it
                self.response = self._load_response(shift.size)
            except BridgeError as exc:
                self.spectrometer_error = str(exc)
                driver.close()
                raise
            self._spectrometer, self.spectrometer_error = driver, None
            self.shift_range = (float(shift.min()), float(shift.max()))
        return self._spectrometer

    def _load_response(self, pixels: int):
        """The configured intensity response, checked for this spectrometer's ``pixels``; None without one.

        Raises
        ------
        CalibrationError
            A response file that cannot be read, is malformed, or is for another number of pixels.
        """
        path = self.config.spectrometer.response
        if path is None:
            return None
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CalibrationError(f"spectrometer.response {path}: cannot be read ({exc}); measure it with "
                                   "raman-bridge calibrate-response") from None
        return Response.from_json(data, pixels)

    def try_connect(self) -> bool:
        """Open the spectrometer if it is not open and no measurement is running; True once it is open."""
        if self._spectrometer is not None:
            return True
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self.spectrometer()
            return True
        except BridgeError:
            return False
        finally:
            self._lock.release()

    def _laser(self, on: bool) -> None:
        if self.laser is not None:
            self.laser(on)

    # -- commands ---------------------------------------------------------------------------------
    def measure(self, trigger: str, mode: str | None = None, expected: str | None = None) -> dict:
        """One measurement, start to record; the reply says ok, the verdict, or what went wrong.

        Parameters
        ----------
        trigger : str
            What triggered it (recorded).
        mode : str, optional
            ``classify``, ``identify`` or ``verify`` (:data:`device.service.config.MODES`), or ``sst`` (the
            system suitability test, :meth:`sst`); default: the configured ``library.mode``.
        expected : str, optional
            The entry to verify against (mode verify); default: the configured ``library.expect``.
        """
        mode = mode or self.config.library.mode
        if mode == "verify":
            expected = expected or self.config.library.expect
        problem = self._mode_problem(mode, expected)
        if problem:  # before anything is acquired or recorded
            return {"ok": False, "error": problem}
        if not self._lock.acquire(blocking=False):
            self.counts["busy"] += 1
            return {"ok": False, "busy": True, "error": "busy: a measurement is running"}
        try:
            return self._measure(trigger, mode, expected)
        finally:
            self._lock.release()

    def sst(self, trigger: str) -> dict:
        """The system suitability test: the configured standard measured and checked, PASS or FAIL, recorded."""
        return self.measure(trigger, "sst")

    def suitability(self) -> dict:
        """The last suitability test: ``result``, ``time``, ``age_h``, and ``problem``, why verdicts are held (or None).

        A problem only when the configuration requires a test (``sst.validity_h`` > 0): none passed yet, the
        last one failed, or it is older than the validity.
        """
        last = self._last_sst
        validity = self.config.sst.validity_h
        age = None if last is None else (time.time() - last[0]) / 3600.0
        if validity <= 0:
            problem = None
        elif last is None:
            problem = "no system suitability test has passed yet; measure the standard with SST (raman-device sst)"
        elif not last[1]:
            problem = f"the last system suitability test failed ({iso_time(last[0])}); fix the instrument and run SST"
        elif age > validity:
            problem = (f"the last system suitability test is {age:.1f} h old, older than sst.validity_h {validity:g}; "
                       "run SST")
        else:
            problem = None
        return {"result": None if last is None else ("PASS" if last[1] else "FAIL"),
                "time": None if last is None else iso_time(last[0]),
                "age_h": None if age is None else round(age, 2), "problem": problem}

    def _mode_problem(self, mode: str, expected: str | None) -> str | None:
        """Why a measurement in ``mode`` (against ``expected``) cannot be made, or None."""
        if mode == "sst":
            return None
        held = self.suitability()["problem"]
        if held and self.config.sst.enforce == "refuse":
            return f"verdicts refused: {held}"
        if mode == "classify":
            return None
        if self.library is None:
            return f"{mode} needs a reference library; the configuration has no library.path"
        if mode == "verify":
            if expected is None:
                return "verify needs the entry to verify against: MEASURE VERIFY NAME, or library.expect"
            try:
                self.library.variation(expected)
            except RamanEdgeError as exc:
                return str(exc)
        return None

    def _measure(self, trigger: str, mode: str, expected: str | None) -> dict:
        if not self.self_test["passed"] and mode != "sst":
            return {"ok": False,
                    "error": f"verdicts refused: the model failed its self-test ({self.self_test['reason']})"}
        self.storage_error = self._storage_problem()
        if self.storage_error:
            self.counts["errors"] += 1
            return {"ok": False, "error": f"measurements refused: the record cannot be written: {self.storage_error}"}
        s = self.config.spectrometer
        rec = Record(trigger=trigger, device={"protocol": s.protocol, "port": s.port, "laser_nm": s.laser_nm,
                                              "integration_s": s.integration_s, "averages": s.averages},
                     **({"model": self.bundle.model_id,
                         "model_files": {k: v["sha256"] for k, v in self.bundle.card["files"].items()}}
                        if mode == "classify" else {}))
        if s.resolution_cm1 is not None:
            rec.device["resolution_cm1"] = s.resolution_cm1
        if mode == "classify" and self.classifier.broadening_cm1 > 0:  # what the model saw, for the evidence
            rec.device["broadened_cm1"] = round(self.classifier.broadening_cm1, 2)
        try:
            spectrometer = self.spectrometer()
            problem = self._model_problem(self.bundle) if mode == "classify" else None
            if problem:  # before the laser is switched on
                rec.error = f"refused: {problem}"
                return self._finish(rec, {"ok": False, "error": f"verdicts refused: {problem}"})
            a = self.config.acquisition
            try:
                adaptive = a.stop == "adaptive" and mode == "classify"
                if a.exposure == "auto":
                    longest = min(a.max_integration_s, a.max_time_s / FULL_SCANS) if adaptive else a.max_integration_s
                    exposure = auto_expose(spectrometer, longest, a.target_fraction, a.probe_s, self.laser)
                    rec.device.update(integration_s=exposure.integration_s, exposure=exposure.to_json())
                if adaptive:
                    m, run = self._accumulate(spectrometer)
                    rec.device["acquisition"] = run.to_json()
                else:
                    m = measure(spectrometer, s.laser_nm, s.dark_frame, self.laser,  # the device's laser line first
                                self.response)
                    run = None
            except TooBrightError as exc:  # the sample, not the spectrometer: nothing to reconnect
                rec.error = f"rejected: {exc}"
                return self._finish(rec, {"ok": False, "rejected": True, "error": f"spectrum rejected: {exc}"})
            finally:
                self._laser(False)  # whatever happened, the laser is off
            rec.device.update(m.meta)
            rec.raw, rec.shift, rec.intensity = m.raw, m.shift, m.intensity
            if run is not None and run.reason in ("drift", "saturated"):  # the mean is no spectrum of the sample
                why = run.drift.reason() if run.reason == "drift" else SATURATED_SCAN
                rec.error = f"rejected: {why}"
                return self._finish(rec, {"ok": False, "rejected": True, "error": f"spectrum rejected: {why}",
                                          "acquisition": run.to_json()})
            refused = quality_problems(m.intensity, m.raw, m.meta, 0.0 if mode == "sst" else self.config.model.min_snr)
            if refused:
                rec.error = "rejected: " + "; ".join(refused)
                return self._finish(rec, {"ok": False, "rejected": True,
                                          "error": "spectrum rejected: " + "; ".join(refused),
                                          **({"acquisition": run.to_json()} if run is not None else {})})
            spectrum = Spectrum.from_measurement(m)
            if mode == "sst":
                c, resolution = self.config.sst, self.config.spectrometer.resolution_cm1
                widest = c.max_fwhm_cm1 if resolution is None else min(c.max_fwhm_cm1, coarsest_accepted(resolution))
                result = system_suitability(m.shift, m.intensity, c.standard, c.tolerance_cm1, widest,
                                            c.min_snr, self.config.spectrometer.laser_nm)
            elif mode == "classify":
                prediction = self.classifier.classify(spectrum)
                mixed = identify(self.library, spectrum) if self.library is not None else None
            else:
                found = identify(self.library, spectrum) if mode == "identify" else \
                    verify(self.library, spectrum, expected, self.config.library.alpha)
        except (BridgeError, RamanEdgeError) as exc:
            if isinstance(exc, BridgeError):
                self.spectrometer_error = str(exc)
            if isinstance(exc, LaserError):  # start afresh: reopening switches the laser off first
                self._spectrometer.close()
                self._spectrometer = None
            rec.error = f"{type(exc).__name__}: {exc}"
            return self._finish(rec, {"ok": False, "error": str(exc)})
        self.spectrometer_error = None
        if mode == "sst":
            rec.analysis = {"mode": "sst", **result.to_json()}
            rec.verdict = rec.analysis["result"]
            reply = self._finish(rec, {"ok": True, "verdict": rec.verdict, **rec.analysis})
            if reply["ok"]:  # recorded: it counts
                self._last_sst = (rec.time or time.time(), result.passed)
            return reply
        held = self.suitability()["problem"]  # enforce = mark: the verdict carries why it is not vouched for
        if mode != "classify":
            rec.verdict, rec.analysis, rec.evidence = found.verdict, found.analysis, found.evidence
            if held:
                rec.analysis = {**rec.analysis, "sst_problem": held}
            return self._finish(rec, {"ok": True, "verdict": found.verdict, **rec.analysis})
        rec.probabilities = prediction.probabilities
        rec.verdict = verdict(prediction.label, prediction.confidence, prediction.unknown,
                              self.config.model.min_confidence)
        shown = prediction.reported()
        rec.confidence = None if prediction.unknown else prediction.confidence
        reply = {"ok": True, "verdict": rec.verdict, **shown,
                 "probabilities": {k: round(v, 6) for k, v in prediction.probabilities.items()},
                 "model": self.bundle.model_id}
        if run is not None:
            reply["acquisition"] = run.to_json()
        if prediction.ood_score is not None:
            reply["ood_score"] = round(prediction.ood_score, 4)
        rec.analysis, rec.evidence = self._classify_evidence(spectrum, prediction)
        if held:
            rec.analysis["sst_problem"] = reply["sst_problem"] = held
        if mixed is not None and "mixture" in mixed.analysis:
            rec.analysis.update(library=mixed.analysis["library"], mixture=mixed.analysis["mixture"])
            on_model_axis = self.bundle.axis.values
            rec.evidence.update({k: np.interp(on_model_axis, mixed.evidence["axis"], v)
                                 for k, v in mixed.evidence.items()
                                 if k in UNMIXING_EVIDENCE or k.startswith("component.")})
            reply["mixture"] = mixed.analysis["mixture"]
            if mixed.is_mixture:  # a mixture of known materials is never reported as one confident class
                rec.verdict = reply["verdict"] = reply["label"] = mixed.verdict
                rec.confidence = reply["confidence"] = None
        return self._finish(rec, reply)

    def _accumulate(self, spectrometer) -> tuple:
        """Scan until the verdict is certain (:mod:`device.service.acquisition`): the mean's Measurement and the run."""
        s, a = self.config.spectrometer, self.config.acquisition
        to_measurement = signal_calibrator(spectrometer, s.laser_nm, self.response)
        rule = self.stop_rule and self.stop_rule.at_least(self.config.model.min_confidence)
        settable = spectrometer.integration_range_s
        quick_s = spectrometer.integration_s / QUICK_LOOK
        if settable is None or quick_s < settable[0]:
            quick_s = None  # the GroupGets sketch's integration is fixed; a scan already at the device's shortest
        run = AdaptiveStop(self.classifier, rule, to_measurement, spectrometer.scan_s, a.min_time_s, a.max_time_s,
                           self.config.model.min_snr, quick_s and quick_s * spectrometer.averages)
        signals, raw, meta = accumulate(spectrometer, run, s.dark_frame, self.laser, quick_s)
        return to_measurement(signals.mean(axis=0), raw.mean(axis=0), meta), run

    def _classify_evidence(self, spectrum: Spectrum, prediction) -> tuple[dict, dict]:
        """The analysis (the bands that decided) and evidence (spectrum, relevance) of a model verdict."""
        Y = self.classifier.on_axis([spectrum])
        k = self.bundle.class_names.index(prediction.label)
        maps = relevance(self.bundle, Y, np.array([k]))
        axis = self.bundle.axis.values
        return ({"mode": "classify", "bands": top_bands(axis, maps.scaled()[0]), "relevance": maps.method},
                {"axis": axis.copy(), "sample": Y[0], "relevance": maps.maps[0]})

    def _finish(self, rec: Record, reply: dict) -> dict:
        """Record first; a verdict that cannot be recorded is not reported."""
        try:
            reply["id"] = self.store.add(rec)
        except RecordError as exc:
            self.counts["errors"] += 1
            reply = {"ok": False, "error": str(exc)}
        else:
            self.counts["measurements" if reply["ok"] else "errors"] += 1
        if self.indicate is not None:
            self.indicate(reply)
        return reply

    def status(self) -> dict:
        """The service's state (``ready``, or what stops it), its spectrometer, model, record and counts."""
        if not self._lock.locked():
            self.storage_error = self._storage_problem()
        misfit = self._model_problem(self.bundle)
        sst = self.suitability()
        if not self.self_test["passed"]:
            state = "self-test failed"
        elif sst["problem"] and self.config.sst.enforce == "refuse":
            state = "suitability test needed"
        elif misfit:
            state = "model does not fit the spectrometer"
        elif self._lock.locked():
            state = "measuring"
        elif self.storage_error:
            state = "storage unavailable"  # checked again at every trigger
        elif self._spectrometer is None and self.spectrometer_error:
            state = "no spectrometer"  # it could not be opened; the next trigger tries again
        else:
            state = "ready"
        return {"state": state, "spectrometer": self.config.spectrometer.protocol,
                "spectrometer_error": self.spectrometer_error, "storage_error": self.storage_error,
                "shift_range_cm-1": None if self.shift_range is None else [round(v, 1) for v in self.shift_range],
                "model": self.bundle.model_id, "self_test": self.self_test, "model_problem": misfit,
                "library": None if self.library is None else self.library.library_id,
                "mode": self.config.library.mode, "sst": sst,
                "counts": dict(self.counts),
                "records": self.store.count() if self.store is not None else None,
                "uptime_s": round(time.time() - self.started, 1)}

    def last(self) -> dict:
        """The last recorded measurement: time, trigger, verdict or error, model."""
        if self.store is None:
            return {"ok": False, "error": f"the record is not open: {self.storage_error}"}
        r = self.store.last()
        if r is None:
            return {"ok": False, "error": "no measurement recorded yet"}
        return {"ok": True, "id": r.id, "time": iso_time(r.time), "trigger": r.trigger, "verdict": r.verdict,
                "confidence": r.confidence, "error": r.error, "model": r.model}

    def model_info(self) -> dict:
        """The model in use: id, classes, axis, least confidence and backend."""
        b = self.bundle
        out = {"model": b.model_id, "classes": list(b.class_names), "axis_cm-1": str(b.axis),
               "min_confidence": self.config.model.min_confidence, "backend": self.classifier.backend.name,
               "mode": self.config.library.mode, "library": None}
        if self.library is not None:
            lib = self.library
            out["library"] = {"id": lib.library_id, "entries": len(lib.entry_names), "axis_cm-1": str(lib.axis),
                              "matching": lib.preprocess.text, "no_match_below": lib.no_match_below,
                              "expect": self.config.library.expect, "alpha": self.config.library.alpha}
        return out

    def shutdown(self) -> None:
        """Wait for a running measurement to finish, then :meth:`close`."""
        with self._lock:
            self.close()

    def close(self) -> None:
        """Laser off, spectrometer closed, record closed."""
        self._laser(False)
        if self._spectrometer is not None:
            self._spectrometer.close()
            self._spectrometer = None
        if self.store is not None:
            self.store.close()
