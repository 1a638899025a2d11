"""The device's configuration file (TOML), checked whole before anything starts.

Example::

    [spectrometer]
    protocol = "obp"              # obp | tcd1304 | microspec | groupgets (firmware_bridge.registry)
    port = "/dev/raman-spectrometer"
    laser_nm = 785.03             # the measured laser line
    integration_s = 0.1
    averages = 4
    dark_frame = true             # devices with a laser line (OBP lamp enable)
    # baud = 115200; coefficients = [772.5, 0.086, -2.1e-6]; firmware = "2019"
    # response = "/etc/raman-edge/response.json"   # raman-bridge calibrate-response: intensity correction
    # resolution_cm1 = 22.9         # raman-device sst's fwhm_cm1: for models trained with --resolution-cm1

    [model]
    bundle = "/opt/raman-edge/models/sers-pesticides"
    backend = "numpy"             # numpy | tflite
    min_confidence = 0.8          # below it the verdict is "uncertain"
    min_snr = 5                   # a spectrum with a lower estimated SNR is refused (0: no check)

    [library]                     # optional: a reference library (raman-train library)
    path = "/opt/raman-edge/models/libraries/sers-pesticides"
    mode = "classify"             # what the button and a bare MEASURE do: classify | identify | verify
    expect = "Phosmet_present"    # the entry a bare MEASURE verifies against (mode verify)
    alpha = 0.05                  # least p-value of a PASS

    [sst]                         # optional: the system suitability test (raman-device sst, control SST)
    standard = "polystyrene"      # polystyrene | cyclohexane, in the beam when the test runs
    tolerance_cm1 = 2.0           # each band within this of its position (and its own noise)
    max_fwhm_cm1 = 35             # resolution: the bands' median width at most this
    min_snr = 20                  # the strongest band's height over the noise at least this
    validity_h = 24               # verdicts need a passed test younger than this (0: none needed)
    enforce = "refuse"            # refuse: no verdict without one; mark: verdicts carry the reason
    every_h = 0                   # run it every N hours (and at start), for a standard fixed in the beam (0: off)

    [acquisition]                 # optional: how the integration time is chosen (firmware_bridge.exposure)
    exposure = "auto"             # fixed (default): spectrometer.integration_s; auto: from a probe frame per sample
    target_fraction = 0.7         # auto: the brightest pixel at this share of the detector's range
    max_integration_s = 2.0       # auto: at most this (the device's own maximum applies too)
    probe_s = 0.01                # auto: the first probe's integration time
    stop = "adaptive"             # fixed (default): one acquisition; adaptive: scans until the verdict is certain
    min_time_s = 0                # adaptive: scan at least this long
    max_time_s = 10               # adaptive: at most this long (then the verdict as it stands, or too weak)

    [triggers]
    button_pin = 17               # GPIO (BCM numbering) of a push button to ground; optional
    control_port = "/dev/ttyAMA0" # serial line for a host or PLC; optional
    control_baud = 115200

    [outputs]
    laser_pin = 24                # GPIO gating the laser when the spectrometer has no laser line; optional
    led_ok_pin = 22               # optional status LEDs and buzzer
    led_alert_pin = 27
    buzzer_pin = 23

    [data]
    directory = "/var/lib/raman-edge"
    reserve_mb = 50               # measurements stop (and say why) when less is free; optional

    [signatures]                  # optional: bundles must carry the fleet's Ed25519 signature (raman-train sign)
    required = true               # update-model, RELOAD and service start refuse an unsigned or wrongly signed one
    public_key = "/etc/raman-edge/fleet-signing.pub"   # the fleet's public key (PEM), installed with the device

    [uplink]                      # optional: the raman-edge-uplink unit (raman-edge-uplink), not the service
    broker = "broker.example.org" # the fleet's MQTT broker (TLS, a certificate per device)
    port = 8883
    device_id = "pi-017"          # this device's name on the broker: its certificate's common name
    ca = "/etc/raman-edge/fleet-ca.pem"        # the fleet's certificate authority
    certificate = "/etc/raman-edge/device.pem" # this device's certificate and key
    key = "/etc/raman-edge/device.key"
    keepalive_s = 30              # the broker declares the device offline after 1.5 x this of silence
    status_every_s = 60           # how often the retained status is refreshed (free space, last verdict)

With a library, classify mode also unmixes each spectrum against it: a mixture of its entries is
reported as ``mixture of A + B``, never as one class. A relative bundle or library path is taken from the
configuration file's directory. Every problem is reported at
once, each with its key and the reason, as a :class:`ConfigError`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from device.errors import RamanEdgeError
from firmware_bridge.protocols import STANDARD_BAUD_RATES
from firmware_bridge.raman_standards import RAMAN_STANDARDS
from firmware_bridge.registry import PROTOCOLS, firmware_generations

BACKENDS = ("numpy", "tflite")
#: A device's name on the fleet broker: one topic level, and its certificate's common name.
DEVICE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class ConfigError(RamanEdgeError):
    """The configuration file has problems; the message lists every one with its key."""

    def __init__(self, path, problems: list[str]):
        self.problems = problems
        super().__init__(f"configuration {path} has {len(problems)} problem(s):\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class SpectrometerConfig:
    """The ``[spectrometer]`` section: protocol, serial port and baud, laser line (nm), integration (s).

    ``coefficients`` is the wavelength polynomial c0, c1, ... (nm) of a device that stores none;
    ``firmware`` the firmware generation, for a protocol that has generations (:mod:`firmware_bridge.registry`);
    ``response`` the intensity-response file of ``raman-bridge calibrate-response`` (absolute), or None;
    ``resolution_cm1`` the instrument's resolution, the FWHM of polystyrene's bands that ``raman-device sst``
    reports (cm-1), or None (:mod:`device.inference.resolution`).
    """

    protocol: str
    port: str
    laser_nm: float
    integration_s: float = 0.1
    averages: int = 1
    dark_frame: bool = True
    baud: int | None = None
    coefficients: tuple | None = None
    firmware: str | None = None
    response: Path | None = None
    resolution_cm1: float | None = None


@dataclass(frozen=True)
class ModelConfig:
    """The ``[model]`` section: the bundle directory (absolute), backend, and the thresholds of a verdict."""

    bundle: Path
    backend: str = "numpy"
    min_confidence: float = 0.8
    min_snr: float = 5.0


#: What a MEASURE does: the model's verdict, a library search, or verification against an expected entry.
MODES = ("classify", "identify", "verify")


@dataclass(frozen=True)
class LibraryConfig:
    """The ``[library]`` section: the reference library (absolute path), the default mode, its expected entry."""

    path: Path | None = None
    mode: str = "classify"
    expect: str | None = None
    alpha: float = 0.05


@dataclass(frozen=True)
class SuitabilityConfig:
    """The ``[sst]`` section: the standard, the limits, and how long a passed test lets verdicts through."""

    standard: str = "polystyrene"
    tolerance_cm1: float = 2.0
    max_fwhm_cm1: float = 35.0
    min_snr: float = 20.0
    validity_h: float = 0.0
    enforce: str = "refuse"
    every_h: float = 0.0


#: How the integration time is set: the configured one, or chosen for each sample from a probe frame.
EXPOSURES = ("fixed", "auto")
#: When a measurement ends: after one acquisition, or when the verdict is certain (device.service.acquisition).
STOPS = ("fixed", "adaptive")


@dataclass(frozen=True)
class AcquisitionConfig:
    """The ``[acquisition]`` section: how the integration time is chosen (:mod:`firmware_bridge.exposure`).

    ``exposure`` "fixed" integrates for ``spectrometer.integration_s``; "auto" probes each sample and brings
    its brightest pixel to ``target_fraction`` of the detector's range, within the device's range and at
    most ``max_integration_s``; ``probe_s`` is the first probe's integration time. ``stop`` "fixed" measures
    once (``spectrometer.averages`` frames); "adaptive" scans until the verdict is certain by the model's
    calibrated rule (:mod:`device.inference.stopping`), for ``min_time_s`` to ``max_time_s`` of scanning.
    """

    exposure: str = "fixed"
    target_fraction: float = 0.7
    max_integration_s: float = 2.0
    probe_s: float = 0.01
    stop: str = "fixed"
    min_time_s: float = 0.0
    max_time_s: float = 10.0


@dataclass(frozen=True)
class TriggerConfig:
    """The ``[triggers]`` section: a push button's GPIO (BCM) and a host's serial control line, each optional."""

    button_pin: int | None = None
    control_port: str | None = None
    control_baud: int = 115200


@dataclass(frozen=True)
class OutputConfig:
    """The ``[outputs]`` section: GPIOs (BCM) of the laser gate, status LEDs and buzzer, each optional."""

    laser_pin: int | None = None
    led_ok_pin: int | None = None
    led_alert_pin: int | None = None
    buzzer_pin: int | None = None


@dataclass(frozen=True)
class SignatureConfig:
    """``[signatures]``: whether bundles must be signed, and by whose key (:mod:`device.inference.signature`)."""

    required: bool = False
    public_key: Path | None = None


@dataclass(frozen=True)
class UplinkConfig:
    """``[uplink]``: the fleet broker the uplink publishes to (:mod:`device.uplink`); None when absent."""

    broker: str
    device_id: str
    ca: Path
    certificate: Path
    key: Path
    port: int = 8883
    keepalive_s: int = 30
    status_every_s: float = 60.0


@dataclass(frozen=True)
class Config:
    """A whole checked configuration: its sections, and the data directory with its reserve (MB)."""

    spectrometer: SpectrometerConfig
    model: ModelConfig
    triggers: TriggerConfig
    outputs: OutputConfig
    data_directory: Path
    data_reserve_mb: float = 50.0
    library: LibraryConfig = LibraryConfig()
    sst: SuitabilityConfig = SuitabilityConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()
    signatures: SignatureConfig = SignatureConfig()
    uplink: UplinkConfig | None = None


_NUMBER = (int, float)


def _name(v: str) -> bool:
    """A file or device name the system can open: not empty, no NUL character."""
    return bool(v) and "\0" not in v


def _finite_number(v) -> bool:
    """An int or float (not a bool) that is a finite float."""
    if isinstance(v, bool) or not isinstance(v, _NUMBER):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond the float range
        return False


# key: (type, required, check, reason) for each section; check None = any value of the type
_SCHEMA = {
    "spectrometer": {
        "protocol": (str, True, lambda v: v in PROTOCOLS, f"must be one of {', '.join(PROTOCOLS)}"),
        "port": (str, True, _name, "must name a serial port, e.g. /dev/ttyUSB0"),
        "laser_nm": (_NUMBER, True, lambda v: 200 <= v <= 1100, "must be the measured laser line in nm (200-1100)"),
        "integration_s": (_NUMBER, False, lambda v: 0 < v <= 3600, "must be a time in seconds (above 0, at most 3600)"),
        "averages": (int, False, lambda v: 1 <= v <= 5000, "must be a whole number from 1 to 5000"),
        "dark_frame": (bool, False, None, ""),
        "baud": (int, False, lambda v: v in STANDARD_BAUD_RATES, "must be a standard rate (9600 ... 921600)"),
        "coefficients": (list, False, lambda v: 2 <= len(v) <= 7 and all(_finite_number(c) for c in v),
                         "must be 2 to 7 finite numbers c0, c1, ... (nm)"),
        "response": (str, False, _name, "must name the response file of raman-bridge calibrate-response"),
        "resolution_cm1": (_NUMBER, False, lambda v: 0 < v <= 500,
                           "must be the FWHM of polystyrene's bands in cm-1 that raman-device sst reports (0-500)"),
        "firmware": (str, False, lambda v: v in firmware_generations(),
                     "must be " + " or ".join(f'"{g}"' for g in firmware_generations())),
    },
    "model": {
        "bundle": (str, True, _name, "must name the model bundle's directory"),
        "backend": (str, False, lambda v: v in BACKENDS, f"must be one of {', '.join(BACKENDS)}"),
        "min_confidence": (_NUMBER, False, lambda v: 0 <= v <= 1, "must be between 0 and 1"),
        "min_snr": (_NUMBER, False, lambda v: 0 <= v <= 1000, "must be between 0 (no check) and 1000"),
    },
    "library": {
        "path": (str, False, _name, "must name the reference library's directory"),
        "mode": (str, False, lambda v: v in MODES, f"must be one of {', '.join(MODES)}"),
        "expect": (str, False, lambda v: bool(v.strip()) and len(v) <= 100, "must name a library entry"),
        "alpha": (_NUMBER, False, lambda v: 0 < v < 1, "must be between 0 and 1 (exclusive)"),
    },
    "sst": {
        "standard": (str, False, lambda v: v in RAMAN_STANDARDS, f"must be one of {', '.join(RAMAN_STANDARDS)}"),
        "tolerance_cm1": (_NUMBER, False, lambda v: 0 < v <= 50, "must be between 0 and 50 cm-1"),
        "max_fwhm_cm1": (_NUMBER, False, lambda v: 0 < v <= 500, "must be between 0 and 500 cm-1"),
        "min_snr": (_NUMBER, False, lambda v: 0 <= v <= 1e6, "must be 0 or more"),
        "validity_h": (_NUMBER, False, lambda v: 0 <= v <= 10000, "must be between 0 (none needed) and 10000 hours"),
        "enforce": (str, False, lambda v: v in ("refuse", "mark"), "must be refuse or mark"),
        "every_h": (_NUMBER, False, lambda v: v == 0 or 0.01 <= v <= 10000, "must be 0 (off) or 0.01-10000 hours"),
    },
    "acquisition": {
        "exposure": (str, False, lambda v: v in EXPOSURES, f"must be one of {', '.join(EXPOSURES)}"),
        "target_fraction": (_NUMBER, False, lambda v: 0.05 <= v <= 0.95,
                            "must be between 0.05 and 0.95 of the detector's range"),
        "max_integration_s": (_NUMBER, False, lambda v: 0 < v <= 3600, "must be a time in seconds (at most 3600)"),
        "probe_s": (_NUMBER, False, lambda v: 0 < v <= 10, "must be a time in seconds (at most 10)"),
        "stop": (str, False, lambda v: v in STOPS, f"must be one of {', '.join(STOPS)}"),
        "min_time_s": (_NUMBER, False, lambda v: 0 <= v <= 3600, "must be a time in seconds (0 to 3600)"),
        "max_time_s": (_NUMBER, False, lambda v: 0 < v <= 3600, "must be a time in seconds (at most 3600)"),
    },
    "triggers": {
        "button_pin": (int, False, lambda v: 0 <= v <= 27, "must be a GPIO number 0-27 (BCM)"),
        "control_port": (str, False, _name, "must name a serial port"),
        "control_baud": (int, False, lambda v: v in (9600, 19200, 38400, 57600, 115200), "must be a standard rate"),
    },
    "outputs": {k: (int, False, lambda v: 0 <= v <= 27, "must be a GPIO number 0-27 (BCM)")
                for k in ("laser_pin", "led_ok_pin", "led_alert_pin", "buzzer_pin")},
    "signatures": {"required": (bool, False, None, ""),
                   "public_key": (str, False, _name, "must name the fleet's public key file (PEM)")},
    "uplink": {
        "broker": (str, True, lambda v: bool(v.strip()) and len(v) <= 253 and "/" not in v,
                   "must be the broker's host name or address, without a scheme"),
        "port": (int, False, lambda v: 1 <= v <= 65535, "must be a TCP port (1-65535)"),
        "device_id": (str, True, lambda v: DEVICE_ID.fullmatch(v) is not None,
                      "must be 1-64 letters, digits, '.', '_' or '-' (it is a topic level and a certificate name)"),
        "ca": (str, True, _name, "must name the fleet's CA certificate file (PEM)"),
        "certificate": (str, True, _name, "must name this device's certificate file (PEM)"),
        "key": (str, True, _name, "must name this device's private key file (PEM)"),
        "keepalive_s": (int, False, lambda v: 5 <= v <= 3600, "must be 5 to 3600 seconds"),
        "status_every_s": (_NUMBER, False, lambda v: 1 <= v <= 86400, "must be 1 to 86400 seconds"),
    },
    "data": {"directory": (str, True, _name, "must name a directory"),
             "reserve_mb": (_NUMBER, False, lambda v: 0 <= v <= 1e6, "must be between 0 and 1000000 (MB)")},
}


def _type_name(t) -> str:
    return {str: "text", int: "a whole number", bool: "true or false", list: "a list"}.get(t, "a number")


def _protocol_problems(protocol, spec: dict, acquisition: dict) -> list[str]:
    """Settings of ``spec`` and ``acquisition`` (checked keys of those sections) ``protocol``'s devices refuse."""
    problems = []
    if protocol.stores_calibration and "coefficients" in spec:
        problems.append(f"spectrometer.coefficients: {protocol.device} stores its own wavelength polynomial; "
                        "remove it")
    if protocol.needs_calibration and "coefficients" not in spec:
        problems.append(f"spectrometer.coefficients: {protocol.device} stores no calibration; give the polynomial "
                        "from 'raman-bridge calibrate'")
    if protocol.fixed_integration and "integration_s" in spec:
        problems.append(f"spectrometer.integration_s: {protocol.device}'s integration time is fixed; remove it")
    elif "integration_s" in spec and protocol.integration_problem(spec["integration_s"]):
        problems.append(f"spectrometer.integration_s: {protocol.integration_problem(spec['integration_s'])}")
    if protocol.fixed_integration and acquisition.get("exposure") == "auto":
        problems.append(f"acquisition.exposure: {protocol.device}'s integration time is fixed by its firmware, so "
                        "it cannot be chosen; set exposure = \"fixed\"")
    if spec.get("baud", protocol.default_baud) not in protocol.baud_rates:
        problems.append(f"spectrometer.baud: {protocol.device} runs at {', '.join(map(str, protocol.baud_rates))} "
                        f"baud (got {spec['baud']})")
    if "firmware" in spec and spec["firmware"] not in protocol.firmware_generations:
        having = [p.device for p in PROTOCOLS.values() if spec["firmware"] in p.firmware_generations]
        problems.append(f"spectrometer.firmware: only {' and '.join(having)} has firmware generations; remove it")
    return problems


def parse_config(text: str, path="<config>") -> Config:
    """Check and parse the text of a configuration file.

    Raises
    ------
    ConfigError
        Listing every problem: TOML syntax, unknown sections or keys, missing keys, wrong types, values
        out of range, and settings that do not fit together.
    """
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        problem = "a whole number has thousands of digits; settings are short numbers"
        raise ConfigError(path, [f"not valid TOML for this service: {problem}"]) from None
    except RecursionError:
        problem = "arrays or tables are nested too deeply; settings need no nesting"
        raise ConfigError(path, [f"not valid TOML for this service: {problem}"]) from None
    problems = [f"[{s}]: unknown section (known: {', '.join(_SCHEMA)})" for s in raw if s not in _SCHEMA]
    values = {}
    for section, keys in _SCHEMA.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            problems.append(f"[{section}]: must be a table")
            continue
        problems += [f"{section}.{k}: unknown key (known: {', '.join(keys)})" for k in table if k not in keys]
        for key, (kind, required, check, reason) in keys.items():
            name = f"{section}.{key}"
            if key not in table:
                if required and (section in raw or section != "uplink"):  # [uplink] is optional as a whole
                    problems.append(f"{name}: missing")
                continue
            v = table[key]
            ok_type = isinstance(v, kind) and not (kind in (int, _NUMBER) and isinstance(v, bool))
            if not ok_type:
                problems.append(f"{name}: must be {_type_name(kind)}, not {v!r}")
            elif check is not None and not check(v):
                problems.append(f"{name}: {reason} (got {v!r})")
            else:
                values[name] = v
    spec = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("spectrometer.")}
    section = lambda s: {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(s + ".")}  # noqa: E731
    if "protocol" in spec:
        problems += _protocol_problems(PROTOCOLS[spec["protocol"]], spec, section("acquisition"))
    acquisition = section("acquisition")
    if acquisition.get("min_time_s", 0.0) > acquisition.get("max_time_s", AcquisitionConfig.max_time_s):
        problems.append(f"acquisition.min_time_s: longer than max_time_s ({acquisition['min_time_s']:g} s > "
                        f"{acquisition.get('max_time_s', AcquisitionConfig.max_time_s):g} s); lower it or raise "
                        "max_time_s")
    library = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("library.")}
    if library.get("mode", "classify") != "classify" and "path" not in library:
        problems.append(f"library.mode: {library['mode']} needs a library; give library.path")
    if library.get("mode") == "verify" and "expect" not in library:
        problems.append("library.expect: mode verify needs the entry to verify against; give library.expect")
    signatures = section("signatures")
    if signatures.get("required") and "public_key" not in signatures:
        problems.append("signatures.public_key: required = true needs the fleet's public key; give its file")
    uplink = section("uplink")
    if "uplink" in raw and isinstance(raw["uplink"], dict) and not all(
            k in uplink for k in ("broker", "device_id", "ca", "certificate", "key")):
        uplink = None  # its missing keys are reported above
    if problems:
        raise ConfigError(path, problems)
    if "coefficients" in spec:
        spec["coefficients"] = tuple(float(c) for c in spec["coefficients"])
    base = Path(path).parent if path != "<config>" else Path(".")
    model = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("model.")}
    model["bundle"] = (base / model["bundle"]).resolve() if not Path(model["bundle"]).is_absolute() \
        else Path(model["bundle"])
    if "response" in spec:
        spec["response"] = (base / spec["response"]).resolve() if not Path(spec["response"]).is_absolute() \
            else Path(spec["response"])
    if "path" in library:
        library["path"] = (base / library["path"]).resolve() if not Path(library["path"]).is_absolute() \
            else Path(library["path"])
    if "public_key" in signatures:
        signatures["public_key"] = _from(base, signatures["public_key"])
    for key in ("ca", "certificate", "key"):
        if uplink:
            uplink[key] = _from(base, uplink[key])
    return Config(SpectrometerConfig(**spec), ModelConfig(**model), TriggerConfig(**section("triggers")),
                  OutputConfig(**section("outputs")), Path(values["data.directory"]),
                  float(values.get("data.reserve_mb", 50.0)), LibraryConfig(**library),
                  SuitabilityConfig(**section("sst")), AcquisitionConfig(**section("acquisition")),
                  SignatureConfig(**signatures), UplinkConfig(**uplink) if uplink else None)


def _from(base: Path, name: str) -> Path:
    """A path of the configuration: relative ones are taken from the configuration file's directory."""
    return Path(name) if Path(name).is_absolute() else (base / name).resolve()


def load_config(path) -> Config:
    """Read and check a configuration file (see :func:`parse_config`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read the file ({exc})"]) from None
    return parse_config(text, path)
