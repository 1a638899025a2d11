"""Verification against an expected material: the NumPy distributions against SciPy, and the variation model.

SciPy is the oracle, not installed with the device extra: the tests that need it import it themselves, the others
are marked ``device``.
"""
import math

import numpy as np
import pytest

from device.errors import LengthMismatchError, NonFiniteError, RamanEdgeError
from device.inference import distributions as dist
from device.inference.verification import (
    ALPHA,
    MIN_REPLICATES,
    ReplicateVariationError,
    TooFewReplicatesError,
    VariationModel,
    broken_stick_components,
    leave_one_out_residuals,
    t2_factor,
)

#: Degrees of freedom from far below 1 to 1e5, and points from 1e-12 to 1e6 (plus 0), so both tails.
DFS = (0.05, 0.5, 1.0, 1.5, 2.0, 3.0, 7.0, 30.0, 100.0, 1000.0, 1e5)
POINTS = np.concatenate(([0.0], np.logspace(-12, 6, 91)))

P = 200
SHIFT = np.linspace(0.0, 1.0, P)
BASE = np.exp(-0.5 * ((SHIFT - 0.3) / 0.02) ** 2) + 0.5 * np.exp(-0.5 * ((SHIFT - 0.7) / 0.03) ** 2)
LOADINGS = np.stack([np.exp(-0.5 * ((SHIFT - c) / 0.05) ** 2) for c in (0.2, 0.5, 0.8)])
SCORE_SD = np.array([0.3, 0.2, 0.1])
NOISE = 0.02


def replicates(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian replicates (n, P) of one material: three directions of variation and white noise."""
    return BASE + (rng.normal(size=(n, 3)) * SCORE_SD) @ LOADINGS + NOISE * rng.normal(size=(n, P))


def close(ours: np.ndarray, theirs: np.ndarray, rtol: float) -> None:
    """Equal to a relative ``rtol`` where SciPy's value is representable; underflowed together below."""
    big = theirs > 1e-290
    np.testing.assert_allclose(ours[big], theirs[big], rtol=rtol, atol=0)
    assert np.all(ours[~big] < 1e-280)


def tolerance(*df: float) -> float:
    return 1e-10 if max(df) <= 1000 else 1e-8


@pytest.mark.parametrize("df", DFS)
def test_chi_square_tails_match_scipy_over_both_tails(df):
    stats = pytest.importorskip("scipy.stats")
    close(dist.chi2_sf(POINTS, df), stats.chi2.sf(POINTS, df), tolerance(df))
    close(dist.chi2_cdf(POINTS, df), stats.chi2.cdf(POINTS, df), tolerance(df))


@pytest.mark.parametrize("d1", DFS)
def test_f_tails_match_scipy_over_both_tails(d1):
    stats = pytest.importorskip("scipy.stats")
    for d2 in DFS:
        close(dist.f_sf(POINTS, d1, d2), stats.f.sf(POINTS, d1, d2), tolerance(d1, d2))
        close(dist.f_cdf(POINTS, d1, d2), stats.f.cdf(POINTS, d1, d2), tolerance(d1, d2))


def test_incomplete_gamma_and_beta_match_scipy_special():
    special = pytest.importorskip("scipy.special")
    x = np.linspace(0.0, 1.0, 41)
    for a in (0.05, 1.0, 3.5, 250.0):
        lower, upper = dist.regularized_gamma(a, POINTS)
        close(lower, special.gammainc(a, POINTS), 1e-11)
        close(upper, special.gammaincc(a, POINTS), 1e-11)
        for b in (0.05, 2.0, 40.0):
            lower, upper = dist.regularized_beta(a, b, x, 1.0 - x)
            close(lower, special.betainc(a, b, x), 1e-11)
            close(upper, special.betainc(b, a, 1.0 - x), 1e-11)


@pytest.mark.device
def test_the_ends_of_the_distributions_are_exact():
    assert dist.chi2_sf(np.inf, 3.0) == 0.0 and dist.chi2_cdf(0.0, 3.0) == 0.0
    assert dist.f_sf(np.inf, 2.0, 5.0) == 0.0 and dist.f_cdf(np.inf, 2.0, 5.0) == 1.0
    assert dist.f_sf(0.0, 2.0, 5.0) == 1.0


@pytest.mark.parametrize("p", (0.999, 0.5, 0.025, 1e-6, 1e-100))
def test_inverse_survival_functions_invert_scipy_survival_functions(p):
    stats = pytest.importorskip("scipy.stats")
    for df in (0.3, 1.0, 3.3, 50.0, 1500.0):
        assert math.isclose(stats.chi2.sf(dist.chi2_isf(p, df), df), p, rel_tol=1e-9)
        assert math.isclose(stats.f.sf(dist.f_isf(p, df, 57.0), df, 57.0), p, rel_tol=1e-9)  # scipy's isf: inf
        if p > 1e-50:
            assert math.isclose(dist.f_isf(p, df, 57.0), stats.f.isf(p, df, 57.0), rel_tol=1e-9)


@pytest.mark.device
@pytest.mark.parametrize("call", (lambda: dist.chi2_sf(1.0, 0.0), lambda: dist.f_sf(1.0, 2.0, -1.0),
                                  lambda: dist.chi2_sf(-1.0, 2.0), lambda: dist.f_cdf(np.nan, 1.0, 1.0),
                                  lambda: dist.chi2_isf(0.0, 2.0), lambda: dist.f_isf(1.0, 2.0, 3.0)))
def test_parameters_and_points_outside_the_domain_are_refused(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.device
def test_broken_stick_keeps_the_components_above_a_randomly_broken_stick():
    # r = 5: the stick's pieces are 0.457, 0.257, 0.157, 0.090, 0.040 of the variance
    assert broken_stick_components(np.array([50.0, 30.0, 10.0, 5.0, 5.0, 0.0]), 6, 100) == 2
    assert broken_stick_components(np.array([40.0, 30.0, 20.0, 5.0, 5.0, 0.0]), 6, 100) == 1
    assert broken_stick_components(np.full(6, 1.0), 6, 100) == 1  # nothing stands out: at least one
    # r = 4: 0.521, 0.271, 0.146, 0.0625; three above it is n - 2 for n = 5
    assert broken_stick_components(np.array([53.0, 28.0, 15.0, 4.0, 0.0]), 5, 100) == 3
    assert broken_stick_components(np.array([53.0, 28.0, 15.0, 4.0, 0.0]), 5, 3) == 1  # r = P = 3: 0.55 < 0.61


@pytest.mark.device
def test_leave_one_out_residuals_equal_a_refit_without_each_replicate():
    X = replicates(12, np.random.default_rng(3))
    Xc = X - X.mean(axis=0)
    q = leave_one_out_residuals(Xc @ Xc.T, 2)
    for i in range(len(X)):
        rest = np.delete(X, i, axis=0)
        mean = rest.mean(axis=0)
        axes = np.linalg.svd(rest - mean, full_matrices=False)[2][:2]
        d = X[i] - mean
        r = d - (d @ axes.T) @ axes
        assert math.isclose(q[i], r @ r, rel_tol=1e-8)


def test_p_values_and_limits_follow_the_stated_references():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    model = VariationModel.fit(replicates(30, rng))
    n, k = model.n, model.k
    assert t2_factor(n, k) == (n + 1) * k * (n - 1) / (n * (n - k))
    assert math.isclose(stats.f.sf(model.t2_limit / t2_factor(n, k), k, n - k), ALPHA / 2, rel_tol=1e-8)
    assert math.isclose(stats.f.sf(model.q_limit / model.q_mean, model.q_dof, n * model.q_dof), ALPHA / 2,
                        rel_tol=1e-8)
    for v in model.test(replicates(20, rng)):
        assert math.isclose(v.p_t2, stats.f.sf(v.t2 / t2_factor(n, k), k, n - k), rel_tol=1e-9)
        assert math.isclose(v.p_q, stats.f.sf(v.q / model.q_mean, model.q_dof, n * model.q_dof), rel_tol=1e-9)
        assert v.p_value == min(1.0, 2 * min(v.p_t2, v.p_q))
        assert v.passed == (v.p_value >= ALPHA) == (v.t2 <= v.t2_limit and v.q <= v.q_limit)
        assert (v.k, v.n, v.alpha) == (k, n, ALPHA)


@pytest.mark.slow
def test_genuine_gaussian_replicates_fail_about_alpha_of_the_time():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    fails = t2_fails = q_fails = 0
    fits, per_fit = 40, 50
    for _ in range(fits):
        model = VariationModel.fit(replicates(60, rng))
        results = model.test(replicates(per_fit, rng))
        fails += sum(not v.passed for v in results)
        t2_fails += sum(v.p_t2 < ALPHA / 2 for v in results)
        q_fails += sum(v.p_q < ALPHA / 2 for v in results)
    tests = fits * per_fit
    # the binomial 99.9% interval of 2000 tests at alpha, widened by half for the spread between fitted models
    low, high = stats.binom.interval(0.999, tests, ALPHA)
    spread = (high - low) / 4
    assert low - spread <= fails <= high + spread
    assert t2_fails <= stats.binom.interval(0.999, tests, ALPHA / 2)[1]  # T2 alone: at most alpha / 2
    assert q_fails <= stats.binom.interval(0.999, tests, ALPHA / 2)[1] * 1.5


@pytest.mark.device
def test_a_shifted_band_and_a_far_score_fail_while_a_genuine_replicate_passes():
    rng = np.random.default_rng(6)
    model = VariationModel.fit(replicates(40, rng))
    genuine = replicates(1, rng)[0]
    moved = np.roll(genuine, 4)  # every band 4 points (2% of the axis, a band's standard deviation) higher
    extra = genuine + np.exp(-0.5 * ((SHIFT - 0.6) / 0.01) ** 2)  # a narrow band no replicate has
    far = model.mean + 6 * SCORE_SD[0] * LOADINGS[0]  # 6 standard deviations along the main direction
    g, m, e, f = model.test(np.stack([genuine, moved, extra, far]))
    assert g.passed
    assert not m.passed and m.p_q < 1e-4
    assert not e.passed and e.p_q < 1e-4
    assert not f.passed and f.p_t2 < 1e-3 and f.q <= f.q_limit


@pytest.mark.device
def test_too_few_replicates_is_a_named_error_with_the_counts():
    X = replicates(MIN_REPLICATES - 1, np.random.default_rng(7))
    with pytest.raises(TooFewReplicatesError, match=f"acetone has {MIN_REPLICATES - 1} replicate spectra; "
                                                    f"verification needs at least {MIN_REPLICATES}") as info:
        VariationModel.fit(X, entry="acetone")
    assert isinstance(info.value, RamanEdgeError)
    assert (info.value.replicates, info.value.needed) == (MIN_REPLICATES - 1, MIN_REPLICATES)
    VariationModel.fit(replicates(MIN_REPLICATES, np.random.default_rng(7)))  # enough


@pytest.mark.device
def test_identical_replicates_and_bad_spectra_are_named_errors():
    with pytest.raises(ReplicateVariationError, match="identical"):
        VariationModel.fit(np.tile(BASE, (8, 1)), entry="water")
    model = VariationModel.fit(replicates(10, np.random.default_rng(8)))
    with pytest.raises(LengthMismatchError, match=f"{P} points"):
        model.test(np.zeros(P + 1))
    with pytest.raises(NonFiniteError):
        model.test(np.full(P, np.nan))
    with pytest.raises(NonFiniteError):
        VariationModel.fit(np.full((6, P), np.inf))
    with pytest.raises(ValueError, match="significance level"):
        VariationModel.fit(replicates(10, np.random.default_rng(8)), alpha=1.0)
