"""The evaluation report: ``report.json``, ``report.md`` and PNG figures, written atomically."""
from __future__ import annotations

import json
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from device.fileio import publish_directory

from .metrics import roc_curve

#: The compact-network paper's result, for comparison (real SERS data, 4 classes, 116 spectra).
PUBLISHED = {"accuracy_mean": 0.9858, "accuracy_std": 0.0041,
             "protocol": "15-fold CV repeated 10 times, 116 real SERS spectra (J. Phys.: Photonics 2025)"}


def software_versions() -> dict:
    """Versions of Python and of the libraries that shaped a result, for reports and model cards."""
    import sklearn

    import device

    out = {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__,
           "raman_edge": device.__version__}
    try:
        import keras
        import tensorflow

        out.update(tensorflow=tensorflow.__version__, keras=keras.__version__)
    except ImportError:
        pass
    return out


def _figures(result: dict, class_names, axis_values, mean_spectrum, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    # Confusion matrix, rows normalised.
    cm = np.array(result["pooled"]["confusion_matrix"], dtype=float)
    frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2.5, 1.0 * len(class_names) + 2))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, f"{frac[i, j]:.3f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix, all repeats pooled (row fractions)")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=110)
    names.append("confusion_matrix.png")
    # One-vs-rest ROC.
    fig, ax = plt.subplots(figsize=(5.5, 5))
    y, p = result["roc_data"]["y"], result["roc_data"]["p"]
    for c, name in enumerate(class_names):
        fpr, tpr = roc_curve(y == c, p[:, c])
        ax.plot(fpr, tpr, label=f"{name} (AUC {result['auc'][name]:.4f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("One-vs-rest ROC, out-of-fold, all repeats")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=110)
    names.append("roc.png")
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
    fig.savefig(out / "loss.png", dpi=110)
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
    fig.savefig(out / "importance.png", dpi=110)
    names.append("importance.png")
    plt.close("all")
    return names


def _markdown(report: dict) -> str:
    s, r = report["settings"], report["results"]
    lines = [
        f"# Evaluation report: {report['data']['source']}",
        "",
        f"Protocol: stratified {s['folds']}-fold cross-validation repeated {s['repeats']} times, a new shuffle "
        f"(seed {s['seed']} + repeat) each time; weights re-initialised and standardisation fitted on the training "
        f"folds only, every fold. Engine: {s['engine']}. Hyperparameters: {s['hyperparameters']}.",
        "",
        f"Data: {report['data']['spectra']} spectra, classes {report['data']['per_class']}, axis "
        f"{report['data']['axis']} cm-1, fingerprint {report['data']['fingerprint_sha256'][:16]}.",
        "",
        "## Accuracy",
        "",
        "| | accuracy (mean +/- std over repeats) |",
        "|---|---|",
        f"| this run | {100 * r['accuracy_mean']:.2f} % +/- {100 * r['accuracy_std']:.2f} % |",
        f"| published (for reference: {PUBLISHED['protocol']}) | {100 * PUBLISHED['accuracy_mean']:.2f} % +/- "
        f"{100 * PUBLISHED['accuracy_std']:.2f} % |",
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
    """Make the report directory ``out`` by ``fill(tmp)`` in a directory beside it, then swap it in whole
    (an old report is replaced only once the new one is complete; an interrupted one leaves nothing)."""
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


def write_report(out, result: dict, settings: dict, data: dict, class_names, axis_values, mean_spectrum) -> Path:
    """Write the protocol's report directory (see :func:`publish_report`)."""
    def fill(tmp: Path) -> None:
        figures = _figures(result, class_names, axis_values, mean_spectrum, tmp)
        public = {k: v for k, v in result.items() if k != "roc_data"}
        report = {"settings": settings, "data": data, "software": software_versions(), "results": public,
                  "figures": figures}
        (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (tmp / "report.md").write_text(_markdown(report))

    return publish_report(out, fill)
