"""Hamamatsu C12880MA on the open-eio microspec sketch: text commands over USB serial."""
from firmware_bridge.protocols import Protocol

PROTOCOL = Protocol(
    name="microspec", package=__name__, device="the microspec sketch", description="the C12880MA microspec sketch",
    simulated_laser_nm=532.0, integration_range_s=(10e-6, 10.0))
