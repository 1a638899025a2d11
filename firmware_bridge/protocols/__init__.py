"""The spectrometer protocols, one package each, and :class:`Protocol`, what each declares about itself.

Every protocol package holds ``codec`` (bytes <-> values, no I/O) where it has its own, ``driver`` (a
:class:`~firmware_bridge.spectrometer.Spectrometer` subclass named ``DRIVER``), ``simulator`` (a function
``simulated_device(scene, seed, laser_nm, firmware)``), and in its ``__init__`` its :class:`Protocol`.
:mod:`firmware_bridge.registry` lists them.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

#: Standard UART rates: what a serial port (and a pty) can be set to.
STANDARD_BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


@dataclass(frozen=True)
class Protocol:
    """What a protocol's devices can do, as the configuration, the service and the command line ask it.

    Attributes
    ----------
    name : str
        The name in configuration files, on the command line and in ``sim://NAME`` URLs.
    package : str
        The protocol's package, holding its ``driver`` and ``simulator`` modules (imported on first use).
    device : str
        How messages name the device, e.g. ``"an OBP device"``.
    description : str
        One line for help texts.
    baud_rates : tuple of int
        Baud rates its devices can use.
    default_baud : int
        Baud rate of a driver when none is configured.
    stores_calibration : bool
        The device holds its wavelength polynomial, so none may be configured.
    needs_calibration : bool
        Neither the device nor its driver knows a wavelength polynomial: one must be configured.
    integration_range_s : (float, float) or None
        Shortest and longest integration time its devices accept, s (at the driver's default clock);
        None when the firmware fixes it, so none may be set.
    has_laser : bool
        The device switches the laser itself (a line a dark frame can be taken with).
    firmware_generations : tuple of str
        Generations of firmware that differ on the line (empty: one only).
    simulated_laser_nm : float
        The laser line of its simulated device when none is given, nm.
    """

    name: str
    package: str
    device: str
    description: str
    simulated_laser_nm: float
    baud_rates: tuple = STANDARD_BAUD_RATES
    default_baud: int = 115200
    stores_calibration: bool = False
    needs_calibration: bool = False
    integration_range_s: tuple | None = None
    has_laser: bool = False
    firmware_generations: tuple = ()

    @property
    def fixed_integration(self) -> bool:
        """The firmware fixes the integration time: none may be set."""
        return self.integration_range_s is None

    def integration_problem(self, seconds: float, range_s: tuple | None = None) -> str | None:
        """What is wrong with integrating for ``seconds`` on this protocol's devices, or None.

        ``range_s`` is a driver's own range where its clock differs from the default one.
        """
        range_s = range_s or self.integration_range_s
        if range_s is None:
            return f"{self.device}'s integration time is fixed by its firmware"
        shortest, longest = range_s
        if not isinstance(seconds, (int, float)) or seconds != seconds:
            return f"integration time {seconds} is not a number of seconds"
        if seconds < shortest:
            return f"integration time {seconds * 1e6:g} us is below {self.device}'s minimum {shortest * 1e6:g} us"
        if seconds > longest:
            return f"integration time {seconds:g} s exceeds {self.device}'s maximum {longest:g} s"
        return None

    def driver(self) -> type:
        """The protocol's driver class (a :class:`~firmware_bridge.spectrometer.Spectrometer`)."""
        return import_module(f"{self.package}.driver").DRIVER

    def firmware_problem(self, firmware: str | None) -> str | None:
        """What is wrong with asking for ``firmware`` (a generation, or None for the default), or None."""
        if firmware is None or firmware in self.firmware_generations:
            return None
        if not self.firmware_generations:
            return f"{self.device} has no firmware generations; give no firmware"
        return f"{self.device} has no firmware {firmware!r}; choose {' or '.join(self.firmware_generations)}"

    def simulated_device(self, scene, seed: int = 0, laser_nm: float | None = None, firmware: str | None = None):
        """A simulated device of this protocol looking at ``scene`` (a :class:`~firmware_bridge.sim.instrument.Scene`).

        Raises
        ------
        ValueError
            ``firmware`` is not one of :attr:`firmware_generations` (:meth:`firmware_problem`).
        """
        problem = self.firmware_problem(firmware)
        if problem:
            raise ValueError(problem)
        simulator = import_module(f"{self.package}.simulator")
        return simulator.simulated_device(scene, seed, self.simulated_laser_nm if laser_nm is None else laser_nm,
                                          firmware)
