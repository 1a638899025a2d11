"""Error types of the firmware bridge: each names what went wrong on the line and what to do."""


class BridgeError(Exception):
    """Base class of every error raised on purpose by the firmware bridge."""


class SettingError(BridgeError, ValueError):
    """A requested setting is outside what the device or its protocol allows."""


class SpectrometerTimeout(BridgeError):
    """The device did not answer within the time its protocol's timing model allows."""


class ShortFrameError(BridgeError):
    """A reply ended before the length its protocol requires."""


class FramingError(BridgeError):
    """Bytes on the line do not form a valid frame (bad start, footer, length or value range)."""


class ChecksumError(FramingError):
    """A frame's checksum does not match its content."""


class NackError(BridgeError):
    """The device refused a message (OBP NACK), with its decoded error number."""

    def __init__(self, code: int, meaning: str, message_type: int):
        self.code, self.meaning, self.message_type = code, meaning, message_type
        super().__init__(f"device refused message 0x{message_type:08X}: error {code} ({meaning})")


class DeviceError(BridgeError):
    """The device reported an error in its own words (text protocols)."""


class DeviceNotAnswering(BridgeError):
    """The device stays silent, e.g. after a reset or at the wrong baud rate."""


class PortGoneError(BridgeError):
    """The serial port disappeared (unplugged cable, device reset, USB power)."""


class SpikeError(BridgeError):
    """A single pixel jumps far out of line with its neighbours: a transmission error or a cosmic ray."""


class TooBrightError(BridgeError):
    """The sample saturates the detector even at the shortest integration time: the laser must be turned down."""


class LaserError(BridgeError):
    """The laser could not be switched off: a safety problem, reported above every other error."""


class CalibrationError(BridgeError, ValueError):
    """A calibration spectrum does not show the reference: too few lines found, or residuals too large."""


class SpectrumFileError(BridgeError, ValueError):
    """A spectrum file cannot be read or parsed."""


class SpectrumFileWarning(UserWarning):
    """A spectrum file was read past an inconsistency it states (e.g. a JCAMP-DX ``##FIRSTY`` off the data)."""
