"""Reading spectrum files as :class:`~device.inference.spectrum.Spectrum` objects.

The file formats (two-column text/CSV, NumPy ``.npz``) are read by :mod:`firmware_bridge.spectrum_files`;
here each spectrum read is checked as a spectrum.
"""
from __future__ import annotations

from device.errors import SpectrumError, SpectrumFileError
from device.inference.spectrum import Spectrum
from firmware_bridge import errors as bridge_errors
from firmware_bridge.spectrum_files import read_spectrum_file


def read_spectra(path) -> list[Spectrum]:
    """Read every spectrum in a file.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of Spectrum
        One for a text file; one per row of ``X`` for ``.npz``. ``meta`` holds ``source`` (the path)
        and, for ``.npz``, ``index``.

    Raises
    ------
    SpectrumFileError
        If the file cannot be read or parsed, or its data is not a valid spectrum.
    """
    try:
        arrays = read_spectrum_file(path)
    except bridge_errors.SpectrumFileError as exc:
        raise SpectrumFileError(str(exc)) from None
    try:
        return [Spectrum(shift, intensity, meta) for shift, intensity, meta in arrays]
    except SpectrumError as exc:
        raise SpectrumFileError(f"{path}: {exc}") from None
