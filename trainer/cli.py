"""``raman-train``: training and exporting models on a workstation."""
from __future__ import annotations

import argparse
import os
import sys


def cmd_fit(args) -> int:
    from device.spectrum import Axis

    from .fit import fit_bundle
    from .model import Hyperparameters
    from .splits import parse_holdout

    hp = Hyperparameters(hidden=args.hidden, leaky_slope=args.leaky_slope, learning_rate=args.learning_rate,
                         l2=args.l2, epochs=args.epochs, batch_size=args.batch_size)
    provenance = {k: v for k, v in (("source", args.data_source), ("licence", args.data_licence),
                                    ("attribution", args.data_attribution), ("description", args.description))
                  if v}
    fit_bundle(args.data, args.out, axis=Axis.parse(args.axis) if args.axis else None, hp=hp, seed=args.seed,
               tune_hp=args.tune, holdout=parse_holdout(args.holdout) if args.holdout else None,
               cv_folds=args.cv_folds, name=args.name, examples=args.examples, provenance=provenance)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raman-train", description="Train and export raman-edge models.")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="train the compact network and export a model bundle")
    f.add_argument("data", help="class-folder directory, wide .csv table, or .npz (X, y, wavenumber, class_names)")
    f.add_argument("--out", required=True, help="bundle directory to write")
    f.add_argument("--axis", help="model axis START:STOP:POINTS in cm-1 (default: from the data)")
    f.add_argument("--epochs", type=int, default=50)
    f.add_argument("--learning-rate", type=float, default=1e-3)
    f.add_argument("--l2", type=float, default=1e-3, help="L2 penalty on the kernels")
    f.add_argument("--batch-size", type=int, default=32)
    f.add_argument("--hidden", type=int, default=5, help="hidden units (the method uses 5)")
    f.add_argument("--leaky-slope", type=float, default=0.3, help="Leaky ReLU slope (Keras layer default 0.3)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--tune", action="store_true", help="choose learning rate and L2 by inner cross-validation")
    f.add_argument("--holdout", metavar="KEY=VALUE[,VALUE]",
                   help="also report accuracy on spectra whose .npz metadata KEY has these values, trained without them")
    f.add_argument("--cv-folds", type=int, default=0, help="also report stratified K-fold cross-validation")
    f.add_argument("--name", help="model name (default: the output directory name)")
    f.add_argument("--examples", help="class-folder directory of example spectra to ship in the bundle")
    f.add_argument("--data-source", help="where the data comes from (for the model card)")
    f.add_argument("--data-licence", help="the data's licence (for the model card)")
    f.add_argument("--data-attribution", help="required attribution (for the model card)")
    f.add_argument("--description", help="one line on what the model is for")
    f.set_defaults(func=cmd_fit)
    return p


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from device.cli import run

    return run(build_parser().parse_args(argv), interrupted="interrupted: nothing was written")


if __name__ == "__main__":
    sys.exit(main())
