"""Classical baselines for the model comparison: scikit-learn pipelines, their FLOP, parameters and size.

Every model takes a matrix ``X`` of shape (n, D): spectra already resampled onto one Raman-shift axis
and normalised per spectrum by the caller. The settings are textbook defaults, tuned on no data set.

FLOP follow :mod:`device.inference.cost`: every addition, multiplication, division, comparison, exponential and
square root counts as one; a multiply-accumulate counts as two; data movement does not count. Only the
model's own prediction of one spectrum is counted (resampling and normalisation are the caller's).
Divisions that scale every class score alike (the averaging of a forest, the weight normalisation of
AdaBoost) cannot change the argmax, so a classifier skips them and they are not counted.
"""
from __future__ import annotations

import pickle
import warnings

import numpy as np

from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted

CLASSICAL_MODELS = ("linear-svm", "rbf-svm", "knn", "decision-tree", "adaboost", "random-forest", "pca-lda")

#: Principal components kept before LDA (fewer for fewer training spectra: at most one less than them).
PCA_COMPONENTS = 20
#: Neighbours of k-NN (fewer for fewer training spectra).
NEIGHBOURS = 5
#: Stopping tolerance and iteration limit of the linear SVM's dual coordinate descent. With scikit-learn's
#: defaults (1e-4, 1,000) it stops unconverged on the microplastics spectra (1,621 correlated points);
#: at 1e-3 it converges there in about 1,500 iterations. A fit that still does not converge is reported.
LINEAR_SVM_TOLERANCE = 1e-3
LINEAR_SVM_ITERATIONS = 10000


def make_classical(name: str, seed: int, spectra: int | None = None) -> Pipeline:
    """An unfitted pipeline for one of :data:`CLASSICAL_MODELS`; ``seed`` fixes every random choice.

    Distance- and margin-based models (SVMs, k-NN) start with a ``StandardScaler``; trees do not need
    one, and PCA centres the spectra itself. ``spectra``, the number of training spectra, caps the PCA
    components (``spectra - 1``) and the neighbours of k-NN (``spectra``) for small sets.

    Raises
    ------
    ValueError
        For a name not in :data:`CLASSICAL_MODELS`; the message lists the choices.
    """
    if name == "linear-svm":
        return make_pipeline(StandardScaler(), LinearSVC(C=1.0, random_state=seed, tol=LINEAR_SVM_TOLERANCE,
                                                          max_iter=LINEAR_SVM_ITERATIONS))
    if name == "rbf-svm":
        return make_pipeline(StandardScaler(), SVC(kernel="rbf", C=10.0, gamma="scale", random_state=seed))
    if name == "knn":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=min(NEIGHBOURS, spectra or NEIGHBOURS),
                                                                       algorithm="brute"))
    if name == "decision-tree":
        return make_pipeline(DecisionTreeClassifier(random_state=seed))
    if name == "adaboost":
        return make_pipeline(AdaBoostClassifier(estimator=DecisionTreeClassifier(max_depth=3), n_estimators=50,
                                                random_state=seed))
    if name == "random-forest":
        return make_pipeline(RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1))
    if name == "pca-lda":
        k = min(PCA_COMPONENTS, spectra - 1) if spectra else PCA_COMPONENTS
        return make_pipeline(PCA(n_components=k, random_state=seed), LinearDiscriminantAnalysis())
    raise ValueError(f"unknown classical model {name!r}; choose one of {', '.join(CLASSICAL_MODELS)}")


def fit_classical(name: str, seed: int, X: np.ndarray, y: np.ndarray) -> tuple[Pipeline, str | None]:
    """:func:`make_classical` fitted on ``X`` (n, D), ``y`` (n,); and why the fit is doubtful, or None.

    What scikit-learn warns while fitting (a ``ConvergenceWarning``: the solver stopped at its iteration
    limit; collinear variables in LDA, ...) is caught and returned as the note, for the report to state,
    instead of leaking onto the console.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = make_classical(name, seed, len(y)).fit(X, y)
    notes = list(dict.fromkeys(("did not converge: " if issubclass(w.category, ConvergenceWarning) else "")
                               + str(w.message).strip() for w in caught))
    return model, ("; ".join(notes) if notes else None)


def classical_flops(model, n_features: int) -> int:
    """FLOP to classify one spectrum of ``n_features`` points with the fitted ``model``.

    Per step, with D its input width and C classes:

    - ``StandardScaler``: 2 D (subtract, divide).
    - ``PCA`` with k components: D (centring) + 2 D k (projection).
    - linear one-vs-rest (``LinearSVC``, LDA) with R = C decision rows (R = 1 for two classes):
      2 D R + R (bias) + C - 1 (argmax).
    - RBF ``SVC`` one-vs-one with S support vectors, n_i of class i: S (3 D + 2) for the squared
      distances (subtract, square, accumulate), the gamma product and the exponential; per class pair
      (i, j), 2 (n_i + n_j) + 2 (intercept, sign); voting C (C - 1) / 2 increments + C - 1 comparisons.
    - k-NN, brute force over N training spectra: 3 D N for the distances, N comparisons to select the
      k nearest (a linear-time selection), k + C - 1 for the vote.
    - decision tree: its maximum depth in comparisons (an upper bound on the root-to-leaf path) + C - 1.
    - random forest and AdaBoost (SAMME): per tree, its maximum depth + C additions of its class scores;
      then C - 1 for the argmax.

    Raises
    ------
    ValueError
        If ``n_features`` is not the width the model was fitted on.
    """
    steps = _steps(model)
    if n_features != steps[0].n_features_in_:
        raise ValueError(f"the model was fitted on {steps[0].n_features_in_} features, not {n_features}")
    width, total = n_features, 0
    for step in steps:
        flop, width = _step_flop(step, width)
        total += flop
    return total


def parameter_count(model) -> int:
    """Numbers the fitted ``model`` stores and needs for prediction.

    Scaler means and scales; PCA components and mean; coefficients and intercepts of linear models;
    support vectors, dual coefficients, intercepts and the fitted gamma of an RBF SVM; training spectra
    and their labels for k-NN; per tree, a threshold and a feature index per internal node and C class
    values per leaf (the child links are the tree's structure and are not counted); AdaBoost's tree
    weights.
    """
    return sum(_step_parameters(step) for step in _steps(model))


def model_size_bytes(model) -> int:
    """Size in bytes of the fitted ``model`` pickled with protocol 5 (a pickle size, not a deployed format)."""
    return len(pickle.dumps(model, protocol=5))


def _steps(model) -> list:
    check_is_fitted(model)
    return [step for _, step in model.steps] if isinstance(model, Pipeline) else [model]


def _tree_depths(step) -> list[int]:
    return [tree.tree_.max_depth for tree in step.estimators_]


def _step_flop(step, width: int) -> tuple[int, int]:
    """FLOP of one fitted pipeline step on an input of ``width`` features, and its output width."""
    if isinstance(step, StandardScaler):
        return 2 * width, width
    if isinstance(step, PCA):
        k = step.n_components_
        return width + 2 * width * k, k
    n_classes = len(step.classes_)
    argmax = n_classes - 1
    if isinstance(step, (LinearSVC, LinearDiscriminantAnalysis)):
        rows = step.coef_.shape[0]
        return 2 * width * rows + rows + argmax, n_classes
    if isinstance(step, SVC):
        n_support = [int(n) for n in step.n_support_]
        kernel = sum(n_support) * (3 * width + 2)
        pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
        decisions = sum(2 * (n_support[i] + n_support[j]) + 2 for i, j in pairs)
        return kernel + decisions + len(pairs) + argmax, n_classes
    if isinstance(step, KNeighborsClassifier):
        n_train = step.n_samples_fit_
        return 3 * width * n_train + n_train + step.n_neighbors + argmax, n_classes
    if isinstance(step, DecisionTreeClassifier):
        return step.tree_.max_depth + argmax, n_classes
    if isinstance(step, (RandomForestClassifier, AdaBoostClassifier)):
        return sum(depth + n_classes for depth in _tree_depths(step)) + argmax, n_classes
    raise TypeError(f"no FLOP count for {type(step).__name__}")


def _tree_parameters(tree) -> int:
    t = tree.tree_
    internal = int((t.children_left != -1).sum())
    leaves = t.node_count - internal
    return 2 * internal + leaves * t.value.shape[1] * t.value.shape[2]


def _step_parameters(step) -> int:
    if isinstance(step, StandardScaler):
        return step.mean_.size + step.scale_.size
    if isinstance(step, PCA):
        return step.components_.size + step.mean_.size
    if isinstance(step, (LinearSVC, LinearDiscriminantAnalysis)):
        return step.coef_.size + step.intercept_.size
    if isinstance(step, SVC):
        return step.support_vectors_.size + step.dual_coef_.size + step.intercept_.size + 1
    if isinstance(step, KNeighborsClassifier):
        return step.n_samples_fit_ * (step.n_features_in_ + 1)
    if isinstance(step, DecisionTreeClassifier):
        return _tree_parameters(step)
    if isinstance(step, RandomForestClassifier):
        return sum(_tree_parameters(tree) for tree in step.estimators_)
    if isinstance(step, AdaBoostClassifier):
        return sum(_tree_parameters(tree) for tree in step.estimators_) + len(step.estimators_)
    raise TypeError(f"no parameter count for {type(step).__name__}")
