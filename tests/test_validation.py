"""Input validation: bad spectra, axes and matrices refused with the device's own specific errors."""
import numpy as np
import pytest

from device.errors import (
    AxisNotMonotonicError,
    InvalidAxisError,
    LengthMismatchError,
    NonFiniteError,
    NotOneDimensionalError,
    SpectrumError,
    TooFewPointsError,
)
from device.inference.spectrum import Axis, Spectrum
from device.inference.validation import check_matrix

pytestmark = pytest.mark.device  # needs only the device extra

X = np.linspace(500, 600, 11)
Y = np.arange(11.0)


@pytest.mark.parametrize("shift, intensity, error, words", [
    (np.ones((2, 5)), np.ones((2, 5)), NotOneDimensionalError, "1-D"),
    (X, Y[:-1], LengthMismatchError, "11 points but the intensities have 10"),
    (X[:2], Y[:2], TooFewPointsError, "at least 3"),
    (X, np.where(Y == 4, np.nan, Y), NonFiniteError, "first at point 4"),
    (X, np.where(Y == 2, np.inf, Y), NonFiniteError, "non-finite"),
    (np.where(X == 550, np.nan, X), Y, NonFiniteError, "axis"),
    (np.r_[X[:5], X[4], X[6:]], Y, AxisNotMonotonicError, "at point 5"),
    (np.r_[X[:5], X[7], X[6], X[5], X[8:]], Y, AxisNotMonotonicError, "strictly increasing or decreasing"),
    (X, ["a"] * 11, NotOneDimensionalError, "must be numbers"),
])
def test_bad_spectra_raise_specific_errors(shift, intensity, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(")) as info:
        Spectrum(shift, intensity)
    assert isinstance(info.value, SpectrumError) and isinstance(info.value, ValueError)


def test_decreasing_axis_is_reversed_with_intensities():
    s = Spectrum(X[::-1], Y[::-1], {"source": "x"})
    np.testing.assert_array_equal(s.shift, X)
    np.testing.assert_array_equal(s.intensity, Y)
    assert s.meta == {"source": "x"} and len(s) == 11


def test_spectrum_arrays_are_read_only_copies():
    x, y = X.copy(), Y.copy()
    s = Spectrum(x, y)
    x[0] = -1
    assert s.shift[0] == 500
    with pytest.raises(ValueError):
        s.intensity[0] = 5


def test_axis_parse_and_errors():
    a = Axis.parse("501:1999:1499")
    assert (a.start, a.stop, a.points, a.step) == (501.0, 1999.0, 1499, 1.0)
    assert str(a) == "501:1999:1499"
    np.testing.assert_array_equal(a.values, np.arange(501.0, 2000.0))
    for bad in ["501:1999", "a:b:c", "10:5:100", "0:10:2", "0:10:2.5"]:
        with pytest.raises(InvalidAxisError):
            Axis.parse(bad)


def test_check_matrix_shapes_and_values():
    assert check_matrix(np.ones(5), 5).shape == (1, 5)
    with pytest.raises(LengthMismatchError, match="Resample"):
        check_matrix(np.ones((2, 4)), 5)
    with pytest.raises(NotOneDimensionalError):
        check_matrix(np.ones((2, 2, 5)), 5)
    with pytest.raises(NonFiniteError):
        check_matrix(np.array([[1, np.nan, 3, 4, 5.0]]), 5)
