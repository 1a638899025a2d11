"""Model benchmark: the default ``raman-train fit`` against every model, on each shared data set.

Run with ``make bench-models`` (``make bench-models QUICK=1``, or ``.venv/bin/python
benchmarks/bench_models.py [--quick] [--split SPLIT ...] [--report FILE]``; ``--quick`` leaves the
convolutional networks out of the comparison, ``--split`` runs only the named cases). Prints Markdown
tables and writes them to ``docs/reports/bench-models.md``. Data: ``../shared/datasets`` beside the project.

Data sets and outer splits (seed 0 throughout):

- SERS pesticides, ``holdout:concentration_ppm=0.5``: trained on the other concentrations and the control,
  the 0.5 ppm spectra held out.
- RaMPP microplastics, ``holdout:condition=SW``: trained on pristine + fresh-water particles, the sea-water
  particles held out; accuracy also on the held-out spectra degraded to SNR 10 and 5.
- RaMPP microplastics, ``repeated:3x5``: stratified 5-fold cross-validation repeated 3 times, as
  ``raman-train compare`` does by default on a small set (not grouped: the report carries the splitter's
  warning).

Rows of each table:

1. The default fit: ``raman-train fit DATA --out TMP`` with only the split's option (``--holdout KEY=V``
   or ``--split TEXT``), run as a command; accuracy, macro F1, FLOP and cross-validation from its model
   card, wall time around the command.
2. The family of the default fit: the within-budget candidates of the card's ``selection`` when it has
   one, else :data:`FAMILY`; each fitted by the same command with its options.
3. scikit-learn baselines (:data:`BASELINES`) fitted in this run on the same pairs.
4. The best model of ``raman-train compare`` (:func:`trainer.evaluation.compare.compare`) on the same split.

Degraded spectra come from :func:`trainer.evaluation.compare.evaluation_spectra` (the comparison's own recipe and
seed), so every row sees the same ones. A card's held-out metrics come from a model trained without the
held-out spectra, but the bundle itself is refitted on all spectra; the SNR columns of the command rows
therefore come from a second fit of the same command on an ``.npz`` of the training spectra only, whose
bundle classifies the spectra through the device path (``device.inference.bundle.load_bundle``,
``device.inference.classifier.Classifier`` on the NumPy backend, as ``raman-device classify``); its accuracy on the
clean held-out spectra is printed beside the card's.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "datasets"
REPORT = ROOT / "docs" / "reports" / "bench-models.md"
SEED = 0
#: Family of the default fit while its card has no ``selection``: (name, ``raman-train fit`` options).
FAMILY = (("compact", ("--model", "compact", "--preprocess", "snv")),
          ("logreg", ("--model", "logreg", "--preprocess", "snv")),
          ("linear-svm", ("--model", "linear-svm", "--preprocess", "snv")),
          ("pca-logreg", ("--model", "pca-logreg", "--preprocess", "snv")))
#: scikit-learn baselines, on SNV-normalised spectra: name -> description of the pipeline.
BASELINES = {"sklearn PCA(30)-logreg": "SNV + StandardScaler + PCA(30) + LogisticRegression(max_iter=5000)",
             "sklearn LinearSVC": "SNV + LinearSVC(C=1)"}
#: Targets of every case: FLOP per spectrum of the default fit, and its largest gap (points) to the best of compare.
FLOP_BUDGET = 1e6
GAP_POINTS = 1.0


@dataclass(frozen=True)
class Target:
    """A target on one measured figure of the default fit: ``value OP threshold``."""

    label: str
    key: str  # "accuracy", "snr10", "snr5", "flop", "gap" (points behind the best) or "seconds"
    op: str  # ">=" or "<="
    threshold: float


@dataclass(frozen=True)
class Case:
    """One data set under one outer split, with the SNR levels its table reports and its targets."""

    title: str
    data: str  # path under SHARED
    split: str  # --split spelling
    meaning: str
    snr: tuple
    targets: tuple


def _common(seconds: bool = False) -> tuple:
    """The targets every case has; with ``seconds``, also the default fit's wall time (SERS)."""
    out = (Target(f"FLOP / spectrum <= {FLOP_BUDGET:.0e}", "flop", "<=", FLOP_BUDGET),
           Target(f"within {GAP_POINTS:g} point of the best of compare", "gap", "<=", GAP_POINTS))
    return out + ((Target("wall time <= 300 s", "seconds", "<=", 300.0),) if seconds else ())


CASES = (
    Case("SERS pesticides", "sersformer_pesticides/sersformer_pesticides.npz", "holdout:concentration_ppm=0.5",
         "trained on the other concentrations and the control, 0.5 ppm held out", (),
         (Target("held-out accuracy >= 99 %", "accuracy", ">=", 0.99), *_common(seconds=True))),
    Case("RaMPP microplastics", "rampp_microplastics/rampp_microplastics.npz", "holdout:condition=SW",
         "trained on pristine + fresh water, sea water held out", (10.0, 5.0),
         (Target("held-out (SW) accuracy >= 98 %", "accuracy", ">=", 0.98),
          Target("SNR 10 accuracy >= 95 %", "snr10", ">=", 0.95),
          Target("SNR 5 accuracy >= 90 %", "snr5", ">=", 0.90), *_common())),
    Case("RaMPP microplastics", "rampp_microplastics/rampp_microplastics.npz", "repeated:3x5",
         "stratified 5-fold cross-validation repeated 3 times (seeds 0-2), as raman-train compare", (),
         (Target("repeated 5-fold accuracy >= 96.9 %", "accuracy", ">=", 0.969), *_common())),
)


# ---- pure functions (tests/test_bench_models.py) ----

def split_options(split: str) -> list[str]:
    """The ``raman-train fit`` options of an outer split: ``--holdout KEY=V`` for a keyed hold-out, else ``--split``."""
    if split.startswith("holdout:") and "=" in split:
        return ["--holdout", split[len("holdout:"):]]
    return ["--split", split]


def card_figures(card: dict, holdout: bool) -> dict:
    """The figures of a model card (``model.json`` as a dict) that the tables report.

    Accuracy, macro F1 (held-out with ``holdout``, else cross-validated), cross-validation accuracy, FLOP
    total and selected candidate.

    Raises
    ------
    KeyError
        If the card lacks the metrics of the split it was asked for (naming the missing entry).
    """
    metrics = card["metrics"]
    where = "holdout" if holdout else "cross_validation"
    if where not in metrics:
        raise KeyError(f"the model card has no metrics.{where}; was the fit run with its split option?")
    m = metrics[where]
    cv = metrics.get("cross_validation")
    return {"accuracy": m["accuracy"] if holdout else m["accuracy_mean"],
            "macro_f1": m["macro_f1"] if holdout else m["macro_f1_mean"],
            "cv_accuracy": cv["accuracy_mean"] if cv else None,
            "flop": int(card["flop_per_spectrum"]["total"]),
            "winner": card["selection"]["winner"] if "selection" in card else None}


def family_of(card: dict) -> tuple[list, str]:
    """The family to fit beside the default: ([(name, options), ...], where it came from).

    With ``selection`` in the card, its candidates that are within budget, each with the ``raman-train fit``
    options that train it; without, :data:`FAMILY`.

    Raises
    ------
    ValueError
        If ``selection`` lacks candidates, or a candidate its name, options or within_budget.
    """
    sel = card.get("selection")
    if sel is None:
        return [(name, list(opts)) for name, opts in FAMILY], "fixed list (the card has no selection)"
    candidates = sel.get("candidates")
    if not candidates or "winner" not in sel:
        raise ValueError("the card's selection needs a winner and a list of candidates")
    out = []
    for c in candidates:
        missing = [k for k in ("name", "options", "within_budget") if k not in c]
        if missing:
            raise ValueError(f"selection candidate {c.get('name', '?')!r} lacks {', '.join(missing)}")
        if c["within_budget"]:
            out.append((str(c["name"]), [str(o) for o in c["options"]]))
    return out, (f"the card's selection (winner {sel['winner']}; inner split {sel.get('inner_split', '-')}; "
                 f"rule: {sel.get('rule', '-')})")


def selection_lines(card: dict) -> list[str]:
    """The card's ``selection`` as the lines of a Markdown table, or [] without one.

    Columns: candidate, options, FLOP, inner CV as measured and at low SNR, the rule's score, within budget.
    """
    sel = card.get("selection")
    if sel is None:
        return []
    def weak(c: dict) -> str:
        at = c.get("cv_weak_accuracy_mean") or {}
        return " / ".join(pct(v) for v in at.values()) or "-"

    rows = [(("**" + c["name"] + "**") if c["name"] == sel["winner"] else c["name"], "`" + " ".join(c["options"]) + "`",
             f"{c['flop']:,}", "not trained (over budget)" if c["cv_accuracy_mean"] is None else
             f"{pct(c['cv_accuracy_mean'])} +/- {pct(c['cv_accuracy_std'])}", weak(c),
             "-" if c.get("cv_score_mean") is None else pct(c["cv_score_mean"]),
             "-" if c["cv_macro_f1_mean"] is None else f"{c['cv_macro_f1_mean']:.3f}",
             "yes" if c["within_budget"] else "no") for c in sel["candidates"]]
    return [f"The default fit's selection (inner split {sel.get('inner_split', '-')}; rule: {sel.get('rule', '-')}; "
            f"winner in bold):", "", *markdown_table(["candidate", "options", "FLOP / spectrum", "inner CV accuracy",
                                                      "inner CV at SNR 10 / 5", "score", "inner CV macro F1",
                                                      "within budget"], rows), ""]


def check_targets(values: dict, targets) -> list[tuple[str, object, bool]]:
    """(target, measured value, holds) of each target; a value that is missing (None) does not hold."""
    rows = []
    for t in targets:
        v = values.get(t.key)
        holds = v is not None and (v >= t.threshold if t.op == ">=" else v <= t.threshold)
        rows.append((t.label, v, bool(holds)))
    return rows


def gap_points(default_accuracy: float, best_accuracy: float) -> float:
    """Points (percent) the default fit is behind the best: positive when behind, negative when ahead."""
    return 100.0 * (best_accuracy - default_accuracy)


def markdown_table(headers, rows) -> list[str]:
    """Lines of a Markdown table; every cell is passed through ``str``, its ``|`` escaped (candidate names have one).

    Raises
    ------
    ValueError
        If a row has a different number of cells than ``headers``.
    """
    bad = [r for r in rows if len(r) != len(headers)]
    if bad:
        raise ValueError(f"a row has {len(bad[0])} cells for {len(headers)} columns: {bad[0]}")
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows)]


def pct(x) -> str:
    """An accuracy (0-1) as percent with two decimals, ``-`` for None."""
    return "-" if x is None else f"{100 * x:.2f} %"


def show(key: str, v) -> str:
    """A target's measured value in its unit."""
    if v is None:
        return "-"
    return {"flop": f"{v:,.0f}", "gap": f"{v:+.2f} points", "seconds": f"{v:.0f} s"}.get(key, pct(v))


# ---- measuring ----

def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def shared_sets_parser(description: str, report: Path, samples: str) -> argparse.ArgumentParser:
    """The options of a benchmark over the shared sets: ``--quick``, ``--write``, ``--report``, ``--datasets``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help=f"a smoke run on a few {samples} per class")
    ap.add_argument("--write", action="store_true", help=f"also write the tables to {report.relative_to(ROOT)}")
    ap.add_argument("--report", type=Path, default=report, help="the file --write writes (default %(default)s)")
    ap.add_argument("--datasets", type=Path, default=SHARED,
                    help="the shared datasets folder (default: ../shared/datasets beside the project)")
    return ap


def run_on_shared_sets(args, sets, header: list, section) -> int:
    """Print ``header``, then ``section(shared_set)`` (its Markdown lines) for each of ``sets``, and the wall time.

    With ``args.write`` the whole is also written to ``args.report``. Exit status 2, nothing measured, when a
    set's ``data`` is missing under ``args.datasets``.
    """
    missing = [s.data for s in sets if not (args.datasets / s.data).exists()]
    if missing:
        print(f"error: data set(s) not found under {args.datasets}: {', '.join(missing)}; give the shared datasets "
              "folder with --datasets", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    lines = list(header)
    print("\n".join(lines), flush=True)
    for shared in sets:
        part = section(shared)
        print("\n".join(part), flush=True)
        lines += part
    tail = [f"Total wall time {time.perf_counter() - t0:.0f} s.", ""]
    print("\n".join(tail), flush=True)
    if args.write:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text("\n".join(lines + tail))
        note(f"wrote {args.report}")
    return 0


def fit_command(data: Path, out: Path, options: list) -> tuple[dict, float]:
    """Run ``raman-train fit DATA --out OUT OPTIONS`` (must succeed); its model card and wall time (s)."""
    exe = Path(sys.executable).parent / "raman-train"
    argv = [str(exe), "fit", str(data), "--out", str(out), *options]
    note("$ " + " ".join(argv[1:]))
    t = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if run.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return json.loads((out / "model.json").read_text()), seconds


def device_scores(bundle_dir: Path, spectra: dict, shift: np.ndarray, y: np.ndarray, class_names) -> dict:
    """Accuracy and macro F1 of a bundle on each set of ``spectra`` ({condition: (n, N) on ``shift``}).

    Each spectrum is classified through :class:`device.inference.classifier.Classifier` (NumPy backend) as
    the device does.
    """
    from device.inference.bundle import load_bundle
    from device.inference.classifier import Classifier
    from device.inference.spectrum import Spectrum
    from trainer.evaluation.metrics import classification_report

    clf = Classifier(load_bundle(bundle_dir), "numpy")
    index = {c: i for i, c in enumerate(class_names)}
    out = {}
    for cond, X in spectra.items():
        labels = [index[p.label] for p in clf.classify_many([Spectrum(shift, x) for x in X])]
        rep = classification_report(y, labels, class_names)
        out[cond] = {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"]}
    return out


def write_training_npz(path: Path, ds, rows: np.ndarray) -> None:
    """The ``rows`` of the data set (on its axis) as a training ``.npz``."""
    np.savez(path, X=ds.X[rows], y=ds.y[rows], wavenumber=ds.axis.values, class_names=np.array(ds.class_names))


def command_row(case: Case, ds, split, tests: dict, tmp: Path, name: str, options: list) -> dict:
    """One ``raman-train fit`` row: card figures under the outer split, wall time, device-path scores.

    With SNR levels, the device-path scores are those of a second fit on the training spectra only.
    """
    holdout = split.spec.kind.startswith("holdout")
    card, seconds = fit_command(SHARED / case.data, tmp / name, [*options, *split_options(case.split)])
    row = {"name": name, "options": options, "seconds": seconds, **card_figures(card, holdout), "card": card}
    if case.snr:
        (train, test), = split.pairs
        data = tmp / f"{name}-training.npz"
        write_training_npz(data, ds, train)
        fit_command(data, tmp / f"{name}-training", options)
        scores = device_scores(tmp / f"{name}-training", tests, ds.axis.values, ds.y[test], ds.class_names)
        row.update({"device_clean": scores["clean"]["accuracy"],
                    **{c: s["accuracy"] for c, s in scores.items() if c != "clean"}})
    return row


def baseline_pipeline(name: str, seed: int):
    """An unfitted scikit-learn pipeline of :data:`BASELINES` (SNV is the caller's).

    The LinearSVC stops at trainer.models.classical's tolerance and iteration limit (scikit-learn's defaults
    stop it unconverged here).
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from trainer.models.classical import LINEAR_SVM_ITERATIONS, LINEAR_SVM_TOLERANCE

    if name == "sklearn PCA(30)-logreg":
        return make_pipeline(StandardScaler(), PCA(n_components=30, random_state=seed),
                             LogisticRegression(max_iter=5000))
    return make_pipeline(LinearSVC(C=1.0, random_state=seed, tol=LINEAR_SVM_TOLERANCE, max_iter=LINEAR_SVM_ITERATIONS))


def baseline_flop(pipe, points: int) -> int:
    """FLOP of one spectrum of ``points`` axis points through a fitted baseline.

    Resampling + SNV (as compare counts them) + :func:`trainer.models.classical.classical_flops` of the
    pipeline; a LogisticRegression head, which that does not count, is counted analytically like a linear
    one-vs-rest head: 2 k C + C (logits) + C - 1 (argmax).
    """
    from sklearn.linear_model import LogisticRegression

    from device.inference.cost import RESAMPLE_FLOP_PER_POINT, SNV_FLOP_PER_POINT
    from trainer.models.classical import classical_flops

    total = (RESAMPLE_FLOP_PER_POINT + SNV_FLOP_PER_POINT) * points
    head = pipe.steps[-1][1]
    if isinstance(head, LogisticRegression):
        k, C = head.coef_.shape[1], len(head.classes_)
        return total + classical_flops(pipe[:-1], points) + 2 * k * C + C + C - 1
    return total + classical_flops(pipe, points)


def baseline_rows(case: Case, ds, split) -> list[dict]:
    """The :data:`BASELINES` fitted on every training side of the split, scored on the same (degraded) tests."""
    from device.inference.inputs import normalise
    from trainer.evaluation.compare import evaluation_spectra
    from trainer.evaluation.metrics import classification_report

    rows = []
    for name, what in BASELINES.items():
        scores, seconds, flop, notes = [], 0.0, None, set()
        for i, (train, test) in enumerate(split.pairs):
            t = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pipe = baseline_pipeline(name, SEED + i).fit(normalise(ds.X[train], "snv"), ds.y[train])
            seconds += time.perf_counter() - t
            notes.update(type(w.message).__name__ for w in caught)
            flop = baseline_flop(pipe, ds.axis.points) if flop is None else flop
            tests = evaluation_spectra(ds, test, case.snr, SEED, i)
            scores.append({c: classification_report(ds.y[test], pipe.predict(normalise(X, "snv")), ds.class_names)
                           for c, X in tests.items()})
        mean = {c: float(np.mean([s[c]["accuracy"] for s in scores])) for c in scores[0]}
        rows.append({"name": name, "options": [what + (f" [{', '.join(sorted(notes))}]" if notes else "")],
                     "seconds": seconds, "accuracy": mean["clean"], "cv_accuracy": None, "flop": flop,
                     "macro_f1": float(np.mean([s["clean"]["macro_f1"] for s in scores])),
                     **{c: v for c, v in mean.items() if c != "clean"}})
    return rows


def compare_best(case: Case, ds, split, quick: bool) -> tuple[dict, dict]:
    """``raman-train compare``'s models on the split: (best row by clean accuracy, the whole result)."""
    from trainer.evaluation.compare import MODELS, compare
    from trainer.models import classical

    models = ("compact", *classical.CLASSICAL_MODELS) if quick else MODELS
    result = compare(ds, split, models, case.snr, SEED, log=note)
    name, r = max(result["models"].items(), key=lambda kv: kv[1]["summary"]["clean"]["accuracy_mean"])
    s = r["summary"]
    return ({"name": name, "options": [f"trainer.evaluation.compare, best of {', '.join(models)}"],
             "seconds": float(sum(r["fit_seconds"])), "accuracy": s["clean"]["accuracy_mean"],
             "macro_f1": s["clean"]["macro_f1_mean"], "cv_accuracy": None, "flop": int(r["cost"]["flop"]),
             **{c: s[c]["accuracy_mean"] for c in result["conditions"] if c != "clean"}}, result)


def case_report(case: Case, quick: bool) -> tuple[list[str], list]:
    """The Markdown section of one case and its target rows."""
    from trainer.data.dataset import load_dataset
    from trainer.evaluation.compare import evaluation_spectra, make_split

    t0 = time.perf_counter()
    ds = load_dataset(SHARED / case.data, None, log=note)
    split = make_split(case.split, ds, SEED)
    holdout = split.spec.kind.startswith("holdout")
    tests = evaluation_spectra(ds, split.pairs[0][1], case.snr, SEED, 0) if case.snr else {}
    with tempfile.TemporaryDirectory() as tmp:
        default = command_row(case, ds, split, tests, Path(tmp), "default", [])
        members, family_source = family_of(default["card"])
        family = [command_row(case, ds, split, tests, Path(tmp), name, opts) for name, opts in members]
    baselines = baseline_rows(case, ds, split)
    best, result = compare_best(case, ds, split, quick)

    snr_heads = [f"SNR {s:g}" for s in case.snr]
    heads = ["row", "model", "options", "held-out accuracy" if holdout else "accuracy (mean of pairs)", "macro F1",
             "card CV accuracy", *(["clean, device (training-only bundle)"] if case.snr else []), *snr_heads,
             "FLOP / spectrum", "wall time"]
    label = "default fit" + (f" (selected {default['winner']})" if default["winner"] else "")
    table = []
    for kind, r in [(label, default), *[("family", r) for r in family], *[("baseline", r) for r in baselines],
                    ("best of compare", best)]:
        table.append([kind, r["name"], "`" + " ".join(r["options"]) + "`" if r["options"] else "(none)",
                      pct(r["accuracy"]), f"{r['macro_f1']:.3f}", pct(r["cv_accuracy"]),
                      *([pct(r.get("device_clean"))] if case.snr else []),
                      *[pct(r.get(f"snr{s:g}")) for s in case.snr], f"{r['flop']:,}", f"{r['seconds']:.1f} s"])
    values = {"accuracy": default["accuracy"], "flop": default["flop"], "seconds": default["seconds"],
              "gap": gap_points(default["accuracy"], best["accuracy"]),
              **{f"snr{s:g}": default.get(f"snr{s:g}") for s in case.snr}}
    checks = check_targets(values, case.targets)
    lines = [f"## {case.title}: `{case.split}`", "",
             f"Data `{case.data}` ({ds.X.shape[0]} spectra, {len(ds.class_names)} classes, axis {ds.axis} cm-1). "
             f"Split: {split.description}: {case.meaning}; "
             f"{len(split.pairs)} train/test pair(s), seed {SEED}.", "",
             *([f"**Split warning: {split.warning}.**", ""] if split.warning else []),
             f"Family: {family_source}.", "", *selection_lines(default["card"])]
    if case.snr:
        lines += [f"SNR columns: the held-out spectra degraded by trainer.data.degrade.degrade "
                  f"(trainer.evaluation.compare.evaluation_spectra, seed {SEED}), the same spectra for every row; "
                  "command rows classify them with a bundle fitted by the same command on the training spectra only, "
                  "through device.inference.classifier (NumPy backend).", ""]
    lines += markdown_table(heads, table)
    lines += ["", "Accuracy of the command rows from the model card (trained without the test spectra); baselines "
              "and compare: mean over the pairs. FLOP per spectrum from the axis through the verdict (card "
              "flop_per_spectrum.total; compare's cost; baselines as in bench_models.baseline_flop). Wall time: the "
              "whole `raman-train fit` command (its split refits and the final fit); baselines and compare: the sum "
              "of their fits over the pairs.", "",
              f"Best of compare: **{best['name']}** at {pct(best['accuracy'])}; the default fit is "
              f"{show('gap', values['gap'])} behind it. Compare took {result['seconds']} s; this case "
              f"{time.perf_counter() - t0:.0f} s.", "", "Targets of the default fit:", ""]
    lines += markdown_table(["target", "measured", "holds"], [(t, show(k.key, v), "yes" if ok else "**no**")
                                                             for (t, v, ok), k in zip(checks, case.targets)])
    return lines + [""], checks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="leave the convolutional networks out of the comparison")
    ap.add_argument("--split", action="append", choices=[c.split for c in CASES],
                    help="run only the case of this outer split (repeatable; default: every case)")
    ap.add_argument("--report", type=Path, default=REPORT,
                    help=f"Markdown file to write (default {REPORT.relative_to(ROOT)})")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.split or c.split in args.split]
    missing = [c.data for c in cases if not (SHARED / c.data).exists()]
    if missing:
        print(f"error: data set(s) not found under {SHARED}: {', '.join(missing)}; the benchmark needs the shared "
              "data sets beside the project", file=sys.stderr)
        return 2
    from trainer.evaluation.report import software_versions

    t0 = time.perf_counter()
    lines = ["# Benchmark: the default fit against every model", "",
             f"`benchmarks/bench_models.py{' --quick' if args.quick else ''}` on "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores; software "
             f"{json.dumps(software_versions())}. "
             + ("Quick run: convolutional networks left out of the comparison. " if args.quick else "")
             + (f"Only {', '.join(args.split)}." if args.split else ""), ""]
    print("\n".join(lines), flush=True)
    summary = []
    args.report.parent.mkdir(parents=True, exist_ok=True)
    for case in cases:
        section, checks = case_report(case, args.quick)
        print("\n".join(section), flush=True)
        lines += section
        summary += [(f"{case.title}, `{case.split}`", t, "yes" if ok else "**no**") for t, _, ok in checks]
        args.report.write_text("\n".join(lines))  # each case as it is done, so a stopped run keeps its tables
    tail = ["## All targets", "", *markdown_table(["case", "target", "holds"], summary), "",
            f"Total wall time {time.perf_counter() - t0:.0f} s.", ""]
    print("\n".join(tail), flush=True)
    args.report.write_text("\n".join(lines + tail))
    note(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
