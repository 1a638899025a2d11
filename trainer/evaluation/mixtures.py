"""The mixture verdict of :mod:`device.inference.unmixing`: its calibration and its measured rates.

Calibration (:func:`calibrate_mixture`)
---------------------------------------
The library's spectra are split into stratified K folds by entry. For each fold, references are formed from
the other folds (:func:`device.inference.unmixing.component_reference`) and every held-out spectrum -- a
genuine single-entry spectrum -- is unmixed; so are synthetic two-entry mixtures of held-out spectra
(:func:`synthetic_mixtures`, :data:`RATIOS`, :data:`SELECTION_MIXTURES` per ratio and fold). The threshold
is the (1 - ``rate``) quantile of the held-out singles' statistics, so about ``rate`` of genuine single
spectra are called mixtures. Settings are fixed a priori except one, chosen by this cross-validation: the
representation, with or without a Savitzky-Golay first derivative over :data:`DERIVATIVE_CM` cm-1 (the one
whose synthetic mixtures are detected more often at its own threshold; no derivative on a tie). The model
returned holds the references of all spectra and that threshold.

Measurement (:func:`mixture_rates`)
-----------------------------------
Outer train/test pairs (stratified K-fold by default). On each training side the whole calibration runs,
inner folds and choice included; its test side is never seen. Measured on the test side:

* held-out single-entry spectra, as measured and degraded by the acquisition model
  (:func:`trainer.data.degrade.degrade`) at ``snr``: the share called mixtures (target <= 1 %);
* mixtures of two held-out spectra of different entries: ``r A / H_A + (1 - r) B / H_B`` for each ratio r of
  band height (``H`` the band height of the spectrum without its polynomial background), degraded at ``snr``:
  the share called mixtures (target >= 90 %), the share whose two components are the right pair, and the
  mean absolute error of the first component's fraction on those.

:func:`shared_set_rates` applies it to the two shared data sets with the protocols stated there.

Measured (:func:`shared_set_rates`, seed 0; SNR 50; 1,000 mixtures per ratio; targets >= 90 % detected, <= 1 %
of singles called mixtures)
----------------------------------------------------------------------------------------------------------------
============================================  =========  =========  =========  ==================  ========
set, split                                    25:75      50:50      75:25      singles (measured,   time (2
                                                                               degraded)            cores)
============================================  =========  =========  =========  ==================  ========
pesticides, 2,400 spectra, 5-fold             92.0 %     98.5 %     92.3 %     0.9 %, 1.0 %        36-46 s
microplastics, 129 spectra, 5-fold            36.5 %     77.0 %     38.6 %     0.8 %, 0.0 %        17-25 s
microplastics, sea water held out (54 test)   16.5 %     57.9 %     15.6 %     0.0 %, 0.0 %        5-9 s
============================================  =========  =========  =========  ==================  ========

On the pesticides the right pair is named in 99.8-100 % of the detected mixtures, fractions within 0.035-0.042
(mean absolute error); the degraded singles' 1.04 % is 25 of 2,400 (1 % is 24), at the target within one spectrum.
The inner cross-validation chose the derivative in every pesticide fold, in 4 of 5 microplastics folds, and not
with sea water held out.

The microplastics miss the detection target by 51-54 points at 25:75 and 75:25 and by 13 at 50:50 (32-74 with sea
water held out). Two properties of the data, not of the threshold, cause it. (1) One reference cannot express a
weathered particle: fluorescence, the filter edge below ~300 cm-1 and sharp bands near 1150 and 1520 cm-1 (where a
biofilm's carotenoids have theirs) vary within every polymer. With the background removed and references of all
129 particles, a tenth of the particles have a cosine below 0.71 with their own polymer's reference and a tenth
above 0.84 with the nearest other's; a second reference takes up part of that mismatch, while 25 % of band height
carries roughly a tenth (0.25^2 / (0.25^2 + 0.75^2)) of a mixture's energy. (2) The copolymers are near sums of
others (SAN of styrene and acrylonitrile units, ABS of SAN and butadiene): SAN particles, well fitted by two other
references, score highest among the singles and set the threshold, and a 25 % share of ABS, PS or SAN in another
of the three is detected in 3-29 % of the mixtures (stratified 5-fold, 25:75 by pair of polymers). An optimistic
ceiling -- references, threshold and mixtures all from the same 129 particles (derivative over 11 points, SNR 50)
-- detects 71 %, 93 % and 69 %.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from device.inference.snr import band_height
from device.inference.spectrum import Axis
from device.inference.unmixing import BACKGROUND_ORDER, MixtureModel, component_reference, legendre_background
from trainer.data.dataset import DatasetError, load_dataset
from trainer.data.degrade import degrade
from trainer.data.splits import stratified_folds

#: Shares of band height of the first component in the synthetic mixtures (25:75, 50:50, 75:25).
RATIOS = (0.25, 0.5, 0.75)
#: Default share of genuine single-entry spectra the threshold lets be called mixtures.
FALSE_MIXTURE_RATE = 0.01
#: Default folds of the calibration (fewer when an entry has fewer spectra).
FOLDS = 5
#: Width of the candidate Savitzky-Golay derivative window, cm-1 (about twice a typical band's FWHM).
DERIVATIVE_CM = 25.0
#: Narrowest derivative window, points.
MIN_DERIVATIVE_WINDOW = 5
#: Synthetic mixtures per ratio and fold that choose the representation.
SELECTION_MIXTURES = 100
#: SNR (:mod:`device.inference.snr`) at which the measurement degrades its test spectra.
MEASURE_SNR = 50.0
#: Synthetic test mixtures per ratio in a measurement, over all its train/test pairs.
MEASURE_MIXTURES = 1000
#: Target rates of the measurement.
TARGET_DETECTION, TARGET_FALSE_MIXTURE = 0.90, 0.01
#: The pesticide set's control (spinach without pesticide): a pesticide + control sum is the pesticide at a lower
#: concentration, not a mixture, so the measurement's mixtures pair pesticides only.
PESTICIDE_CONTROL = "No_pest_present"
#: Spectra per class of the pesticide set in :func:`shared_set_rates` (a stratified subsample, seeded).
PESTICIDE_PER_CLASS = 400
#: The microplastics axis (below 100 cm-1: laser line and filter edge), as the shipped model's.
MICROPLASTICS_AXIS = Axis(100.0, 3679.54, 1566)


def derivative_window(axis: Axis, width_cm: float = DERIVATIVE_CM) -> int:
    """The odd number of points nearest ``width_cm`` on ``axis``, at least :data:`MIN_DERIVATIVE_WINDOW`."""
    return max(MIN_DERIVATIVE_WINDOW, int(round(width_cm / axis.step)) | 1)


def entry_references(Y: np.ndarray, entry: np.ndarray, entries: int, order: int = BACKGROUND_ORDER) -> np.ndarray:
    """References (entries, P): :func:`component_reference` of each entry's rows of ``Y`` (n, P)."""
    return np.stack([component_reference(Y[entry == e], order) for e in range(entries)])


def synthetic_mixtures(Y: np.ndarray, entry: np.ndarray, ratios, count: int, rng: np.random.Generator,
                       order: int = BACKGROUND_ORDER, allowed=None):
    """Sums of two spectra of different entries at each ratio of band height.

    Each mixture: an ordered pair of distinct allowed entries drawn uniformly, one spectrum of each drawn
    uniformly, ``r A / H_A + (1 - r) B / H_B`` with ``H`` the band height of the spectrum minus its
    least-squares polynomial background of degree ``order`` (spectra with no band above it are not used).

    Parameters
    ----------
    Y : ndarray, shape (n, P)
        Spectra, linear intensity.
    entry : ndarray of int, shape (n,)
        Entry of each spectrum.
    ratios : sequence of float
        Shares in (0, 1) of the first spectrum.
    count : int
        Mixtures per ratio.
    rng : numpy.random.Generator
    order : int
    allowed : sequence of int, optional
        Entries that may be mixed (default every entry in ``entry``); at least two.

    Returns
    -------
    mixtures : ndarray, shape (len(ratios) * count, P)
    first, second : ndarray of int, shape (len(ratios) * count,)
        Entries of the two spectra.
    ratio : ndarray, shape (len(ratios) * count,)
        The first spectrum's share.
    """
    B = legendre_background(Y.shape[1], order)
    height = band_height(Y - (Y @ B) @ B.T)
    usable = entry[height > 0]  # a spectrum with no band above its background cannot be scaled to one
    allowed = np.unique(usable) if allowed is None else np.intersect1d(allowed, usable)
    if allowed.size < 2:
        raise DatasetError("synthetic mixtures need spectra of at least two entries that may be mixed")
    scaled = Y / np.where(height > 0, height, 1.0)[:, None]
    members = [np.flatnonzero((entry == e) & (height > 0)) for e in allowed]
    n = len(ratios) * count
    ratio = np.repeat(np.asarray(ratios, dtype=np.float64), count)
    a = rng.integers(0, allowed.size, n)
    b = (a + rng.integers(1, allowed.size, n)) % allowed.size
    i = np.array([rng.choice(members[k]) for k in a])
    j = np.array([rng.choice(members[k]) for k in b])
    return ratio[:, None] * scaled[i] + (1.0 - ratio)[:, None] * scaled[j], allowed[a], allowed[b], ratio


def _statistics(model: MixtureModel, Y: np.ndarray) -> np.ndarray:
    return np.array([model.unmix(y).statistic for y in Y])


def _cross_validated(Y, entry, names, pairs, order, window, seed):
    """Held-out singles' and synthetic mixtures' statistics over ``pairs``, for one representation."""
    rng = np.random.default_rng(seed)  # the same mixtures for every representation
    singles, mixed = [], []
    for train, test in pairs:
        model = MixtureModel(names, entry_references(Y[train], entry[train], len(names), order), order, window,
                             np.inf, np.nan, np.nan, 0)
        singles.append(_statistics(model, Y[test]))
        mixed.append(_statistics(model, synthetic_mixtures(Y[test], entry[test], RATIOS, SELECTION_MIXTURES,
                                                           rng, order)[0]))
    return np.concatenate(singles), np.concatenate(mixed)


def calibrate_mixture(Y, labels, axis: Axis, rate: float = FALSE_MIXTURE_RATE, folds: int = FOLDS, seed: int = 0,
                      order: int = BACKGROUND_ORDER) -> MixtureModel:
    """The mixture model of labelled single-entry spectra, its threshold cross-validated (module docstring).

    Parameters
    ----------
    Y : array_like, shape (n, P)
        Spectra on ``axis``, linear intensity, each of one entry.
    labels : array_like, shape (n,)
        Entry of each spectrum (names or numbers; the entries are the sorted distinct labels, as strings).
    axis : Axis
        The common axis (its step sets the derivative window).
    rate : float
        Share of genuine single spectra allowed to be called mixtures, in (0, 1).
    folds : int
        Cross-validation folds (at most the smallest entry's spectra).
    seed : int
        Seed of the folds and of the synthetic mixtures.
    order : int
        Background degree (:data:`device.inference.unmixing.BACKGROUND_ORDER`).

    Returns
    -------
    MixtureModel
        References of all spectra; ``threshold``, ``false_mixture_rate`` (share of held-out singles above it),
        ``mixture_detection_rate`` (share of held-out synthetic mixtures above it) and ``calibration_spectra``
        from the cross-validation.

    Raises
    ------
    DatasetError
        Fewer than two entries, an entry with fewer than two spectra, spectra not on ``axis``, or a bad rate.
    """
    Y = np.asarray(Y, dtype=np.float64)
    labels = np.asarray(labels)
    if Y.ndim != 2 or Y.shape != (labels.size, axis.points):
        raise DatasetError(f"calibrating the mixture verdict needs spectra (n, {axis.points}) on the axis and one "
                           f"label each; got spectra {Y.shape} and {labels.size} labels")
    if not 0 < rate < 1:
        raise DatasetError(f"the false-mixture rate must be a share between 0 and 1; got {rate}")
    keys, entry = np.unique(labels, return_inverse=True)
    names = tuple(str(k) for k in keys)
    counts = np.bincount(entry)
    if len(names) < 2:
        raise DatasetError("the mixture verdict needs at least two entries (one cannot mix with itself)")
    if counts.min() < 2:
        raise DatasetError(f"entry {names[int(counts.argmin())]} has one spectrum; the mixture threshold is set on "
                           "held-out spectra, so every entry needs at least two")
    pairs = stratified_folds(entry, int(min(folds, counts.min())), seed)
    chosen = None
    for window in (0, derivative_window(axis)):
        singles, mixed = _cross_validated(Y, entry, names, pairs, order, window, seed)
        threshold = float(np.quantile(singles, 1.0 - rate, method="higher"))
        detected = float(np.mean(mixed > threshold))
        if chosen is None or detected > chosen[2]:
            chosen = (window, threshold, detected, float(np.mean(singles > threshold)))
    window, threshold, detected, false = chosen
    return MixtureModel(names, entry_references(Y, entry, len(names), order), order, window, threshold, false,
                        detected, int(Y.shape[0]))


def mixture_rates(Y, labels, axis: Axis, *, pairs=None, split: str = "", components=None, ratios=RATIOS,
                  snr: float = MEASURE_SNR, count: int = MEASURE_MIXTURES, rate: float = FALSE_MIXTURE_RATE,
                  folds: int = FOLDS, seed: int = 0) -> dict:
    """The measured rates of the mixture verdict on one data set (module docstring).

    Parameters
    ----------
    Y, labels, axis
        As for :func:`calibrate_mixture`.
    pairs : list of (ndarray, ndarray), optional
        Outer (train, test) index pairs; default stratified ``folds``-fold by label (seeded).
    split : str
        The outer split in words (default: the stratified K-fold's description).
    components : sequence, optional
        Labels that may be mixed (default all).
    ratios : sequence of float
        First component's share of band height.
    snr : float
        SNR of the acquisition model for the degraded test spectra and the mixtures.
    count : int
        Test mixtures per ratio over all pairs (split evenly).
    rate, folds, seed
        Of the calibration on each training side (the seed also draws the mixtures and the noise).

    Returns
    -------
    dict
        ``protocol`` (str), ``spectra``, ``snr``, per pair ``thresholds`` and ``derivative_windows``;
        ``false_mixture`` (shares of held-out singles called mixtures: ``as_measured``, ``degraded``);
        ``mixtures`` per ratio key ``"25:75"``...: ``count``, ``detected`` (share called mixture),
        ``right_pair`` (share called a mixture of the right two), ``fraction_error`` (mean absolute error of
        the first component's fraction on those, or None); ``detected_all``; ``meets_targets``; ``seconds``.
    """
    t0 = time.perf_counter()
    Y = np.asarray(Y, dtype=np.float64)
    labels = np.asarray(labels)
    keys, entry = np.unique(labels, return_inverse=True)
    allowed = np.arange(keys.size) if components is None else np.flatnonzero(np.isin(keys, components))
    if pairs is None:
        pairs = stratified_folds(entry, folds, seed)
        split = split or f"stratified {folds}-fold cross-validation by label (seed {seed})"
    rng = np.random.default_rng(seed)
    per_pair = -(-count // len(pairs))
    singles = {"as_measured": [], "degraded": []}
    found = {r: [] for r in ratios}
    right = {r: [] for r in ratios}
    error = {r: [] for r in ratios}
    thresholds, windows = [], []
    for train, test in pairs:
        model = calibrate_mixture(Y[train], labels[train], axis, rate, folds, seed)
        thresholds.append(model.threshold)
        windows.append(model.derivative_window)
        singles["as_measured"].append([model.unmix(y).is_mixture for y in Y[test]])
        singles["degraded"].append([model.unmix(y).is_mixture for y in degrade(Y[test], axis, snr, rng)])
        M, first, second, ratio = synthetic_mixtures(Y[test], entry[test], ratios, per_pair, rng,
                                                     model.background_order, allowed)
        for m, a, b, r in zip(degrade(M, axis, snr, rng), first, second, ratio):
            result = model.unmix(m)
            share = dict(result.components)
            hit = result.is_mixture and set(share) == {str(keys[a]), str(keys[b])}
            found[r].append(result.is_mixture)
            right[r].append(hit)
            if hit:
                error[r].append(abs(share[str(keys[a])] - r))
    false = {k: float(np.mean(np.concatenate(v))) for k, v in singles.items()}
    mixtures = {f"{round(100 * r)}:{round(100 * (1 - r))}": {
        "count": len(found[r]), "detected": float(np.mean(found[r])), "right_pair": float(np.mean(right[r])),
        "fraction_error": float(np.mean(error[r])) if error[r] else None} for r in ratios}
    detected_all = float(np.mean(np.concatenate([found[r] for r in ratios])))
    meets = (min(m["detected"] for m in mixtures.values()) >= TARGET_DETECTION
             and false["degraded"] <= TARGET_FALSE_MIXTURE)
    mixed = ", ".join(str(k) for k in keys[allowed])
    protocol = (f"{split}; on each training side the references, the representation (with or without a "
                f"{DERIVATIVE_CM:g} cm-1 derivative) and the threshold ({rate:.0%} of inner held-out singles) are "
                f"set by inner {folds}-fold cross-validation; tested on the held-out spectra as measured and "
                f"degraded to SNR {snr:g} (trainer.data.degrade), and on {count} mixtures per ratio of two held-out "
                f"spectra of different classes among {mixed} (shares of band height), degraded to SNR {snr:g}")
    return {"protocol": protocol, "spectra": int(Y.shape[0]), "snr": snr, "thresholds": thresholds,
            "derivative_windows": windows, "false_mixture": false, "mixtures": mixtures,
            "detected_all": detected_all, "meets_targets": bool(meets), "seconds": round(time.perf_counter() - t0, 1)}


def shared_set_rates(datasets, seed: int = 0, per_class: int = PESTICIDE_PER_CLASS) -> dict:
    """:func:`mixture_rates` on the two shared data sets, by the protocols below.

    * ``pesticides``: a stratified subsample of ``per_class`` spectra per class (seed ``seed``; the control has
      663) of the SERS pesticide set, stratified 5-fold; mixtures of pairs of the five pesticides only
      (:data:`PESTICIDE_CONTROL`).
    * ``microplastics``: all 129 spectra on :data:`MICROPLASTICS_AXIS`, stratified 5-fold, all 11 polymers
      mixed; pristine, fresh-water and sea-water particles (biofilm) alike.
    * ``microplastics, sea water held out``: trained on the pristine and fresh-water particles, tested on the
      sea-water ones (the split that matters for this set).

    Parameters
    ----------
    datasets : path-like
        The shared datasets folder (holding ``sersformer_pesticides/`` and ``rampp_microplastics/``).

    Returns
    -------
    dict of str to dict
        Each set's :func:`mixture_rates`, with ``data`` naming it.
    """
    datasets = Path(datasets)
    out = {}
    sers = load_dataset(datasets / "sersformer_pesticides" / "sersformer_pesticides.npz")
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(sers.y == c))[:per_class]
                                   for c in range(len(sers.class_names))]))
    labels = np.asarray(sers.class_names)[sers.y[keep]]
    pesticides = [c for c in sers.class_names if c != PESTICIDE_CONTROL]
    out["pesticides"] = {"data": f"SERSFormer pesticides on spinach, {keep.size} of {sers.y.size} spectra "
                                 f"({per_class} per class at random, seed {seed}), 501-1999 cm-1",
                         **mixture_rates(sers.X[keep], labels, sers.axis, components=pesticides, seed=seed)}
    plastics = load_dataset(datasets / "rampp_microplastics" / "rampp_microplastics.npz", axis=MICROPLASTICS_AXIS)
    labels = np.asarray(plastics.class_names)[plastics.y]
    data = f"RaMPP microplastics, {plastics.y.size} spectra, 11 polymers, {MICROPLASTICS_AXIS} cm-1"
    out["microplastics"] = {"data": data + " (pristine, fresh and sea water)",
                            **mixture_rates(plastics.X, labels, plastics.axis, seed=seed)}
    sea = plastics.meta["condition"] == "SW"
    out["microplastics, sea water held out"] = {
        "data": data, **mixture_rates(plastics.X, labels, plastics.axis, seed=seed,
                                      pairs=[(np.flatnonzero(~sea), np.flatnonzero(sea))],
                                      split="trained on the pristine and fresh-water particles, tested on the "
                                            f"{int(sea.sum())} sea-water ones")}
    return out
