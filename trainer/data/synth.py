"""A synthetic stand-in for the SERS organophosphate data of the compact-network paper.

The paper's 116 spectra are not public. This generator follows every fact the paper gives, so the
pipeline and the evaluation protocol can be exercised end to end; its spectra are **synthetic** and
every file says so.

What it models
--------------
* Axis 440-1800 cm-1, 2,721 points (0.5 cm-1), as the paper's Bruker Senterra exports.
* Bands at the paper's positions, Lorentzian (SERS bands of adsorbed molecules are dominated by
  homogeneous broadening), FWHM 8-14 cm-1:
  edifenphos 1000, 1020 (aromatic ring), 1080 (C-H, the strongest), 1580 (P-O);
  ethyl parathion 853 (P-O), 1114 (C-N), 1265 (N-O, the strongest), 1349 (C-H), 1585 (P-O).
* Signal against concentration follows a saturating Langmuir-Freundlich (Sips) adsorption isotherm,
  theta = (K c)^n / (1 + (K c)^n) with K = 1 uM^-1 and n = 0.5, over the paper's series 10, 8, 6, 4, 2,
  1, 0.8, 0.6, 0.4, 0.2, 0.1, 0.01 uM: growing over three decades, not linearly.
* Mixtures at the paper's design (edifenphos fixed at 600 nM with parathion at 1, 0.8, 0.6, 0.4,
  0.2 uM, and the reverse). Both compete for the same sites (competitive Sips isotherm), which
  changes the intensity ratios; co-adsorption shifts bands by up to +/-3 cm-1 and adds weak bands
  found in neither pure spectrum (at 725, 1175 and 1450 cm-1).
* Negative controls from "random sources": the substrate's own bands (citrate-capped gold
  nanostars: 950 and 1400 cm-1) and 3-7 bands of unidentified material at random positions.
* Acquisition: 50 or 100 mW (signal and fluorescence scale with power), 6 s x 6 scans co-added,
  substrate-to-substrate gain variation (log-normal, sigma 0.3; SERS hot spots), a fluorescence
  background (a broad, smooth, randomly shaped curve of random strength), shot noise (Poisson on
  the detected counts), read noise (10 counts rms per scan), and occasional cosmic-ray spikes
  (15 % of spectra, 1-2 spikes one to two points wide).

What it does not model
----------------------
Matrix effects of real food or water samples, substrate ageing, photodegradation, detector
etaloning, wavelength-calibration drift between instruments, and the precise band shapes and
relative intensities of the real molecules (those of the paper's figures are approximated).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.inference.spectrum import Axis

#: The paper's axis.
AXIS = Axis(440.0, 1800.0, 2721)
#: The paper's concentration series, uM.
CONCENTRATIONS_UM = (10, 8, 6, 4, 2, 1, 0.8, 0.6, 0.4, 0.2, 0.1, 0.01)
#: (position cm-1, relative amplitude, FWHM cm-1) of each band.
BANDS = {
    "edifenphos": ((1000, 0.55, 10), (1020, 0.45, 10), (1080, 1.0, 12), (1580, 0.6, 14)),
    "ethyl_parathion": ((853, 0.5, 12), (1114, 0.45, 11), (1265, 1.0, 12), (1349, 0.7, 13), (1585, 0.5, 14)),
}
#: Weak bands that appear only in mixtures (cm-1).
MIXTURE_ONLY_BANDS = (725, 1175, 1450)
#: Substrate bands present in every spectrum at low level (cm-1).
SUBSTRATE_BANDS = (950, 1400)
#: Mixture design: (edifenphos uM, parathion uM).
MIXTURES_UM = tuple((0.6, p) for p in (1, 0.8, 0.6, 0.4, 0.2)) + tuple((e, 0.6) for e in (1, 0.8, 0.6, 0.4, 0.2))
CLASSES = ("edifenphos", "ethyl_parathion", "mixture", "control")
DEFAULT_COUNTS = (36, 36, 29, 15)

SIPS_K = 1.0  # uM^-1
SIPS_N = 0.5
PEAK_COUNTS_100MW = 4000.0  # counts per scan of the strongest band at full coverage, 100 mW, 6 s
FLUORESCENCE_COUNTS_100MW = (500.0, 6000.0)  # range of the background's peak, per scan
READ_NOISE = 10.0  # counts rms per scan
SCANS = 6
GAIN_SIGMA = 0.3
SPIKE_PROBABILITY = 0.15


@dataclass(frozen=True)
class SyntheticSpectrum:
    """One generated spectrum and how it was made."""

    label: str
    intensity: np.ndarray  # counts per scan (co-added scans averaged), on AXIS
    edifenphos_um: float
    parathion_um: float
    power_mw: int
    gain: float
    spikes: int
    repetition: int


def _lorentz(x: np.ndarray, centre: float, fwhm: float) -> np.ndarray:
    return 1.0 / (1.0 + ((x - centre) / (fwhm / 2)) ** 2)


def _coverages(edif: float, para: float) -> tuple[float, float]:
    """Competitive Sips isotherm: fractional coverage of each adsorbate."""
    a, b = (SIPS_K * edif) ** SIPS_N, (SIPS_K * para) ** SIPS_N
    return a / (1 + a + b), b / (1 + a + b)


def _molecule(x, name: str, coverage: float, rng, shift_sd: float = 0.0) -> np.ndarray:
    out = np.zeros_like(x)
    for pos, amp, fwhm in BANDS[name]:
        out += amp * _lorentz(x, pos + rng.normal(0, shift_sd), fwhm * rng.uniform(0.9, 1.1))
    return coverage * out


def _fluorescence(x, rng) -> np.ndarray:
    """A smooth, broad background: a wide Gaussian hump plus a gentle slope, normalised to peak 1."""
    centre = rng.uniform(300, 2200)
    width = rng.uniform(600, 1500)
    slope = rng.uniform(-0.3, 0.3)
    curve = np.exp(-0.5 * ((x - centre) / width) ** 2) + slope * (x - x[0]) / (x[-1] - x[0])
    curve -= min(curve.min(), 0)
    return curve / curve.max()


def _one(label: str, edif: float, para: float, rep: int, rng) -> SyntheticSpectrum:
    x = AXIS.values
    power = int(rng.choice((50, 100)))
    gain = float(rng.lognormal(0.0, GAIN_SIGMA))
    signal = 0.03 * sum(_lorentz(x, p, 20) for p in SUBSTRATE_BANDS)  # substrate
    if label == "control":
        for _ in range(rng.integers(3, 8)):
            signal += rng.uniform(0.05, 0.6) * _lorentz(x, rng.uniform(500, 1750), rng.uniform(8, 25))
    else:
        ce, cp = _coverages(edif, para)
        mix = label == "mixture"
        signal += _molecule(x, "edifenphos", ce, rng, 1.5 if mix else 0.0)
        signal += _molecule(x, "ethyl_parathion", cp, rng, 1.5 if mix else 0.0)
        if mix:
            for pos in MIXTURE_ONLY_BANDS:
                signal += 0.12 * min(ce, cp) / 0.3 * _lorentz(x, pos + rng.normal(0, 1.0), 12)
    scale = power / 100.0
    expected = scale * (gain * PEAK_COUNTS_100MW * signal
                        + rng.uniform(*FLUORESCENCE_COUNTS_100MW) * _fluorescence(x, rng))
    # Co-adding SCANS scans: Poisson shot noise on the total, read noise per scan; report the mean.
    total = rng.poisson(np.clip(expected * SCANS, 0, None)).astype(np.float64)
    total += rng.normal(0.0, READ_NOISE * np.sqrt(SCANS), x.size)
    counts = total / SCANS
    spikes = 0
    if rng.random() < SPIKE_PROBABILITY:
        spikes = int(rng.integers(1, 3))
        for _ in range(spikes):
            i = int(rng.integers(0, x.size - 2))
            counts[i:i + int(rng.integers(1, 3))] += rng.uniform(2000, 20000)
    return SyntheticSpectrum(label, counts, float(edif), float(para), power, gain, spikes, rep)


def _design(label: str, count: int) -> list[tuple[float, float]]:
    """(edifenphos uM, parathion uM) of each spectrum of a class: the design repeated as needed."""
    if label == "edifenphos":
        base = [(c, 0.0) for c in CONCENTRATIONS_UM]
    elif label == "ethyl_parathion":
        base = [(0.0, c) for c in CONCENTRATIONS_UM]
    elif label == "mixture":
        base = list(MIXTURES_UM)
    else:
        base = [(0.0, 0.0)]
    return [base[i % len(base)] for i in range(count)]


def generate(counts=DEFAULT_COUNTS, seed: int = 0) -> list[SyntheticSpectrum]:
    """Generate the synthetic set, deterministic for a seed.

    Parameters
    ----------
    counts : 4 ints
        Spectra of edifenphos, ethyl parathion, mixture and control (the paper's 36, 36, 29, 15).
    seed : int

    Returns
    -------
    list of SyntheticSpectrum, in class order
    """
    if len(counts) != 4 or any(int(c) < 1 for c in counts):
        raise ValueError(f"counts are four positive numbers (edifenphos, parathion, mixture, control); got {counts}")
    rng = np.random.default_rng(seed)
    out = []
    for label, count in zip(CLASSES, counts):
        design = _design(label, int(count))
        per_level = {}
        for edif, para in design:
            rep = per_level[(edif, para)] = per_level.get((edif, para), 0) + 1
            out.append(_one(label, edif, para, rep, rng))
    return out


def _file_name(s: SyntheticSpectrum) -> str:
    conc = {"edifenphos": f"{s.edifenphos_um:g}uM", "ethyl_parathion": f"{s.parathion_um:g}uM",
            "mixture": f"E{s.edifenphos_um:g}uM-P{s.parathion_um:g}uM", "control": "blank"}[s.label]
    return f"{s.label}_{conc}_{s.power_mw}mW_rep{s.repetition}.csv"


#: First line of the README.txt that :func:`write` puts beside the class folders.
MARK = "SYNTHETIC data generated by `raman-train synth` (raman-edge), not measurements."


def is_synthetic(path) -> bool:
    """True if ``path`` is a directory written by :func:`write` (its README.txt starts with :data:`MARK`)."""
    readme = Path(path) / "README.txt"
    try:
        return Path(path).is_dir() and readme.read_text(encoding="utf-8").splitlines()[:1] == [MARK]
    except (OSError, UnicodeDecodeError):
        return False


def write(out, counts=DEFAULT_COUNTS, seed: int = 0) -> list[Path]:
    """Write the synthetic set in the class-folder layout (one two-column CSV per spectrum).

    Also writes ``metadata.csv`` (file, class, concentrations, power, gain, spikes) and ``README.txt``
    at the top level, which the class-folder loader ignores.

    Returns
    -------
    list of Path
        The spectrum files, in generation order.
    """
    out = Path(out)
    spectra = generate(counts, seed)
    header = (f"# SYNTHETIC spectrum, not a measurement: raman-edge synthetic SERS organophosphate set, seed {seed}\n"
              "raman_shift_cm-1,intensity_counts\n")
    x = AXIS.values
    files = []
    meta = ["file,class,edifenphos_uM,parathion_uM,power_mW,gain,spikes"]
    for s in spectra:
        name = _file_name(s)  # unique: the repetition number counts spectra of the same design
        path = out / s.label / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + "".join(f"{a:.2f},{b:.3f}\n" for a, b in zip(x, s.intensity)))
        files.append(path)
        meta.append(f"{s.label}/{name},{s.label},{s.edifenphos_um:g},{s.parathion_um:g},{s.power_mw},"
                    f"{s.gain:.4f},{s.spikes}")
    (out / "metadata.csv").write_text("\n".join(meta) + "\n")
    (out / "README.txt").write_text(
        MARK + "\n"
        f"Seed {seed}; spectra per class (edifenphos, ethyl_parathion, mixture, control): "
        f"{', '.join(str(int(c)) for c in counts)}.\n"
        "It imitates the SERS organophosphate data described in 'compact FNN with feature engineering for\n"
        "SERS classification of agrochemicals', J. Phys.: Photonics (2025), DOI 10.1088/2515-7647/adc2bf.\n"
        "The physics modelled and what is not modelled: see trainer/data/synth.py.\n")
    return files
