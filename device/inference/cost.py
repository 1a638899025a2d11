"""Analytic operation count of one classification, from the bundle's shapes.

Every addition, multiplication, division, comparison, exponential and square root counts as one
floating-point operation (FLOP); a multiply-accumulate counts as two. Data movement does not count.
"""
from __future__ import annotations

from device.inference.features import FEATURE_NAMES
from device.inference.network import DenseNet
from device.inference.preprocess import SNV, Chain

#: Operations per axis point for the 22 features: mean 1, centring 1, squares 1, variance 1,
#: third and fourth moments 4, sum of squares 2, |y - mu| and its mean 2, max 1, min 1, argmax 1,
#: quartiles by selection ~3, central differences 1, their max 1, their squares summed 2,
#: local-maximum tests 3, valley minima 1.
FEATURE_FLOP_PER_POINT = 26
#: Upper bound per peak candidate of the prominence pass (push, pops, comparisons, base updates);
#: candidates are at most (points - 1) / 2.
PEAK_FLOP_PER_CANDIDATE = 10
#: Linear interpolation: one subtraction, one multiplication, one addition per point.
RESAMPLE_FLOP_PER_POINT = 3


#: Standard normal variate: mean, centring, squares and their sum, division.
SNV_FLOP_PER_POINT = SNV().flop(1)


def _chain_flop(axis, preprocess) -> int:
    """FLOP of a preprocessing chain (a :class:`~device.inference.preprocess.Chain` or its text) on ``axis``."""
    chain = preprocess if isinstance(preprocess, Chain) else Chain.parse(preprocess, axis.step)
    return chain.flop(axis.points)


def input_flop_count(axis, normalisation="none", *, features: bool = True, standardise: bool = True) -> dict:
    """FLOP per spectrum of the network inputs, by stage: spectra on any axis to the inputs of the network.

    Parameters
    ----------
    axis : Axis
        The model axis.
    normalisation : Chain or str
        The preprocessing chain (:mod:`device.inference.preprocess`) or its text (``snv``, ...).
    features : bool
        The inputs include the 22 engineered features.
    standardise : bool
        The inputs are standardised per column.

    Returns
    -------
    dict
        ``resample``, ``normalise`` (the whole chain; for a baseline step an upper bound, every iteration
        counted), ``features`` if counted (an upper bound: it assumes the most peak candidates possible),
        ``standardise`` if counted (subtraction and division per input).
    """
    points = axis.points
    stages = {"resample": RESAMPLE_FLOP_PER_POINT * points, "normalise": _chain_flop(axis, normalisation)}
    if features:
        stages["features"] = FEATURE_FLOP_PER_POINT * points + PEAK_FLOP_PER_CANDIDATE * ((points - 1) // 2) + 40
    if standardise:
        stages["standardise"] = 2 * (points + (len(FEATURE_NAMES) if features else 0))
    return stages


def flop_count(axis, layers, normalisation="none", *, features: bool = True, standardise: bool = True) -> dict:
    """FLOP per spectrum, by stage, for a model axis, its dense layers and its preprocessing chain.

    ``normalisation`` is the chain, a :class:`~device.inference.preprocess.Chain` or its text (``snv``, ...);
    ``features`` and ``standardise`` say what the inputs are (default: the compact network's).

    Returns
    -------
    dict
        The stages of :func:`input_flop_count`, then ``network`` (:meth:`device.inference.network.DenseNet.flop`)
        and ``total``.
    """
    stages = input_flop_count(axis, normalisation, features=features, standardise=standardise)
    stages["network"] = DenseNet(tuple(layers)).flop(axis.points)
    stages["total"] = sum(stages.values())
    return stages


def convnet_flop_count(axis, net, normalisation="snv") -> dict:
    """FLOP per spectrum, by stage, of a convolutional network (:class:`device.inference.convnet.ConvNet`).

    Returns
    -------
    dict
        ``resample``, ``normalise``, ``network`` and ``total``.
    """
    stages = input_flop_count(axis, normalisation, features=False, standardise=False)
    stages["network"] = net.flop(axis.points)
    stages["total"] = sum(stages.values())
    return stages


def bundle_flop_count(bundle) -> dict:
    """FLOP per spectrum, by stage, of a bundle: its inputs (:func:`input_flop_count`) and its network."""
    stages = input_flop_count(bundle.axis, bundle.preprocess, features=bundle.features,
                              standardise=bundle.standardizer is not None)
    stages["network"] = bundle.network.flop(bundle.input_size)
    stages["total"] = sum(stages.values())
    return stages
