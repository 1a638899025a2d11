"""Hamamatsu C12880MA on the GroupGets example sketch: a free-running stream of CSV lines, no commands.

Its lines are those of the microspec codec with a trailing comma (:mod:`..microspec.codec`).
"""
from firmware_bridge.protocols import Protocol

PROTOCOL = Protocol(
    name="groupgets", package=__name__, device="the GroupGets sketch", description="the C12880MA GroupGets sketch",
    simulated_laser_nm=532.0, integration_range_s=None)  # the sketch's clock sets it
