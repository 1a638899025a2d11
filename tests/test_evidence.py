"""``raman-train report``: real records (a real SQLite file) with real analyses, drawn and read back.

The analyses are computed here the way the device defines them (HQI = 100 x correlation of the
preprocessed spectra, non-negative unmixing, the model's relevance from device/inference/relevance.py) on
the microplastics set: the report's job is to draw them, so the test checks the pages it writes: one A4
page in the PDF, the text on it (verdict, ids, numbers), the PNG's size and that each panel's colours
are on it.
"""
from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import DATASETS, ROOT, _need
from test_record import version_1_record

from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier
from device.inference.preprocess import Chain
from device.inference.relevance import relevance, top_bands
from device.inference.spectrum import Axis
from device.service.record import Record, RecordStore
from trainer.cli import main

pytestmark = pytest.mark.slow  # matplotlib draws each page

MICROPLASTICS = DATASETS / "rampp_microplastics" / "rampp_microplastics.npz"
MODEL = ROOT / "models" / "microplastics"
AXIS = Axis(100.0, 3679.54, 1566)  # the shipped model's: below 100 cm-1 lie the laser line and the filter edge
LIBRARY = "rampp-pristine@5b1f0c2ad9e4"
#: tab:green, tab:red, the first colour of the cycle (C0, the best hit), and tab:red and tab:blue at alpha 0.6 on
#: white (the relevance shaded where it is positive and negative), as RGB 0..255.
GREEN, RED, BLUE = (44, 160, 44), (214, 39, 40), (31, 119, 180)
SHADED, SHADED_NEGATIVE = (230, 125, 126), (121, 173, 210)


@pytest.fixture(scope="module")
def plastics():
    """SNV spectra on AXIS: the pristine library (one per polymer) and the weathered samples."""
    with np.load(_need(MICROPLASTICS), allow_pickle=False) as z:
        wn, X, y, cond = z["wavenumber"].astype(np.float64), z["X"].astype(np.float64), z["y"], z["condition"]
        names = [str(c) for c in z["class_names"]]
    Y = np.stack([np.interp(AXIS.values, wn, x) for x in X])
    S = Chain.parse("snv", AXIS.step).apply(Y)
    pristine = {names[y[i]]: S[i] for i in np.flatnonzero(cond == "pristine")}
    return {"Y": Y, "S": S, "y": y, "names": names, "cond": cond, "library": pristine}


def identified(plastics, sample: np.ndarray, hits: int = 3):
    """Analysis and evidence of identifying ``sample`` (SNV, on AXIS) against the pristine library."""
    library = plastics["library"]
    hqi = {name: 100 * float(np.corrcoef(sample, ref)[0, 1]) for name, ref in library.items()}
    best = sorted(hqi, key=hqi.get, reverse=True)[:hits]
    analysis = {"mode": "identify", "library": LIBRARY, "hits": [{"name": n, "hqi": round(hqi[n], 2)} for n in best],
                "match": hqi[best[0]] >= 70.0, "no_match_below": 70.0}
    evidence = {"axis": AXIS.values, "sample": sample, **{f"hit.{k}": library[n] for k, n in enumerate(best)}}
    return analysis, evidence


def unmixed(plastics, sample: np.ndarray, names: tuple):
    """The mixture analysis and evidence of ``sample`` over the library members ``names`` and a flat background."""
    from scipy.optimize import nnls

    columns = np.column_stack([plastics["library"][n] - plastics["library"][n].min() for n in names]
                              + [np.ones(AXIS.points)])
    coef, _ = nnls(columns, sample)
    parts = columns * coef
    fit = parts.sum(axis=1)
    fractions = coef[:-1] / coef[:-1].sum()
    residual = sample - fit
    statistic = float(np.sum((sample - parts[:, -1] - parts[:, int(np.argmax(coef[:-1]))]) ** 2)
                      / np.sum(residual ** 2))
    mixture = {"components": [{"name": n, "fraction": round(float(f), 3)} for n, f in zip(names, fractions)],
               "residual": round(float(np.linalg.norm(residual) / np.linalg.norm(sample)), 4),
               "statistic": round(statistic, 3), "threshold": 4.0, "is_mixture": statistic > 4.0}
    evidence = {"axis": AXIS.values, "sample": sample, "fit": fit, "background": parts[:, -1], "residual": residual,
                **{f"component.{k}": parts[:, k] for k in range(len(names))}}
    return mixture, evidence


def stored(path: Path, **fields) -> int:
    """Write one measurement through RecordStore (as the service does) and return its id."""
    store = RecordStore(path)
    try:
        return store.add(Record(**{"trigger": "button", "time": 1_790_000_000.0,
                                   "device": {"protocol": "obp", "serial": "STS04211", "laser_nm": 785.0,
                                              "integration_s": 0.1},
                                   "model": "microplastics@8956975dd85f",
                                   "model_files": {"model.npz": "ab" * 32, "model.tflite": "cd" * 32,
                                                   "examples/PE/1.csv": "ef" * 32}, **fields}))
    finally:
        store.close()


def measured(plastics, i: int) -> dict:
    return {"shift": AXIS.values, "intensity": plastics["Y"][i], "raw": plastics["Y"][i] * 1000}


def pdf_pages_and_text(data: bytes) -> tuple[int, list[float], str]:
    """Page count, the first page's MediaBox (points) and the text shown, read from the PDF's own objects.

    Pages are the ``/Type /Page`` objects; the text is every string of the content streams' ``Tj`` and ``TJ``
    operators (matplotlib writes each text as one, kerned ``TJ`` arrays split inside words), joined.
    """
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
    box = [float(v) for v in re.search(rb"/MediaBox\s*\[([^\]]*)\]", data).group(1).split()]
    shown = []
    for m in re.finditer(rb"/Filter\s*/FlateDecode.*?>>\s*stream\r?\n", data, re.S):
        end = data.index(b"endstream", m.end())
        try:
            stream = zlib.decompress(data[m.end():end])
        except zlib.error:
            continue
        for op in re.finditer(rb"\[((?:\((?:\\.|[^\\)])*\)|[^\]])*)\]\s*TJ|(\((?:\\.|[^\\)])*\))\s*Tj", stream, re.S):
            strings = re.findall(rb"\(((?:\\.|[^\\)])*)\)", op.group(0))
            shown.append(b"".join(re.sub(rb"\\(.)", rb"\1", s) for s in strings).decode("latin-1"))
    return pages, box, "\n".join(shown)


def png_pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def share_of(pixels: np.ndarray, rgb: tuple, tolerance: int = 40) -> float:
    """Share of the pixels within ``tolerance`` (each channel) of colour ``rgb``."""
    return float((np.abs(pixels - np.array(rgb)).max(axis=2) <= tolerance).mean())


def report(db: Path, rid: int, out: Path, *extra) -> int:
    return main(["report", "--db", str(db), str(rid), "--out", str(out), *extra])


def written(out: Path, rid: int):
    """The page's pixels, the PDF's page count and MediaBox and its text."""
    pdf = (out / f"{rid}.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    return (png_pixels(out / f"{rid}.png"), *pdf_pages_and_text(pdf))


def check_page(pixels: np.ndarray, pages: int, box: list) -> None:
    """One A4 page; a PNG of A4 at 150 dpi that is drawn on (not blank)."""
    assert pages == 1
    np.testing.assert_allclose(box[2:], [595.28, 841.89], atol=0.5)  # A4 in points
    assert pixels.shape == (1753, 1240, 3)  # 210 x 297 mm at 150 dpi
    ink = (pixels < 200).any(axis=2).mean()
    assert 0.01 < ink < 0.5 and pixels.std() > 10


def test_identify_is_drawn_on_one_page(tmp_path, plastics, capsys):
    pet = int(np.flatnonzero((np.array(plastics["names"])[plastics["y"]] == "PET") & (plastics["cond"] == "FW"))[0])
    analysis, evidence = identified(plastics, plastics["S"][pet])
    db = tmp_path / "record.db"
    rid = stored(db, verdict="PET", analysis=analysis, evidence=evidence, **measured(plastics, pet))
    assert report(db, rid, tmp_path / "out") == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'out' / '1.png'} and {tmp_path / 'out' / '1.pdf'}\n"
    pixels, pages, box, text = written(tmp_path / "out", rid)
    check_page(pixels, pages, box)
    best, second = analysis["hits"][:2]
    assert best["name"] == "PET" and best["hqi"] > 70  # the weathered PET is identified: the page says so
    for words in ("raman-edge measurement 1", "2026-09-21T14:13:20+00:00", "STS04211", "button",
                  "microplastics@8956975dd85f", "ab" * 32, "cd" * 32, LIBRARY, f"HQI {best['hqi']:.1f}",
                  f"identify: PET (HQI {best['hqi']:.1f})", f"2. {second['name']}", f"HQI {second['hqi']:.1f}"):
        assert words in text, words
    assert "ef" * 32 not in text and "1 example spectra" in text  # the self-test files are counted, not listed
    assert "mixture" not in text and "PASS" not in text  # a negative control for the text read back
    assert share_of(pixels, BLUE) > 1e-4  # the best hit's curve
    assert share_of(pixels, SHADED, tolerance=25) == 0  # no relevance drawn: a control for the model verdict's test


def test_a_mixture_shows_its_components_fit_and_residual(tmp_path, plastics):
    lib = plastics["library"]
    noise = np.random.default_rng(3).normal(0, 0.03, AXIS.points)
    mix = 0.62 * (lib["PE"] - lib["PE"].min()) + 0.38 * (lib["PP"] - lib["PP"].min()) + 0.2 + noise
    analysis, evidence = identified(plastics, mix)
    mixture, mix_evidence = unmixed(plastics, mix, ("PE", "PP"))
    assert [c["fraction"] for c in mixture["components"]] == pytest.approx([0.62, 0.38], abs=0.02)  # a real unmixing
    assert mixture["is_mixture"] and 0 < mixture["residual"] < 0.1
    analysis["mixture"] = mixture
    evidence.update(mix_evidence)
    db = tmp_path / "record.db"
    rid = stored(db, verdict=analysis["hits"][0]["name"], analysis=analysis, evidence=evidence, shift=AXIS.values,
                 intensity=mix)
    assert report(db, rid, tmp_path) == 0
    pixels, pages, box, text = written(tmp_path, rid)
    check_page(pixels, pages, box)
    parts = " + ".join(f"{c['name']} {c['fraction']:.2f}" for c in mixture["components"])
    for words in (f"mixture: {parts}; a mixture (statistic {mixture['statistic']:.3g} above threshold 4)",
                  f"mixture {parts}", "residual of the", f"({mixture['residual']:.3g})", "background"):
        assert words in text, words  # ('fit' is drawn as a ligature, which this reading does not decode)
    assert share_of(pixels, (148, 103, 189)) > 1e-4  # the residual's curve (tab:purple)


def test_verify_pass_and_fail_are_told_apart(tmp_path, plastics):
    ps = int(np.flatnonzero((np.array(plastics["names"])[plastics["y"]] == "PS") & (plastics["cond"] == "SW"))[0])
    db = tmp_path / "record.db"
    shares = {}
    for result, p in (("PASS", 0.41), ("FAIL", 0.0012)):
        analysis = {"mode": "verify", "library": LIBRARY, "expected": "PS", "p_value": p, "alpha": 0.05,
                    "result": result, "t2": 3.2, "q": 0.011}
        evidence = {"axis": AXIS.values, "sample": plastics["S"][ps], "hit.0": plastics["library"]["PS"]}
        rid = stored(db, verdict=result, analysis=analysis, evidence=evidence, **measured(plastics, ps))
        assert report(db, rid, tmp_path) == 0
        pixels, pages, box, text = written(tmp_path, rid)
        check_page(pixels, pages, box)
        assert f"verify PS: {result} (p = {p:.3g}, alpha 0.05, T2 3.2, Q 0.011)" in text
        assert ("FAIL" if result == "PASS" else "PASS") not in text  # a negative control for the text read back
        shares[result] = (share_of(pixels, GREEN), share_of(pixels, RED))
    assert shares["PASS"][0] > 10 * shares["FAIL"][0] and shares["FAIL"][1] > 10 * shares["PASS"][1]


def test_a_model_verdict_shows_the_bands_that_decided(tmp_path, plastics):
    bundle = load_bundle(MODEL)
    i = int(np.flatnonzero(plastics["cond"] == "SW")[0])
    Y = plastics["Y"][i:i + 1]
    probs = Classifier(bundle).probabilities_on_axis(Y)[0]
    c = int(probs.argmax())
    rel = relevance(bundle, Y, np.array([c]))
    bands = top_bands(bundle.axis.values, rel.scaled()[0])
    analysis = {"mode": "classify", "bands": bands}
    evidence = {"axis": bundle.axis.values, "sample": plastics["S"][i], "relevance": rel.maps[0]}
    db = tmp_path / "record.db"
    rid = stored(db, verdict=bundle.class_names[c], confidence=float(probs[c]), analysis=analysis,
                 evidence=evidence, probabilities=dict(zip(bundle.class_names, probs.tolist())),
                 **measured(plastics, i))
    assert report(db, rid, tmp_path) == 0
    pixels, pages, box, text = written(tmp_path, rid)
    check_page(pixels, pages, box)
    assert f"bands that decided {bundle.class_names[c]}" in text
    assert f"confidence {probs[c]:.3f}" in text
    assert all(f"{b['shift']:.0f}" in text for b in bands) and len(bands) == 5
    shaded = share_of(pixels, SHADED, tolerance=25)
    assert share_of(pixels, SHADED_NEGATIVE, tolerance=25) > 2e-5  # gradient x input is signed: both shades
    assert share_of(pixels, RED, tolerance=25) > 1e-4  # the band marks
    rid = stored(db, verdict=bundle.class_names[c], analysis=analysis, **measured(plastics, i))  # bands, no arrays
    assert report(db, rid, tmp_path) == 0
    pixels, pages, box, text = written(tmp_path, rid)
    check_page(pixels, pages, box)
    listed = ", ".join(f"{b['shift']:.0f}" for b in bands)
    assert f"the bands that decided {bundle.class_names[c]}: {listed} cm-1" in text
    assert share_of(pixels, RED, tolerance=25) > 1e-4  # the marks, and no shading:
    assert share_of(pixels, SHADED_NEGATIVE, tolerance=25) == 0 and share_of(pixels, SHADED, tolerance=25) < shaded / 2


def test_what_cannot_be_reported_is_one_clear_message(tmp_path, plastics, capsys):
    db = tmp_path / "record.db"
    assert report(tmp_path / "none.db", 1, tmp_path) == 2
    assert capsys.readouterr().err == (f"error: no record at {tmp_path / 'none.db'}; give the device's record file "
                                       "(DATA/record.db, copied from the device) with --db\n")
    assert not (tmp_path / "none.db").exists()  # not created by looking
    failed = stored(db, error="PortGoneError: cannot open /dev/ttyUSB0")
    analysis, evidence = identified(plastics, plastics["S"][0])
    good = stored(db, verdict="x", analysis=analysis, evidence=evidence, **measured(plastics, 0))
    plain = stored(db, verdict="x", **measured(plastics, 0))  # recorded without an analysis
    cases = {7: f"measurement 7 is not in the record {db} (it holds 3 measurement(s)); list them with "
                f"raman-device history --db {db}",
             failed: f"measurement {failed} failed (PortGoneError: cannot open /dev/ttyUSB0), so it has no verdict "
                     "to report; list the others with raman-device history",
             plain: f"measurement {plain} was recorded without an analysis (by a raman-edge before the record kept "
                    "analyses, record schema version 1); only measurements recorded since can be reported"}
    for rid, message in cases.items():
        assert report(db, rid, tmp_path / "out") == 2
        assert capsys.readouterr().err == f"error: {message}\n"
    old = tmp_path / "old.db"
    version_1_record(old)
    assert report(old, 1, tmp_path / "out") == 2
    assert "measurement 1 was recorded without an analysis" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing was written for any of them
    assert report(db, good, tmp_path / "out") == 0  # control: the record itself is fine


def test_an_existing_report_is_replaced_only_with_force(tmp_path, plastics, capsys):
    db = tmp_path / "record.db"
    analysis, evidence = identified(plastics, plastics["S"][3])
    rid = stored(db, verdict="x", analysis=analysis, evidence=evidence, **measured(plastics, 3))
    (tmp_path / f"{rid}.pdf").write_text("a filed report\n")
    assert report(db, rid, tmp_path) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / '1.pdf'} already exists; give --force to replace it, "
                                       "or choose another --out\n")
    assert (tmp_path / f"{rid}.pdf").read_text() == "a filed report\n" and not (tmp_path / f"{rid}.png").exists()
    assert report(db, rid, tmp_path, "--force") == 0
    assert pdf_pages_and_text((tmp_path / f"{rid}.pdf").read_bytes())[0] == 1
