"""The registry of spectrometer protocols: the one list of them, and the one way to build a driver.

Configuration checks, the measurement service, ``raman-bridge`` and the simulators ask it what a
protocol's devices can do (:class:`~firmware_bridge.protocols.Protocol`). Adding a protocol: a package
under :mod:`firmware_bridge.protocols` and its ``PROTOCOL`` in :data:`PROTOCOLS`.
"""
from __future__ import annotations

from firmware_bridge.errors import SettingError
from firmware_bridge.protocols import Protocol, groupgets, microspec, obp, tcd1304

#: Every supported protocol by name, in the order help texts list them.
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (obp.PROTOCOL, tcd1304.PROTOCOL, microspec.PROTOCOL,
                                                      groupgets.PROTOCOL)}


def protocol(name: str) -> Protocol:
    """The registered protocol called ``name``.

    Raises
    ------
    SettingError
        No protocol has that name.
    """
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError):
        raise SettingError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}") from None


def firmware_generations() -> tuple[str, ...]:
    """Every firmware generation any protocol has, sorted."""
    return tuple(sorted({g for p in PROTOCOLS.values() for g in p.firmware_generations}))


def make_driver(name: str, url: str, baud: int | None = None, coefficients=None, firmware: str | None = None):
    """A driver (not yet open) for a device of protocol ``name`` at ``url``.

    Parameters
    ----------
    name : str
        A registered protocol.
    url : str
        Serial port or ``sim://`` URL.
    baud : int, optional
        Default: the protocol's :attr:`~firmware_bridge.protocols.Protocol.default_baud`.
    coefficients : sequence of float, optional
        Wavelength polynomial, nm, pixel from 0; refused where the device stores its own.
    firmware : str, optional
        Firmware generation, for protocols that have several (default: the driver's).

    Raises
    ------
    SettingError
        An unknown protocol, or a setting the protocol's devices do not take.
    """
    spec = protocol(name)
    kwargs = {"baud": spec.default_baud if baud is None else baud}
    if coefficients is not None:
        if spec.stores_calibration:
            raise SettingError(f"{spec.device} stores its own wavelength polynomial; give no coefficients")
        kwargs["coefficients"] = tuple(coefficients)
    problem = spec.firmware_problem(firmware)
    if problem:
        raise SettingError(problem)
    if firmware is not None:
        kwargs["firmware"] = firmware
    return spec.driver()(url, **kwargs)
