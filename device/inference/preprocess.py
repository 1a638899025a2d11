"""Preprocessing chains: the per-spectrum steps between the model axis and the model's inputs.

A chain is a sequence of steps, each applied to a batch of spectra ``X`` (n, points) on the model axis
and returning a batch of the same shape. Every step is stored in the bundle as a JSON-able spec plus
plain NumPy arrays, and counts its floating-point operations (FLOP, as :mod:`device.inference.cost` counts them).

Steps, written as text in a comma-separated chain (``snv,savgol:11:2:1,asls:1e5:0.01``):

``snv``                        standard normal variate: each spectrum minus its mean, over its
                               standard deviation (a flat spectrum becomes zeros).
``savgol:WINDOW:ORDER[:DERIV]``  Savitzky-Golay smoothing (DERIV 0) or derivative, as
                               ``scipy.signal.savgol_filter(x, WINDOW, ORDER, deriv=DERIV, delta=axis step,
                               mode="interp")``: the (WINDOW, WINDOW) matrix of the local polynomial fits
                               is computed once, when the chain is built at training, and stored.
``asls:LAM:P[:MAX_ITER]``        baseline removal by asymmetric least squares (Eilers & Boelens 2005):
                               the spectrum minus the baseline of ``pybaselines.whittaker.asls(x, lam=LAM,
                               p=P, max_iter=MAX_ITER (default 50), tol=1e-3)``, second differences.

``none`` is the empty chain. The device needs nothing but NumPy for any step.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

#: Most steps a chain may hold.
MAX_STEPS = 8
#: Widest Savitzky-Golay window a bundle may store (points).
MAX_WINDOW = 501
#: Most iterations of the baseline fit a bundle may ask for.
MAX_ITER = 1000
#: Convergence threshold of the baseline fit: relative change of the weights (pybaselines' default).
ASLS_TOL = 1e-3
#: Spectra from which the baseline's banded solver runs on rows of all spectra at once (NumPy operations
#: on arrays); fewer run one at a time in scalar arithmetic, faster below this many.
ASLS_VECTOR_MIN = 24
#: Smallest weight of the baseline fit, ``min(p, 1 - p)``, per unit of ``lam``: below it the weights are lost
#: beside ``lam`` in double precision and the system has no unique solution (its pivots reach zero).
ASLS_MIN_WEIGHT_PER_LAM = 1e-12


class UnknownStepError(ValueError):
    """A stored chain names a step this runtime does not know.

    Attributes
    ----------
    step : str
        The step's name as stored (its first 40 characters).
    """

    def __init__(self, step: str):
        self.step = step[:40]
        super().__init__(f"preprocessing step {self.step!r} is not one this raman-edge knows")


@dataclass(frozen=True)
class SNV:
    """Standard normal variate per spectrum."""

    name = "snv"
    introduced_in = "0.1.0"

    @property
    def text(self) -> str:
        """The step as a chain's text writes it."""
        return "snv"

    @property
    def description(self) -> str:
        """The step in words, for reports and ``raman-device info``."""
        return "standard normal variate per spectrum (minus its mean, over its standard deviation)"

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Each row of ``X`` (n, points) minus its mean, over its standard deviation (zeros if flat)."""
        centred = X - X.mean(axis=1, keepdims=True)
        sd = centred.std(axis=1, keepdims=True)
        return centred / np.where(sd > 0, sd, 1.0)

    def flop(self, points: int) -> int:
        """Mean, centring, squares and their sum, division: 5 per point."""
        return 5 * points

    def to_arrays(self) -> tuple[dict, dict]:
        """The JSON-able spec and the named arrays (none) to store."""
        return {"step": self.name}, {}

    @classmethod
    def from_arrays(cls, spec: dict, arrays: dict, points: int) -> "SNV":
        """The step from its stored spec (nothing to read)."""
        return cls()


@dataclass(frozen=True, eq=False)
class SavitzkyGolay:
    """Savitzky-Golay filter with SciPy's ``mode="interp"`` edges.

    Attributes
    ----------
    matrix : ndarray, shape (window, window)
        ``matrix[j, i]``: weight of window point ``j`` in the output at window position ``i`` of the
        least-squares polynomial of the window, differentiated ``deriv`` times. Interior points use the
        centre column; the first and last ``window // 2`` points the other columns on the first and
        last ``window`` points.
    window, polyorder, deriv : int
    delta : float
        Axis step (cm-1) the derivative is taken over.
    """

    matrix: np.ndarray
    window: int
    polyorder: int
    deriv: int
    delta: float

    name = "savgol"
    introduced_in = "0.1.0"

    @classmethod
    def design(cls, window: int, polyorder: int, deriv: int, delta: float) -> "SavitzkyGolay":
        """Compute the filter's matrix (done once, at training).

        Raises
        ------
        ValueError
            An even or too short window, an order not below the window, or a derivative above the order.
        """
        _check_savgol(window, polyorder, deriv, delta)
        half = window // 2
        t = np.arange(window, dtype=np.float64) - half
        fit = np.linalg.pinv(np.vander(t, polyorder + 1, increasing=True))  # (order+1, window): data -> coefficients
        powers = np.arange(polyorder + 1)
        scale = np.array([math.perm(k, deriv) for k in powers], dtype=np.float64)  # d^deriv/dt^deriv of t^k
        E = np.where(powers[:, None] >= deriv,
                     scale[:, None] * t[None, :] ** np.maximum(powers - deriv, 0)[:, None], 0.0)
        return cls((E.T @ fit).T / delta ** deriv, window, polyorder, deriv, float(delta))

    @property
    def text(self) -> str:
        """The step as a chain's text writes it."""
        return f"savgol:{self.window}:{self.polyorder}:{self.deriv}"

    @property
    def description(self) -> str:
        """The step in words, for reports and ``raman-device info``."""
        what = "smoothing" if self.deriv == 0 else f"derivative {self.deriv} (per cm-1^{self.deriv})"
        return (f"Savitzky-Golay {what}, window {self.window} points, polynomial order {self.polyorder}, "
                "edges by polynomial fits to the first and last window (scipy's mode interp)")

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Filter each row of ``X`` (n, points), points >= window: same shape."""
        w, half = self.window, self.window // 2
        out = np.empty_like(X)
        windows = np.lib.stride_tricks.sliding_window_view(X, w, axis=1)  # (n, points - w + 1, w)
        out[:, half:X.shape[1] - half] = windows @ self.matrix[:, half]
        out[:, :half] = X[:, :w] @ self.matrix[:, :half]
        out[:, X.shape[1] - half:] = X[:, -w:] @ self.matrix[:, w - half:]
        return out

    def flop(self, points: int) -> int:
        """One multiply-accumulate per window point and output point."""
        return 2 * self.window * points

    def to_arrays(self) -> tuple[dict, dict]:
        """The JSON-able spec (window, order, derivative, step) and the ``matrix`` array to store."""
        spec = {"step": self.name, "window": self.window, "polyorder": self.polyorder, "deriv": self.deriv,
                "delta": self.delta}
        return spec, {"matrix": np.asarray(self.matrix, np.float64)}

    @classmethod
    def from_arrays(cls, spec: dict, arrays: dict, points: int) -> "SavitzkyGolay":
        """The filter from its stored spec and matrix, checked against an axis of ``points`` points.

        Raises
        ------
        ValueError
            A parameter out of range, a window longer than the axis or a matrix of the wrong shape.
        """
        window, polyorder, deriv = (_whole(spec, k) for k in ("window", "polyorder", "deriv"))
        delta = _number(spec, "delta")
        _check_savgol(window, polyorder, deriv, delta)
        if window > points:
            raise ValueError(f"its Savitzky-Golay window of {window} points is longer than the {points}-point axis")
        matrix = np.asarray(arrays["matrix"], np.float64)
        if matrix.shape != (window, window):
            raise ValueError(f"its Savitzky-Golay matrix has shape {matrix.shape}, not ({window}, {window})")
        return cls(matrix, window, polyorder, deriv, delta)


@dataclass(frozen=True)
class AsLS:
    """Baseline removal by asymmetric least squares (second differences), as ``pybaselines.whittaker.asls``.

    Each fit solves ``(W + lam D'D) z = W x`` (D: second differences, W: diagonal weights, 1 at first)
    with a banded LDL' factorisation (:func:`_ldl_solve`, O(points)), then sets the weights to ``p`` where
    ``x > z`` and ``1 - p`` elsewhere; it stops when the weights change by less than ``tol`` (relative
    Euclidean norm) or after ``max_iter + 1`` fits. The output is ``x - z``.

    Attributes
    ----------
    lam : float
        Smoothness (larger: stiffer baseline).
    p : float
        Weight of points above the baseline, 0 < p < 1.
    max_iter : int
    tol : float
    """

    lam: float
    p: float
    max_iter: int = 50
    tol: float = ASLS_TOL

    name = "asls"
    introduced_in = "0.1.0"

    @property
    def text(self) -> str:
        """The step as a chain's text writes it."""
        return f"asls:{self.lam!r}:{self.p!r}:{self.max_iter}"

    @property
    def description(self) -> str:
        """The step in words, for reports and ``raman-device info``."""
        return (f"baseline removed by asymmetric least squares (lam {self.lam:g}, p {self.p:g}, second differences, "
                f"at most {self.max_iter + 1} fits, weights converged to {self.tol:g})")

    def baseline(self, X: np.ndarray) -> np.ndarray:
        """The fitted baseline of each row of ``X`` (n, points), points >= 3: same shape."""
        Y = np.ascontiguousarray(X.T)  # (points, n): one row per axis point
        base = np.empty_like(Y)
        w = np.ones_like(Y)
        active = np.arange(Y.shape[1])
        for _ in range(self.max_iter + 1):
            z = self._solve(w, Y[:, active])
            new = np.where(Y[:, active] > z, self.p, 1.0 - self.p)
            change = np.linalg.norm(new - w, axis=0) / np.maximum(np.linalg.norm(w, axis=0), np.finfo(float).tiny)
            base[:, active] = z
            keep = change >= self.tol
            active, w = active[keep], new[:, keep]
            if active.size == 0:
                break
        return base.T

    def _solve(self, w: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Solve ``(diag(w) + lam D'D) z = w * Y`` for each column: ``w``, ``Y`` shape (points, m)."""
        N, m = Y.shape
        lam = self.lam
        main = np.zeros(N)
        main[:-2] += 1.0
        main[1:-1] += 4.0
        main[2:] += 1.0
        off = np.zeros(N - 1)
        off[:-1] -= 2.0
        off[1:] -= 2.0
        a = w + lam * main[:, None]
        r = w * Y
        b = (lam * off).tolist()
        if m < ASLS_VECTOR_MIN:  # scalar arithmetic, one column at a time
            return np.column_stack([_ldl_solve(a[:, j].tolist(), b, lam, r[:, j].tolist()) for j in range(m)])
        return np.array(_ldl_solve(list(a), b, lam, list(r)))  # each operation on a row of all columns

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Each row of ``X`` (n, points) minus its baseline."""
        return X - self.baseline(X)

    def flop(self, points: int) -> int:
        """An upper bound: ``max_iter + 1`` fits of 30 FLOP per point, and the subtraction.

        Each fit costs per point: weights and right-hand side 2, factorisation 12, the two substitutions 8,
        new weights 2, their change 6.
        """
        return (self.max_iter + 1) * 30 * points + points

    def to_arrays(self) -> tuple[dict, dict]:
        """The JSON-able spec (lam, p, iterations, tolerance) and the named arrays (none) to store."""
        return {"step": self.name, "lam": self.lam, "p": self.p, "max_iter": self.max_iter, "tol": self.tol}, {}

    @classmethod
    def from_arrays(cls, spec: dict, arrays: dict, points: int) -> "AsLS":
        """The step from its stored spec, checked against an axis of ``points`` points.

        Raises
        ------
        ValueError
            A parameter out of range, or an axis of fewer than 3 points.
        """
        step = cls(_number(spec, "lam"), _number(spec, "p"), _whole(spec, "max_iter"), _number(spec, "tol"))
        _check_asls(step.lam, step.p, step.max_iter, step.tol)
        if points < 3:
            raise ValueError("its baseline needs an axis of at least 3 points")
        return step


def _ldl_solve(a: list, b: list, lam: float, r: list) -> list:
    """Solve the symmetric pentadiagonal system ``A x = r`` by its LDL' factorisation, in O(N).

    ``A`` has diagonal ``a``, first sub-diagonal ``b`` (``b[i] = A[i + 1, i]``) and every second
    sub-diagonal entry ``lam`` (``lam D'D`` plus a diagonal). The entries of ``a`` and ``r`` are numbers,
    or arrays of one value per system (then every system is solved at once); ``len(a) >= 3``.
    """
    n = len(a)
    d, l1, z = [a[0]], [0.0], [r[0]]  # L[i, i - 1] = l1[i], L[i, i - 2] = lam / d[i - 2]
    li = b[0] / d[0]
    l1.append(li)
    d.append(a[1] - li * li * d[0])
    z.append(r[1] - li * z[0])
    for i in range(2, n):
        l2 = lam / d[i - 2]
        li = (b[i - 1] - lam * l1[i - 1]) / d[i - 1]
        l1.append(li)
        d.append(a[i] - li * li * d[i - 1] - l2 * lam)
        z.append(r[i] - li * z[i - 1] - l2 * z[i - 2])
    x = [0.0] * n
    x[n - 1] = z[n - 1] / d[n - 1]
    x[n - 2] = z[n - 2] / d[n - 2] - l1[n - 1] * x[n - 1]
    for i in range(n - 3, -1, -1):
        x[i] = z[i] / d[i] - l1[i + 1] * x[i + 1] - lam / d[i] * x[i + 2]
    return x


#: Steps by the name a chain's spec gives them; each step's ``introduced_in`` is the raman-edge version
#: that introduced it, which bundles record (:mod:`device.inference.bundle`).
STEPS = {cls.name: cls for cls in (SNV, SavitzkyGolay, AsLS)}


def _whole(spec: dict, key: str) -> int:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number, not {value!r}")
    return value


def _number(spec: dict, key: str) -> float:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, not {value!r}")
    return float(value)


def _check_savgol(window: int, polyorder: int, deriv: int, delta: float) -> None:
    if not (3 <= window <= MAX_WINDOW and window % 2 == 1):
        raise ValueError(f"the Savitzky-Golay window must be odd, from 3 to {MAX_WINDOW} points, not {window}")
    if not 0 <= polyorder < window:
        raise ValueError(f"the Savitzky-Golay order must be from 0 to window - 1 = {window - 1}, not {polyorder}")
    if not 0 <= deriv <= polyorder:
        raise ValueError(f"the Savitzky-Golay derivative must be from 0 to the order {polyorder}, not {deriv}")
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"the Savitzky-Golay step must be a positive number, not {delta}")


def _check_asls(lam: float, p: float, max_iter: int, tol: float) -> None:
    if not (math.isfinite(lam) and 0 < lam <= 1e15):
        raise ValueError(f"the baseline's lam must be a positive number up to 1e15, not {lam}")
    if not 0 < p < 1:
        raise ValueError(f"the baseline's p must be between 0 and 1, not {p}")
    if min(p, 1.0 - p) < lam * ASLS_MIN_WEIGHT_PER_LAM:
        raise ValueError(f"the baseline's p {p:g} is too close to 0 or 1 for its lam {lam:g}: min(p, 1 - p) must be at "
                         f"least lam x {ASLS_MIN_WEIGHT_PER_LAM:g}, or the fit has no unique solution; "
                         "raise p or lower lam")
    if not 1 <= max_iter <= MAX_ITER:
        raise ValueError(f"the baseline's iterations must be from 1 to {MAX_ITER}, not {max_iter}")
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"the baseline's tolerance must be a positive number, not {tol}")


@dataclass(frozen=True)
class Chain:
    """The steps a bundle applies, in order, to spectra on its axis.

    Attributes
    ----------
    steps : tuple
        :class:`SNV`, :class:`SavitzkyGolay` and :class:`AsLS` objects.
    """

    steps: tuple = ()

    @property
    def text(self) -> str:
        """The chain as :meth:`parse` reads it (``none`` when empty)."""
        return ",".join(s.text for s in self.steps) or "none"

    @property
    def is_normalisation(self) -> bool:
        """True for the chains bundles have always stored as a ``normalisation`` entry: none or snv alone."""
        return self.text in ("none", "snv")

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Apply every step to ``X`` (n, points) (never modified): a new float64 array, same shape."""
        X = np.array(np.atleast_2d(X), dtype=np.float64)
        for step in self.steps:
            X = step.apply(X)
        return X

    def flop(self, points: int) -> int:
        """FLOP per spectrum of the whole chain on ``points`` axis points."""
        return sum(step.flop(points) for step in self.steps)

    @classmethod
    def parse(cls, text: str, delta: float, points: int | None = None) -> "Chain":
        """Build a chain from its text (see the module docstring).

        Parameters
        ----------
        text : str
        delta : float
            Axis step, cm-1 (the scale of Savitzky-Golay derivatives).
        points : int, optional
            Axis points, if known: a window longer than the axis is then refused.

        Raises
        ------
        ValueError
            With one message naming the step that is wrong and what it takes.
        """
        text = text.strip()
        if text in ("", "none"):
            return cls()
        steps = []
        for part in text.split(","):
            name, *args = part.strip().split(":")
            try:
                steps.append(_parse_step(name, args, delta))
                if points is not None and isinstance(steps[-1], SavitzkyGolay) and steps[-1].window > points:
                    raise ValueError(f"its window is longer than the {points}-point axis")
            except ValueError as exc:
                raise ValueError(f"preprocessing step {part.strip()!r}: {exc}") from None
        if len(steps) > MAX_STEPS:
            raise ValueError(f"a preprocessing chain holds at most {MAX_STEPS} steps, not {len(steps)}")
        return cls(tuple(steps))

    def to_arrays(self) -> dict:
        """The ``model.npz`` entries: ``preprocess`` (the JSON spec) and ``preprocess.I.NAME`` arrays."""
        specs, arrays = [], {}
        for i, step in enumerate(self.steps):
            spec, values = step.to_arrays()
            specs.append(spec)
            arrays.update({f"preprocess.{i}.{k}": v for k, v in values.items()})
        return {"preprocess": np.array(json.dumps(specs)), **arrays}

    @classmethod
    def from_arrays(cls, arrays: dict, points: int) -> "Chain":
        """The chain stored in ``model.npz`` entries (see :meth:`to_arrays`), checked for ``points`` inputs.

        Raises
        ------
        UnknownStepError
            A step this runtime does not know.
        ValueError, KeyError, TypeError
            A malformed spec, a missing or misshapen array, or a value out of range.
        """
        specs = json.loads(str(arrays["preprocess"]))
        if not isinstance(specs, list) or len(specs) > MAX_STEPS:
            raise ValueError(f"the chain must be a list of at most {MAX_STEPS} steps")
        steps = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, dict) or not isinstance(spec.get("step"), str):
                raise ValueError(f"step {i} is not an object with a step name")
            name = spec["step"]
            if name not in STEPS:
                raise UnknownStepError(name)
            prefix = f"preprocess.{i}."
            steps.append(STEPS[name].from_arrays(spec, {k[len(prefix):]: v for k, v in arrays.items()
                                                        if k.startswith(prefix)}, points))
        return cls(tuple(steps))


def _parse_step(name: str, args: list, delta: float):
    if name == "snv":
        if args:
            raise ValueError("snv takes no parameters")
        return SNV()
    if name == "savgol":
        if len(args) not in (2, 3) or not all(a.strip().isdigit() for a in args):
            raise ValueError("write savgol:WINDOW:ORDER[:DERIV] with whole numbers, e.g. savgol:11:2:1")
        return SavitzkyGolay.design(int(args[0]), int(args[1]), int(args[2]) if len(args) == 3 else 0, delta)
    if name == "asls":
        try:
            lam, p = float(args[0]), float(args[1])
            iterations = int(args[2]) if len(args) == 3 else 50
        except (ValueError, IndexError):
            lam = None
        if lam is None or len(args) not in (2, 3):
            raise ValueError("write asls:LAM:P[:MAX_ITER], e.g. asls:1e5:0.01") from None
        _check_asls(lam, p, iterations, ASLS_TOL)
        return AsLS(lam, p, iterations)
    raise ValueError("unknown step; choose snv, savgol:WINDOW:ORDER[:DERIV] or asls:LAM:P[:MAX_ITER]")
