"""Classical baselines: they learn, and their FLOP and parameter counts match counts written by hand."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from trainer.models.classical import (
    CLASSICAL_MODELS,
    PCA_COMPONENTS,
    classical_flops,
    make_classical,
    model_size_bytes,
    parameter_count,
)

POINTS = 200


def _bands(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of Gaussian bands on a 200-point axis, with noise: X (3 n, 200), y (3 n,)."""
    rng = np.random.default_rng(seed)
    axis = np.linspace(400.0, 1800.0, POINTS)
    centres = np.array([[700.0, 1200.0], [900.0, 1450.0], [1100.0, 1600.0]])
    y = np.repeat(np.arange(3), n_per_class)
    shift = rng.normal(0.0, 10.0, (len(y), 1))
    X = sum(np.exp(-0.5 * ((axis - centres[y, b][:, None] - shift) / 25.0) ** 2) for b in range(2))
    X = X + rng.normal(0.0, 0.1, X.shape)
    return X, y


@pytest.fixture(scope="module")
def bands():
    X, y = _bands(40, seed=1)
    X_test, y_test = _bands(20, seed=2)
    return X, y, X_test, y_test


@pytest.fixture(scope="module")
def fitted(bands):
    X, y, _, _ = bands
    return {name: make_classical(name, seed=0).fit(X, y) for name in CLASSICAL_MODELS}


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_every_model_learns_separated_bands(fitted, bands, name):
    _, _, X_test, y_test = bands
    assert (fitted[name].predict(X_test) == y_test).mean() >= 0.9  # chance is 1/3


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_same_seed_same_predictions(fitted, bands, name):
    X, y, X_test, _ = bands
    again = make_classical(name, seed=0).fit(X, y)
    np.testing.assert_array_equal(again.predict(X_test), fitted[name].predict(X_test))
    np.testing.assert_array_equal(again.predict(X_test + 0.3), fitted[name].predict(X_test + 0.3))


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown classical model 'cnn'") as info:
        make_classical("cnn", seed=0)
    assert all(name in str(info.value) for name in CLASSICAL_MODELS)


def test_linear_svm_counts_by_hand():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(30, 4)), np.arange(30) % 3
    model = make_classical("linear-svm", seed=0).fit(X, y)
    # scaler 2*4 + three one-vs-rest rows 2*4*3 + 3 biases + 2 comparisons
    assert classical_flops(model, 4) == 8 + 24 + 3 + 2
    # scaler mean and scale 4 + 4, coefficients 3*4, intercepts 3
    assert parameter_count(model) == 8 + 12 + 3


def test_binary_linear_svm_has_one_decision_function():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(30, 4)), np.arange(30) % 2
    model = make_classical("linear-svm", seed=0).fit(X, y)
    assert classical_flops(model, 4) == 8 + 8 + 1 + 1
    assert parameter_count(model) == 8 + 4 + 1


def test_rbf_svm_flop_from_its_support_vectors():
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(c, 1.0, (8, 3)) for c in (0.0, 2.0, 4.0)])
    y = np.repeat([0, 1, 2], 8)
    model = make_classical("rbf-svm", seed=0).fit(X, y)
    n0, n1, n2 = (int(n) for n in model[-1].n_support_)
    distances = (n0 + n1 + n2) * (3 * 3 + 2)
    pairs = (2 * (n0 + n1) + 2) + (2 * (n0 + n2) + 2) + (2 * (n1 + n2) + 2)
    assert classical_flops(model, 3) == 2 * 3 + distances + pairs + 3 + 2
    # support vectors (S, 3), dual coefficients (2, S), 3 intercepts, gamma, scaler 3 + 3
    assert parameter_count(model) == 5 * (n0 + n1 + n2) + 3 + 1 + 6


def test_knn_flop_over_the_training_set():
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(10, 4)), np.arange(10) % 2
    model = make_classical("knn", seed=0).fit(X, y)
    # scaler 8; 10 distances of 3*4; 10 comparisons to select; 5 votes + 1 comparison
    assert classical_flops(model, 4) == 8 + 120 + 10 + 5 + 1
    assert parameter_count(model) == 8 + 10 * 4 + 10


def test_decision_tree_on_parity_needs_depth_three():
    # the parity of three bits: no single bit separates anything, so every leaf sits at depth 3
    X = np.array([[(i >> b) & 1 for b in range(3)] for i in range(8)], dtype=float)
    y = X.sum(axis=1).astype(int) % 2
    model = make_classical("decision-tree", seed=0).fit(X, y)
    assert model[-1].get_depth() == 3
    assert classical_flops(model, 3) == 3 + 1
    # 7 internal nodes (threshold, feature), 8 leaves with 2 class values
    assert parameter_count(model) == 7 * 2 + 8 * 2


def test_ensembles_sum_their_trees(fitted):
    forest, boost = fitted["random-forest"][-1], fitted["adaboost"][-1]
    assert classical_flops(fitted["random-forest"], POINTS) == sum(t.get_depth() + 3 for t in forest.estimators_) + 2
    assert all(t.get_depth() <= 3 for t in boost.estimators_)
    assert classical_flops(fitted["adaboost"], POINTS) == sum(t.get_depth() + 3 for t in boost.estimators_) + 2

    def tree_numbers(t):  # a threshold and a feature per internal node, 3 class values per leaf
        return 2 * (t.tree_.node_count - t.get_n_leaves()) + 3 * t.get_n_leaves()
    assert parameter_count(fitted["random-forest"]) == sum(tree_numbers(t) for t in forest.estimators_)
    assert parameter_count(fitted["adaboost"]) == sum(tree_numbers(t) + 1 for t in boost.estimators_)  # + weight


def test_pca_lda_counts_by_hand(fitted):
    model, k = fitted["pca-lda"], PCA_COMPONENTS
    # centring 200 + projection 2*200*k + three LDA rows 2*k*3 + 3 biases + 2 comparisons
    assert classical_flops(model, POINTS) == 200 + 2 * 200 * k + 2 * k * 3 + 3 + 2
    # components k*200 + mean 200 + LDA coefficients 3*k + intercepts 3
    assert parameter_count(model) == k * 200 + 200 + 3 * k + 3


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_pickle_holds_every_counted_number(fitted, bands, name):
    model = fitted[name]
    size = model_size_bytes(model)
    assert size == len(pickle.dumps(model, protocol=5))
    assert size >= 8 * parameter_count(model)  # every counted number is stored as 8 bytes
    X_test = bands[2]
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model, protocol=5)).predict(X_test),
                                  model.predict(X_test))


def test_flop_refuses_a_wrong_width(fitted):
    with pytest.raises(ValueError, match="fitted on 200 features, not 199"):
        classical_flops(fitted["knn"], POINTS - 1)


def test_unfitted_model_is_refused():
    with pytest.raises(NotFittedError):
        parameter_count(make_classical("rbf-svm", seed=0))
