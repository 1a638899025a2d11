"""The evaluation report: ``report.json``, ``report.md`` and PNG figures, written atomically."""
from __future__ import annotations

import json
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from device.fileio import publish_directory
from trainer.evaluation.metrics import roc_curve

#: The compact-network paper's result (real SERS data, 4 classes, 116 spectra), shown beside results on the
#: synthetic stand-in for that data (trainer/data/synth.py) only: on other data it compares nothing.
PUBLISHED = {"accuracy_mean": 0.9858, "accuracy_std": 0.0041,
             "protocol": "15-fold CV repeated 10 times, 116 real SERS spectra (J. Phys.: Photonics 2025)"}


def software_versions() -> dict:
    """Versions of Python and of the libraries that shaped a result, for reports and model cards."""
    import sklearn

    import device

    out = {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__,
           "raman_edge": device.__version__}
    try:
        from trainer.quiet import keras, tensorflow

        out.update(tensorflow=tensorflow().__version__, keras=keras().__version__)
    except ImportError:
        pass
    return out


#: Resolution of the report's figures (dots per inch).
DPI = 110
#: Up to this many classes the confusion matrix writes each cell's fraction and count.
CELL_NUMBERS_UP_TO = 12
#: Up to this many classes the confusion matrix names each row and column.
TICK_LABELS_UP_TO = 40
#: Up to this many classes the ROC figure draws and names each class; beyond, the macro and micro averages.
ROC_CLASSES_UP_TO = 10


def confusion_figure(cm, class_names, path: Path) -> None:
    """The row-normalised confusion matrix ``cm`` (C, C) as a PNG that stays readable from 2 to hundreds of classes.

    Its size grows with the classes up to 13 x 12 inches (at :data:`DPI`); cell numbers are written up to
    :data:`CELL_NUMBERS_UP_TO` classes and row and column names up to :data:`TICK_LABELS_UP_TO`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    cm = np.asarray(cm, dtype=float)
    frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(min(1.2 * n + 2.5, 13.0), min(1.0 * n + 2, 12.0)))
    image = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if n <= CELL_NUMBERS_UP_TO:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{frac[i, j]:.3f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=8,
                        color="white" if frac[i, j] > 0.6 else "black")
    else:
        fig.colorbar(image, ax=ax, fraction=0.04, label="share of the true class")
    if n <= TICK_LABELS_UP_TO:
        size = 9 if n <= CELL_NUMBERS_UP_TO else 6
        ax.set_xticks(range(n), class_names, rotation=30 if n <= CELL_NUMBERS_UP_TO else 90, ha="right", fontsize=size)
        ax.set_yticks(range(n), class_names, fontsize=size)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"predicted ({n} classes in the order of report.json; names omitted)")
        ax.set_ylabel("true")
    ax.set_title("Confusion matrix, all repeats pooled (row fractions)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def roc_figure(y: np.ndarray, p: np.ndarray, class_names, auc: dict, path: Path) -> None:
    """One-vs-rest ROC curves of labels ``y`` (n,) and probabilities ``p`` (n, C) as a PNG of a fixed size.

    Up to :data:`ROC_CLASSES_UP_TO` classes each has its named curve, the legend beside the plot; beyond,
    the classes are faint unnamed curves and the legend names only the macro average (mean true-positive
    rate over the classes) and the micro average (all one-vs-rest decisions pooled).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5))
    many = len(class_names) > ROC_CLASSES_UP_TO
    grid = np.linspace(0, 1, 201)
    mean_tpr = np.zeros_like(grid)
    for c, name in enumerate(class_names):
        fpr, tpr = roc_curve(y == c, p[:, c])
        mean_tpr += np.interp(grid, fpr, tpr) / len(class_names)
        if many:
            ax.plot(fpr, tpr, color="0.6", lw=0.4, alpha=0.5)
        else:
            ax.plot(fpr, tpr, label=f"{name} (AUC {auc[name]:.4f})")
    if many:
        onehot = y[:, None] == np.arange(p.shape[1])[None, :]
        fpr, tpr = roc_curve(onehot.ravel(), p.ravel())
        micro = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        ax.plot(grid, mean_tpr, "C0", lw=2, label=f"macro average (mean AUC {np.mean(list(auc.values())):.4f})")
        ax.plot(fpr, tpr, "C3", lw=2, label=f"micro average (AUC {micro:.4f})")
        ax.plot([], [], color="0.6", lw=0.8, label=f"each of the {len(class_names)} classes")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("One-vs-rest ROC, out-of-fold, all repeats")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _figures(result: dict, class_names, axis_values, mean_spectrum, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion_figure(result["pooled"]["confusion_matrix"], class_names, out / "confusion_matrix.png")
    roc_figure(result["roc_data"]["y"], result["roc_data"]["p"], class_names, result["auc"], out / "roc.png")
    names = ["confusion_matrix.png", "roc.png"]
    # Loss curves.
    lc = result["loss_curves"]
    epochs = np.arange(1, len(lc["train_mean"]) + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train", "training"), ("val", "validation (held-out fold)")):
        m, s = np.array(lc[f"{key}_mean"]), np.array(lc[f"{key}_std"])
        ax.plot(epochs, m, label=label)
        ax.fill_between(epochs, m - s, m + s, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (cross-entropy + L2)")
    ax.set_yscale("log")
    ax.set_title("Loss, mean +/- std over all folds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=DPI)
    names.append("loss.png")
    # Permutation importance.
    imp = result["importance"]
    feats = sorted(imp["features"].items(), key=lambda kv: kv[1])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 2]})
    a1.barh([k for k, _ in feats], [v for _, v in feats])
    a1.set_xlabel("normalised importance")
    a1.set_title("Engineered features")
    a1.tick_params(axis="y", labelsize=8)
    centres = [b["centre_cm-1"] for b in imp["bands"]]
    a2.bar(centres, [b["importance"] for b in imp["bands"]], width=imp["band_width_cm-1"] * 0.9, label="importance")
    a2b = a2.twinx()
    a2b.plot(axis_values, mean_spectrum, "k", lw=0.7, label="mean spectrum")
    a2b.set_yticks([])
    a2.set_xlabel("Raman shift (cm-1)")
    a2.set_ylabel("normalised importance")
    a2.set_title(f"Spectral bands of {imp['band_width_cm-1']:g} cm-1 (mean spectrum in black)")
    fig.tight_layout()
    fig.savefig(out / "importance.png", dpi=DPI)
    names.append("importance.png")
    plt.close("all")
    return names


def _markdown(report: dict) -> str:
    s, r = report["settings"], report["results"]
    lines = [
        f"# Evaluation report: {report['data']['source']}",
        "",
        *([f"**Warning: {r['warning']}.**", ""] if r.get("warning") else []),
        f"Split: {s['split_description']} (`--split {s['split']}`; {s['folds_chosen']}).",
        "",
        f"Protocol: {s['folds']} train/test pair(s) per repeat, {s['repeats']} repeat(s); weights re-initialised and "
        f"standardisation fitted on the training rows only, every fold. Engine: {s['engine']}. "
        f"Hyperparameters: {s['hyperparameters']}.",
        "",
        f"Data: {report['data']['spectra']} spectra, classes {report['data']['per_class']}, axis "
        f"{report['data']['axis']} cm-1, fingerprint {report['data']['fingerprint_sha256'][:16]}.",
        "",
        "## Accuracy",
        "",
        "| | accuracy (mean +/- std over repeats) |",
        "|---|---|",
        f"| this run | {100 * r['accuracy_mean']:.2f} % +/- {100 * r['accuracy_std']:.2f} % |",
        *([f"| published (for reference: {PUBLISHED['protocol']}; this data is the synthetic stand-in for "
           f"it) | {100 * PUBLISHED['accuracy_mean']:.2f} % +/- {100 * PUBLISHED['accuracy_std']:.2f} % |"]
          if report["published"] else []),
        "",
        "Per repeat: " + ", ".join(f"{100 * x['accuracy']:.2f} %" for x in r["repeats"]),
        "",
        "## Per class (all repeats pooled)",
        "",
        "| class | precision | recall | F1 | AUC (one-vs-rest) |",
        "|---|---|---|---|---|",
    ]
    for name, m in r["pooled"]["per_class"].items():
        lines.append(f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {r['auc'][name]:.4f} |")
    lines += ["", f"Macro F1 {r['pooled']['macro_f1']:.4f}.", "", "## Confusion matrix (counts, all repeats)", "",
              "| true \\ predicted | " + " | ".join(r["pooled"]["per_class"]) + " |",
              "|---" * (len(r["pooled"]["per_class"]) + 1) + "|"]
    for name, row in zip(r["pooled"]["per_class"], r["pooled"]["confusion_matrix"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    top = sorted(r["importance"]["features"].items(), key=lambda kv: -kv[1])[:8]
    bands = sorted(r["importance"]["bands"], key=lambda b: -b["importance"])[:8]
    lines += ["", "## Feature importance", "", r["importance"]["measure"] + ".", "",
              "Engineered features, most important first: " + ", ".join(f"{k} {v:.3f}" for k, v in top) + ".", "",
              "Spectral bands, most important first: " + ", ".join(
                  f"{b['centre_cm-1']:.0f} cm-1 {b['importance']:.3f}" for b in bands) + ".", "",
              "## Figures", ""]
    lines += [f"![{f}]({f})" for f in report["figures"]]
    lines += ["", f"Run time {r['seconds']} s; software {report['software']}.", ""]
    return "\n".join(lines)


def publish_report(out, fill) -> Path:
    """Make the report directory ``out`` by ``fill(tmp)`` in a directory beside it, then swap it in whole.

    An old report is replaced only once the new one is complete; an interrupted one leaves nothing.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        publish_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_report(out, result: dict, settings: dict, data: dict, class_names, axis_values, mean_spectrum,
                 published: bool = False) -> Path:
    """Write the protocol's report directory (see :func:`publish_report`).

    ``published``: show the paper's result (:data:`PUBLISHED`) beside this run's, for the synthetic
    stand-in of its data only. ``settings`` includes ``split`` (its ``--split`` spelling),
    ``split_description`` and ``folds_chosen``, why K is what it is; a ``warning`` of ``result``
    (an optimistic split, :func:`trainer.data.splits.optimism`) opens the report.
    """
    def fill(tmp: Path) -> None:
        figures = _figures(result, class_names, axis_values, mean_spectrum, tmp)
        public = {k: v for k, v in result.items() if k != "roc_data"}
        report = {"settings": settings, "data": data, "software": software_versions(), "results": public,
                  "figures": figures, "published": PUBLISHED if published else None}
        (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (tmp / "report.md").write_text(_markdown(report))

    return publish_report(out, fill)
