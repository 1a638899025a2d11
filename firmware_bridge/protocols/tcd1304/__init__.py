"""Esben Rossel's TCD1304 linear-CCD firmware (Nucleo UART, or the F103 native-USB build)."""
from firmware_bridge.protocols import Protocol
from firmware_bridge.protocols.tcd1304.codec import ONE_SHOT, integration_range

PROTOCOL = Protocol(
    name="tcd1304", package=__name__, device="the TCD1304", description="Rossel's TCD1304 firmware",
    simulated_laser_nm=785.0, needs_calibration=True, firmware_generations=tuple(sorted(ONE_SHOT)),
    integration_range_s=integration_range())
