"""pyserial URL handlers of the firmware bridge: ``sim://`` serves a simulated spectrometer.

Importing this package registers it with pyserial (:func:`register`), after which
``serial.serial_for_url("sim://obp?seed=1")`` opens a simulated OBP device.
"""
import serial


def register() -> None:
    """Make ``serial.serial_for_url`` understand ``sim://``.

    pyserial looks for ``protocol_sim`` in the packages of ``serial.protocol_handler_packages``.
    """
    if __name__ not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(__name__)


register()
