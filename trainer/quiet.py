"""TensorFlow, Keras and the TFLite interpreter without their native start-up lines on stderr.

On a machine without a GPU, importing TensorFlow prints absl and CUDA lines ("All log messages before
absl::InitializeLog() ...", "Could not find cuda drivers", "failed call to cuInit: ... CUDA error") and
creating a TFLite interpreter prints "Created TensorFlow Lite XNNPACK delegate". They come from C++
straight to file descriptor 2: the absl lines before ``TF_CPP_MIN_LOG_LEVEL`` applies, the cuInit error
at ERROR level (which only level 3 hides, together with TensorFlow's real errors); an empty
``CUDA_VISIBLE_DEVICES`` does not stop the probe. Here that descriptor points at ``/dev/null`` while
TensorFlow is imported and probes its devices (the CUDA probe then happens inside, not at the first
training step) and while an interpreter is created. Python exceptions are unaffected: they are raised
after the descriptor is back.
"""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_muted():
    """Point file descriptor 2 at ``/dev/null`` for the block, then restore it (Python's ``sys.stderr`` too)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def tensorflow():
    """The ``tensorflow`` module, imported with its native start-up lines muted and its devices probed."""
    with native_stderr_muted():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
    return tf


def keras():
    """The ``keras`` module, on a TensorFlow imported by :func:`tensorflow`."""
    tensorflow()
    import keras as k

    return k
