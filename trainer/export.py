"""Export of a trained network to TFLite, and the three-way check run at every export."""
from __future__ import annotations

import numpy as np

from device.errors import RamanEdgeError
from device.inference.backends import TFLiteBackend
from trainer.quiet import native_stderr_muted, tensorflow

#: Largest tolerated difference between any two backends' probabilities at export.
PARITY_TOLERANCE = 1e-5


class ExportCheckError(RamanEdgeError):
    """The trained model (Keras or scikit-learn), TFLite and NumPy disagree on the exported model."""


def tflite_bytes(layers, leaky_slope: float, input_size: int) -> bytes:
    """Convert dense layers to a float32 TFLite flatbuffer with a dynamic batch dimension.

    The network is rebuilt from the exported weights as a TensorFlow concrete function and converted
    from that (not from the Keras model), which sidesteps Keras 3's fragile ``from_keras_model`` and
    guarantees that the TFLite file holds exactly the weights written to ``model.npz``.
    """
    tf = tensorflow()
    weights = [(tf.constant(np.asarray(layer.kernel, np.float32)), tf.constant(np.asarray(layer.bias, np.float32)),
                layer.activation) for layer in layers]

    @tf.function(input_signature=[tf.TensorSpec([None, input_size], tf.float32, name="inputs")])
    def network(x):
        for kernel, bias, act in weights:
            x = tf.matmul(x, kernel) + bias
            if act == "leaky_relu":
                x = tf.nn.leaky_relu(x, alpha=leaky_slope)
            elif act == "relu":
                x = tf.nn.relu(x)
            elif act == "softmax":
                x = tf.nn.softmax(x)
        return x

    owner = tf.Module()
    owner.network = network
    converter = tf.lite.TFLiteConverter.from_concrete_functions([network.get_concrete_function()], owner)
    return converter.convert()


def tflite_convnet_bytes(net, points: int) -> bytes:
    """Convert a :class:`~device.inference.convnet.ConvNet` to a float32 TFLite flatbuffer, inputs (batch, points).

    Built, like :func:`tflite_bytes`, as a concrete function from the exported (folded) weights.
    """
    from device.inference.convnet import Conv, MaxPool, Residual

    tf = tensorflow()

    const = lambda a: tf.constant(np.asarray(a, np.float32))  # noqa: E731

    def conv(x, c: Conv):
        y = tf.nn.conv1d(x, const(c.kernel), stride=c.stride, padding="SAME") + const(c.bias)
        return tf.nn.relu(y) if c.activation == "relu" else y

    @tf.function(input_signature=[tf.TensorSpec([None, points], tf.float32, name="inputs")])
    def network(x):
        x = tf.expand_dims(x, -1)
        for op in net.body:
            if isinstance(op, Conv):
                x = conv(x, op)
            elif isinstance(op, MaxPool):
                x = tf.nn.max_pool1d(x, op.size, op.size, "VALID")
            elif isinstance(op, Residual):
                h = conv(conv(x, op.conv1), op.conv2)
                if op.se is not None:
                    z = tf.nn.relu(tf.matmul(tf.reduce_mean(h, axis=1), const(op.se.w1)) + const(op.se.b1))
                    h = h * tf.expand_dims(tf.sigmoid(tf.matmul(z, const(op.se.w2)) + const(op.se.b2)), 1)
                x = tf.nn.relu(h + (conv(x, op.shortcut) if op.shortcut is not None else x))
        return tf.nn.softmax(tf.matmul(tf.reduce_mean(x, axis=1), const(net.head_kernel)) + const(net.head_bias))

    owner = tf.Module()
    owner.network = network
    converter = tf.lite.TFLiteConverter.from_concrete_functions([network.get_concrete_function()], owner)
    return converter.convert()


def export_check(keras_probs: np.ndarray, Z: np.ndarray, numpy_probs: np.ndarray, tflite: bytes,
                 reference: str = "keras") -> dict:
    """Compare the trained model's (Keras, or scikit-learn), TFLite and NumPy probabilities on the same inputs.

    Parameters
    ----------
    keras_probs : ndarray, shape (n, C)
        The trained model's output on ``Z`` (the outside oracle), by the library ``reference`` names.
    Z : ndarray, shape (n, D)
    numpy_probs : ndarray, shape (n, C)
        The device's NumPy forward pass of the exported weights on ``Z``.
    tflite : bytes
        The exported TFLite model.
    reference : str
        Name of the trained model's library in the result: ``keras`` or ``scikit-learn``.

    Returns
    -------
    dict
        Maximum absolute differences, argmax agreement, the TFLite runtime used and ``passed``.

    Raises
    ------
    ExportCheckError
        If any two differ by more than :data:`PARITY_TOLERANCE` or pick a different class.
    """
    with native_stderr_muted():
        backend = TFLiteBackend(tflite, Z.shape[1])
        tflite_probs = backend.probabilities(Z)
    probs = {reference: keras_probs, "tflite": tflite_probs, "numpy": numpy_probs}
    pairs = [(reference, "tflite"), (reference, "numpy"), ("tflite", "numpy")]
    diff = {f"{a}_vs_{b}": float(np.abs(probs[a] - probs[b]).max()) for a, b in pairs}
    agree = {f"{a}_vs_{b}": bool(np.array_equal(probs[a].argmax(1), probs[b].argmax(1))) for a, b in pairs}
    result = {"spectra": int(Z.shape[0]), "tflite_runtime": backend.provider, "max_abs_difference": diff,
              "identical_argmax": agree, "tolerance": PARITY_TOLERANCE,
              "passed": all(v <= PARITY_TOLERANCE for v in diff.values()) and all(agree.values())}
    if not result["passed"]:
        raise ExportCheckError(f"exported backends disagree: {result}")
    return result
