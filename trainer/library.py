"""``raman-train library``: a reference library from labelled spectra, calibrated on its own replicates.

Each class of the data becomes one entry. Its **reference** is the mean, after the matching
preprocessing, of its reference spectra: all its spectra, or those ``--references KEY=VALUE`` selects
(e.g. the pristine particles of the microplastics set); every spectrum of the entry is a **replicate**
(up to ``max_replicates`` are stored, for verification: for a larger entry, spread over the values of a
per-spectrum key such as the concentration, as :func:`trainer.evaluation.verification.verification_rates`
chooses them, so the card's verification rates are those of the stored replicates).

**Calibration by leave-one-out.** Every spectrum of the data is searched against the library with
itself left out: its own entry's reference is recomputed without it when it is one of that entry's
reference spectra (a reference made of that spectrum alone cannot be left out: such spectra are not
queries). From these out-of-sample HQI values come:

* the ``no_match_below`` threshold: the ``false_no_match`` quantile of the HQI of each query against its
  own entry, so that about that share of genuine samples of a library material is reported as no match;
* top-1 and top-3 accuracy (the own entry is the best hit, among the best three);
* the false-match rate of an absent material: the share of queries whose best hit among the *other*
  entries reaches the threshold (what happens to a material that is not in the library).

**Matching preprocessing** (``--matching``): ``snv``; ``derivative`` (Savitzky-Golay first derivative,
quadratic, window about 9 cm-1, then SNV); ``baseline`` (AsLS baseline removal, lam 1e5, p 0.01, then SNV);
``auto`` (default) computes the leave-one-out top-1 accuracy of all three and keeps the best (ties: the
simpler, in that order); the card lists all three, so the selection is in the open.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from device.errors import RamanEdgeError
from device.inference.library import Library, unit_rows, write_library
from device.inference.preprocess import Chain
from device.inference.spectrum import Axis
from trainer.data.dataset import Dataset, DatasetError
from trainer.evaluation.mixtures import calibrate_mixture, mixture_rates
from trainer.evaluation.verification import spread_choice, verification_rates

#: The matching preprocessing options, simplest first (the order ties are broken in).
MATCHING = ("snv", "derivative", "baseline")
#: Share of genuine samples a calibrated threshold may report as no match, by default.
FALSE_NO_MATCH = 0.05
#: Most spectra per entry the mixture rates are measured on (a seeded subsample of larger entries).
MIXTURE_SAMPLE = 400
#: Replicates stored per entry, by default (a subsample spread at random, seeded, when an entry has more).
MAX_REPLICATES = 60


class LibraryBuildError(RamanEdgeError):
    """The data cannot make a reference library as asked."""


def matching_chain(option: str, axis: Axis) -> Chain:
    """The preprocessing chain of a matching option (:data:`MATCHING`) on ``axis``."""
    if option == "snv":
        return Chain.parse("snv", axis.step)
    if option == "derivative":
        window = max(5, 2 * int(round(4.5 / axis.step)) + 1)
        return Chain.parse(f"savgol:{window}:2:1,snv", axis.step, axis.points)
    if option == "baseline":
        return Chain.parse("asls:1e5:0.01,snv", axis.step)
    raise LibraryBuildError(f"--matching {option!r}: choose one of auto, {', '.join(MATCHING)}")


def leave_one_out_hqi(P: np.ndarray, owner: np.ndarray, reference: np.ndarray, entries: int) -> tuple:
    """The HQI of every spectrum against every entry, with the spectrum left out of its own entry.

    Parameters
    ----------
    P : ndarray, shape (N, points)
        The spectra after the matching chain.
    owner : ndarray of int, shape (N,)
        Entry of each spectrum.
    reference : ndarray of bool, shape (N,)
        Whether each spectrum is one of its entry's reference spectra.
    entries : int

    Returns
    -------
    hqi : ndarray, shape (N, entries)
        100 x correlation; row i's own-entry value is computed without spectrum i.
    query : ndarray of bool, shape (N,)
        False for spectra that alone make their entry's reference (they cannot be left out).
    references : ndarray, shape (entries, points)
        The full references (means of the reference spectra).
    """
    sums = np.zeros((entries, P.shape[1]))
    np.add.at(sums, owner[reference], P[reference])
    counts = np.bincount(owner[reference], minlength=entries)
    if (counts == 0).any():
        raise LibraryBuildError(f"entry {int(np.flatnonzero(counts == 0)[0])} has no reference spectrum")
    references = sums / counts[:, None]
    U = unit_rows(P)
    hqi = 100.0 * (U @ unit_rows(references).T)
    query = ~reference | (counts[owner] > 1)
    redo = np.flatnonzero(reference & query)
    left_out = (sums[owner[redo]] - P[redo]) / (counts[owner[redo]] - 1)[:, None]
    hqi[redo, owner[redo]] = 100.0 * np.einsum("ij,ij->i", U[redo], unit_rows(left_out))
    return hqi, query, references


def calibration(hqi: np.ndarray, owner: np.ndarray, rate: float) -> dict:
    """The no-match threshold and the leave-one-out rates of query HQI values (see the module docstring).

    Parameters
    ----------
    hqi : ndarray, shape (Q, E)
        Leave-one-out HQI of the queries.
    owner : ndarray of int, shape (Q,)
    rate : float
        The false-no-match rate to set the threshold at, 0-1.

    Returns
    -------
    dict
        ``no_match_below``, ``false_no_match`` (the rate asked), ``queries``, ``top1``, ``top3``,
        ``no_match`` (measured share of queries below the threshold), ``false_match_absent``.
    """
    rows = np.arange(len(owner))
    own = hqi[rows, owner]
    threshold = float(np.quantile(own, rate))
    order = np.argsort(-hqi, axis=1)
    others = hqi.copy()
    others[rows, owner] = -np.inf
    return {"no_match_below": round(threshold, 3), "false_no_match": rate, "queries": int(len(owner)),
            "top1": round(float((order[:, 0] == owner).mean()), 4),
            "top3": round(float((order[:, :3] == owner[:, None]).any(axis=1).mean()), 4),
            "no_match": round(float((own < threshold).mean()), 4),
            "false_match_absent": round(float((others.max(axis=1) >= threshold).mean()), 4)}


def _share(rate) -> str:
    return "not measured" if rate is None else f"{rate:.4f}"


def _selected(ds: Dataset, references: str | None) -> np.ndarray:
    """Which spectra make the references: all, or those whose ``KEY`` is one of the values of ``KEY=V[,V]``."""
    if references is None:
        return np.ones(len(ds.y), bool)
    key, _, values = references.partition("=")
    if not values or key not in ds.meta:
        have = ", ".join(sorted(ds.meta)) or "none (class folders and tables have no per-spectrum keys)"
        raise LibraryBuildError(f"--references {references!r}: give KEY=VALUE[,VALUE] with a per-spectrum key of the "
                                f"data; its keys: {have}")
    chosen = np.isin(ds.meta[key].astype(str), values.split(","))
    missing = [c for k, c in enumerate(ds.class_names) if not (chosen & (ds.y == k)).any()]
    if missing:
        raise LibraryBuildError(f"--references {references!r} selects no spectrum of {', '.join(missing)}; every "
                                "entry needs at least one reference spectrum")
    return chosen


def _conditions(ds: Dataset, rows: np.ndarray) -> dict:
    """The spectra of ``rows`` counted by each per-spectrum key with few distinct values (conditions, levels)."""
    out = {}
    for key, values in ds.meta.items():
        if len(np.unique(values)) <= 20:
            names, counts = np.unique(values[rows].astype(str), return_counts=True)
            out[key] = {str(n): int(c) for n, c in zip(names, counts)}
    return out


def build_library(ds: Dataset, out, *, name: str, matching: str = "auto", references: str | None = None,
                  false_no_match: float = FALSE_NO_MATCH, max_replicates: int = MAX_REPLICATES,
                  spread: str | None = None, blank: str | None = None, mixture_sample: int = MIXTURE_SAMPLE,
                  seed: int = 0,
                  provenance: dict | None = None, source: str = "", log=None) -> Library:
    """Build, calibrate and write a reference library (see the module docstring).

    Parameters
    ----------
    ds : Dataset
        Labelled spectra on the library's axis.
    out : path-like
        Library directory to write.
    name : str
    matching : str
        ``auto`` or one of :data:`MATCHING`.
    references : str, optional
        ``KEY=VALUE[,VALUE]``: the spectra that make the references (default: all).
    false_no_match : float
        Share of genuine samples the threshold may report as no match, 0-0.5.
    max_replicates : int
        Replicates stored per entry.
    spread : str, optional
        A per-spectrum key the stored replicates of a larger entry are spread over (e.g. ``concentration_ppm``).
    blank : str, optional
        An entry that is the matrix without analyte (a control): not mixed with the others when the mixture
        rates are measured.
    mixture_sample : int
        Most spectra per entry the mixture rates are measured on.
    seed : int
        Seed of the replicate subsample, of the mixture calibration and measurement.
    provenance : dict, optional
        ``source``, ``licence``, ``attribution``, ``description`` for the card.
    source : str
        The data file or directory, for the card.
    log : callable, optional
        Gets one line per step.

    Returns
    -------
    Library
    """
    say = log or (lambda msg: None)
    if not 0.0 < false_no_match <= 0.5:
        raise LibraryBuildError(f"--false-no-match {false_no_match:g}: give a share in (0, 0.5], e.g. 0.05")
    if max_replicates < 1:
        raise LibraryBuildError(f"--max-replicates {max_replicates}: give at least 1")
    chosen_refs = _selected(ds, references)
    if blank is not None and blank not in ds.class_names:
        raise LibraryBuildError(f"--blank {blank!r}: not a class of the data; its classes: {', '.join(ds.class_names)}")
    if spread is not None and spread not in ds.meta:
        raise LibraryBuildError(f"--spread {spread!r}: not a per-spectrum key of the data; its keys: "
                                f"{', '.join(sorted(ds.meta)) or 'none'}")
    E = len(ds.class_names)
    options = MATCHING if matching == "auto" else (matching,)
    tried = {}
    for option in options:
        chain = matching_chain(option, ds.axis)
        P = chain.apply(ds.X)
        hqi, query, refs = leave_one_out_hqi(P, ds.y, chosen_refs, E)
        if not query.any():
            raise LibraryBuildError("every spectrum alone makes its entry's reference, so none can be left out to "
                                    "calibrate the no-match threshold: give the library replicates (several spectra "
                                    "per class) or select the references with --references")
        tried[option] = (chain, P, refs, calibration(hqi[query], ds.y[query], false_no_match))
        say(f"matching {option} ({chain.text}): leave-one-out top-1 {tried[option][3]['top1']:.4f}, "
            f"top-3 {tried[option][3]['top3']:.4f} over {tried[option][3]['queries']} spectra")
    best = max(options, key=lambda o: (tried[o][3]["top1"], -options.index(o)))
    chain, P, refs, cal = tried[best]
    strata = np.zeros(len(ds.y)) if spread is None else np.asarray(ds.meta[spread])
    rng = np.random.default_rng(seed)  # the choice verification_rates makes, so the rates are of these replicates
    keep = np.concatenate([rows if rows.size <= max_replicates
                           else rows[spread_choice(strata[rows], max_replicates, rng)]
                           for rows in (np.flatnonzero(ds.y == k) for k in range(E))])
    verification = verification_rates(ds, chain.text, cap=max_replicates, spread=spread, seed=seed)
    mixture, mixture_card = _mixture(ds, blank, mixture_sample, seed, say)
    say(f"verification (alpha {verification['alpha']:g}): false fail {_share(verification['false_fail'])}, "
        f"false pass {_share(verification['false_pass'])}"
        + (f"; not verifiable: {', '.join(verification['skipped'])}" if verification["skipped"] else ""))
    prov = dict(provenance or {})
    entries = [{"name": c, "spectra": int((ds.y == k).sum()),
                "reference_spectra": int((chosen_refs & (ds.y == k)).sum()),
                "replicates_stored": int((ds.y[keep] == k).sum()),
                "conditions": _conditions(ds, np.flatnonzero(ds.y == k))} for k, c in enumerate(ds.class_names)]
    card = {
        "name": name,
        "description": prov.pop("description", f"reference library of {E} entries from {Path(source).name}"),
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "data": {**prov, "file": Path(source).name, "spectra": int(len(ds.y)), "fingerprint_sha256": ds.fingerprint,
                 "references": references or "all spectra of each entry"},
        "entries": entries,
        "matching": {"preprocess": chain.text, "option": best,
                     "hqi": "100 x Pearson correlation of the sample and the entry's reference after the chain",
                     "chosen_by": ("given" if matching != "auto" else
                                   "leave-one-out top-1 accuracy, best of " + ", ".join(MATCHING)),
                     "leave_one_out": {o: {k: tried[o][3][k] for k in ("top1", "top3")} for o in options}},
        "verification": verification,
        "mixture": mixture_card,
        "calibration": {**cal, "protocol": "leave-one-out: each spectrum searched with itself left out of its own "
                                           "entry's reference; spectra that alone make a reference are not queries"},
    }
    say(f"matching: {best} ({chain.text}); no match below HQI {cal['no_match_below']:.2f} "
        f"(false no-match {false_no_match:g}); absent materials matched falsely: {cal['false_match_absent']:.4f}")
    return write_library(out, name=name, axis=ds.axis, preprocess=chain, entry_names=ds.class_names,
                         references=refs, spectra=P[keep], spectrum_entry=ds.y[keep],
                         no_match_below=cal["no_match_below"], false_no_match=false_no_match, card=card,
                         mixture=mixture)


def _mixture(ds: Dataset, blank: str | None, sample: int, seed: int, say) -> tuple:
    """The library's unmixing model, calibrated on every spectrum, and its measured rates for the card.

    The rates (:func:`trainer.evaluation.mixtures.mixture_rates`: stratified 5-fold, references and threshold
    from the training side only) are measured on at most ``sample`` spectra per entry (seeded), and mixtures
    pair every two entries except the ``blank`` (a matrix without analyte, whose sum with an entry is that
    entry at a lower level).
    """
    labels = np.array(ds.class_names)[ds.y]
    try:
        model = calibrate_mixture(ds.X, labels, ds.axis, seed=seed)
    except DatasetError as exc:
        say(f"warning: no mixture verdict in this library: {exc}")
        return None, {"calibrated": False, "reason": str(exc)}
    order = [model.names.index(c) for c in ds.class_names]
    model = replace(model, names=tuple(ds.class_names), references=model.references[order])
    rng = np.random.default_rng(seed)
    rows = np.sort(np.concatenate([r if r.size <= sample else rng.choice(r, sample, replace=False)
                                   for r in (np.flatnonzero(ds.y == k) for k in range(len(ds.class_names)))]))
    components = [c for c in ds.class_names if c != blank]
    try:
        rates = mixture_rates(ds.X[rows], labels[rows], ds.axis, components=components, seed=seed)
    except DatasetError as exc:
        say(f"warning: the mixture verdict's rates are not measured: {exc}")
        rates = {"measured": False, "reason": str(exc)}
    else:
        detected = {ratio: m["detected"] for ratio, m in rates["mixtures"].items()}
        say(f"mixtures: threshold {model.threshold:.4f}; held-out singles called mixtures "
            f"{rates['false_mixture']['degraded']:.4f} (degraded to SNR {rates['snr']:g}); mixtures detected "
            + ", ".join(f"{k} {v:.3f}" for k, v in detected.items()))
    card = {"statistic": "1 - E2/E1: the share of the best single component's residual energy a second removes",
            "threshold": model.threshold, "false_mixture_rate_calibrated": model.false_mixture_rate,
            "derivative_window": model.derivative_window, "background_order": model.background_order,
            "blank": blank, "measured": {**rates, "spectra_per_entry_at_most": sample}}
    return model, card
