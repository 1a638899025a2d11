"""Identification benchmark: library search, verification and mixtures beside the shipped classifier.

Run with ``make bench-identify`` (``make bench-identify WRITE=1`` also writes ``docs/reports/identify.md``; or
``.venv/bin/python benchmarks/bench_identify.py [--quick] [--write] [--datasets DIR]``). Prints Markdown tables
for each shared data set (:data:`SETS`: the SERS pesticides, the RaMPP microplastics), all measured in the run:

1. **Identification beside the classifier.** The library search's leave-one-out top-1 and top-3, no-match
   threshold and false-match rate of an absent material (:func:`trainer.library.leave_one_out_hqi` and
   :func:`trainer.library.calibration`, on the shipped library's matching chain and reference spectra, as
   ``raman-train library`` with the recipe's settings computes them); the shipped classifier's accuracy as its
   model card states it (the models are not retrained).
2. **Verification.** False fail and false pass (:func:`trainer.evaluation.verification.verification_rates`
   with the shipped library's chain and the recipe's settings).
3. **Mixtures.** Targets: at least 90 % of mixtures reported as a mixture or unknown, at most 1 % of
   single-class spectra called mixtures, and no mixture of known classes reported as one confident class.
   Stratified 5-fold cross-validation (:func:`mixture_verdicts`): on each training side a library of the fold
   (references, no-match threshold, and the unmixing model by
   :func:`trainer.evaluation.mixtures.calibrate_mixture`); on the test side the held-out spectra (as measured
   and degraded) and synthetic mixtures of two held-out spectra
   (:func:`trainer.evaluation.mixtures.synthetic_mixtures`, degraded by :func:`trainer.data.degrade.degrade`),
   at the SNR, ratios, counts and seed of :func:`trainer.evaluation.mixtures.mixture_rates`, with the same
   random draws. Each spectrum gets the measurement service's classify-mode verdict: the shipped model's
   class, ``uncertain`` or ``unknown`` (:func:`device.inference.verdict.verdict`), unless the fold's library
   finds a mixture (:func:`device.inference.analysis.identify`: unmixing among the top 10 search hits), which
   then is the verdict.

``--quick`` is a smoke run: the mixtures on at most :data:`QUICK_PER_CLASS` spectra per class, 2-fold,
:data:`QUICK_MIXTURES` mixtures per ratio (the first two tables as in the full run).
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_models import markdown_table, note, pct, run_on_shared_sets, shared_sets_parser  # noqa: E402

from device.inference.analysis import MIXTURE_CANDIDATES, identify, mixture_verdict  # noqa: E402
from device.inference.bundle import load_bundle  # noqa: E402
from device.inference.classifier import Classifier, Prediction  # noqa: E402
from device.inference.library import Library, load_library, write_library  # noqa: E402
from device.inference.preprocess import Chain  # noqa: E402
from device.inference.spectrum import Axis, Spectrum  # noqa: E402
from device.inference.unmixing import MixtureModel  # noqa: E402
from device.inference.verdict import UNCERTAIN, verdict  # noqa: E402
from device.service.config import ModelConfig  # noqa: E402
from trainer.data.dataset import Dataset, load_dataset  # noqa: E402
from trainer.data.degrade import degrade  # noqa: E402
from trainer.data.splits import stratified_folds  # noqa: E402
from trainer.evaluation.mixtures import (  # noqa: E402
    FALSE_MIXTURE_RATE,
    FOLDS,
    MEASURE_MIXTURES,
    MEASURE_SNR,
    MICROPLASTICS_AXIS,
    PESTICIDE_CONTROL,
    RATIOS,
    TARGET_DETECTION,
    TARGET_FALSE_MIXTURE,
    calibrate_mixture,
    synthetic_mixtures,
)
from trainer.evaluation.verification import verification_rates  # noqa: E402
from trainer.library import FALSE_NO_MATCH, MAX_REPLICATES, MIXTURE_SAMPLE, calibration, leave_one_out_hqi  # noqa: E402

REPORT = ROOT / "docs" / "reports" / "identify.md"
SEED = 0
#: The service's least confidence for a class verdict (its configuration's default).
MIN_CONFIDENCE = ModelConfig.min_confidence
#: ``--quick``: most spectra per class, folds, and mixtures per ratio.
QUICK_PER_CLASS, QUICK_FOLDS, QUICK_MIXTURES = 40, 2, 60


@dataclass(frozen=True)
class SharedSet:
    """A shared data set with its shipped model and library, and the settings of the library's recipe."""

    key: str
    title: str
    data: str  # under the datasets folder
    model: str  # bundle directory under ROOT
    library: str  # library directory under ROOT
    axis: Axis | None  # the axis the data are loaded on (None: the file's own)
    references: tuple | None  # (KEY, VALUES): the recipe's --references; None for all spectra
    spread: str | None  # the recipe's --spread
    blank: str | None  # the recipe's --blank: not mixed with the others
    mixture_per_class: int | None  # most spectra per class of the mixture measurement (seeded), None for all


SETS = (
    SharedSet("pesticides", "SERS pesticides on spinach", "sersformer_pesticides/sersformer_pesticides.npz",
              "models/sers-pesticides", "models/libraries/sers-pesticides", None, None, "concentration_ppm",
              PESTICIDE_CONTROL, MIXTURE_SAMPLE),
    SharedSet("microplastics", "RaMPP microplastics", "rampp_microplastics/rampp_microplastics.npz",
              "models/microplastics", "models/libraries/microplastics", MICROPLASTICS_AXIS,
              ("condition", ("pristine",)), None, None, None),
)


# ---- pure computation (tests/test_bench_identify.py) ----

def reference_mask(ds: Dataset, references: tuple | None) -> np.ndarray:
    """Which spectra (n,) make the references: all, or those whose ``KEY`` is one of ``VALUES``."""
    if references is None:
        return np.ones(len(ds.y), bool)
    key, values = references
    return np.isin(ds.meta[key].astype(str), values)


def identification_rates(ds: Dataset, chain: Chain, references: tuple | None, false_no_match: float) -> dict:
    """Leave-one-out search rates of ``ds`` on a library of its classes with the matching ``chain``.

    Returns
    -------
    dict
        :func:`trainer.library.calibration` of the queries (``top1``, ``top3``, ``no_match_below``,
        ``false_match_absent``, ...).
    """
    hqi, query, _ = leave_one_out_hqi(chain.apply(ds.X), ds.y, reference_mask(ds, references), len(ds.class_names))
    return calibration(hqi[query], ds.y[query], false_no_match)


def classifier_figures(card: dict) -> dict:
    """The shipped model's accuracy and its protocol, as its card (``model.json``) states them.

    Raises
    ------
    KeyError
        If the card has no hold-out metrics.
    """
    held = card["metrics"]["holdout"]
    return {"model": card["selection"]["winner"] if "selection" in card else card["network"]["kind"],
            "accuracy": held["accuracy"], "split": held["split"],
            "protocol": held["description"], "train_spectra": held["train_spectra"],
            "test_spectra": held["test_spectra"], "selection_scope": card.get("selection", {}).get("scope", "")}


def per_class_rows(y: np.ndarray, most: int | None, seed: int) -> np.ndarray:
    """Sorted rows of at most ``most`` spectra per class of labels ``y`` (n,), at random (seeded).

    The rows ``raman-train library`` measures its mixture rates on; every row for ``most`` None.
    """
    if most is None:
        return np.arange(y.size)
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([r if r.size <= most else rng.choice(r, most, replace=False)
                                   for r in (np.flatnonzero(y == k) for k in np.unique(y))]))


def classify_mode_verdict(prediction: Prediction, analysis, min_confidence: float) -> str:
    """The measurement service's verdict in classify mode with a library, as its ``_measure`` reports it.

    ``mixture of A + B`` when the library's ``analysis`` (:func:`device.inference.analysis.identify`) finds a
    mixture, else the model's class, ``uncertain`` or ``unknown`` (:func:`device.inference.verdict.verdict`).
    """
    if analysis.is_mixture:
        return mixture_verdict(c["name"] for c in analysis.analysis["mixture"]["components"][:2])
    return verdict(prediction.label, prediction.confidence, prediction.unknown, min_confidence)


def fold_library(path: Path, Y: np.ndarray, entry: np.ndarray, axis: Axis, chain: Chain, mixture: MixtureModel,
                 false_no_match: float) -> Library:
    """A library of training spectra, written and loaded as a device reads one.

    Entries are ``mixture.names`` (entry ``e`` of ``entry`` is ``mixture.names[e]``); each reference is the mean of
    its training spectra ``Y`` (n, P) after the matching ``chain``; the no-match threshold is their leave-one-out
    ``false_no_match`` quantile; no replicates (the library searches and unmixes, it does not verify).
    """
    P = chain.apply(Y)
    E = len(mixture.names)
    hqi, query, refs = leave_one_out_hqi(P, entry, np.ones(entry.size, bool), E)
    threshold = calibration(hqi[query], entry[query], false_no_match)["no_match_below"]
    return write_library(path, name=path.name, axis=axis, preprocess=chain, entry_names=mixture.names,
                         references=refs, spectra=np.zeros((0, axis.points)), spectrum_entry=np.zeros(0, np.int64),
                         no_match_below=threshold, false_no_match=false_no_match,
                         card={"description": "training side of one fold"}, mixture=mixture)


class Outcome(NamedTuple):
    """The classify-mode verdict on one spectrum, as the shares count it."""

    mixture: bool  # the library found a mixture (the verdict is ``mixture of A + B``)
    right_pair: bool | None  # a mixture of the right two (None for a single spectrum)
    unknown: bool  # the model's detector says unknown
    uncertain: bool  # the verdict is ``uncertain``
    confident: bool  # the verdict is one class
    held: bool  # the verdict is one class the spectrum holds


def _verdicts(library: Library, classifier: Classifier, Y: np.ndarray, axis: Axis, truth, min_confidence: float) \
        -> list[Outcome]:
    """The :class:`Outcome` of each spectrum of ``Y`` (n, P); ``truth``: the set of its class names (1 or 2) each."""
    spectra = [Spectrum(axis.values, y) for y in Y]
    out = []
    for s, prediction, holds in zip(spectra, classifier.classify_many(spectra), truth):
        found = identify(library, s)
        said = classify_mode_verdict(prediction, found, min_confidence)
        named = {c["name"] for c in found.analysis["mixture"]["components"]} if found.is_mixture else set()
        out.append(Outcome(found.is_mixture, named == holds if len(holds) == 2 else None, prediction.unknown,
                           said == UNCERTAIN, said == prediction.label, said in holds))
    return out


def shares(outcomes: list[Outcome]) -> dict:
    """Shares of the outcomes.

    Returns
    -------
    dict
        ``count``; the shares ``mixture``, ``right_pair`` (None for single spectra), ``unknown`` (by the model's
        detector), ``mixture_or_unknown``, ``uncertain``, ``confident`` (one confident class; these three add up
        to 1) and ``held`` (one confident class that the spectrum holds).
    """
    a = np.array([(o.mixture, bool(o.right_pair), o.unknown, o.uncertain, o.confident, o.held) for o in outcomes],
                 dtype=bool).reshape(-1, 6)
    return {"count": int(a.shape[0]), "mixture": float(a[:, 0].mean()),
            "right_pair": None if outcomes and outcomes[0].right_pair is None else float(a[:, 1].mean()),
            "unknown": float(a[:, 2].mean()), "mixture_or_unknown": float((a[:, 0] | a[:, 2]).mean()),
            "uncertain": float(a[:, 3].mean()), "confident": float(a[:, 4].mean()), "held": float(a[:, 5].mean())}


def mixture_verdicts(Y, labels, axis: Axis, classifier: Classifier, chain: Chain, *, components=None, ratios=RATIOS,
                     snr: float = MEASURE_SNR, count: int = MEASURE_MIXTURES, rate: float = FALSE_MIXTURE_RATE,
                     folds: int = FOLDS, seed: int = 0, false_no_match: float = FALSE_NO_MATCH,
                     min_confidence: float = MIN_CONFIDENCE, threshold: float | None = None) -> dict:
    """The classify-mode verdicts on held-out single spectra and synthetic mixtures (module docstring, 3).

    The outer folds, the calibration on each training side, the degraded singles and the mixtures are those of
    :func:`trainer.evaluation.mixtures.mixture_rates` with the same arguments (the same random draws).

    Parameters
    ----------
    Y : array_like, shape (n, P)
        Spectra on ``axis``, linear intensity.
    labels : array_like of str, shape (n,)
        Class of each spectrum: the classifier's and the library's names.
    axis : Axis
        The data's axis, the classifier's and the library's.
    classifier : Classifier
        The shipped model.
    chain : Chain
        The library's matching chain (search).
    components : sequence of str, optional
        Classes that may be mixed (default all).
    ratios, snr, count, rate, folds, seed
        As for :func:`trainer.evaluation.mixtures.mixture_rates`.
    false_no_match : float
        Rate of each fold library's no-match threshold.
    min_confidence : float
        The service's least confidence for a class verdict.
    threshold : float, optional
        A mixture threshold in place of the calibrated one (a control: ``inf`` calls nothing a mixture).

    Returns
    -------
    dict
        ``singles`` (``as_measured``, ``degraded``) and ``mixtures`` (per ratio key ``"25:75"``... and ``all``):
        each :func:`shares`; ``thresholds`` per fold; ``folds``, ``snr``, ``spectra``, ``mixed`` (the classes
        mixed), ``seconds``.
    """
    t0 = time.perf_counter()
    Y = np.asarray(Y, dtype=np.float64)
    labels = np.asarray(labels)
    keys, entry = np.unique(labels, return_inverse=True)
    allowed = np.arange(keys.size) if components is None else np.flatnonzero(np.isin(keys, components))
    pairs = stratified_folds(entry, folds, seed)
    rng = np.random.default_rng(seed)
    per_pair = -(-count // len(pairs))
    singles = {"as_measured": [], "degraded": []}
    mixed = {r: [] for r in ratios}
    thresholds = []
    with tempfile.TemporaryDirectory() as tmp:
        for f, (train, test) in enumerate(pairs):
            model = calibrate_mixture(Y[train], labels[train], axis, rate, folds, seed)
            library = fold_library(Path(tmp) / f"fold-{f}", Y[train], entry[train], axis, chain, model,
                                   false_no_match)
            if threshold is not None:  # in memory: a library file holds only a calibrated (finite) threshold
                library = replace(library, mixture=replace(library.mixture, threshold=threshold))
            thresholds.append(library.mixture.threshold)
            own = [{str(keys[e])} for e in entry[test]]
            singles["as_measured"] += _verdicts(library, classifier, Y[test], axis, own, min_confidence)
            singles["degraded"] += _verdicts(library, classifier, degrade(Y[test], axis, snr, rng), axis, own,
                                             min_confidence)
            M, first, second, ratio = synthetic_mixtures(Y[test], entry[test], ratios, per_pair, rng,
                                                         model.background_order, allowed)
            classes = [{str(keys[a]), str(keys[b])} for a, b in zip(first, second)]
            outcomes = _verdicts(library, classifier, degrade(M, axis, snr, rng), axis, classes, min_confidence)
            for r, o in zip(ratio, outcomes):
                mixed[r].append(o)
    mixtures = {f"{round(100 * r)}:{round(100 * (1 - r))}": shares(mixed[r]) for r in ratios}
    mixtures["all"] = shares([o for r in ratios for o in mixed[r]])
    return {"singles": {k: shares(v) for k, v in singles.items()}, "mixtures": mixtures, "thresholds": thresholds,
            "folds": folds, "snr": snr, "spectra": int(Y.shape[0]), "mixed": [str(k) for k in keys[allowed]],
            "seconds": round(time.perf_counter() - t0, 1)}


def mixture_targets(result: dict) -> list[tuple[str, str, bool]]:
    """The issue's targets on a :func:`mixture_verdicts` result: (target, measured, holds)."""
    worst = min(m["mixture_or_unknown"] for k, m in result["mixtures"].items() if k != "all")
    false = max(s["mixture"] for s in result["singles"].values())
    confident = result["mixtures"]["all"]["confident"]
    return [(f"mixtures reported as mixture or unknown >= {100 * TARGET_DETECTION:g} % (worst ratio)", pct(worst),
             worst >= TARGET_DETECTION),
            (f"single spectra called mixtures <= {100 * TARGET_FALSE_MIXTURE:g} % (as measured or degraded, the "
             "larger)",
             pct(false), false <= TARGET_FALSE_MIXTURE),
            ("mixtures reported as one confident class: none", pct(confident), confident == 0.0)]


# ---- tables ----

def identification_table(search: dict, classifier: dict, chain_text: str) -> list[str]:
    """The library search's leave-one-out rates beside the classifier's card accuracy."""
    return markdown_table(
        ["method", "protocol", "top-1 / accuracy", "top-3", "no match below", "false no-match",
         "false match, absent material"],
        [(f"library search, `{chain_text}`", f"leave-one-out, {search['queries']} queries", pct(search["top1"]),
          pct(search["top3"]), f"HQI {search['no_match_below']:.2f}", pct(search["no_match"]),
          pct(search["false_match_absent"])),
         (f"shipped classifier, {classifier['model']} (model card)",
          f"hold-out `{classifier['split']}`: {classifier['train_spectra']} trained, {classifier['test_spectra']} "
          "tested", pct(classifier["accuracy"]), "-", "-", "-", "-")])


def verification_table(rates: dict) -> list[str]:
    """False fail and false pass of verification, pooled and the mean over entries."""
    def pooled(key: str) -> str:
        n = rates[f"{key}_tested"]
        return "-" if rates[key] is None else f"{pct(rates[key])} ({round(rates[key] * n)} of {n})"

    return markdown_table(["chain", "alpha", "false fail (pooled)", "false fail (entry mean)", "false pass (pooled)",
                           "false pass (entry mean)"],
                          [(f"`{rates['preprocess']}`", f"{rates['alpha']:g}", pooled("false_fail"),
                            pct(rates["false_fail_entry_mean"]), pooled("false_pass"),
                            pct(rates["false_pass_entry_mean"]))])


def mixture_table(result: dict) -> list[str]:
    """Per ratio, all mixtures and the singles: the shares of each classify-mode verdict."""
    def row(name: str, s: dict) -> tuple:
        return (name, s["count"], pct(s["mixture"]), pct(s["right_pair"]), pct(s["unknown"]),
                pct(s["mixture_or_unknown"]), pct(s["uncertain"]), pct(s["confident"]), pct(s["held"]))

    rows = [row(f"mixtures {k}" if k != "all" else "all mixtures", m) for k, m in result["mixtures"].items()]
    rows += [row("single spectra, as measured", result["singles"]["as_measured"]),
             row(f"single spectra, degraded to SNR {result['snr']:g}", result["singles"]["degraded"])]
    return markdown_table(["spectra", "count", "mixture", "mixture of the right two", "unknown (detector)",
                           "mixture or unknown", "uncertain", "one confident class", "one class it holds"], rows)


# ---- measuring ----

def measure(shared: SharedSet, datasets: Path, quick: bool = False) -> dict:
    """Every figure of one shared set (the tables' inputs); ``quick``: the smoke run's settings."""
    t0 = time.perf_counter()
    ds = load_dataset(datasets / shared.data, axis=shared.axis)
    library = load_library(ROOT / shared.library)
    bundle = load_bundle(ROOT / shared.model)
    chain = library.preprocess
    note(f"{shared.key}: identification")
    search = identification_rates(ds, chain, shared.references, library.false_no_match)
    note(f"{shared.key}: verification")
    verification = verification_rates(ds, chain.text, cap=MAX_REPLICATES, spread=shared.spread, seed=SEED)
    note(f"{shared.key}: mixtures")
    per_class = QUICK_PER_CLASS if quick else shared.mixture_per_class
    rows = per_class_rows(ds.y, per_class, SEED)
    labels = np.asarray(ds.class_names)[ds.y[rows]]
    components = [c for c in ds.class_names if c != shared.blank]
    mixtures = mixture_verdicts(ds.X[rows], labels, ds.axis, Classifier(bundle), chain, components=components,
                                folds=QUICK_FOLDS if quick else FOLDS,
                                count=QUICK_MIXTURES if quick else MEASURE_MIXTURES, seed=SEED,
                                false_no_match=library.false_no_match)
    return {"set": shared, "spectra": len(ds.y), "axis": ds.axis, "classes": ds.class_names,
            "library": library, "model_card": bundle.card, "search": search,
            "classifier": classifier_figures(bundle.card), "verification": verification, "mixtures": mixtures,
            "mixture_per_class": per_class, "seconds": round(time.perf_counter() - t0, 1)}


def _search_note(m: dict) -> str:
    """The protocol under the identification table."""
    s, lib, search = m["set"], m["library"], m["search"]
    cal, classifier = lib.card["calibration"], m["classifier"]
    left = m["spectra"] - search["queries"]
    return (f"Library search: each spectrum searched against the {len(m['classes'])} entries with itself left out of "
            f"its own entry's reference (`trainer.library.leave_one_out_hqi`), matching chain `{lib.preprocess.text}` "
            f"(the shipped library's), references {_references(s)} (its recipe's)"
            + (f"; the {left} spectra that alone make a reference cannot be left out, so are not queries" if left
               else "")
            + f". The no-match threshold is the {lib.false_no_match:g} quantile of the queries' HQI against their own "
            "entry; the false match of an absent material is the share of queries whose best hit among the other "
            f"entries reaches it. The library card states top-1 {pct(cal['top1'])}, top-3 {pct(cal['top3'])}, "
            f"threshold HQI {cal['no_match_below']:.2f}. Classifier: the hold-out accuracy its model card states "
            f"({classifier['protocol']}; selection scope: {classifier['selection_scope'] or 'not stated'}); not "
            "retrained here.")


def _verification_note(m: dict) -> str:
    """The protocol under the verification table."""
    s, v, card = m["set"], m["verification"], m["library"].card["verification"]
    return (f"{v['protocol'][0].upper()}{v['protocol'][1:]}; components by {v['components_rule']}; at most "
            f"{v['cap']} model replicates" + (f", spread over {s.spread}" if s.spread else "")
            + f" (seed {v['seed']}). The library card states false fail {pct(card['false_fail'])}, false pass "
            f"{pct(card['false_pass'])}.")


def _mixture_note(m: dict) -> str:
    """The protocol under the mixture table."""
    s, lib, mix = m["set"], m["library"], m["mixtures"]
    ood, entries = m["model_card"]["out_of_distribution"], len(m["classes"])
    card = lib.card["mixture"]["measured"]["mixtures"]
    sample = f" (at most {m['mixture_per_class']} per class at random, seed {SEED})" if m["mixture_per_class"] else ""
    return (f"{mix['spectra']} spectra{sample}, stratified {mix['folds']}-fold cross-validation by class (seed "
            f"{SEED}). On each training side: the unmixing model (`trainer.evaluation.mixtures.calibrate_mixture`: "
            f"references, representation and threshold by inner {mix['folds']}-fold cross-validation, threshold at "
            f"{100 * FALSE_MIXTURE_RATE:g} % of the inner held-out singles; thresholds "
            + ", ".join(f"{t:.3f}" for t in mix["thresholds"]) + ") and a library whose references are the means of "
            f"each class's training spectra after `{lib.preprocess.text}` (the shipped library's references: "
            f"{_references(s)}). Tested: the held-out spectra as measured and degraded to SNR {mix['snr']:g} "
            f"(`trainer.data.degrade`), and {mix['mixtures']['all']['count'] // len(RATIOS)} mixtures per ratio "
            f"(shares of band height) of two held-out spectra of different classes among {', '.join(mix['mixed'])}, "
            f"degraded to SNR {mix['snr']:g}, drawn as `mixture_rates` draws them. Verdict: the measurement service's "
            f"in classify mode: the fold library's mixture (`identify`: unmixing among the top {MIXTURE_CANDIDATES} "
            f"search hits, here {min(MIXTURE_CANDIDATES, entries)} of {entries} entries) when it finds one, else the "
            f"shipped model's class when its probability is at least {MIN_CONFIDENCE:g} and its detector does not say "
            "unknown. The shipped model was trained on all spectra of the set, so its detector sees mixtures of "
            "spectra it was trained on: the conservative case for catching them (its threshold set at "
            f"{100 * ood['target_false_unknown']:g} % false unknown, {pct(ood['held_out_false_unknown'])} on held-out "
            "spectra). `unknown` counts the detector's unknowns whatever the library says (the service reports the "
            "mixture when both hold); `mixture or unknown`, `uncertain` and `one confident class` add up to 100 %; "
            "`one class it holds` is the part of `one confident class` that names one of the spectrum's classes (for "
            "a mixture, one of its two). The library card's `mixture_rates` (the same draws, unmixing among all "
            "entries) states mixtures detected " + ", ".join(f"{k} {pct(v['detected'])}" for k, v in card.items())
            + ".")


def _references(s: SharedSet) -> str:
    return "all spectra of each entry" if s.references is None else f"{s.references[0]}={','.join(s.references[1])}"


def set_section(m: dict) -> list[str]:
    """The Markdown section of one :func:`measure` result: its tables, each with its protocol."""
    s, lib, axis = m["set"], m["library"], m["axis"]
    targets = [(t, v, "yes" if ok else "**no**") for t, v, ok in mixture_targets(m["mixtures"])]
    return [f"## {s.title}", "",
            f"Data `{s.data}`: {m['spectra']} spectra, {len(m['classes'])} classes, axis {axis.start:g}-{axis.stop:g} "
            f"cm-1 ({axis.points} points). Library `{s.library}` ({lib.library_id}), model `{s.model}` "
            f"({m['model_card']['id']}). Measured in {m['seconds']:.0f} s.", "",
            "### Identification beside the classifier", "",
            *identification_table(m["search"], m["classifier"], lib.preprocess.text), "", _search_note(m), "",
            "### Verification", "", *verification_table(m["verification"]), "", _verification_note(m), "",
            "### Mixtures: the classify-mode verdict", "", *mixture_table(m["mixtures"]), "", _mixture_note(m), "",
            *markdown_table(["target", "measured", "holds"], targets), ""]


def header(quick: bool, write: bool) -> list[str]:
    """Title, the command, the date, the machine and the software of the run."""
    import sklearn

    import device

    command = "benchmarks/bench_identify.py" + (" --quick" if quick else "") + (" --write" if write else "")
    versions = (f"Python {platform.python_version()}, NumPy {np.__version__}, scikit-learn {sklearn.__version__}, "
                f"raman-edge {device.__version__}")
    return ["# Benchmark: identification, verification and mixtures beside the classifier", "",
            f"`{command}` (`make bench-identify{' QUICK=1' if quick else ''}{' WRITE=1' if write else ''}`) on "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores; {versions}."
            + (f" Quick run: mixtures on at most {QUICK_PER_CLASS} spectra per class, {QUICK_FOLDS}-fold, "
               f"{QUICK_MIXTURES} mixtures per ratio; not the published figures." if quick else ""), ""]


def main(argv=None) -> int:
    args = shared_sets_parser(__doc__.splitlines()[0], REPORT, "spectra").parse_args(argv)
    return run_on_shared_sets(args, SETS, header(args.quick, args.write),
                              lambda shared: set_section(measure(shared, args.datasets, args.quick)))


if __name__ == "__main__":
    sys.exit(main())
