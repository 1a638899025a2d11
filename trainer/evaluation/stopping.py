"""Calibrating adaptive acquisition's stop rule (:mod:`device.inference.stopping`) on held-out spectra.

A device in adaptive mode classifies the running mean of its scans after each one and stops when the rule
says the verdict is certain. Here the rule's two numbers are chosen for one model, from spectra its weights
never saw (the held-out spectra of a validation split):

1. **Accumulations.** Each held-out spectrum is taken as the sample's noise-free spectrum; :data:`FULL_SCANS`
   scans of it are drawn at each single-scan SNR of :data:`SCAN_SNRS` by the acquisition model of
   :func:`trainer.data.degrade.degrade` (shot and read noise, independent from scan to scan), and the model
   classifies the running mean after every scan. A running mean is *usable* when the device would classify
   it: its measured SNR (:func:`device.inference.snr.measured_snr`) reaches :data:`MIN_SNR`.
2. **Errors.** A verdict is wrong when it is a class other than the sample's; a measurement still too weak
   after the full time is a refusal, not an error. The *full-length* verdict is that of the mean of all
   :data:`FULL_SCANS` scans; the *adaptive* one that of the first scan after which the rule holds, else the
   full-length one.
3. **Choice.** The held-out spectra are split in two halves, alternately within each class. On the first,
   every rule of the grid (:data:`CONFIDENCES` x :data:`STABLE_SCANS`) whose adaptive verdicts are wrong no more
   often than the full-length verdicts of the same accumulations qualifies; of those within
   :data:`SCANS_SLACK` of the fewest scans on average, the strictest (most agreeing scans, then highest
   confidence) wins. Its figures on the second half, which the choice never saw, go into
   the card: how often it stopped early, its scans, and its error rates beside the full-length ones.
"""
from __future__ import annotations

import numpy as np

from device.inference.quality import MIN_SNR, is_flat
from device.inference.snr import measured_snr
from device.inference.stopping import FULL_SCANS, StopRule
from trainer.data.degrade import degrade

#: Single-scan SNRs the accumulations are drawn at (their full-length means reach 4x these).
SCAN_SNRS = (2.0, 4.0, 8.0, 16.0, 32.0)
#: The grid of the rule: least confidence of each agreeing running mean, and how many must agree.
CONFIDENCES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
STABLE_SCANS = (1, 2, 3, 4, 6)
#: Of the qualifying rules, the strictest whose mean scans are within this factor of the fewest wins: a margin
#: against a rule that holds on the calibration spectra by luck.
SCANS_SLACK = 1.1
#: Most held-out spectra used (a share of every class), to bound the time the calibration takes.
MAX_SPECTRA = 600


def accumulations(probabilities, Y: np.ndarray, axis, rng: np.random.Generator, scan_snrs=SCAN_SNRS,
                  scans: int = FULL_SCANS, min_snr: float = MIN_SNR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's verdict on the running mean of simulated scans after each scan (module docstring, step 1).

    Parameters
    ----------
    probabilities : callable
        ``probabilities(Y)`` -> class probabilities (m, C) of spectra (m, N) on ``axis``.
    Y : ndarray, shape (n, N)
        The samples' spectra, taken as noise-free.
    axis : Axis or ndarray, shape (N,)
        Their Raman-shift axis, cm-1.
    rng : numpy.random.Generator
    scan_snrs : sequence of float
        Single-scan SNRs, S of them.
    scans : int
        Scans of each accumulation, T.
    min_snr : float
        Least measured SNR of a usable running mean.

    Returns
    -------
    labels : ndarray of int, shape (S, n, T)
        Class of each running mean.
    confidences : ndarray, shape (S, n, T)
        Its probability.
    usable : ndarray of bool, shape (S, n, T)
        Whether the device would classify it.
    """
    Y = np.asarray(Y, dtype=np.float64)
    n = Y.shape[0]
    shape = (len(scan_snrs), n, scans)
    labels, confidences, usable = np.zeros(shape, int), np.zeros(shape), np.zeros(shape, bool)
    for i, snr in enumerate(scan_snrs):
        total = np.zeros_like(Y)
        means = np.empty((scans, n, Y.shape[1]))
        for t in range(scans):
            total += degrade(Y, axis, snr, rng)
            means[t] = total / (t + 1)
        flat = means.reshape(scans * n, -1)
        p = np.asarray(probabilities(flat)).reshape(scans, n, -1)
        labels[i], confidences[i] = p.argmax(axis=2).T, p.max(axis=2).T
        good = ~np.asarray(is_flat(flat)) & (np.asarray(measured_snr(flat)) >= min_snr)
        usable[i] = good.reshape(scans, n).T
    return labels, confidences, usable


def outcome(rule: StopRule | None, labels, confidences, usable, truth) -> dict:
    """Where each accumulation stops under ``rule`` (None: never early) and how its verdicts compare.

    Parameters
    ----------
    labels, confidences, usable : ndarray, shape (..., n, T)
        As :func:`accumulations` returns them.
    truth : ndarray of int, shape (n,)
        Each sample's class.

    Returns
    -------
    dict
        ``scans`` (..., n) the scans taken; ``early`` (..., n) stopped before the full time; ``wrong`` and
        ``full_wrong`` (..., n) whether the adaptive and the full-length verdicts are wrong.
    """
    labels, usable = np.asarray(labels), np.asarray(usable, dtype=bool)
    T = labels.shape[-1]
    certain = (rule.certain(labels, confidences, usable) if rule is not None else np.zeros(labels.shape, bool))
    early = certain[..., :-1].any(axis=-1)
    stop = np.where(early, certain.argmax(axis=-1), T - 1)
    label_at = np.take_along_axis(labels, stop[..., None], -1)[..., 0]
    usable_at = np.take_along_axis(usable, stop[..., None], -1)[..., 0]
    return {"scans": stop + 1, "early": early, "wrong": usable_at & (label_at != truth),
            "full_wrong": usable[..., -1] & (labels[..., -1] != truth)}


def choose(labels, confidences, usable, truth) -> tuple[StopRule | None, list]:
    """The rule of the grid that wins (module docstring, step 3), and the grid's table.

    Returns None when no rule of the grid qualifies (then the device never stops early).
    """
    table = []
    for k in STABLE_SCANS:
        for c in CONFIDENCES:
            o = outcome(StopRule(c, k), labels, confidences, usable, truth)
            row = {"min_confidence": c, "stable_scans": k, "mean_scans": float(o["scans"].mean()),
                   "wrong": int(o["wrong"].sum()), "full_wrong": int(o["full_wrong"].sum())}
            row["qualifies"] = row["wrong"] <= row["full_wrong"]
            table.append(row)
    qualifying = [r for r in table if r["qualifies"]]
    if not qualifying:
        return None, table
    fewest = min(r["mean_scans"] for r in qualifying)
    near = [r for r in qualifying if r["mean_scans"] <= SCANS_SLACK * fewest]
    best = max(near, key=lambda r: (r["stable_scans"], r["min_confidence"]))
    return StopRule(best["min_confidence"], best["stable_scans"]), table


def halves(y: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of two halves of ``y`` (n,), alternately within each class, at most ``limit`` rows in all."""
    keep = min(1.0, limit / max(y.size, 1))
    a, b = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        rows = rows[:max(2, int(round(keep * rows.size)))]
        a.append(rows[0::2])
        b.append(rows[1::2])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def calibrate(probabilities, Y: np.ndarray, y: np.ndarray, axis, seed: int, held_out: str) -> dict:
    """The card's ``acquisition`` section: the rule chosen on held-out spectra and its figures (module docstring).

    Parameters
    ----------
    probabilities : callable
        The held-out model: ``probabilities(Y)`` -> (m, C), its weights fitted without ``Y``.
    Y : ndarray, shape (n, N)
        Held-out spectra on ``axis``.
    y : ndarray of int, shape (n,)
        Their classes.
    axis : Axis
    seed : int
    held_out : str
        Which spectra these are, for the card.
    """
    rng = np.random.default_rng(seed)
    a, b = halves(np.asarray(y), MAX_SPECTRA, rng)
    found = {}
    for name, rows in (("choice", a), ("check", b)):
        found[name] = accumulations(probabilities, Y[rows], axis, rng)
    rule, table = choose(*found["choice"], y[a])
    o = outcome(rule, *found["check"], y[b])
    early = o["early"]
    per_level = [{"scan_snr": snr, "full_snr": snr * np.sqrt(FULL_SCANS),
                  "stopped_early": round(float(early[i].mean()), 4),
                  "median_scans": float(np.median(o["scans"][i])),
                  "error": round(float(o["wrong"][i].mean()), 4),
                  "full_length_error": round(float(o["full_wrong"][i].mean()), 4)}
                 for i, snr in enumerate(SCAN_SNRS)]
    return {
        "rule": None if rule is None else rule.to_json(),
        "meaning": ("stop when the last stable_scans running means all give the same known class, each with a "
                    "confidence of at least min_confidence (device.inference.stopping); chosen so that stopping "
                    "early is wrong no more often than measuring for the full time" if rule is not None else
                    "no rule of the grid was as accurate as full-length measurement: adaptive acquisition never "
                    "stops early with this model"),
        "calibration": {
            "held_out": held_out, "spectra": int(a.size + b.size), "scan_snrs": list(SCAN_SNRS),
            "full_scans": FULL_SCANS, "min_snr": MIN_SNR,
            "protocol": ("accumulations of held-out spectra by the acquisition model (trainer.data.degrade); rule "
                         "chosen on half of them (alternately within each class), figures on the other half"),
            "grid": {"min_confidence": list(CONFIDENCES), "stable_scans": list(STABLE_SCANS)},
            "choice_table": table},
        "checked": {
            "accumulations": int(early.size), "stopped_early": round(float(early.mean()), 4),
            "mean_scans": round(float(o["scans"].mean()), 3),
            "error": round(float(o["wrong"].mean()), 4),
            "full_length_error": round(float(o["full_wrong"].mean()), 4),
            "early_stop_error": round(float(o["wrong"][early].mean()), 4) if early.any() else None,
            "early_stop_full_length_error": (round(float(o["full_wrong"][early].mean()), 4)
                                             if early.any() else None),
            "by_scan_snr": per_level},
    }
