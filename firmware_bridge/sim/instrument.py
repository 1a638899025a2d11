"""The instrument model: a Raman spectrum in, the raw pixel counts of a detector out."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_bridge.calibration import raman_shift, wavelengths
from firmware_bridge.errors import SpectrumFileError
from firmware_bridge.spectrum_files import read_spectrum_file

#: Files a folder given as a scene contributes.
SCENE_SUFFIXES = (".csv", ".txt", ".npz")


@dataclass(frozen=True)
class Instrument:
    """What turns photons at a Raman shift into counts on a pixel.

    Attributes
    ----------
    coefficients : tuple of float
        Wavelength polynomial, nm, in the pixel index.
    pixels : int
    laser_nm : float
        The true laser line (a driver should be configured with this measured value).
    max_count : int
        Saturation: 2^bits - 1.
    dark_level : float
        Counts with no light and no exposure (offset).
    dark_rate : float
        Dark current, counts per second.
    gain : float
        Counts per second per unit of scene intensity at the response maximum.
    electrons_per_count : float
        Conversion gain; sets the shot noise.
    read_noise : float
        Counts rms per readout.
    inverted : bool
        Counts fall with light (TCD1304): raw = dark_level - signal.
    resolution_pixels : float
        Spectral resolution (FWHM of the line spread), pixels.
    response_coefficients : tuple of float
        Relative spectral response as a power series in the pixel position scaled to [-1, 1] (default: a
        broad hump, 1 in the middle and 0.6 at the ends).
    axis_error_nm : float
        How far the true wavelength of every pixel lies from :attr:`coefficients`, nm: the stored (or
        given) polynomial's calibration error.
    """

    coefficients: tuple
    pixels: int
    laser_nm: float
    max_count: int
    dark_level: float
    dark_rate: float
    gain: float
    electrons_per_count: float
    read_noise: float
    inverted: bool = False
    first_pixel: int = 0
    resolution_pixels: float = 3.0
    response_coefficients: tuple = (1.0, 0.0, -0.4)
    axis_error_nm: float = 0.0

    def _blur(self, light: np.ndarray) -> np.ndarray:
        """The optics' line spread: a Gaussian of FWHM ``resolution_pixels``."""
        sigma = self.resolution_pixels / 2.3548
        half = int(np.ceil(4 * sigma))
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
        padded = np.pad(light, half, mode="edge")
        return np.convolve(padded, kernel / kernel.sum(), mode="valid")

    def shifts(self) -> np.ndarray:
        """True Raman shift of every pixel, cm-1 (may decrease or hold anti-Stokes values)."""
        true_nm = wavelengths(self.coefficients, self.pixels, self.first_pixel) + self.axis_error_nm
        return raman_shift(true_nm, self.laser_nm)

    def response(self) -> np.ndarray:
        """Relative spectral response of every pixel, shape (pixels,): :attr:`response_coefficients`."""
        return np.polynomial.polynomial.polyval(np.linspace(-1, 1, self.pixels), self.response_coefficients)

    def expected(self, scene_shift: np.ndarray, scene_intensity: np.ndarray, seconds: float) -> np.ndarray:
        """Mean counts above the dark level (before noise) for one exposure, shape (pixels,)."""
        # Each pixel collects light over its width (4 samples), blurred by the optics.
        sub_pixels = self.first_pixel - 0.375 + 0.25 * np.arange(4 * self.pixels)
        sub_nm = np.polynomial.polynomial.polyval(sub_pixels, self.coefficients) + self.axis_error_nm
        sub = raman_shift(sub_nm, self.laser_nm)
        order = np.argsort(scene_shift)
        light = np.interp(sub, scene_shift[order], scene_intensity[order], left=0.0, right=0.0)
        light = self._blur(light.reshape(self.pixels, 4).mean(axis=1))
        return (self.gain * np.clip(light, 0, None) * self.response() + self.dark_rate) * seconds

    def render(self, scene_shift, scene_intensity, seconds: float, rng) -> np.ndarray:
        """One exposure: integer counts, shape (pixels,), with shot and read noise, clipped to the ADC."""
        signal = self.expected(np.asarray(scene_shift, float), np.asarray(scene_intensity, float), seconds)
        electrons = rng.poisson(signal * self.electrons_per_count)
        counts = electrons / self.electrons_per_count + rng.normal(0.0, self.read_noise, self.pixels)
        raw = self.dark_level - counts if self.inverted else self.dark_level + counts
        return np.clip(np.rint(raw), 0, self.max_count).astype(np.int64)


class Scene:
    """Raman spectra of the samples a simulated spectrometer looks at, one sample at a time.

    Built from arrays, or from spectrum files (:meth:`from_path`). Each spectrum is
    scaled to a peak of 1 (units differ between sources); an instrument's gain sets the counts.
    A simulator brings the next sample into view after each measurement (:meth:`advance`) unless the scene
    is :attr:`held`: then the sample stays until whoever holds the scene changes it (:meth:`show`), as
    when one sample is probed, exposed and accumulated over many scans.
    """

    #: The sample stays in view: :meth:`advance` does nothing.
    held = False

    def __init__(self, spectra: list[tuple[np.ndarray, np.ndarray]], names: list[str] | None = None):
        if not spectra:
            raise ValueError("a scene needs at least one spectrum")
        self.spectra = []
        for x, y in spectra:
            y = np.asarray(y, float) - min(0.0, float(np.min(y)))
            self.spectra.append((np.asarray(x, float), y / max(float(np.max(y)), 1e-300)))
        self.names = names or [f"spectrum {i}" for i in range(len(spectra))]
        self._index = 0

    @classmethod
    def from_path(cls, path) -> "Scene":
        """The spectra of a spectrum file, or of every ``.csv``, ``.txt`` and ``.npz`` file under a folder (sorted).

        Files are read by :func:`~firmware_bridge.spectrum_files.read_spectrum_file`; a sample is named by
        its file, and ``NAME[i]`` for the rows of an ``.npz``.

        Raises
        ------
        SpectrumFileError
            A file cannot be read, or a folder holds no spectrum file.
        """
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SCENE_SUFFIXES) \
            if path.is_dir() else [path]
        if not files:
            raise SpectrumFileError(f"{path}: holds no spectrum file ({', '.join(SCENE_SUFFIXES)})")
        spectra, names = [], []
        for f in files:
            for shift, intensity, meta in read_spectrum_file(f):
                spectra.append((shift, intensity))
                names.append(f"{f.name}[{meta['index']}]" if "index" in meta else f.name)
        return cls(spectra, names)

    def current(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The spectrum (shift, intensity) of the sample in view, and its name."""
        return (*self.spectra[self._index], self.names[self._index])

    def show(self, index: int) -> None:
        """Put sample ``index`` in view (as a sample changer would)."""
        if not 0 <= index < len(self.spectra):
            raise IndexError(f"the scene has samples 0 to {len(self.spectra) - 1}, not {index}")
        self._index = index

    def advance(self) -> None:
        """The next sample comes into view (after the last, the first again), unless the scene is held."""
        if self.held:
            return
        self._index = (self._index + 1) % len(self.spectra)
