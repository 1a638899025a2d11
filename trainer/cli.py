"""``raman-train``: training and exporting models on a workstation."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware_bridge.commandline import add_subcommand, positive_float, refuse_existing
from trainer.library import FALSE_NO_MATCH, MATCHING, MAX_REPLICATES
from trainer.models.candidates import COMPACT_MODELS, KINDS, PROJECTED_MODELS
from trainer.models.compact import Hyperparameters
from trainer.models.keras_convnets import CONV_MODELS, ConvHyperparameters
from trainer.models.linear import DEFAULT_C, LINEAR_MODELS
from trainer.models.projection import DEFAULT_COMPONENTS
from trainer.selection import MAX_FLOP

#: The defaults of the training options, written once in the dataclasses.
_COMPACT, _CONV = Hyperparameters(), ConvHyperparameters()


def _note(msg: str) -> None:
    """A progress or data line for the user, on stderr (stdout carries the results)."""
    print(msg, file=sys.stderr, flush=True)


def _axis(args):
    from device.inference.spectrum import Axis

    return Axis.parse(args.axis, "--axis") if args.axis else None


def _given(args, names: tuple) -> dict:
    """The options among ``names`` given on the command line; the others keep their dataclass defaults."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def cmd_fit(args) -> int:
    """``raman-train fit``: train the chosen (or given) model and write its bundle."""
    from trainer.data.splits import SplitSpec, parse_holdout, parse_split
    from trainer.fit import fit_bundle

    refuse_existing(args.out, args.force, "--out")
    if args.preset:
        _apply_preset(args)
    validation = [parse_split(args.split)] if args.split else []
    if args.holdout:
        key, values = parse_holdout(args.holdout)
        validation.append(SplitSpec("holdout-key", key=key, values=tuple(values), given=f"--holdout {args.holdout}"))
    if args.cv_folds > 1:
        validation.append(SplitSpec("kfold", folds=args.cv_folds, given=f"--cv-folds {args.cv_folds}"))
    provenance = {k: v for k, v in (("source", args.data_source), ("licence", args.data_licence),
                                    ("attribution", args.data_attribution), ("description", args.description))
                  if v}
    fit_bundle(args.data, args.out, _candidate(args), axis=_axis(args), seed=args.seed, tune_hp=args.tune,
               validation=tuple(validation), groups=args.groups, name=args.name, examples=args.examples,
               provenance=provenance, chosen_by=args.chosen_by, max_flop=args.max_flop,
               augment=not args.no_augment, chains=None if args.model else _chains(args),
               ood_false_rejection=args.ood_false_rejection, response_corrected=args.response_corrected,
               resolution_cm1=args.resolution_cm1, source_resolution_cm1=args.source_resolution_cm1, log=_note)
    return 0


#: ``fit`` options of some model kinds only, and the kinds that take each (in the order the refusals list them).
KINDS_OF_OPTION = {"components": PROJECTED_MODELS, **{o: LINEAR_MODELS for o in ("C", "standardise", "features")},
                   **{o: COMPACT_MODELS for o in ("hidden", "leaky_slope")}, "tune": ("compact",),
                   "steps": CONV_MODELS, "epochs": COMPACT_MODELS,
                   **{o: tuple(k for k in KINDS if k not in LINEAR_MODELS)
                      for o in ("learning_rate", "l2", "batch_size")}}


def _options_given(args, names) -> list:
    """The options among ``names`` given on the command line, as ``--name``."""
    return [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) not in (None, False)]


def _candidate(args):
    """The model ``fit`` trains from its options (:class:`trainer.models.candidates.Candidate`), or None: choose it."""
    from device.errors import RamanEdgeError
    from trainer.models.candidates import Candidate, ProjectedCompact
    from trainer.models.compact import Hyperparameters
    from trainer.models.keras_convnets import ConvHyperparameters
    from trainer.models.linear import LinearSettings

    kind = args.model
    if kind is None:
        given = _options_given(args, KINDS_OF_OPTION)
        if given:
            raise RamanEdgeError(f"{', '.join(given)} set(s) the settings of one model kind: give --model KIND too "
                                 "(without --model, fit chooses the model by inner cross-validation)")
        return None
    if kind in CONV_MODELS and args.epochs:
        raise RamanEdgeError(f"--model {kind} trains for a number of optimizer steps: use --steps, not --epochs")
    wrong = [o for o, kinds in KINDS_OF_OPTION.items() if kind not in kinds]
    if _options_given(args, wrong):
        own = [f"--{o.replace('_', '-')}" for o, kinds in KINDS_OF_OPTION.items() if kind in kinds]
        raise RamanEdgeError(f"--model {kind} takes no {', '.join(_options_given(args, wrong))}; its options are "
                             f"{', '.join(own[:-1])} and {own[-1]}")
    chain = _preprocess(args)
    training = ("hidden", "leaky_slope", "learning_rate", "l2", "epochs", "batch_size")
    try:
        if kind in LINEAR_MODELS:
            settings = LinearSettings(kind, C=args.C, standardise=args.standardise,
                                      components=DEFAULT_COMPONENTS if args.components is None else args.components)
            return Candidate(kind, chain, settings, features=args.features, augment=not args.no_augment)
        if kind == "compact":
            return Candidate(kind, chain, Hyperparameters(**_given(args, training)), augment=not args.no_augment)
        if kind in COMPACT_MODELS:
            settings = ProjectedCompact(DEFAULT_COMPONENTS if args.components is None else args.components,
                                        Hyperparameters(**_given(args, training)))
            return Candidate(kind, chain, settings, augment=not args.no_augment)
        if chain != "snv":
            raise RamanEdgeError(f"--model {kind} always uses SNV inputs; remove --normalise none / --preprocess")
        hp = ConvHyperparameters(**_given(args, ("learning_rate", "l2", "steps", "batch_size")))
        return Candidate(kind, "snv", hp, augment=not args.no_augment)
    except ValueError as exc:
        raise RamanEdgeError(f"--model {kind}: {exc}") from None


def _chains(args) -> tuple | None:
    """The chains the choice is made among: the one given with --preprocess / --normalise, or the family's."""
    return (_preprocess(args),) if args.preprocess is not None or args.normalise is not None else None


#: ``fit --preset paper``: the compact network exactly as published (compact FNN with feature engineering
#: for SERS of agrochemicals, J. Phys.: Photonics 2025, DOI 10.1088/2515-7647/adc2bf): raw intensities + the
#: 22 features, each column standardised, Dense(5) + Leaky ReLU (slope 0.3) -> Dense(classes) + softmax, Adam,
#: 50 epochs. The paper's learning rate and L2 are not legible: raman-train's defaults
#: (:class:`trainer.models.compact.Hyperparameters`) unless --tune or given.
PAPER_PRESET = {"model": "compact", "preprocess": "none", "hidden": 5, "leaky_slope": 0.3, "epochs": 50,
                "batch_size": 32}


def _apply_preset(args) -> None:
    """Set ``fit``'s options from ``--preset paper``; an option given against it is an error."""
    from device.errors import RamanEdgeError

    def option(name, value):
        return f"--{name.replace('_', '-')} {value}"

    given = {"model": args.model, "preprocess": args.preprocess or args.normalise, "hidden": args.hidden,
             "leaky_slope": args.leaky_slope, "epochs": args.epochs, "batch_size": args.batch_size}
    against = [option(k, v) for k, v in given.items() if v is not None and v != PAPER_PRESET[k]]
    if against:
        raise RamanEdgeError(f"--preset paper sets {', '.join(option(k, v) for k, v in PAPER_PRESET.items())}; "
                             f"remove {', '.join(against)}, or leave out --preset")
    args.model, args.normalise, args.preprocess = "compact", None, PAPER_PRESET["preprocess"]
    args.hidden, args.leaky_slope = PAPER_PRESET["hidden"], PAPER_PRESET["leaky_slope"]
    args.epochs, args.batch_size = PAPER_PRESET["epochs"], PAPER_PRESET["batch_size"]
    args.no_augment = True  # the published training has no augmentation
    if not args.chosen_by and not args.tune:
        args.chosen_by = ("--preset paper: the published network and training (J. Phys.: Photonics 2025, DOI "
                          "10.1088/2515-7647/adc2bf); learning rate "
                          "and L2, not legible in the paper, " + ("given on the command line" if args.learning_rate
                                                                  or args.l2 is not None else
                                                                  "raman-train's defaults"))


def _preprocess(args) -> str:
    """The chain text of ``fit``'s --preprocess (or --normalise), its syntax checked before any data is read."""
    from device.errors import RamanEdgeError
    from device.inference.preprocess import Chain

    if args.preprocess is not None and args.normalise is not None:
        raise RamanEdgeError("--normalise and --preprocess both set the preprocessing: give only --preprocess "
                             f"(e.g. --preprocess {args.normalise})")
    text = args.preprocess if args.preprocess is not None else args.normalise or "snv"
    try:
        Chain.parse(text, 1.0)  # the axis step, known once the data is read, scales derivatives only
    except ValueError as exc:
        raise RamanEdgeError(f"--preprocess: {exc}") from None
    return text


def cmd_synth(args) -> int:
    """``raman-train synth``: write a synthetic SERS data set."""
    from trainer.data.synth import CLASSES, write
    from trainer.evaluation.report import publish_report

    refuse_existing(args.out, args.force, "--out")
    counts = _counts(args.counts)
    files = []
    publish_report(args.out, lambda tmp: files.extend(write(tmp, counts, args.seed)))
    print(f"wrote {len(files)} SYNTHETIC spectra to {args.out} "
          f"({', '.join(f'{c} {n}' for c, n in zip(CLASSES, counts))}; seed {args.seed})")
    return 0


def _counts(text: str) -> tuple:
    """The four class counts of ``synth --counts`` (e.g. ``36,36,29,15``); one message if malformed."""
    from device.errors import RamanEdgeError

    try:
        counts = tuple(int(c) for c in text.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 4 or min(counts) < 1:
        raise RamanEdgeError(f"--counts takes four positive whole numbers (edifenphos, ethyl parathion, "
                             f"mixture, control), e.g. 36,36,29,15; got {text!r}")
    return counts


def cmd_evaluate(args) -> int:
    """``raman-train evaluate``: the published cross-validation protocol, with its report."""
    from device.errors import RamanEdgeError
    from trainer.data.dataset import load_dataset
    from trainer.data.splits import SplitSpec, make_splits, parse_split
    from trainer.data.synth import is_synthetic
    from trainer.evaluation.protocol import Settings, choose_folds, run
    from trainer.evaluation.report import write_report

    refuse_existing(args.report, args.force, "--report")
    if args.split and (args.folds is not None or args.repeats is not None):
        raise RamanEdgeError(f"--split {args.split} states the folds and repeats itself: drop --folds / --repeats "
                             "(e.g. --split repeated:10x15 is the published protocol)")
    spec = parse_split(args.split) if args.split else None
    hp = Hyperparameters(**_given(args, ("hidden", "leaky_slope", "learning_rate", "l2", "epochs", "batch_size")))
    ds = load_dataset(args.data, _axis(args), log=_note, groups=args.groups)
    if spec is None:
        grouped = ds.groups is not None
        folds, folds_reason = choose_folds(ds, args.folds, grouped)
        spec = SplitSpec("group-kfold" if grouped else "kfold", folds=folds, repeats=args.repeats or 10)
        if grouped:
            folds_reason += "; grouped because --groups was given"
    else:
        folds_reason = "as given by --split"
    splits = make_splits(spec, ds, args.seed)
    settings = Settings(folds=len(splits.repeats[0]), repeats=len(splits.repeats), seed=args.seed, hp=hp,
                        engine=args.engine, normalisation=args.normalise)
    if splits.warning:
        print(f"warning: {splits.warning}", flush=True)
    print(f"data: {ds.X.shape[0]} spectra, {len(ds.class_names)} classes, axis {ds.axis} cm-1; "
          f"split: {splits.description} (--split {spec.text}; {folds_reason}), {settings.engine} engine", flush=True)
    result = run(ds, settings, splits, log=lambda msg: print(msg, flush=True))
    data = {"source": str(args.data), "spectra": int(ds.X.shape[0]), "per_class": ds.counts(), "axis": str(ds.axis),
            "fingerprint_sha256": ds.fingerprint, "groups": ds.group_source or None}
    sett = {"split": spec.text, "split_description": splits.description, "folds": settings.folds,
            "folds_chosen": folds_reason, "repeats": settings.repeats,
            "seed": settings.seed, "engine": settings.engine, "normalisation": settings.normalisation,
            "hyperparameters": hp.as_dict(), "importance_band_width_cm-1": settings.band_width_cm,
            "importance_permutations": settings.permutations}
    write_report(args.report, result, sett, data, ds.class_names, ds.axis.values, ds.X.mean(axis=0),
                 published=is_synthetic(args.data))
    print(f"accuracy {100 * result['accuracy_mean']:.2f} % +/- {100 * result['accuracy_std']:.2f} % "
          f"(mean +/- std over {settings.repeats} repeats; {spec.text}); report in {args.report} "
          f"({result['seconds']} s)")
    if splits.warning:
        print(f"warning: {splits.warning}", flush=True)
    return 0


def cmd_compare(args) -> int:
    """``raman-train compare``: every model under the same splits, with its report."""
    from device.errors import RamanEdgeError
    from trainer.data.dataset import load_dataset
    from trainer.evaluation.compare import MODELS, compare, make_split
    from trainer.evaluation.compare_report import tables, write_compare_report

    refuse_existing(args.report, args.force, "--report")
    models = MODELS if args.models == "all" else tuple(m.strip() for m in args.models.split(","))
    try:
        snr = tuple(float(v) for v in args.snr.split(",")) if args.snr.strip() else ()
    except ValueError:
        raise RamanEdgeError(f"--snr takes numbers separated by commas, e.g. 100,20,5; got {args.snr!r}") from None
    ds = load_dataset(args.data, _axis(args), log=_note, groups=args.groups)
    split = make_split(args.split, ds, args.seed)
    if split.warning:
        print(f"warning: {split.warning}", flush=True)
    print(f"data: {ds.X.shape[0]} spectra, {len(ds.class_names)} classes, axis {ds.axis} cm-1; "
          f"{len(models)} models; split: {split.description} (--split {split.spec.text})", flush=True)
    result = compare(ds, split, models, snr, args.seed, args.steps, log=lambda msg: print(msg, flush=True))
    data = {"source": str(args.data), "spectra": int(ds.X.shape[0]), "per_class": ds.counts(), "axis": str(ds.axis),
            "fingerprint_sha256": ds.fingerprint, "groups": ds.group_source or None}
    settings = {"split": split.spec.text, "models": list(models), "snr_levels": list(snr), "seed": args.seed,
                "conv_steps": args.steps}
    write_compare_report(args.report, result, settings, data)
    print("\n".join(tables(result)))
    if split.warning:
        print(f"warning: {split.warning}", flush=True)
    print(f"report in {args.report} ({result['seconds']} s)")
    return 0


def cmd_library(args) -> int:
    """``raman-train library``: a reference library from labelled spectra, calibrated by leave-one-out."""
    from trainer.data.dataset import load_dataset
    from trainer.library import build_library

    refuse_existing(args.out, args.force, "--out")
    ds = load_dataset(args.data, _axis(args), log=_note)
    provenance = {k: v for k, v in (("source", args.data_source), ("licence", args.data_licence),
                                    ("attribution", args.data_attribution), ("description", args.description))
                  if v}
    lib = build_library(ds, args.out, name=args.name or Path(args.out).name, matching=args.matching,
                        references=args.references, false_no_match=args.false_no_match,
                        max_replicates=args.max_replicates, spread=args.spread, blank=args.blank, seed=args.seed,
                        provenance=provenance,
                        source=str(args.data), log=_note)
    cal = lib.card["calibration"]
    print(f"wrote {args.out}: {lib.library_id}, {len(lib.entry_names)} entries, matched after "
          f"{lib.preprocess.text}; leave-one-out top-1 {cal['top1']:.4f}, top-3 {cal['top3']:.4f} over "
          f"{cal['queries']} spectra; no match below HQI {lib.no_match_below:.2f}")
    return 0


def cmd_keygen(args) -> int:
    """``raman-train keygen``: the fleet's signing key pair."""
    from trainer.signing import PRIVATE_FILE, PUBLIC_FILE, keygen

    out = Path(args.out)
    kid = keygen(out, args.force)
    print(f"wrote {out / PRIVATE_FILE} (private: keep it on this workstation, mode 0600) and {out / PUBLIC_FILE} "
          f"(public: raman-device install --signing-key on every device); key id {kid}")
    return 0


def cmd_sign(args) -> int:
    """``raman-train sign``: sign model bundles and reference libraries, each verified whole first."""
    from device.inference.signature import key_id
    from trainer.signing import load_private_key, sign

    key = load_private_key(Path(args.key))
    for path in args.dirs:
        print(f"signed {path}: {sign(Path(path), key)}, key id {key_id(key.public_key())}")
    return 0


def cmd_explain(args) -> int:
    """``raman-train explain``: the Raman bands that decided each spectrum's verdict."""
    from device.inference.bundle import load_bundle
    from trainer.evaluation.explain import explain, write_explanations

    refuse_existing(args.out, args.force, "--out")
    bundle = load_bundle(args.bundle)
    entries = explain(bundle, args.files, args.class_name)
    written = write_explanations(args.out, bundle, entries)
    for e in entries:
        bands = ", ".join(f"{b['shift']:.0f}" for b in e["top_bands"])
        print(f"{Path(e['file']).name}: {e['verdict']} ({e['confidence']:.3f}); {e['method']} for "
              f"{e['explained_class']}: top bands {bands} cm-1")
    print(f"wrote {len(written)} figure(s) and explanations.json to {args.out}")
    return 0


def cmd_report(args) -> int:
    """``raman-train report``: one recorded measurement's analysis and evidence as ID.png and a one-page ID.pdf."""
    from trainer.evaluation.evidence import load_measurement, report_paths, write_report

    png, pdf = report_paths(args.out, args.id)
    for path in (png, pdf):
        refuse_existing(path, args.force, "--out")
    rec = load_measurement(args.db, args.id)
    write_report(rec, png, pdf)
    print(f"wrote {png} and {pdf}")
    return 0


def cmd_ood_eval(args) -> int:
    """``raman-train ood-eval``: leave each class out and count how often it comes back unknown."""
    import json

    from trainer.data.dataset import load_dataset
    from trainer.data.splits import parse_split
    from trainer.evaluation.ood import leave_one_class_out, markdown_table
    from trainer.evaluation.report import publish_report, software_versions

    refuse_existing(args.report, args.force, "--report")
    spec = parse_split(args.split)
    ds = load_dataset(args.data, _axis(args), log=_note, groups=args.groups)
    print(f"data: {ds.X.shape[0]} spectra, {len(ds.class_names)} classes; leaving each class out in turn, "
          f"the known classes split by --split {spec.text}", flush=True)
    result = leave_one_class_out(ds, spec, false_rejection=args.false_rejection, seed=args.seed,
                                 log=lambda msg: print(msg, flush=True))
    report = {"data": {"source": str(args.data), "spectra": int(ds.X.shape[0]), "per_class": ds.counts(),
                       "fingerprint_sha256": ds.fingerprint, "groups": ds.group_source or None},
              "software": software_versions(), "results": result}
    warning = f"**Warning: {result['warning']}.**\n\n" if result["warning"] else ""

    def fill(tmp):
        (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (tmp / "report.md").write_text(f"# Unknown samples: {args.data}\n\n{warning}Split of the known classes: "
                                       f"`--split {spec.text}`.\n\n{result['protocol']}.\n\n"
                                       + markdown_table(result) + f"\n\nRun time {result['seconds']} s.\n")

    publish_report(args.report, fill)
    print(markdown_table(result))
    if result["warning"]:
        print(f"warning: {result['warning']}", flush=True)
    print(f"report in {args.report} ({result['seconds']} s)")
    return 0


def cmd_detector(args) -> int:
    """``raman-train detector``: fit the unknown-sample detector of an existing bundle."""
    from trainer.evaluation.ood import refit_detector

    b = refit_detector(args.bundle, args.data, args.false_rejection, args.seed, log=_note)
    print(f"wrote {args.bundle} ({b.model_id})")
    return 0


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (epochs, steps, units, batch size)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number of at least 1; got {text!r}")
    return value


def _number(value: float) -> str:
    """``value`` as the help texts write it: 32, 0.3, 1e-3."""
    if not value or abs(value) >= 1e-2:
        return f"{value:g}"
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _per_model(name: str) -> str:
    """The default of hyperparameter ``name``: one value, or the compact network's and the convolutional ones'."""
    compact, conv = getattr(_COMPACT, name), getattr(_CONV, name)
    return _number(compact) if compact == conv else f"{_number(compact)} compact, {_number(conv)} convolutional"


def _training_options(p, defaults: bool = True) -> None:
    """Options shared by fit and evaluate.

    The hyperparameters default to None, so that the dataclass defaults apply (:func:`_given`; for fit, those of
    the model chosen). Without ``defaults`` --normalise is None too (fit resolves it with --preprocess).
    """
    p.add_argument("--axis", help="model axis START:STOP:POINTS in cm-1 (default: from the data; stated on stderr)")
    p.add_argument("--epochs", type=_positive,
                   help=f"passes over the data (default {_COMPACT.epochs}; the compact network)")
    p.add_argument("--learning-rate", type=float, help=f"Adam step (default {_per_model('learning_rate')})")
    p.add_argument("--l2", type=float, help=f"L2 penalty on the kernels (default {_per_model('l2')})")
    p.add_argument("--batch-size", type=_positive,
                   help=f"spectra per optimizer step (default: {_per_model('batch_size')})")
    p.add_argument("--hidden", type=_positive, help=f"hidden units (the method uses 5) (default: {_COMPACT.hidden})")
    p.add_argument("--leaky-slope", type=float,
                   help=f"Leaky ReLU slope (default {_COMPACT.leaky_slope:g}, Keras' layer default)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, batch order and splits")
    p.add_argument("--normalise", choices=("snv", "none"), default="snv" if defaults else None,
                   help="per-spectrum normalisation before the features: snv (default; indifferent to gain and "
                        "offset) or none (raw intensities, as the published method)")


def _split_options(p, default: str | None, what: str) -> None:
    """``--split`` and ``--groups``, the same for every command (see trainer/data/splits.py)."""
    p.add_argument("--split", default=default,
                   help=f"{what}: kfold:K, repeated:RxK, group-kfold:K or group-kfold:RxK (each group on one side), "
                        "logo (leave one group out), holdout:KEY=VALUE[,VALUE] or holdout:FRACTION")
    p.add_argument("--groups", metavar="KEY|folder|PATTERN",
                   help="what ties spectra together (patient, sample, batch, day): an .npz key, 'folder' "
                        "(DATA/<class>/<group>/files) or a file-name pattern with one capture group, e.g. '^(P\\d+)_' "
                        "(default: none; a split that is not grouped is then reported as optimistic)")


def _force(p, what: str) -> None:
    """``--force``: replace the existing ``what``."""
    p.add_argument("--force", action="store_true", help=f"replace an existing {what} (otherwise refused)")


def build_parser() -> argparse.ArgumentParser:
    """The ``raman-train`` command line: one subcommand per task."""
    p = argparse.ArgumentParser(prog="raman-train", description="Train and export raman-edge models.")
    sub = p.add_subparsers(dest="command", required=True)
    f = add_subcommand(sub, "fit", help="train a model (compact network or convolutional) and export a bundle")
    f.add_argument("data", help="class-folder directory, wide .csv table, or .npz (X, y, wavenumber, class_names)")
    f.add_argument("--out", required=True, help="bundle directory to write")
    _force(f, "bundle at --out")
    f.add_argument("--model", choices=KINDS,
                   help="train this kind instead of choosing one (default: chosen by inner cross-validation among "
                        "a family of preprocessing chains and models within --max-flop, see trainer/selection.py): "
                        "compact: the published Dense(5) network on intensities + features; logreg (multinomial "
                        "logistic regression), linear-svm (linear SVM, probabilities by temperature scaling), "
                        "pca-logreg, pls-logreg (a PCA or PLS projection, then logistic regression): linear models "
                        "on the preprocessed spectrum, fitted by scikit-learn; pca-compact, pls-compact: the "
                        "projection, then the compact network on its scores; cnn, resnet, se-resnet: 1-D "
                        "convolutional networks on the SNV spectrum")
    f.add_argument("--max-flop", type=float, default=MAX_FLOP,
                   help=f"device cost allowed per spectrum when choosing the model (default {MAX_FLOP:.0e})")
    f.add_argument("--features", action="store_true",
                   help="linear models: the 22 engineered features as inputs too, after the intensities")
    f.add_argument("--C", type=float, metavar="C",
                   help="linear models: inverse regularisation strength (default: "
                        + ", ".join(f"{v:g} {k}" for k, v in DEFAULT_C.items()) + ")")
    f.add_argument("--components", type=int,
                   help=f"pca-logreg, pls-logreg, pca-compact, pls-compact: scores kept by the projection "
                        f"(default {DEFAULT_COMPONENTS})")
    f.add_argument("--standardise", action="store_true",
                   help="linear models: standardise each input column by the training spectra first (default: "
                        "off; it amplifies the noise of flat spectral regions)")
    f.add_argument("--steps", type=_positive,
                   help=f"convolutional models: optimizer steps (batches) to train for (default {_CONV.steps})")
    f.add_argument("--response-corrected", action="store_true",
                   help="the training spectra were corrected for their instrument's intensity response (e.g. measured "
                        "with spectrometer.response set): the card says so, and a device must correct its own "
                        "before this model gives verdicts")
    f.add_argument("--resolution-cm1", type=positive_float, metavar="FWHM",
                   help="train at this resolution (FWHM of polystyrene's bands, cm-1): the training spectra are "
                        "broadened to it, and devices broaden theirs to it from spectrometer.resolution_cm1. Give "
                        "the coarsest resolution among the instruments the model is for (their raman-device sst "
                        "fwhm_cm1); needs --source-resolution-cm1 (default: spectra as recorded)")
    f.add_argument("--source-resolution-cm1", type=positive_float, metavar="FWHM",
                   help="the resolution of the instrument that recorded the training spectra (its raman-device sst "
                        "fwhm_cm1), with --resolution-cm1 (default: none)")
    f.add_argument("--no-augment", action="store_true",
                   help="train on the spectra as given only (default: also on a degraded copy of each, as a weaker "
                        "acquisition on another instrument would record it: noise, background, shift, spikes, "
                        "response and resolution; convolutional models draw fresh copies every step)")
    _training_options(f, defaults=False)
    f.add_argument("--preprocess", metavar="STEP[,STEP...]",
                   help="preprocessing chain before the model, applied in order (default: snv; replaces --normalise): "
                        "snv, savgol:WINDOW:ORDER[:DERIV] (Savitzky-Golay smoothing or derivative), "
                        "asls:LAM:P[:MAX_ITER] (asymmetric least squares baseline removal, 50 iterations by default), "
                        "or none; e.g. asls:1e5:0.01,savgol:11:2,snv")
    f.add_argument("--preset", choices=("paper",),
                   help="paper: the compact network exactly as the published method (raw intensities + 22 features, "
                        "Dense(5), Leaky ReLU 0.3, 50 epochs, batch 32); options against it are refused "
                        "(default: none)")
    f.add_argument("--tune", action="store_true", help="choose learning rate and L2 by inner cross-validation")
    _split_options(f, None, "also report accuracy under this split, each pair trained apart, before the final fit "
                            "on all spectra (default: none)")
    f.add_argument("--holdout", metavar="KEY=VALUE[,VALUE]",
                   help="the same as --split holdout:KEY=VALUE[,VALUE] (default: no held-out spectra)")
    f.add_argument("--cv-folds", type=int, default=0, help="the same as --split kfold:K (default 0: none)")
    f.add_argument("--name", help="model name (default: the output directory name)")
    f.add_argument("--examples", help="class-folder directory of example spectra to ship in the bundle for the "
                                      "device's self-test (default: the training spectra the model gets right most "
                                      "confidently, 3 per class)")
    f.add_argument("--data-source", help="where the data comes from (for the model card; default: not stated)")
    f.add_argument("--data-licence", help="the data's licence (for the model card; default: not stated)")
    f.add_argument("--data-attribution", help="required attribution (for the model card; default: not stated)")
    f.add_argument("--description", help="one line on what the model is for (default: model and data file)")
    f.add_argument("--ood-false-rejection", type=float, default=0.01,
                   help="share of known spectra the unknown-sample detector may reject; sets its threshold "
                        "(default 0.01)")
    f.add_argument("--chosen-by", help="how the hyperparameters were chosen, for the model card (without --tune; "
                                       "default: 'given on the command line or raman-train defaults')")
    f.set_defaults(func=cmd_fit)
    y = add_subcommand(sub, "synth", help="write the SYNTHETIC SERS organophosphate set (class-folder layout)")
    y.add_argument("--out", required=True, help="directory to write")
    _force(y, "directory at --out")
    y.add_argument("--seed", type=int, default=0, help="seed of the generator")
    y.add_argument("--counts", default="36,36,29,15",
                   help="spectra of edifenphos, ethyl parathion, mixture, control (default the paper's 36,36,29,15)")
    y.set_defaults(func=cmd_synth)
    e = add_subcommand(sub, "evaluate",
                       help="the published protocol: repeated stratified K-fold CV, with a full report")
    e.add_argument("data", help="class-folder directory, wide .csv table, or .npz")
    e.add_argument("--report", required=True, help="report directory to write")
    _force(e, "report at --report")
    _split_options(e, None, "the split (default: repeated:10xK, the published protocol with K = --folds; grouped, "
                            "group-kfold:10xK, when --groups is given)")
    e.add_argument("--folds", type=int, help="K of the default split (default: the published 15, or the size of "
                                             "the smallest class, or the number of groups, when that is smaller; "
                                             "stated in the report)")
    e.add_argument("--repeats", type=int, help="runs of the default split, each with a new shuffle (default 10)")
    e.add_argument("--engine", choices=("vectorized", "naive"), default="vectorized",
                   help="vectorized: all folds of a repeat at once (default); "
                        "naive: one Keras fit per fold (reference)")
    _training_options(e)
    e.set_defaults(func=cmd_evaluate)
    c = add_subcommand(sub, "compare",
                       help="every model under the same splits: accuracy, cost, and accuracy against SNR")
    c.add_argument("data", help="class-folder directory, wide .csv table, or .npz")
    c.add_argument("--report", required=True, help="report directory to write")
    _force(c, "report at --report")
    _split_options(c, "auto", "the split; auto: group-kfold:5 with --groups (K lowered to the number of groups), "
                              "else repeated:3x5 (K lowered to the smallest class's size) up to 1000 spectra, else "
                              "holdout:0.2")
    c.add_argument("--models", default="all", help="comma-separated subset of the models (default all)")
    c.add_argument("--snr", default="300,100,50,20,10,5,2",
                   help="SNR levels of the acquisition-quality sweep, empty (\"\") for none")
    c.add_argument("--steps", type=_positive, default=_CONV.steps, help="optimizer steps of the convolutional models")
    c.add_argument("--axis", help="model axis START:STOP:POINTS in cm-1 (default: from the data; stated on stderr)")
    c.add_argument("--seed", type=int, default=0, help="seed of splits, initialisation and degradation")
    c.set_defaults(func=cmd_compare)
    b = add_subcommand(sub, "library", help="build a reference library for raman-device identify and verify")
    b.add_argument("data", help="class-folder directory, wide .csv table, or .npz (X, y, wavenumber, class_names): "
                                "each class becomes an entry")
    b.add_argument("--out", required=True, help="library directory to write")
    _force(b, "library at --out")
    b.add_argument("--name", help="library name (default: the output directory name)")
    b.add_argument("--axis", help="library axis START:STOP:POINTS in cm-1 (default: from the data; stated on stderr)")
    b.add_argument("--matching", choices=("auto",) + MATCHING, default="auto",
                   help="preprocessing before the correlation: snv, derivative (Savitzky-Golay first derivative, "
                        "then SNV), baseline (AsLS baseline removal, then SNV), or auto (default): the best "
                        "leave-one-out top-1 of the three")
    b.add_argument("--references", metavar="KEY=VALUE[,VALUE]",
                   help="the spectra whose mean is each entry's reference, by a per-spectrum key of the data, e.g. "
                        "condition=pristine (default: all of the entry's spectra); all are replicates")
    b.add_argument("--false-no-match", type=float, default=FALSE_NO_MATCH,
                   help=f"share of genuine samples of a library material the no-match threshold may reject; sets "
                        f"it by leave-one-out (default {FALSE_NO_MATCH})")
    b.add_argument("--max-replicates", type=int, default=MAX_REPLICATES,
                   help=f"replicates stored per entry, for verification (default {MAX_REPLICATES}; a seeded random "
                        "subsample of larger entries)")
    b.add_argument("--spread", metavar="KEY", help="per-spectrum key of the data the stored replicates of a larger "
                                                   "entry are spread over, e.g. concentration_ppm (default: none)")
    b.add_argument("--blank", metavar="NAME", help="a class that is the matrix without analyte (a control): not mixed "
                                                   "with the others when the mixture rates are measured "
                                                   "(default: none)")
    b.add_argument("--seed", type=int, default=0, help="seed of the replicate subsample and the mixture calibration "
                                                       "(default 0)")
    b.add_argument("--data-source", help="where the data comes from (for the card; default: not stated)")
    b.add_argument("--data-licence", help="the data's licence (for the card; default: not stated)")
    b.add_argument("--data-attribution", help="required attribution (for the card; default: not stated)")
    b.add_argument("--description", help="one line on what the library is for (default: entries and data file)")
    b.set_defaults(func=cmd_library)
    k = add_subcommand(sub, "keygen", help="make the fleet's Ed25519 key pair for signing bundles and libraries")
    k.add_argument("--out", required=True, help="directory for fleet-signing.key (private) and fleet-signing.pub")
    _force(k, "key pair in --out")
    k.set_defaults(func=cmd_keygen)
    s = add_subcommand(sub, "sign", help="sign model bundles and reference libraries with the fleet's private key "
                                         "(each verified whole first; a signature there is replaced)")
    s.add_argument("dirs", nargs="+", metavar="DIR", help="model bundle or reference library directories")
    s.add_argument("--key", required=True, metavar="PRIVATE.pem", help="the private key (raman-train keygen's "
                                                                       "fleet-signing.key)")
    s.set_defaults(func=cmd_sign)
    x = add_subcommand(sub, "explain",
                       help="which Raman bands decided: Grad-CAM (convolutional) or gradient x input (compact)")
    x.add_argument("bundle", help="model bundle directory")
    x.add_argument("files", nargs="+", metavar="FILE", help="spectrum files")
    x.add_argument("--out", required=True, help="directory for the PNG figures and explanations.json")
    _force(x, "directory at --out")
    x.add_argument("--class", dest="class_name", help="explain this class instead of each verdict "
                                                      "(default: the verdict's class)")
    x.set_defaults(func=cmd_explain)
    d = add_subcommand(sub, "detector",
                       help="fit the unknown-sample detector of an existing bundle (network unchanged)")
    d.add_argument("bundle", help="model bundle directory (rewritten whole)")
    d.add_argument("data", help="the data the model was trained on")
    d.add_argument("--false-rejection", type=float, default=0.01,
                   help="share of known spectra the detector may call unknown (sets its threshold)")
    d.add_argument("--seed", type=int, default=0, help="seed of the folds that set the threshold")
    d.set_defaults(func=cmd_detector)
    r = add_subcommand(sub, "report", help="one recorded measurement's analysis and evidence as a PNG and a one-page "
                                            "PDF to file")
    r.add_argument("--db", required=True, help="the device's record (SQLite file, DATA/record.db)")
    r.add_argument("id", type=int, help="the measurement's id (as raman-device history lists it)")
    r.add_argument("--out", default=".", help="directory for ID.png and ID.pdf (default: the current directory)")
    _force(r, "ID.png or ID.pdf in --out")
    r.set_defaults(func=cmd_report)
    o = add_subcommand(sub, "ood-eval", help="unknown samples: leave each class out, count unknown vs wrongly labelled")
    o.add_argument("data", help="class-folder directory, wide .csv table, or .npz")
    o.add_argument("--report", required=True, help="report directory to write")
    _force(o, "report at --report")
    o.add_argument("--false-rejection", type=float, default=0.01,
                   help="share of known spectra the detector may call unknown (sets its threshold; default 0.01)")
    _split_options(o, "holdout:0.2", "how the known classes are split into training and test spectra, every pair "
                                     "counted")
    o.add_argument("--axis", help="model axis START:STOP:POINTS in cm-1 (default: from the data; stated on stderr)")
    o.add_argument("--seed", type=int, default=0, help="seed of the splits and the training")
    o.set_defaults(func=cmd_ood_eval)
    return p


def main(argv=None) -> int:
    """The ``raman-train`` command; its exit status."""
    from device.cli import run

    return run(build_parser().parse_args(argv),
               interrupted="interrupted: nothing was written (an existing bundle or report is unchanged)")


if __name__ == "__main__":
    sys.exit(main())
