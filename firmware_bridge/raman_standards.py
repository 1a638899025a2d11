"""The Raman shift standards' band positions (cm-1), for calibration and the system suitability test.

Kept apart from :mod:`firmware_bridge.calibration` so that reading a configuration needs no NumPy.
"""

#: Raman bands of the usual standards, cm-1 (ASTM E1840 values as customarily quoted; check them
#: against the standard's certificate before relying on them).
RAMAN_STANDARDS = {
    "polystyrene": (620.9, 795.8, 1001.4, 1031.8, 1155.3, 1450.5, 1583.1, 1602.3, 2852.4, 2904.5, 3054.3),
    "cyclohexane": (384.1, 426.3, 801.3, 1028.3, 1157.6, 1266.4, 1444.4, 2664.4, 2852.9, 2923.8, 2938.3),
}
