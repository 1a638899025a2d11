"""Vectorised training equals separate fits, and follows Keras' arithmetic."""
import numpy as np
import pytest

from trainer.evaluation.protocol import train_naive
from trainer.models import stacked
from trainer.models.compact import Hyperparameters


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    n, D, C = 140, 30, 3
    y = rng.integers(0, C, n)
    R = rng.normal(size=(n, D)) + y[:, None] * rng.normal(size=D) * 0.8 + 5
    rows = [np.arange(0, 31), np.arange(31, 64), np.arange(64, 129)]  # 1, 2 and 3 batches of 32
    val = [np.arange(129, 140)] * 3
    mean = np.array([R[r].mean(0) for r in rows])
    scale = np.array([R[r].std(0) for r in rows])
    return R, y, rows, val, mean, scale, C


def test_glorot_init_and_batch_orders():
    w = stacked.glorot_init([1, 2], 100, 5, 4)
    assert w.W1.shape == (2, 100, 5) and np.abs(w.W1).max() <= np.sqrt(6 / 105) and not w.b1.any()
    assert not np.array_equal(w.W1[0], w.W1[1])
    index, valid = stacked.batch_orders([np.arange(10, 45), np.arange(50, 60)], 3, 8, [0, 1])
    assert index.shape == (3, 5, 2, 8)
    for e in range(3):
        assert sorted(index[e, :, 0][valid[e, :, 0]]) == list(range(10, 45))
        assert sorted(index[e, :, 1][valid[e, :, 1]]) == list(range(50, 60))
    assert not np.array_equal(index[0, :, 0], index[1, :, 0])


def _stacked_fit(problem, hp, init_seeds, order_seeds):
    """Train the three folds of ``problem`` together; returns inputs and outputs of the run."""
    R, y, rows, val, mean, scale, C = problem
    init = stacked.glorot_init(init_seeds, R.shape[1], 5, C)
    index, valid = stacked.batch_orders(rows, hp.epochs, 32, order_seeds)
    return (init, index, valid), stacked.train(R, y, mean, scale, init, index, valid, hp, val_rows=val)


def test_stacked_equals_separate_fits(problem):
    R, y, rows, val, mean, scale, C = problem
    hp = Hyperparameters(epochs=6, learning_rate=3e-3, l2=1e-3)
    (init, _, _), (w, tl, vl) = _stacked_fit(problem, hp, [7, 8, 9], [1, 2, 3])
    for f in range(3):
        one = stacked.StackedWeights(*(p[f:f + 1] for p in init.params()))
        i1, v1 = stacked.batch_orders([rows[f]], hp.epochs, 32, [1 + f])
        wf, tlf, vlf = stacked.train(R, y, mean[f:f + 1], scale[f:f + 1], one, i1, v1, hp, val_rows=[val[f]])
        for a, b in zip(w.params(), wf.params()):
            np.testing.assert_allclose(a[f], b[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(tl[:, f], tlf[:, 0], atol=1e-12)
        np.testing.assert_allclose(vl[:, f], vlf[:, 0], atol=1e-12)
    assert tl[-1].mean() < tl[0].mean()  # it learns


@pytest.mark.slow
def test_stacked_matches_keras_given_same_start_and_batches(problem):
    R, y, rows, val, mean, scale, C = problem
    hp = Hyperparameters(epochs=4, learning_rate=1e-3, l2=1e-3)
    (init, index, valid), (w, tl, vl) = _stacked_fit(problem, hp, [4, 5, 6], [0, 1, 2])
    wk, tlk, vlk = train_naive(R, y, mean, scale, init, index, valid, hp, val)
    for a, b in zip(w.params(), wk.params()):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)  # Keras computes in float32
    np.testing.assert_allclose(tl, tlk, rtol=1e-5)
    np.testing.assert_allclose(vl, vlk, rtol=1e-5)
