"""Measured error rates of verification against an expected material (:mod:`device.inference.verification`).

Each class of a labelled data set is one library entry, its spectra the entry's replicates, all preprocessed
by one chain on the data set's axis. Two rates, per entry and overall:

* **false fail**: a spectrum of the entry's own material, left out of the entry's model, tested against
  it; FAIL is a false fail (expected near ``alpha`` when the model is honest). An entry with more than
  ``cap`` spectra is modelled on ``cap`` of them spread evenly over the values of a metadata key
  (``spread``, e.g. concentration: taken in turn from each value, at random within it, with ``seed``)
  and tested on all the others; an entry with at most ``cap`` spectra by leave-one-out (one model on the
  other ``n - 1`` for each spectrum).
* **false pass**: every spectrum of every other class tested against the entry's model (on its ``cap``
  spectra, or on all of them); PASS is a false pass: the test could not tell that material from the entry.
  An entry of a blank or control (e.g. spinach without pesticide) verifies that a spectrum holds nothing
  beyond the blank's own variation: its false pass is a contaminated sample taken for clean.

Nothing is tuned on the spectra a rate is measured on: the model's components, limits and residual scale
come from the entry's model replicates alone, by fixed rules. The default chain (:data:`DEFAULT_PREPROCESS`)
was fixed before any rate was measured: verification asks whether the differences from a material's
reference are that material's own measurement variation, and a fluorescence background belongs to the
sample, its focus and its surroundings rather than to the material, so an asymmetric-least-squares
baseline is removed before SNV (the chemometrics textbooks' chain for Raman); ``snv`` alone is the other
chain the library may use (:data:`CHAINS`).
"""
from __future__ import annotations

import time

import numpy as np

from device.inference.inputs import as_chain
from device.inference.verification import ALPHA, MIN_REPLICATES, ReplicateVariationError, VariationModel
from trainer.data.dataset import Dataset

#: Chains verification is measured with: baseline removal then SNV (the default), and SNV alone.
CHAINS = ("asls:1e5:0.01,snv", "snv")
#: The chain used unless another is given (see the module docstring for why).
DEFAULT_PREPROCESS = CHAINS[0]
#: Most replicates an entry's model is fitted on; the rest of its spectra test it.
CAP = 60
#: Seed of the choice of model replicates.
SEED = 0


def spread_choice(strata: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """``cap`` indices into ``strata`` (n,), taken in turn from each distinct value, at random within it.

    Returns
    -------
    ndarray of int, shape (min(cap, n),)
        Sorted positions: as even a share of each value as its members allow.
    """
    orders = [rng.permutation(np.flatnonzero(strata == value)) for value in np.unique(strata)]
    depth = max(len(o) for o in orders)
    turns = [o[d] for d in range(depth) for o in orders if d < len(o)]  # first of each value, then second ...
    return np.sort(np.array(turns[:cap], dtype=np.int64))


def verification_rates(ds: Dataset, preprocess: str = DEFAULT_PREPROCESS, *, alpha: float = ALPHA, cap: int = CAP,
                       spread: str | None = None, seed: int = SEED) -> dict:
    """False-fail and false-pass rates of verification on ``ds`` (protocol in the module docstring).

    Parameters
    ----------
    ds : Dataset
        Labelled spectra (n, points) on their axis; each class is an entry.
    preprocess : str
        The library's preprocessing chain (see :mod:`device.inference.preprocess`).
    alpha : float
        Significance level of the test.
    cap : int
        Most model replicates per entry.
    spread : str, optional
        Metadata key whose values the capped model replicates are spread over (e.g. ``concentration_ppm``).
    seed : int
        Seed of the choice of model replicates.

    Returns
    -------
    dict
        ``protocol`` (in words), the settings, ``entries`` (per entry: ``model_replicates``, ``components``,
        ``false_fail_protocol``, ``false_fail`` with its counts ``false_fails`` of ``false_fail_tested``,
        likewise ``false_pass``, and ``false_pass_by_material``), ``skipped`` (entries that cannot be
        verified, or left one out of, with the reason), pooled ``false_fail``/``false_pass`` with their tested
        counts, ``false_fail_entry_mean``/``false_pass_entry_mean`` and ``seconds``. Rates are ``None``
        where nothing was tested.

    Raises
    ------
    KeyError
        ``spread`` is not a metadata key of ``ds``.
    """
    t0 = time.perf_counter()
    chain = as_chain(preprocess, ds.axis)
    A = chain.apply(ds.X)
    strata = np.zeros(len(ds.y)) if spread is None else np.asarray(ds.meta[spread])
    rng = np.random.default_rng(seed)
    entries, skipped = {}, {}
    for c, name in enumerate(ds.class_names):
        own = np.flatnonzero(ds.y == c)
        try:
            if own.size > cap:
                model_idx = own[spread_choice(strata[own], cap, rng)]
                model = VariationModel.fit(A[model_idx], alpha, name)
                held = np.setdiff1d(own, model_idx)
                failed = [not v.passed for v in model.test(A[held])]
                how = (f"model on {cap} spectra" + (f" spread over {spread}" if spread else "")
                       + f" (seed {seed}), tested on the other {held.size}")
            else:
                model = VariationModel.fit(A[own], alpha, name)
                how = f"leave-one-out over its {own.size} spectra"
                failed = _leave_one_out_fails(A[own], alpha, name)
        except ReplicateVariationError as exc:
            skipped[name] = str(exc)
            continue
        if failed is None:
            skipped[name] = (f"false fail not measured: leaving one of its {own.size} spectra out leaves "
                             f"{own.size - 1}, verification needs {MIN_REPLICATES}")
            failed = []
        other = np.flatnonzero(ds.y != c)
        passed = np.array([v.passed for v in model.test(A[other])])
        entries[name] = {"model_replicates": model.n, "components": model.k, "false_fail_protocol": how,
                         "false_fail": _rate(failed), "false_fails": int(np.sum(failed)),
                         "false_fail_tested": len(failed),
                         "false_pass": _rate(passed), "false_passes": int(passed.sum()),
                         "false_pass_tested": int(passed.size),
                         "false_pass_by_material": {ds.class_names[o]: _rate(passed[ds.y[other] == o])
                                                    for o in np.unique(ds.y[other])}}
    tested_fail = sum(e["false_fail_tested"] for e in entries.values())
    tested_pass = sum(e["false_pass_tested"] for e in entries.values())
    measured = [e for e in entries.values() if e["false_fail"] is not None]
    return {
        "protocol": ("each class an entry; false fail: a spectrum of the entry's material left out of its model "
                     f"(more than {cap} spectra: the model on {cap}, tested on the rest; else leave-one-out), FAIL "
                     "counted; false pass: every spectrum of every other class against the entry's model, PASS "
                     "counted; pooled over tests, and the mean over entries"),
        "preprocess": chain.text, "alpha": alpha, "cap": cap, "spread": spread, "seed": seed,
        "components_rule": "broken stick, 1 <= k <= n - 2",
        "entries": entries, "skipped": skipped,
        "false_fail": sum(e["false_fails"] for e in entries.values()) / tested_fail if tested_fail else None,
        "false_fail_tested": tested_fail,
        "false_pass": sum(e["false_passes"] for e in entries.values()) / tested_pass if tested_pass else None,
        "false_pass_tested": tested_pass,
        "false_fail_entry_mean": float(np.mean([e["false_fail"] for e in measured])) if measured else None,
        "false_pass_entry_mean": float(np.mean([e["false_pass"] for e in entries.values()])) if entries else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _leave_one_out_fails(A: np.ndarray, alpha: float, name: str) -> list | None:
    """Whether each row of ``A`` (n, points) fails under the model of the others; None if n - 1 is too few."""
    if len(A) - 1 < MIN_REPLICATES:
        return None
    return [not VariationModel.fit(np.delete(A, i, axis=0), alpha, name).test(A[i])[0].passed for i in range(len(A))]


def _rate(flags) -> float | None:
    """The share of true values in ``flags``, or None if there are none."""
    return float(np.mean(flags)) if len(flags) else None
