"""The comparison report: ``report.json``, ``report.md`` (two tables) and ``snr.png``, written atomically."""
from __future__ import annotations

import json
from pathlib import Path

from trainer.evaluation.report import publish_report, software_versions


def _size(n) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _flop(n) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"


def tables(result: dict) -> list[str]:
    """The two Markdown tables: models (accuracy and cost) and accuracy against SNR."""
    models = result["models"]
    single = result["splits"] == 1
    lines = [f"| model | {'accuracy' if single else 'accuracy (mean +/- std)'} | macro F1 | parameters | "
             "FLOP / spectrum | size on disk | latency / spectrum (device) | fit time |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in models.items():
        s, c = r["summary"]["clean"], r["cost"]
        latency = "-" if c["latency_s"] is None else f"{1e3 * c['latency_s']:.2f} ms"
        spread = "" if single else f" +/- {100 * s['accuracy_std']:.2f}"
        lines.append(f"| {name} | {100 * s['accuracy_mean']:.2f} %{spread} | "
                     f"{s['macro_f1_mean']:.3f} | {c['parameters']:,} | {_flop(c['flop'])} | "
                     f"{_size(c['size_bytes'])} | {latency} | {sum(r['fit_seconds']) / len(r['fit_seconds']):.1f} s |")
    if not result["snr_levels"]:
        return lines
    conds = result["conditions"]
    heads = ["clean"] + [f"SNR {s:g}" for s in result["snr_levels"]]
    lines += ["", "| model | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for name, r in models.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * r['summary'][c]['accuracy_mean']:.1f}" for c in conds) + " |")
    return lines


def _markdown(report: dict) -> str:
    r = report["results"]
    d = report["data"]
    lines = [f"# Model comparison: {d['source']}", "",
             *([f"**Warning: {r['warning']}.**", ""] if r.get("warning") else []),
             f"Split: {r['split']} (`--split {r['split_spec']}`).", "",
             f"{d['spectra']} spectra, {len(d['per_class'])} classes, axis {d['axis']} cm-1; "
             f"{r['splits']} train/test pair(s). Accuracy is on the test spectra of each pair, mean +/- std over the "
             "pairs when there are several. Cost figures are from the models of the first pair: FLOP from "
             "resampling to the verdict (analytic), size of the bundle files (networks) or of the pickled estimator "
             "(classical), latency of one spectrum in the device runtime on this machine (networks only).", "",
             *tables(r)[:len(r["models"]) + 2], ""]
    notes = [f"* {name}: {note}" for name, m in r["models"].items() for note in m.get("notes", [])]
    if notes:
        lines += ["## Fits to read with care", "", "What the fitting library reported (the model was still tested "
                  "as fitted):", "", *notes, ""]
    lines += ["## Accuracy (%) against acquisition quality", ""]
    if r["snr_levels"]:
        lines += ["Test spectra degraded as by lower laser power x integration time (trainer/data/degrade.py): "
                  "signal and fluorescence scaled by s, shot + read noise; SNR = band height (max - median) of the "
                  "scaled clean spectrum over the RMS noise standard deviation. The same degraded spectra for every "
                  "model.", "",
                  *tables(r)[len(r["models"]) + 3:], "", "![accuracy against SNR](snr.png)", ""]
    else:
        lines += ["No acquisition-quality sweep (--snr was empty).", ""]
    lines += [f"Settings: {json.dumps(report['settings'])}. Run time {r['seconds']} s. Software: "
              f"{json.dumps(report['software'])}.", ""]
    return "\n".join(lines)


def _figure(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    levels = result["snr_levels"]
    for i, (name, r) in enumerate(result["models"].items()):
        acc = [100 * r["summary"][f"snr{s:g}"]["accuracy_mean"] for s in levels]
        style = "-" if name in ("compact", "cnn", "resnet", "se-resnet") else ":"
        ax.plot(levels, acc, style, marker="o", ms=3, label=name, lw=2 if name == "se-resnet" else 1.2,
                color=plt.cm.tab20(i % 20))
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("SNR of the test spectra (band height / RMS noise), worse to the right")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy against acquisition quality")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "snr.png", dpi=110)
    plt.close(fig)


def write_compare_report(out, result: dict, settings: dict, data: dict) -> Path:
    """Write the comparison's report directory (see :func:`trainer.evaluation.report.publish_report`)."""
    def fill(tmp: Path) -> None:
        if result["snr_levels"]:
            _figure(result, tmp)
        report = {"settings": settings, "data": data, "software": software_versions(), "results": result}
        (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (tmp / "report.md").write_text(_markdown(report))

    return publish_report(out, fill)
