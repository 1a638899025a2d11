"""Linear model kinds, trained with scikit-learn and exported as the dense networks the device runs.

Every kind takes the preprocessed spectra (the chain's output on the model axis, shape (n, points)),
optionally standardised per column, and ends in one softmax layer, so the device runs it with
:class:`device.inference.network.DenseNet` and TFLite runs the same layers:

``logreg``      multinomial logistic regression: ``Dense(C, softmax)``, kernel ``coef_.T``, bias ``intercept_``.
``linear-svm``  a linear SVM (one-vs-rest ``LinearSVC``) whose decision values ``d`` are calibrated by
                temperature scaling, ``p = softmax(d / T)``: ``T`` minimises the log-loss of cross-validated
                decision values of the training spectra (models fitted without the spectra they score).
                With two classes the SVM gives one value ``d`` per spectrum and the logits are ``(0, d / T)``,
                i.e. ``p(second class) = sigmoid(d / T)``: Platt scaling with its intercept fixed at 0.
                The layer is ``Dense(C, softmax)``, kernel ``coef_.T / T``, bias ``intercept_ / T``.
``pca-logreg``  a PCA projection to ``components`` scores (:mod:`trainer.models.projection`: ``Dense(k, linear)``,
                the components as a stored matrix, the mean folded into the bias), then a logistic
                regression on the scores.
``pls-logreg``  the same with a PLS projection (``PLSRegression`` on the one-hot classes, unscaled).

A logistic regression of two classes gives one logit ``z``; it is exported as the logits ``(0, z)``,
whose softmax is scikit-learn's ``(1 - sigmoid(z), sigmoid(z))``.

Per-column standardisation is off by default: after SNV it scales the flat, noise-only regions of a
spectrum up to the size of its bands, and the model then follows their noise (measured in README.md).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from device.inference.inputs import Standardizer
from device.inference.network import Dense, DenseNet

from trainer.models.projection import DEFAULT_COMPONENTS, describe as describe_projection, fit_projection

# SciPy and scikit-learn are imported where a model is fitted, so that raman-train --help, which lists
# the kinds and their defaults from this module, starts without them.

LINEAR_MODELS = ("logreg", "linear-svm", "pca-logreg", "pls-logreg")
#: Inverse regularisation strength C of each kind (logistic regression: of the head).
DEFAULT_C = {"logreg": 10.0, "linear-svm": 1.0, "pca-logreg": 10.0, "pls-logreg": 10.0}
#: Folds of the cross-validated decision values that calibrate the SVM (fewer if a class is smaller).
CALIBRATION_FOLDS = 5
#: Iteration limit of the logistic regressions (L-BFGS).
LOGREG_ITERATIONS = 5000
#: Range searched for the SVM's temperature.
TEMPERATURE_RANGE = (1e-3, 1e3)


@dataclass(frozen=True)
class LinearSettings:
    """What a linear kind is trained with.

    Attributes
    ----------
    kind : str
        One of :data:`LINEAR_MODELS`.
    C : float or None
        Inverse regularisation strength; None: :data:`DEFAULT_C` of the kind.
    components : int
        Scores of the projection (``pca-logreg``, ``pls-logreg`` only).
    standardise : bool
        Standardise each input column with the training spectra's mean and standard deviation first.
    """

    kind: str
    C: float | None = None
    components: int = DEFAULT_COMPONENTS
    standardise: bool = False

    def __post_init__(self):
        if self.kind not in LINEAR_MODELS:
            raise ValueError(f"unknown linear model {self.kind!r}; choose one of {', '.join(LINEAR_MODELS)}")
        if not (self.regularisation > 0 and np.isfinite(self.regularisation)):
            raise ValueError(f"C must be a positive number, not {self.regularisation}")
        if self.projected and self.components < 1:
            raise ValueError(f"components must be at least 1, not {self.components}")

    @property
    def regularisation(self) -> float:
        """C as used: the given one or the kind's default."""
        return DEFAULT_C[self.kind] if self.C is None else float(self.C)

    @property
    def projected(self) -> bool:
        """True for the kinds with a PCA or PLS projection."""
        return self.kind in ("pca-logreg", "pls-logreg")

    def as_dict(self) -> dict:
        """The settings for the model card."""
        return {"C": self.regularisation, **({"components": self.components} if self.projected else {}),
                "column_standardisation": self.standardise}


@dataclass(frozen=True)
class LinearModel:
    """A fitted linear kind: what the bundle stores, and scikit-learn's own prediction of it.

    Attributes
    ----------
    standardizer : Standardizer or None
        Column statistics applied to the inputs first (None: not standardised).
    network : DenseNet
        The layers the device runs on the (standardised) inputs.
    reference : callable
        ``reference(X)`` -> (n, C) probabilities of the scikit-learn estimators for inputs ``X`` (n, points):
        ``predict_proba``, or for the SVM its ``decision_function`` through the calibration.
    calibration : dict or None
        The SVM's temperature and how it was fitted.
    notes : list of str
        What scikit-learn warned while fitting (e.g. a solver stopped at its iteration limit).
    """

    standardizer: Standardizer | None
    network: DenseNet
    reference: object
    calibration: dict | None
    notes: list

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """Network inputs for preprocessed spectra ``X`` (n, points), as the bundle computes them."""
        return self.standardizer.transform(X) if self.standardizer is not None else X

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) of the exported network for preprocessed spectra ``X`` (n, points)."""
        return self.network.probabilities(self.inputs(X))


def row_space(Z: np.ndarray) -> np.ndarray:
    """An orthonormal basis (points, r) of the span of the training inputs' rows ``Z`` (n, points).

    The weights of an L2-penalised logistic regression or linear SVM lie in this span (the gradient of
    every loss term does), and ``||V a||`` = ``||a||``, so fitting on the coordinates ``Z V`` with the same
    C and mapping the weights back by ``V`` gives the same model, with r <= n unknowns per class instead of
    ``points``: a Newton solver converges in a few steps where L-BFGS, on the ill-conditioned spectra,
    stops early, and the SVM's dual solver, which sees only the inner products ``Z Z^T`` (unchanged), takes
    the same steps at r / points of the cost. When n >= points the identity is returned.
    """
    n, points = Z.shape
    if n >= points:
        return np.eye(points)
    _, s, Vt = np.linalg.svd(Z, full_matrices=False)
    return Vt[s > s[0] * max(n, points) * np.finfo(float).eps].T


def _logits_layer(coef: np.ndarray, intercept: np.ndarray, n_classes: int) -> Dense:
    """A softmax layer from scikit-learn's ``coef_`` (C or 1, D) and ``intercept_``; one row means two classes."""
    coef, intercept = np.atleast_2d(coef), np.atleast_1d(intercept)
    if n_classes == 2 and coef.shape[0] == 1:
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return Dense(coef.T.astype(np.float64), intercept.astype(np.float64), "softmax")


def _two_column(d: np.ndarray) -> np.ndarray:
    """Decision values as logits (n, C): a binary SVM's (n,) values ``d`` become ``(0, d)``."""
    return np.column_stack([np.zeros_like(d), d]) if d.ndim == 1 else d


def fit_temperature(decision: np.ndarray, y: np.ndarray) -> float:
    """The temperature ``T`` minimising the log-loss of ``softmax(decision / T)`` for labels ``y``.

    Parameters
    ----------
    decision : ndarray, shape (n, C) or (n,)
        Decision values of spectra the model was not fitted on (a binary SVM's single column as (n,)).
    y : ndarray of int, shape (n,)
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits = _two_column(decision)
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, y].mean())

    lo, hi = np.log(TEMPERATURE_RANGE)
    return float(np.exp(minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6}).x))


def fit_linear(settings: LinearSettings, X: np.ndarray, y: np.ndarray, n_classes: int, seed: int,
               calibrate: bool = True) -> LinearModel:
    """Fit a linear kind on preprocessed spectra ``X`` (n, points) with labels ``y`` (n,) in 0..C-1.

    ``calibrate`` False leaves the SVM's decision values uncalibrated (temperature 1): the same predicted
    classes, without the cross-validated fits the calibration needs.

    Raises
    ------
    ValueError
        If a projection asks for more components than the training spectra allow.
    """
    from scipy.special import log_softmax, softmax
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from trainer.models.classical import LINEAR_SVM_ITERATIONS, LINEAR_SVM_TOLERANCE

    C = settings.regularisation
    X = np.asarray(X, dtype=np.float64)
    n, points = X.shape
    # The SVM is fitted on row-space coordinates (n or fewer columns); its solver is the one scikit-learn's
    # dual="auto" picks for the spectra themselves: the dual for fewer spectra than points, else the primal.
    svm_of = lambda: LinearSVC(C=C, random_state=seed, tol=LINEAR_SVM_TOLERANCE,  # noqa: E731
                               max_iter=LINEAR_SVM_ITERATIONS, dual=bool(n < points))
    logreg_of = lambda: LogisticRegression(C=C, max_iter=LOGREG_ITERATIONS)  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        scaler = StandardScaler().fit(X) if settings.standardise else None
        standardizer = Standardizer(scaler.mean_, scaler.scale_) if scaler is not None else None
        Z = scaler.transform(X) if scaler is not None else X
        calibration = None
        if settings.kind == "logreg":
            V = row_space(Z)
            head = LogisticRegression(C=C, max_iter=LOGREG_ITERATIONS, solver="newton-cg").fit(Z @ V, y)
            layers = (_logits_layer(head.coef_ @ V.T, head.intercept_, n_classes),)
            predict = lambda A: head.predict_proba(A @ V)  # noqa: E731
        elif settings.kind == "linear-svm":
            V = row_space(Z)
            ZV = Z @ V
            svm = svm_of().fit(ZV, y)
            coef = svm.coef_ @ V.T
            if not calibrate:
                layers = (_logits_layer(coef, svm.intercept_, n_classes),)
                predict = lambda A: softmax(_two_column(svm.decision_function(A @ V)), axis=1)  # noqa: E731
                return _finish(scaler, standardizer, layers, predict, None, caught)
            folds = min(CALIBRATION_FOLDS, int(np.bincount(y, minlength=n_classes).min()))
            cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
            held = cross_val_predict(svm_of(), ZV, y, cv=cv, method="decision_function")
            T = fit_temperature(held, y)
            layers = (_logits_layer(coef / T, svm.intercept_ / T, n_classes),)
            predict = lambda A: softmax(_two_column(svm.decision_function(A @ V)) / T, axis=1)  # noqa: E731
            rows = np.arange(n)
            calibration = {
                "method": "temperature scaling of the decision values, p = softmax(d / T) (two classes: logits "
                          "(0, d / T), Platt scaling without intercept)",
                "temperature": T, "fitted_on": f"decision values of the training spectra by stratified {folds}-fold "
                                               f"cross-validation (seed {seed}), each from a model fitted without it",
                "cv_log_loss": float(-log_softmax(_two_column(held) / T, axis=1)[rows, y].mean()),
                "cv_log_loss_uncalibrated": float(-log_softmax(_two_column(held), axis=1)[rows, y].mean())}
        else:
            projection = fit_projection(settings.kind[:3], Z, y, settings.components, n_classes, seed)
            head = logreg_of().fit(projection.transform(Z), y)
            layers = (projection.layer, _logits_layer(head.coef_, head.intercept_, n_classes))
            predict = lambda A: head.predict_proba(projection.transform(A))  # noqa: E731
    return _finish(scaler, standardizer, layers, predict, calibration, caught)


def _finish(scaler, standardizer, layers, predict, calibration, caught) -> LinearModel:
    """The fitted model, its reference prediction through ``scaler``, and the convergence warnings ``caught``."""
    from sklearn.exceptions import ConvergenceWarning

    notes = sorted({str(w.message).split("\n")[0] for w in caught if issubclass(w.category, ConvergenceWarning)})
    reference = (lambda A: predict(scaler.transform(A))) if scaler is not None else predict
    return LinearModel(standardizer, DenseNet(layers), reference, calibration, notes)


def describe(settings: LinearSettings, n_classes: int, points: int) -> str:
    """The network of a kind, in words, for the model card."""
    head = f"Dense({n_classes}) + softmax"
    if settings.kind == "logreg":
        return f"multinomial logistic regression: {points} inputs -> {head}"
    if settings.kind == "linear-svm":
        return f"linear SVM (one-vs-rest) with temperature-scaled decision values: {points} inputs -> {head}"
    return f"{describe_projection(settings.kind[:3], settings.components)} -> logistic regression {head}"
