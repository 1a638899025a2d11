"""raman-edge firmware bridge: serial spectrometer protocols, calibration and device simulators."""
