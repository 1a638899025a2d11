"""The device's inference core: spectrum in, verdict out, on NumPy alone.

Spectra and axes (:mod:`~device.inference.spectrum`, :mod:`~device.inference.validation`), resampling,
preprocessing chains, the engineered features, the network kinds (dense and convolutional), the model
bundle, the classifier and its backends, the unknown-sample score, the quality checks, the operation
count and the spectrum-file readers. Nothing here touches a serial port, a record or a service.
"""
