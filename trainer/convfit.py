"""Training a convolutional bundle (``raman-train fit --model cnn|resnet|se-resnet``): metrics, export."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from device.bundle import write_bundle
from device.cost import convnet_flop_count
from device.inputs import normalise

from . import convnets
from .export import export_check, tflite_convnet_bytes
from .fit import card_basics, evaluate, load_training_data, shipped_examples
from .ood import FALSE_REJECTION, card_entry, fit_detector
from .report import software_versions


def fit_predict(kind: str, ds, train: np.ndarray, test: np.ndarray, hp: convnets.ConvHyperparameters,
                seed: int, log=None) -> np.ndarray:
    """Train on the ``train`` rows of ``ds`` and return the predicted classes of the ``test`` rows."""
    model, _ = convnets.train(kind, ds.X[train], ds.axis.values, ds.y[train], len(ds.class_names), hp, seed, log)
    return convnets.predict(model, normalise(ds.X[test], "snv")).argmax(axis=1)


def fit_conv_bundle(data, out, kind: str, *, axis=None, hp: convnets.ConvHyperparameters = convnets.ConvHyperparameters(),
                    seed: int = 0, validation: tuple = (), groups: str | None = None, name: str | None = None,
                    examples: Path | None = None, provenance: dict | None = None, chosen_by: str | None = None,
                    ood_false_rejection: float = FALSE_REJECTION, log=print):
    """Train a convolutional network of ``kind`` on ``data`` and export a verified bundle to ``out``.

    Parameters are those of :func:`trainer.fit.fit_bundle` (without tuning or a normalisation choice:
    the inputs are always the SNV-normalised spectra), plus ``kind`` (one of
    :data:`trainer.convnets.CONV_MODELS`) and its :class:`~trainer.convnets.ConvHyperparameters`.

    Returns
    -------
    ModelBundle
    """
    t0 = time.perf_counter()
    out = Path(out)
    name = name or out.name
    log(f"model {kind}")
    ds, example_files, splits = load_training_data(data, axis, examples, log, validation, 0, seed, groups)
    n_classes = len(ds.class_names)
    metrics = evaluate(lambda tr, te, s: fit_predict(kind, ds, tr, te, hp, s, log), ds, splits, seed, "weights", log)

    log("final fit on all spectra")
    model, loss = convnets.train(kind, ds.X, ds.axis.values, ds.y, n_classes, hp, seed, log)
    X = normalise(ds.X, "snv")
    keras_probs = convnets.predict(model, X)
    net = convnets.to_convnet(model, kind, hp)
    tfl = tflite_convnet_bytes(net, ds.axis.points)
    check = export_check(keras_probs, X, net.probabilities(X), tfl)
    log(f"export check passed: max |difference| {max(check['max_abs_difference'].values()):.2e} "
        f"on {check['spectra']} spectra ({check['tflite_runtime']})")
    metrics["training"] = {"final_loss": loss[-1], "loss_per_epoch": loss,
                           "accuracy": float((keras_probs.argmax(1) == ds.y).mean())}
    ood = fit_detector(ds.X, ds.y, n_classes, ood_false_rejection, seed, log)
    example_files, examples_from = shipped_examples(example_files, ds, net.probabilities(X), ood, log)
    card = {
        **card_basics(ds, data, name, provenance, f"{kind} trained on {Path(data).name}"),
        "preprocessing": {
            "resampling": "linear interpolation onto the axis; spectra that do not cover it are refused",
            "normalisation": "standard normal variate per spectrum (minus its mean, over its standard deviation)",
            "inputs": f"the {ds.axis.points} normalised intensities",
        },
        "network": {"kind": kind, "architecture": convnets.__doc__.split("\n\n")[1].strip(),
                    "parameters": net.parameters, "batch_normalisation": "folded into the convolutions at export"},
        "hyperparameters": {**hp.as_dict(), "optimizer": "Adam", "loss": "sparse categorical cross-entropy",
                            "seed": seed, "augmentation": "trainer.degrade.augment, fresh every epoch" if hp.augment
                            else "none",
                            "chosen_by": chosen_by or "the defaults of trainer/convnets.py, fixed a priori for "
                                                      "1,000-3,000-point spectra; not tuned on this data"},
        "metrics": metrics,
        "out_of_distribution": {"target_false_unknown": ood_false_rejection, **card_entry(ood, ds.X, ds.y)},
        "examples_from": examples_from,
        "flop_per_spectrum": convnet_flop_count(ds.axis, net, "snv"),
        "export_check": check,
        "training_seconds": round(time.perf_counter() - t0, 1),
        "software": software_versions(),
    }
    bundle = write_bundle(out, ood=ood, name=name, class_names=ds.class_names, axis=ds.axis, tflite=tfl, card=card,
                          convnet=net, normalisation="snv", examples=example_files)
    log(f"wrote {out} ({bundle.model_id})")
    return bundle
