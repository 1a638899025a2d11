"""Ocean STS-class spectrometers over RS-232 with the Ocean Binary Protocol (OBP)."""
from firmware_bridge.protocols import Protocol
from firmware_bridge.protocols.obp.codec import BAUD_RATES

PROTOCOL = Protocol(
    name="obp", package=__name__, device="an OBP device", description="Ocean Binary Protocol (STS, Spark)",
    simulated_laser_nm=785.0, baud_rates=BAUD_RATES, stores_calibration=True,
    has_laser=True, integration_range_s=(10e-6, 85.0))  # the lamp-enable line gates the laser driver
