"""Shared fixtures: the real data sets beside the repository and the shipped model."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("RAMAN_EDGE_DATASETS", ROOT.parent / "shared" / "datasets"))
SERS = DATASETS / "sersformer_pesticides"
SHIPPED = ROOT / "models" / "sers-pesticides"
#: Every bundle shipped under models/ (the offline installer carries them all).
SHIPPED_MODELS = ("microplastics", "sers-op-synthetic", "sers-pesticides")
#: Every reference library shipped under models/libraries/.
SHIPPED_LIBRARIES = ("microplastics", "sers-pesticides")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data set not found at {path}; set RAMAN_EDGE_DATASETS to the datasets folder")
    return path


@pytest.fixture(scope="session")
def sers_npz():
    """The SERS pesticide set: dict of arrays (X float64)."""
    with np.load(_need(SERS / "sersformer_pesticides.npz"), allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    d["X"] = d["X"].astype(np.float64)
    return d


@pytest.fixture(scope="session")
def sers_sample(sers_npz):
    """60 real spectra spread over all classes and concentrations, on the 501-1999 cm-1 grid."""
    idx = np.linspace(0, len(sers_npz["y"]) - 1, 60).astype(int)
    return sers_npz["X"][idx], sers_npz["wavenumber"].astype(np.float64)


@pytest.fixture(scope="session")
def raw_subset():
    """Directory of the original instrument CSV files, one folder per class."""
    return _need(SERS / "raw_subset")


@pytest.fixture(scope="session")
def raw_files(raw_subset):
    return sorted(raw_subset.glob("*/*.CSV"))


@pytest.fixture(scope="session")
def shipped_bundle():
    from device.inference.bundle import load_bundle

    return load_bundle(SHIPPED)
