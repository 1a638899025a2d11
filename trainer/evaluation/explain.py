"""``raman-train explain``: which Raman bands decided a verdict.

Convolutional bundles get **Grad-CAM** (methods.md, part B). For class c with score y_c (the logit before
the softmax) and last feature maps A (length T, K channels), the channel weights are
``w_k = mean_t dy_c/dA[t, k]`` and the map is ``ReLU(sum_k w_k A[:, k])``, stretched onto the input axis
by linear interpolation between the centres of the map's cells. The networks here end in global
average pooling and one dense layer, ``y_c = sum_k W[k, c] mean_t A[t, k] + b_c``, so the gradient is
exactly ``W[k, c] / T`` at every position and no automatic differentiation is needed.

The compact network gets **gradient x input** over its standardised inputs z (intensities, then the 22
features): ``z_i dy_c/dz_i``, with ``dy_c/dz = W1 diag(act'(h)) W2[:, c]``, the network's view of how
far each input, measured from the training mean, pushed the score of class c. Every other dense
network (the linear models: one softmax layer, or a projection and a head) gets the same over its
inputs, the preprocessed intensities: for a linear model ``z_i W[i, c]``, with ``W`` the product of
its kernels.

Maps are reported raw and scaled to a peak of 1; the top bands are the highest local maxima of the map,
at least :data:`BAND_SEPARATION_CM` apart.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from device.errors import RamanEdgeError
from device.inference.bundle import ModelBundle
from device.inference.classifier import Classifier
from device.inference.features import FEATURE_NAMES
from device.inference.inputs import normalise
from device.inference.readers import read_spectra

#: Least distance between two labelled bands, cm-1.
BAND_SEPARATION_CM = 15.0
TOP_BANDS = 5


def grad_cam(net, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (n, points) of a :class:`~device.inference.convnet.ConvNet` for normalised spectra ``X``.

    ``X`` has shape (n, points); ``classes`` (n,) are the classes explained.
    """
    A = net.feature_maps(X)                                   # (n, T, K)
    n, T, _ = A.shape
    weights = net.head_kernel[:, classes].T / T               # (n, K): dy_c/dA[t, k], the same for every t
    cam = np.maximum(np.einsum("ntk,nk->nt", A, weights), 0.0)
    points = X.shape[1]
    centres = (np.arange(T) + 0.5) * points / T - 0.5         # input index at the centre of each cell
    return np.stack([np.interp(np.arange(points), centres, row) for row in cam])


def gradient_x_input(bundle: ModelBundle, Y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Gradient x input (n, inputs) of a dense network's class logit for spectra ``Y`` (n, points) on its axis.

    The inputs are the bundle's network inputs (:meth:`~device.inference.bundle.ModelBundle.inputs`): points + 22
    for the compact network, points for a linear model.
    """
    Z = bundle.inputs(Y)
    *hidden, out = bundle.layers
    slopes, a = [], Z
    for layer in hidden:
        h = a @ layer.kernel + layer.bias
        if layer.activation == "leaky_relu":
            slope_at = np.where(h >= 0, 1.0, bundle.leaky_slope)
        elif layer.activation == "relu":
            slope_at = (h > 0).astype(float)
        else:
            slope_at = np.ones_like(h)
        slopes.append(slope_at)
        a = h * slope_at
    grad = out.kernel[:, classes].T                                  # (n, units): d logit / d last hidden
    for layer, slope_at in zip(reversed(hidden), reversed(slopes)):
        grad = (slope_at * grad) @ layer.kernel.T
    return grad * Z


def top_bands(shift: np.ndarray, values: np.ndarray, k: int = TOP_BANDS) -> list[dict]:
    """The ``k`` highest local maxima of ``values`` (points,) on ``shift`` cm-1, at least BAND_SEPARATION_CM apart."""
    interior = np.flatnonzero((values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:])) + 1
    chosen: list[int] = []
    for i in interior[np.argsort(-values[interior], kind="stable")]:
        if values[i] <= 0 or len(chosen) == k:
            break
        if all(abs(shift[i] - shift[j]) >= BAND_SEPARATION_CM for j in chosen):
            chosen.append(int(i))
    return [{"shift_cm-1": round(float(shift[i]), 1), "weight": round(float(values[i]), 6)} for i in chosen]


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
        if bundle.convnet is not None:
            maps = grad_cam(bundle.convnet, normalise(Y, bundle.normalisation), classes)
            method, features = "Grad-CAM", None
        else:
            gxi = gradient_x_input(bundle, Y, classes)
            maps = gxi[:, :bundle.axis.points]
            method = "gradient x input" + (" (standardised inputs)" if bundle.standardizer is not None else "")
            features = gxi[:, bundle.axis.points:] if bundle.features else None
        for i, s in enumerate(spectra):
            peak = np.abs(maps[i]).max()
            entry = {"file": str(f), **({"index": s.meta["index"]} if "index" in s.meta else {}),
                     "verdict": names[int(probs[i].argmax())], "confidence": round(float(probs[i].max()), 6),
                     "explained_class": names[int(classes[i])], "method": method,
                     "top_bands": top_bands(shift, maps[i] / peak if peak > 0 else maps[i]),
                     "map": [round(float(v), 8) for v in maps[i]], "intensity": Y[i].tolist()}
            if features is not None:
                entry["features"] = dict(sorted(((n, round(float(v), 6)) for n, v in zip(FEATURE_NAMES, features[i])),
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
            i = int(np.argmin(np.abs(shift - band["shift_cm-1"])))
            ax.annotate(f"{band['shift_cm-1']:.0f}", (shift[i], y[i]), textcoords="offset points", xytext=(0, 6),
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
