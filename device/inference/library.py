"""Reference libraries: named reference spectra to search ("what is this?"), verify against and unmix.

The second bundle kind beside model bundles, sealed the same way (:mod:`device.inference.sealed`)::

    LIBRARY/
      library.json   card: provenance and licence, entries, axis, matching preprocessing and how it was
                     chosen, the no-match calibration and the measured rates, and the SHA-256 of every file
      library.npz    the arrays below (loaded with allow_pickle=False)

Arrays of ``library.npz``: ``schema_version``, ``kind`` (``reference-library``), ``name``, the axis
(``axis_start``, ``axis_stop``, ``axis_points``), the matching preprocessing chain
(:mod:`device.inference.preprocess`, ``preprocess`` and ``preprocess.I.NAME``), ``entry_names`` (E,),
``references`` (E, P): each entry's reference in the matching space (the mean of its reference spectra
after the chain, centred and scaled to unit norm), ``spectra`` (N, P): every stored replicate of every
entry after the chain (the variation that verification tests against), ``spectrum_entry`` (N,) the entry
of each, ``no_match_below`` (HQI) with the ``false_no_match`` rate it was set at, and optionally
``mixture.*``, the unmixing references and their calibrated decision (:mod:`device.inference.unmixing`).

**Hit quality index.** ``HQI = 100 r``, with r the Pearson correlation of the sample and an entry's
reference, both after the library's preprocessing chain, over the points where both are defined: 100 is
a perfect match, 0 no relation. A sample whose best HQI is below ``no_match_below`` is reported as no
match; that threshold is the ``false_no_match`` quantile of the HQI that spectra of the library's own
entries score against their entry when left out of it (leave-one-out, :mod:`trainer.library`), so it is
calibrated on the library's own replicates rather than fixed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.errors import AxisCoverageError, LibraryError
from device.inference.preprocess import STEPS, Chain, UnknownStepError
from device.inference.resample import Resampler
from device.inference.sealed import read_arrays, read_card, verify_files, write_sealed
from device.inference.signature import verify_signature
from device.inference.spectrum import Axis, Spectrum

SCHEMA_VERSION = 1
KIND = "reference-library"
CARD_FILE = "library.json"
NPZ_FILE = "library.npz"
TEXT_ENTRIES = ("kind", "name", "entry_names", "preprocess", "written_by", "mixture.names")
#: Most bytes ``library.npz`` may unpack to: 10,000 entries of 2,000 points in float32 take 80 MB.
MAX_NPZ_BYTES = 512 * 1024 * 1024
#: Least share of the library's axis a spectrum must cover to be searched; less is refused with both ranges.
MIN_OVERLAP = 0.8
#: Hits reported by default.
TOP_HITS = 5


def _fail(path: Path, problem: str, remedy: str = "rebuild it with raman-train library or restore a good copy"):
    return LibraryError(f"reference library {path}: {problem}; {remedy}.")


@dataclass(frozen=True)
class Hit:
    """One library entry as a candidate identity of a spectrum.

    Attributes
    ----------
    name : str
        The entry's name.
    hqi : float
        Hit quality index, 100 x correlation (-100 to 100).
    """

    name: str
    hqi: float


@dataclass(frozen=True)
class Identification:
    """The search result for one spectrum.

    Attributes
    ----------
    hits : tuple of Hit
        The best entries, best first.
    match : bool
        The best HQI reaches the library's ``no_match_below``.
    no_match_below : float
        The threshold it was compared with.
    sample : ndarray, shape (P,)
        The sample as matched (after the chain, centred and scaled to unit norm; NaN where the spectrum
        does not reach), for the evidence.
    """

    hits: tuple
    match: bool
    no_match_below: float
    sample: np.ndarray

    @property
    def best(self) -> str | None:
        """The best entry's name if it matches, else None (no match)."""
        return self.hits[0].name if self.match else None


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Each row of ``X`` (n, P) centred and scaled to unit Euclidean norm (a zero row stays zero): (n, P)."""
    X = X - X.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norm > 0, norm, 1.0)


@dataclass(frozen=True)
class Library:
    """A verified reference library (see the module docstring).

    Attributes
    ----------
    path : Path
    card : dict
    name : str
    library_id : str
        ``NAME@`` followed by the first 12 hex digits of the SHA-256 of ``library.npz``.
    axis : Axis
    preprocess : Chain
        The matching preprocessing.
    entry_names : tuple of str
    references : ndarray, shape (E, P)
        Each entry's reference after the chain, centred and of unit norm (float32): one matrix product with a
        matched sample gives every correlation.
    spectra : ndarray, shape (N, P)
        The replicates after the chain (float32).
    spectrum_entry : ndarray, shape (N,)
        Entry index of each replicate.
    no_match_below : float
        HQI below which the best hit is no match.
    false_no_match : float
        The share of the library's own left-out spectra below ``no_match_below`` when it was set.
    mixture : object or None
        The unmixing model (:class:`device.inference.unmixing.MixtureModel`), when the library has one.
    """

    path: Path
    card: dict
    name: str
    library_id: str
    axis: Axis
    preprocess: Chain
    entry_names: tuple
    references: np.ndarray
    spectra: np.ndarray
    spectrum_entry: np.ndarray
    no_match_below: float
    false_no_match: float
    mixture: object = None
    _variations: dict = field(default_factory=dict, compare=False, repr=False)

    def replicates(self, name: str) -> np.ndarray:
        """The replicates of entry ``name`` after the chain: (n, P) float64.

        Raises
        ------
        LibraryError
            If the library has no such entry (the message lists the entries).
        """
        return self.spectra[self.spectrum_entry == self.index(name)].astype(np.float64)

    def variation(self, name: str, alpha: float | None = None):
        """The variation model of entry ``name`` at significance ``alpha`` (fitted once, then kept).

        Returns
        -------
        VariationModel
            :class:`device.inference.verification.VariationModel` of the entry's replicates.

        Raises
        ------
        LibraryError
            If the library has no such entry.
        TooFewReplicatesError
            If the entry has fewer replicates than verification needs (the message says how many).
        """
        from device.inference.verification import ALPHA, VariationModel

        alpha = ALPHA if alpha is None else alpha
        key = (self.index(name), alpha)
        if key not in self._variations:
            self._variations[key] = VariationModel.fit(self.replicates(name), alpha, entry=f"{name!r} of {self.name}")
        return self._variations[key]

    def index(self, name: str) -> int:
        """The index of entry ``name``; LibraryError naming the entries if there is none."""
        try:
            return self.entry_names.index(name)
        except ValueError:
            shown = ", ".join(self.entry_names[:20]) + (", ..." if len(self.entry_names) > 20 else "")
            raise LibraryError(f"reference library {self.library_id} has no entry {name!r}; its entries: {shown}") \
                from None

    def on_axis(self, spectrum: Spectrum) -> tuple[np.ndarray, slice]:
        """A spectrum's intensities on the library axis where it reaches, and which points those are.

        Returns
        -------
        y : ndarray, shape (m,)
            Intensities on the library axis points ``part`` (linear interpolation, never extrapolated).
        part : slice
            The library axis points the spectrum covers: all of them, or at least :data:`MIN_OVERLAP` of the span.

        Raises
        ------
        LibraryError
            If the spectrum covers less than :data:`MIN_OVERLAP` of the library's axis (both ranges named).
        """
        shift = spectrum.shift
        lo, hi = (shift[0], shift[-1]) if shift[0] < shift[-1] else (shift[-1], shift[0])
        values = self.axis.values
        slack = 1e-6 * self.axis.step
        inside = np.flatnonzero((values >= lo - slack) & (values <= hi + slack))
        span = self.axis.stop - self.axis.start
        covered = (values[inside[-1]] - values[inside[0]]) / span if inside.size >= 2 else 0.0
        if covered < MIN_OVERLAP:
            raise LibraryError(
                f"the spectrum covers {lo:g}-{hi:g} cm-1 and the library {self.library_id} "
                f"{self.axis.start:g}-{self.axis.stop:g} cm-1: they overlap on {100 * covered:.0f} % of the library's "
                f"range, less than the {100 * MIN_OVERLAP:.0f} % a search needs; acquire over the library's range "
                "or use a library made on yours")
        part = slice(int(inside[0]), int(inside[-1]) + 1)
        sub = self.axis if part == slice(0, self.axis.points) else Axis(values[part.start], values[part.stop - 1],
                                                                         part.stop - part.start)
        order = np.argsort(shift)
        try:
            return Resampler(shift[order], sub)(spectrum.intensity[order]), part
        except AxisCoverageError as exc:  # not reached: the part lies inside the spectrum
            raise LibraryError(str(exc)) from None

    def matched(self, y: np.ndarray) -> np.ndarray:
        """A spectrum on (part of) the axis, after the chain, centred and of unit norm: same shape (m,)."""
        return unit_rows(self.preprocess.apply(y[None, :]))[0]

    def search(self, spectrum: Spectrum, top: int = TOP_HITS) -> Identification:
        """The best ``top`` entries for one spectrum, by HQI.

        Costs one (E, P) x (P,) product (float32) on a full-axis spectrum; a spectrum covering part of
        the axis recentres the references on that part first (E x P more).

        Raises
        ------
        LibraryError
            If the spectrum does not overlap the library's axis enough.
        """
        y, part = self.on_axis(spectrum)
        x = self.matched(y)
        if part == slice(0, self.axis.points):
            hqi = 100.0 * (self.references @ x.astype(np.float32))
        else:
            hqi = 100.0 * (unit_rows(self.references[:, part].astype(np.float64)) @ x)
        return self.identification(hqi, x, part, top)

    def identification(self, hqi: np.ndarray, x: np.ndarray, part: slice, top: int = TOP_HITS) -> Identification:
        """The :class:`Identification` of HQI values (E,) of a matched sample ``x`` on points ``part``."""
        k = min(top, hqi.size)
        best = np.argpartition(-hqi, k - 1)[:k] if k < hqi.size else np.arange(hqi.size)
        best = best[np.argsort(-hqi[best], kind="stable")]
        hits = tuple(Hit(self.entry_names[i], round(float(hqi[i]), 3)) for i in best)
        sample = np.full(self.axis.points, np.nan)
        sample[part] = x
        return Identification(hits, hits[0].hqi >= self.no_match_below, self.no_match_below, sample)

    def reference_curve(self, name: str) -> np.ndarray:
        """Entry ``name``'s reference as matched (centred, unit norm) on the whole axis: (P,), for the evidence."""
        return self.references[self.index(name)].astype(np.float64)


def load_library(path, keys: dict | None = None) -> Library:
    """Load and verify a reference library directory.

    Parameters
    ----------
    path : path-like
    keys : dict, optional
        Key id -> public key (:func:`device.inference.signature.load_public_keys`): the library must be
        signed by one of them. None (default): a signature is not checked.

    Raises
    ------
    LibraryError
        If the directory or a file is missing, a hash does not match, a file is not listed in the card,
        the schema version is unknown, or the arrays are inconsistent.
    SignatureError
        With ``keys``: unsigned, signed by another key, or a signature that does not match the card.
    """
    path = Path(path)

    def fail(problem: str, remedy: str | None = None) -> LibraryError:
        return _fail(path, problem, *([remedy] if remedy else []))

    card = read_card(path, CARD_FILE, fail, "pass the directory that holds library.json and library.npz")
    if keys is not None:
        verify_signature(path, CARD_FILE, keys, fail)
    if card.get("kind") != KIND:
        raise fail(f"{CARD_FILE} is not the card of a reference library (kind {str(card.get('kind'))[:40]!r})",
                   "pass a directory made by raman-train library (a model bundle goes to --model)")
    if card.get("schema_version") != SCHEMA_VERSION:
        raise fail(f"unknown library schema version {card.get('schema_version')!r} (this raman-edge reads "
                   f"{SCHEMA_VERSION})", "use the raman-edge release that wrote it, or rebuild it with this one")
    verify_files(path, card, CARD_FILE, (NPZ_FILE,), fail)
    arrays = read_arrays(path, NPZ_FILE, TEXT_ENTRIES, MAX_NPZ_BYTES, fail)
    try:
        return _library(path, card, arrays)
    except KeyError as exc:
        raise fail(f"{NPZ_FILE} lacks the entry {exc}") from None
    except UnknownStepError as exc:
        raise fail(f"its preprocessing step {exc.step[:40]!r} is unknown to this raman-edge "
                   f"(steps: {', '.join(STEPS)})", "update raman-edge, or rebuild the library with this one") from None
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise fail(f"{NPZ_FILE} holds a malformed entry ({exc})") from None


def _library(path: Path, card: dict, arrays: dict) -> Library:
    """The library of checked arrays; KeyError, ValueError or TypeError for inconsistent ones."""
    if int(arrays["schema_version"]) != SCHEMA_VERSION or str(arrays["kind"]) != KIND:
        raise ValueError("library.npz is not of this library schema")
    axis = Axis(float(arrays["axis_start"]), float(arrays["axis_stop"]), int(arrays["axis_points"]))
    names = tuple(str(n) for n in np.atleast_1d(arrays["entry_names"]))
    references = np.asarray(arrays["references"], np.float32)
    spectra = np.asarray(arrays["spectra"], np.float32)
    owner = np.asarray(arrays["spectrum_entry"])
    if not names or len(set(names)) != len(names) or any(not n.strip() for n in names):
        raise ValueError("entry names must be present, distinct and not blank")
    if references.shape != (len(names), axis.points):
        raise ValueError(f"references have shape {references.shape}, not ({len(names)}, {axis.points})")
    if spectra.ndim != 2 or spectra.shape[1] != axis.points or owner.shape != (spectra.shape[0],) \
            or owner.dtype.kind not in "iu" or (owner.size and (owner.min() < 0 or owner.max() >= len(names))):
        raise ValueError("the replicate spectra and their entry indices do not fit the entries and the axis")
    chain = Chain.from_arrays(arrays, axis.points)
    no_match, rate = float(arrays["no_match_below"]), float(arrays["false_no_match"])
    if not (-100.0 <= no_match <= 100.0 and 0.0 <= rate < 1.0):
        raise ValueError("the no-match threshold must be an HQI (-100 to 100) and its rate a share below 1")
    mixture = None
    if any(k.startswith("mixture.") for k in arrays):
        from device.inference.unmixing import MixtureModel

        mixture = MixtureModel.from_arrays(arrays, axis.points, prefix="mixture.")
    if mixture is not None and tuple(mixture.names) != names:
        raise ValueError("the unmixing references are not of the library's entries")
    sha = card["files"][NPZ_FILE]["sha256"]
    return Library(path=path, card=card, name=str(arrays["name"]), library_id=f"{arrays['name']}@{sha[:12]}",
                   axis=axis, preprocess=chain, entry_names=names, references=references, spectra=spectra,
                   spectrum_entry=owner.astype(np.int64), no_match_below=no_match, false_no_match=rate,
                   mixture=mixture)


def write_library(path, *, name: str, axis: Axis, preprocess: Chain, entry_names, references: np.ndarray,
                  spectra: np.ndarray, spectrum_entry: np.ndarray, no_match_below: float, false_no_match: float,
                  card: dict, mixture=None) -> Library:
    """Write a library directory, then load it back through :func:`load_library`.

    Parameters
    ----------
    path : path-like
        Library directory; an existing one there is replaced only once the new one is complete.
    name : str
        Library name, the first part of its id.
    axis : Axis
    preprocess : Chain
        The matching preprocessing.
    entry_names : sequence of str, length E
    references : ndarray, shape (E, P)
        Each entry's reference after the chain (stored centred and of unit norm).
    spectra : ndarray, shape (N, P)
        Replicates after the chain (N may be 0: such a library searches but cannot verify).
    spectrum_entry : ndarray of int, shape (N,)
    no_match_below, false_no_match : float
        The calibrated no-match HQI and the rate it was set at.
    card : dict
        Card fields; ``schema_version``, ``kind``, ``id``, ``axis``, ``matching`` and ``files`` are filled in here.
    mixture : MixtureModel, optional

    Returns
    -------
    Library
    """
    from device import __version__

    path = Path(path)
    arrays = {"schema_version": np.array(SCHEMA_VERSION), "kind": np.array(KIND), "name": np.array(name),
              "axis_start": np.array(axis.start), "axis_stop": np.array(axis.stop),
              "axis_points": np.array(axis.points),
              **preprocess.to_arrays(), "entry_names": np.array(list(entry_names)),
              "references": unit_rows(np.asarray(references, np.float64)).astype(np.float32),
              "spectra": np.asarray(spectra, np.float32),
              "spectrum_entry": np.asarray(spectrum_entry, np.int32),
              "no_match_below": np.array(float(no_match_below)), "false_no_match": np.array(float(false_no_match)),
              "written_by": np.array(__version__)}
    if mixture is not None:
        arrays.update(mixture.to_arrays(prefix="mixture."))

    def full_card(files: dict) -> dict:
        return {"schema_version": SCHEMA_VERSION, "kind": KIND, "id": f"{name}@{files[NPZ_FILE]['sha256'][:12]}",
                **card, "axis": {"start": axis.start, "stop": axis.stop, "points": axis.points, "unit": "cm-1"},
                "written_by": __version__, "files": files}

    write_sealed(path, CARD_FILE, full_card, {NPZ_FILE: arrays}, compressed=True)
    return load_library(path)
