"""raman-edge trainer: data loading, training, evaluation and export of model bundles (workstation side)."""
import os

# TensorFlow 2.21's oneDNN CPU kernels corrupt the heap (abort or segfault) when training the 1-D
# convolutional models on some batch shapes (e.g. 17 spectra of 2,721 points tiled into batches of 32);
# the default kernels are as fast here. Set before TensorFlow is first imported; an explicit setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# TensorFlow's own INFO and WARNING lines; its start-up lines need more (trainer/quiet.py).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
