"""Non-negative unmixing on the device: NNLS against SciPy, fractions against a least-squares oracle, storage."""
import numpy as np
import pytest

from device.inference.snr import band_height
from device.inference.unmixing import (
    ARRAY_NAMES,
    BACKGROUND_ORDER,
    MixtureModel,
    component_reference,
    legendre_background,
    nnls,
)


def scipy_nnls(A, b):
    return pytest.importorskip("scipy.optimize").nnls(A, b)


def random_problems(seed, count):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        m, n = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        yield rng.normal(size=(m, n)), rng.normal(size=m)


def test_nnls_matches_scipy_on_random_problems():
    unique = 0
    for A, b in random_problems(0, 250):
        x, rnorm = nnls(A, b)
        xs, rs = scipy_nnls(A, b)
        assert x.shape == xs.shape and np.all(x >= 0)
        assert rnorm == pytest.approx(rs, rel=1e-9, abs=1e-12)
        assert rnorm == pytest.approx(np.linalg.norm(A @ x - b), rel=1e-12, abs=1e-14)
        if A.shape[0] >= A.shape[1]:  # full column rank: the solution is unique
            np.testing.assert_allclose(x, xs, rtol=1e-7, atol=1e-9)
            unique += 1
    assert unique > 80


def test_a_clipped_least_squares_solution_is_not_nnls():
    # Negative control: the comparison above tells the constrained optimum from clipping the unconstrained one.
    worse = 0
    for A, b in random_problems(1, 200):
        if A.shape[0] < A.shape[1]:
            continue
        clipped = np.maximum(np.linalg.lstsq(A, b, rcond=None)[0], 0.0)
        worse += np.linalg.norm(A @ clipped - b) > scipy_nnls(A, b)[1] * (1 + 1e-6)
    assert worse > 20


@pytest.mark.parametrize("case", ["collinear", "zero column", "zero b", "wide", "negative b", "duplicate"])
def test_nnls_matches_scipy_on_degenerate_problems(case):
    rng = np.random.default_rng(2)
    A, b = rng.normal(size=(20, 6)), rng.normal(size=20)
    if case == "collinear":
        A[:, 3] = 2.5 * A[:, 1]
        b = A @ np.array([1.0, 2.0, 0.0, 0.5, 0.0, 1.0]) + 0.01 * b
    elif case == "zero column":
        A[:, 2] = 0.0
        b = A @ np.array([1.0, 1.0, 0.0, 1.0, 0.0, 1.0]) + 0.1 * b
    elif case == "zero b":
        b = np.zeros(20)
    elif case == "wide":
        A, b = rng.normal(size=(4, 9)), rng.normal(size=4)
    elif case == "negative b":
        A, b = np.abs(A), -np.abs(b)  # every column points away from b: x = 0
    else:
        A[:, 4] = A[:, 0]
        b = A @ np.abs(rng.normal(size=6))
    x, rnorm = nnls(A, b)
    xs, rs = scipy_nnls(A, b)
    assert np.all(x >= 0)
    assert rnorm == pytest.approx(rs, rel=1e-8, abs=1e-10)
    np.testing.assert_allclose(A @ x, A @ xs, rtol=1e-7, atol=1e-8)  # the fitted vector is unique even when x is not
    if case == "zero column":
        assert x[2] == 0.0
    if case in ("zero b", "negative b"):
        assert np.all(x == 0.0) and rnorm == pytest.approx(np.linalg.norm(b))


@pytest.mark.device
def test_nnls_mutates_nothing_and_accepts_read_only_inputs():
    rng = np.random.default_rng(3)
    A, b = rng.normal(size=(30, 5)), rng.normal(size=30)
    A0, b0 = A.copy(), b.copy()
    A.flags.writeable = False
    b.flags.writeable = False
    x, _ = nnls(A, b)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(b, b0)
    x[:] = -1.0  # the answer is the caller's own array
    assert nnls(A, b)[0].min() >= 0


@pytest.mark.device
@pytest.mark.parametrize("bad, message", [
    (lambda A, b: (np.where(A == A[0, 0], np.nan, A), b), "A holds a non-finite value"),
    (lambda A, b: (A, np.full_like(b, np.inf)), "b holds a non-finite value"),
    (lambda A, b: (A[0], b), "A must be 2-D"),
    (lambda A, b: (A, b[:-1]), "b has 9 rows but A has 10"),
    (lambda A, b: (A, [["x"]] * 10), "b must be an array of numbers"),
])
def test_nnls_refuses_bad_input_with_a_message(bad, message):
    A, b = np.ones((10, 3)), np.ones(10)
    with pytest.raises(ValueError, match=message):
        nnls(*bad(A, b))


@pytest.mark.device
def test_nnls_iterations_are_bounded():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(40, 12))
    b = A @ np.abs(rng.normal(size=12))  # every column in the answer: 12 solves at least
    with pytest.raises(RuntimeError, match="did not converge in 3"):
        nnls(A, b, max_iter=3)
    assert nnls(A, b)[1] < 1e-8


@pytest.fixture(scope="module")
def pesticides(sers_npz):
    """Per class, its spectra (float64) on the 501-1999 cm-1 axis, and the class names."""
    X, y = sers_npz["X"], sers_npz["y"]
    return [X[y == c] for c in range(len(sers_npz["class_names"]))], [str(n) for n in sers_npz["class_names"]]


def model_of(references, names, window=0, threshold=0.5):
    return MixtureModel(tuple(names), np.asarray(references), BACKGROUND_ORDER, window, threshold, np.nan, np.nan, 0)


def background_free(y):
    B = legendre_background(y.size, BACKGROUND_ORDER)
    return y - B @ (B.T @ y)


def clean_height(y):
    return band_height(background_free(y))


@pytest.mark.device
@pytest.mark.parametrize("window", [0, 25])
def test_unmixing_recovers_the_fractions_of_a_mixture_of_real_spectra(pesticides, window):
    per_class, _ = pesticides
    A, B, C = (background_free(s) for s in (per_class[1][7], per_class[3][11], per_class[5][2]))
    x = np.linspace(-1, 1, A.size)
    background = 40.0 + 25.0 * x - 30.0 * x**2  # degree 2: removed exactly with or without the derivative
    y = 0.3 * A / band_height(A) + 0.7 * B / band_height(B) + background
    model = model_of([component_reference(s) for s in (A, B, C)], ["A", "B", "C"], window, threshold=0.5)
    result = model.unmix(y)
    assert result.is_mixture and result.pair == ("B", "A") and result.best == "B"
    assert [n for n, _ in result.components] == ["B", "A"]
    assert [f for _, f in result.components] == pytest.approx([0.7, 0.3], abs=1e-8)
    assert result.pair_residual < 1e-6 and result.statistic > 0.99
    np.testing.assert_allclose(result.fitted + result.background + result.residual, y, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.contributions.sum(axis=0), result.fitted, rtol=0, atol=1e-12)
    assert result.contributions.shape == (len(result.components), y.size)
    np.testing.assert_allclose(result.background, background, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.fitted, y - background, rtol=0, atol=1e-6)


def test_fractions_agree_with_a_least_squares_oracle(pesticides):
    # A noisy mixture: the unmixing's fractions are those of SciPy's NNLS on references plus a free polynomial.
    per_class, names = pesticides
    spectra = [per_class[c][4] for c in (1, 2, 4, 5)]
    references = np.array([component_reference(s) for s in spectra])
    rng = np.random.default_rng(5)
    y = 0.6 * spectra[1] / clean_height(spectra[1]) + 0.4 * spectra[3] / clean_height(spectra[3])
    y = y + rng.normal(0, 0.01, y.size)
    result = model_of(references, names[1:5], threshold=0.2).unmix(y)
    B = legendre_background(y.size, BACKGROUND_ORDER)
    pair = [1, 3]
    # Oracle: min |y - R' c - B d| with c >= 0 and d free is NNLS of the projected y on the projected references.
    c, _ = scipy_nnls((references[pair] - (references[pair] @ B) @ B.T).T, y - B @ (B.T @ y))
    share = c * band_height(references[pair])
    expected = dict(zip([names[2], names[4]], share / share.sum()))
    assert result.is_mixture
    assert dict(result.components) == pytest.approx(expected, abs=1e-9)
    assert dict(result.components)[names[2]] == pytest.approx(0.6, abs=0.05)


@pytest.mark.device
def test_a_single_spectrum_is_not_a_mixture_and_a_50_50_mixture_is(pesticides):
    per_class, names = pesticides
    references = [component_reference(s[::2]) for s in per_class]  # even rows train, odd rows test
    model = model_of(references, names, threshold=0.3)
    for c in range(1, 6):
        single = model.unmix(per_class[c][1])
        assert not single.is_mixture and single.statistic < 0.3
        assert single.components == ((names[c], 1.0),) and single.best == names[c]
    A, B = per_class[2][3], per_class[4][5]
    mixed = model.unmix(0.5 * A / clean_height(A) + 0.5 * B / clean_height(B))
    assert mixed.is_mixture and mixed.statistic > 0.6
    assert dict(mixed.components).keys() == {names[2], names[4]}
    assert dict(mixed.components)[names[2]] == pytest.approx(0.5, abs=0.1)


@pytest.mark.device
def test_candidates_restrict_the_unmixing_and_bad_ones_are_refused(pesticides):
    per_class, names = pesticides
    model = model_of([component_reference(s[:50]) for s in per_class], names)
    A, B = per_class[2][60], per_class[4][60]
    y = 0.5 * A / clean_height(A) + 0.5 * B / clean_height(B)
    assert set(dict(model.unmix(y, candidates=[2, 4, 1]).components)) == {names[2], names[4]}
    without = model.unmix(y, candidates=[0, 1, 3, 5])
    assert not {names[2], names[4]} & ({without.best} | set(without.pair))
    alone = model.unmix(y, candidates=[4])
    assert alone.pair == () and alone.statistic == 0.0 and not alone.is_mixture
    for bad, message in (([], "non-empty"), ([1, 1], "distinct"), ([6], "0..5"), ([-1], "0..5"),
                         ([0.5], "entry indices"), ("ab", "entry indices")):
        with pytest.raises(ValueError, match=message):
            model.unmix(y, candidates=bad)


@pytest.mark.device
def test_unmix_refuses_unusable_spectra(pesticides):
    per_class, names = pesticides
    model = model_of([component_reference(s[:20]) for s in per_class], names)
    y = per_class[1][30].copy()
    with pytest.raises(ValueError, match="1498 points"):
        model.unmix(y[1:])
    y[7] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        model.unmix(y)
    with pytest.raises(ValueError, match="no signal above a smooth background"):
        model.unmix(3.0 + np.linspace(0, 1, y.size) ** 2)


@pytest.mark.device
def test_component_reference_is_unit_norm_background_free_and_scale_free(pesticides):
    per_class, _ = pesticides
    Y = per_class[3][:30]
    r = component_reference(Y)
    B = legendre_background(r.size, BACKGROUND_ORDER)
    assert np.linalg.norm(r) == pytest.approx(1.0)
    assert np.abs(B.T @ r).max() < 1e-10
    scaled = Y * np.linspace(0.1, 10, len(Y))[:, None] + 50.0  # intensities and offsets do not matter
    np.testing.assert_allclose(component_reference(scaled), r, atol=1e-10)
    np.testing.assert_allclose(component_reference(Y[0]), component_reference(Y[:1]))
    with pytest.raises(ValueError, match="nothing but background"):
        component_reference(np.vstack([Y[0], np.linspace(0, 1, r.size)]))
    with pytest.raises(ValueError, match="non-finite"):
        component_reference(np.where(Y == Y[0, 0], np.inf, Y))


def stored(tmp_path, arrays):
    np.savez(tmp_path / "m.npz", **arrays)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.device
def test_model_round_trips_through_npz_and_unmixes_the_same(pesticides, tmp_path):
    per_class, names = pesticides
    model = MixtureModel(tuple(names), np.array([component_reference(s[:40]) for s in per_class]), 4, 25, 0.13,
                         0.009, 0.93, 240)
    arrays = model.to_arrays(prefix="lib.mixture.")
    assert set(arrays) == {"lib.mixture." + n for n in ARRAY_NAMES}
    assert arrays["lib.mixture.names"].dtype.kind == "U"
    back = MixtureModel.from_arrays(stored(tmp_path, arrays), 1499, prefix="lib.mixture.")
    assert (back.names, back.background_order, back.derivative_window, back.threshold, back.false_mixture_rate,
            back.mixture_detection_rate, back.calibration_spectra) == (tuple(names), 4, 25, 0.13, 0.009, 0.93, 240)
    np.testing.assert_array_equal(back.references, model.references)
    assert not back.references.flags.writeable
    A, B = per_class[1][50], per_class[5][50]
    y = 0.5 * A / clean_height(A) + 0.5 * B / clean_height(B)
    a, b = model.unmix(y), back.unmix(y)
    assert a.components == b.components and a.statistic == b.statistic
    uncalibrated = MixtureModel.from_arrays(
        stored(tmp_path, {**arrays, "lib.mixture.threshold": np.array(np.inf),
                          "lib.mixture.false_mixture_rate": np.array(np.nan)}), 1499, prefix="lib.mixture.")
    assert not uncalibrated.unmix(y).is_mixture and uncalibrated.unmix(y).statistic == a.statistic


@pytest.mark.device
@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("mixture.threshold"), "mixture.threshold missing"),
    (lambda a: a.update({"mixture.names": np.arange(6)}), "names must be a 1-D array of strings"),
    (lambda a: a.update({"mixture.names": np.array(["a", "b", "c", "d", "e", "a"])}), "'a' appears more than once"),
    (lambda a: a.update({"mixture.names": np.array(["a", "b", "c", "d", "e", ""])}), "non-empty string"),
    (lambda a: a.update({"mixture.references": a["mixture.references"][:, :-1]}), r"not \(6, 1499\)"),
    (lambda a: a.update({"mixture.references": a["mixture.references"][:5]}), r"not \(6, 1499\)"),
    (lambda a: a.update({"mixture.references": np.where(a["mixture.references"] > 0.05, np.nan,
                                                        a["mixture.references"])}), "non-finite"),
    (lambda a: a.update({"mixture.references": np.zeros((6, 1499))}), "has no band"),
    (lambda a: a.update({"mixture.references": a["mixture.references"].astype(str)}), "references must be numbers"),
    (lambda a: a.update({"mixture.threshold": np.array(np.nan)}), "threshold must be in"),
    (lambda a: a.update({"mixture.threshold": np.array(1.5)}), "threshold must be in"),
    (lambda a: a.update({"mixture.threshold": np.array([0.1, 0.2])}), "threshold must be one number"),
    (lambda a: a.update({"mixture.false_mixture_rate": np.array(-0.1)}), "false_mixture_rate must be a share"),
    (lambda a: a.update({"mixture.background_order": np.array(2.5)}), "whole number"),
    (lambda a: a.update({"mixture.background_order": np.array(31)}), "0..30"),
    (lambda a: a.update({"mixture.derivative_window": np.array(24)}), "window must be odd"),
    (lambda a: a.update({"mixture.derivative_window": np.array(1501)}), "longer than the 1499-point axis"),
    (lambda a: a.update({"mixture.calibration_spectra": np.array(-3)}), "whole number >= 0"),
    (lambda a: a.update({"mixture.calibration_spectra": np.array(True)}), "must be numbers"),
])
def test_from_arrays_refuses_malformed_arrays(pesticides, tmp_path, change, message):
    per_class, names = pesticides
    arrays = model_of([component_reference(s[:10]) for s in per_class], names).to_arrays()
    change(arrays)
    with pytest.raises(ValueError, match=message) as caught:
        MixtureModel.from_arrays(stored(tmp_path, arrays), 1499)
    assert str(caught.value).startswith("mixture model arrays: ")
