"""What a library says about one spectrum: identification, verification, mixture, as reported and recorded.

One composition of :mod:`device.inference.library` (search), :mod:`device.inference.verification` (the
p-value against an expected entry) and :mod:`device.inference.unmixing` (the components), used by
``raman-device identify`` / ``verify`` and by the measurement service, so that the command line, the
control port and the record say the same. Each result is an :class:`Analysis`: the verdict, the
``analysis`` JSON object the record keeps (its shape is in :mod:`device.service.record`) and the
``evidence`` arrays a report draws.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from device.errors import LibraryError
from device.inference.library import TOP_HITS, Library
from device.inference.spectrum import Spectrum

#: The verdict of a search whose best hit is below the library's no-match threshold.
NO_MATCH = "no match"
#: Verification results.
PASS, FAIL = "PASS", "FAIL"


def mixture_verdict(names) -> str:
    """The verdict on a mixture of the named entries: ``mixture of A + B``."""
    return "mixture of " + " + ".join(names)


@dataclass(frozen=True)
class Analysis:
    """A library's answer on one spectrum.

    Attributes
    ----------
    verdict : str
        An entry's name, :data:`NO_MATCH`, ``mixture of A + B`` (identify), or :data:`PASS` / :data:`FAIL` (verify).
    analysis : dict
        JSON-ready: ``mode``, ``library``, and ``hits``, ``match``, ``no_match_below`` (identify), ``expected``,
        ``p_value``, ``alpha``, ``result``, ``t2``, ``q`` (verify), ``mixture`` (when the library unmixes).
    evidence : dict of str to ndarray
        ``axis`` (P,) cm-1, ``sample`` and ``hit.I`` (P,) as matched, and the unmixing's ``fit``, ``background``,
        ``residual``, ``component.I`` (P,).
    """

    verdict: str
    analysis: dict
    evidence: dict = field(default_factory=dict)

    @property
    def is_mixture(self) -> bool:
        """True when the library found the spectrum a mixture of its entries."""
        return bool(self.analysis.get("mixture", {}).get("is_mixture"))


def _mixture(library: Library, spectrum: Spectrum, candidates) -> tuple[dict, dict] | None:
    """The unmixing among entry indices ``candidates``, as (analysis part, evidence); None without a mixture model."""
    model = library.mixture
    if model is None:
        return None
    y, part = library.on_axis(spectrum)
    if part != slice(0, library.axis.points):
        return None  # unmixing needs the whole axis: a spectrum covering part of it is searched only
    try:
        result = model.unmix(y, candidates)
    except ValueError:  # no signal above a smooth background: nothing to unmix, the search still reports
        return None
    residual = result.pair_residual if result.is_mixture else result.best_residual
    part_json = {"components": [{"name": n, "fraction": round(float(f), 4)} for n, f in result.components],
                 "residual": round(float(residual), 6), "statistic": round(float(result.statistic), 4),
                 "threshold": round(float(model.threshold), 4), "is_mixture": bool(result.is_mixture)}
    evidence = {"fit": result.fitted, "background": result.background, "residual": result.residual,
                **{f"component.{i}": c for i, c in enumerate(result.contributions)}}
    return part_json, evidence


def identify(library: Library, spectrum: Spectrum, top: int = TOP_HITS, mixtures: bool = True) -> Analysis:
    """Search the library for one spectrum, and unmix it among its best hits.

    Parameters
    ----------
    library : Library
    spectrum : Spectrum
    top : int
        Hits reported.
    mixtures : bool
        Also unmix (when the library has a mixture model).

    Raises
    ------
    LibraryError
        If the spectrum does not overlap the library's axis enough.
    """
    found = library.search(spectrum, top=max(top, MIXTURE_CANDIDATES))
    hits = found.hits[:top]
    analysis = {"mode": "identify", "library": library.library_id,
                "hits": [{"name": h.name, "hqi": h.hqi} for h in hits], "match": found.match,
                "no_match_below": round(library.no_match_below, 3)}
    evidence = {"axis": library.axis.values.copy(), "sample": found.sample,
                **{f"hit.{i}": library.reference_curve(h.name) for i, h in enumerate(hits)}}
    verdict = found.best or NO_MATCH
    mixed = _mixture(library, spectrum, [library.index(h.name) for h in found.hits]) if mixtures else None
    if mixed is not None:
        analysis["mixture"], more = mixed
        evidence.update(more)
        if mixed[0]["is_mixture"]:
            verdict = mixture_verdict(c["name"] for c in mixed[0]["components"][:2])
    return Analysis(verdict, analysis, evidence)


#: Best search hits the unmixing chooses its components among (the cost stays that of a few entries).
MIXTURE_CANDIDATES = 10


def verify(library: Library, spectrum: Spectrum, expected: str, alpha: float | None = None) -> Analysis:
    """Verify one spectrum against the library entry ``expected``: PASS or FAIL with a p-value.

    Raises
    ------
    LibraryError
        If the library has no entry ``expected`` or the spectrum does not cover the library's axis.
    TooFewReplicatesError
        If the entry has too few replicates for a variation model (the message says how many it needs).
    """
    from device.inference.verification import ALPHA

    alpha = ALPHA if alpha is None else alpha
    model = library.variation(expected, alpha)
    y, part = library.on_axis(spectrum)
    if part != slice(0, library.axis.points):
        raise LibraryError(f"verification compares every point of the entry's replicates, "
                           f"{library.axis.start:g}-{library.axis.stop:g} cm-1, and the spectrum covers only part of "
                           "them; acquire over the library's whole range")
    result = model.test(library.preprocess.apply(y[None, :]))[0]
    analysis = {"mode": "verify", "library": library.library_id, "expected": expected,
                "p_value": round(float(result.p_value), 6), "alpha": alpha,
                "result": PASS if result.passed else FAIL,
                "t2": round(float(result.t2), 4), "q": round(float(result.q), 6)}
    sample = library.matched(y)
    evidence = {"axis": library.axis.values.copy(), "sample": sample, "hit.0": library.reference_curve(expected)}
    return Analysis(analysis["result"], analysis, evidence)
