"""``raman-train explain``: which Raman bands decided a verdict, drawn and written out.

The maps and the top bands are those of :mod:`device.inference.relevance` (Grad-CAM for convolutional
bundles, gradient x input for dense ones, methods.md part B); maps are reported raw, the top bands
picked on the map scaled to a peak of 1.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from device.errors import RamanEdgeError
from device.inference.bundle import ModelBundle
from device.inference.classifier import Classifier
from device.inference.features import FEATURE_NAMES
from device.inference.readers import read_spectra
from device.inference.relevance import relevance, top_bands


def explain(bundle: ModelBundle, files, class_name: str | None = None) -> list[dict]:
    """Explanations of every spectrum in ``files``: verdict, method, map over the axis, top bands (and features)."""
    clf = Classifier(bundle)
    names = list(bundle.class_names)
    if class_name is not None and class_name not in names:
        raise RamanEdgeError(f"--class {class_name!r} is not one of the model's classes: {', '.join(names)}")
    out = []
    for f in files:
        spectra = read_spectra(f)
        Y = clf.on_axis(spectra)
        probs = clf.probabilities_on_axis(Y)
        classes = np.full(len(Y), names.index(class_name)) if class_name else probs.argmax(axis=1)
        shift = bundle.axis.values
        rel = relevance(bundle, Y, classes)
        scaled = rel.scaled()
        for i, s in enumerate(spectra):
            entry = {"file": str(f), **({"index": s.meta["index"]} if "index" in s.meta else {}),
                     "verdict": names[int(probs[i].argmax())], "confidence": round(float(probs[i].max()), 6),
                     "explained_class": names[int(classes[i])], "method": rel.method,
                     "top_bands": top_bands(shift, scaled[i]),
                     "map": [round(float(v), 8) for v in rel.maps[i]], "intensity": Y[i].tolist()}
            if rel.features is not None:
                entry["features"] = dict(sorted(((n, round(float(v), 6))
                                                 for n, v in zip(FEATURE_NAMES, rel.features[i])),
                                                key=lambda kv: -abs(kv[1])))
            out.append(entry)
    return out


def write_explanations(out, bundle: ModelBundle, entries: list[dict]) -> list[Path]:
    """One PNG per spectrum (the map drawn under the spectrum, top bands labelled) and ``explanations.json``.

    The directory ``out`` is written whole, replacing an old one only once complete
    (:func:`trainer.evaluation.report.publish_report`). Returns the figures' paths in ``out``.
    """
    from trainer.evaluation.report import publish_report

    names: list[str] = []
    publish_report(out, lambda tmp: names.extend(_write_figures(tmp, bundle, entries)))
    return [Path(out) / n for n in names]


def _write_figures(out: Path, bundle: ModelBundle, entries: list[dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shift = bundle.axis.values
    written = []
    for n, e in enumerate(entries):
        fig, (ax, axm) = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        y = np.asarray(e["intensity"])
        m = np.asarray(e["map"])
        ax.plot(shift, y, color="k", lw=0.8)
        for band in e["top_bands"]:
            i = int(np.argmin(np.abs(shift - band["shift"])))
            ax.annotate(f"{band['shift']:.0f}", (shift[i], y[i]), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7, color="tab:red")
        ax.set_ylabel("intensity")
        ax.set_title(f"{Path(e['file']).name}{' [' + str(e['index']) + ']' if 'index' in e else ''}\n"
                     f"verdict {e['verdict']} ({e['confidence']:.3f}); {e['method']} for {e['explained_class']}",
                     fontsize=9)
        axm.fill_between(shift, 0, m, color="tab:red" if bundle.convnet is not None else "tab:blue", alpha=0.6, lw=0)
        axm.axhline(0, color="grey", lw=0.5)
        axm.set_xlabel("Raman shift (cm-1)")
        axm.set_ylabel("map")
        fig.tight_layout()
        path = out / f"{n:03d}-{Path(e['file']).stem}{'-' + str(e['index']) if 'index' in e else ''}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path.name)
    summary = [{k: v for k, v in e.items() if k != "intensity"} for e in entries]
    (out / "explanations.json").write_text(json.dumps({"model": bundle.model_id, "axis": str(bundle.axis),
                                                       "explanations": summary}, indent=1) + "\n")
    return written
