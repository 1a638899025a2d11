"""The real drivers against the simulators over the sim:// pyserial URL handler."""
import time

import numpy as np
import pytest

from firmware_bridge.calibration import raman_shift, wavelength_of_shift
from firmware_bridge.errors import (
    BridgeError,
    DeviceError,
    DeviceNotAnswering,
    NackError,
    PortGoneError,
    SettingError,
    ShortFrameError,
    SpectrometerTimeout,
)
from firmware_bridge.measure import measure
from firmware_bridge.protocols.groupgets.driver import GroupGetsSpectrometer
from firmware_bridge.protocols.groupgets.simulator import GroupGetsDevice
from firmware_bridge.protocols.microspec import codec as microspec
from firmware_bridge.protocols.microspec.driver import MicrospecSpectrometer
from firmware_bridge.protocols.obp import codec as obp
from firmware_bridge.protocols.obp.driver import OBPSpectrometer
from firmware_bridge.protocols.tcd1304 import codec as tcd1304
from firmware_bridge.protocols.tcd1304.driver import TCD1304Spectrometer
from firmware_bridge.protocols.tcd1304.simulator import TCD1304_COEFFICIENTS
from firmware_bridge.registry import PROTOCOLS
from firmware_bridge.spectrometer import open_port

pytestmark = pytest.mark.device  # needs only the device extra

SETUP = {"obp": ({}, 785.0, 0.05, 4), "tcd1304": ({"coefficients": TCD1304_COEFFICIENTS}, 785.0, 0.02, 20),
         "microspec": ({}, 532.0, 0.02, 4), "groupgets": ({}, 532.0, GroupGetsDevice.INTEGRATION, 4)}


def configure(spec, seconds, averages):
    if spec.protocol != "groupgets":  # the GroupGets sketch's integration time is fixed
        spec.set_integration_time(seconds)
    spec.set_averages(averages)


def test_shift_wavelength_table():
    nm = [785.000, 797.521, 817.070, 851.872, 889.770, 931.198, 1026.815, 1048.344]
    cm = [0, 200, 500, 1000, 1500, 2000, 3000, 3200]
    np.testing.assert_allclose(raman_shift(nm, 785.0), cm, atol=0.01)
    np.testing.assert_allclose(wavelength_of_shift(cm, 785.0), nm, atol=0.001)
    assert raman_shift(851.872, 785.1) - raman_shift(851.872, 785.0) == pytest.approx(-1.62, abs=0.01)


@pytest.fixture(scope="module")
def one_sample(shipped_bundle, tmp_path_factory):
    """A scene of one real spectrum (a shipped example, 500-2000 cm-1), widened with a flat floor."""
    x, y = np.loadtxt(shipped_bundle.examples[0][0], delimiter=",").T
    path = tmp_path_factory.mktemp("scene") / "one.csv"
    grid = np.linspace(-300, 3700, 4001)
    np.savetxt(path, np.c_[grid, np.interp(grid, x, y, left=y[0], right=y[-1])], delimiter=",")
    return path


def mismatch(m, spec, laser, seconds, averages) -> tuple[float, float]:
    """(median |z|, fraction of pixels with |z| >= 6) of a measurement against the instrument's expectation."""
    device = spec.port.line.device
    inst = device.instrument
    expected = inst.expected(*device.scene.current()[:2], seconds) - inst.dark_rate * seconds
    expected = expected[np.argsort(inst.shifts())]  # the measurement is in order of shift
    noise = np.sqrt((expected + inst.dark_rate * seconds) / inst.electrons_per_count + inst.read_noise ** 2)
    if not m.meta["dark_subtracted"]:  # no laser line to take a dark frame with: raw counts
        expected = expected + inst.dark_level + inst.dark_rate * seconds
    if spec.protocol == "obp":  # dark frame subtracted: its noise adds, and the dark current cancels
        noise = np.sqrt(noise ** 2 + inst.dark_rate * seconds / inst.electrons_per_count + inst.read_noise ** 2)
    z = (m.intensity - expected) / (noise / np.sqrt(averages))
    if spec.protocol == "tcd1304":  # the shielded dark reference sets the level within a few counts
        z = z - np.median(z)
    return float(np.median(np.abs(z))), float(np.mean(np.abs(z) >= 6))


def within_noise(m, spec, laser, seconds, averages) -> bool:
    med, outside = mismatch(m, spec, laser, seconds, averages)
    return med < 1.5 and outside < 0.01


@pytest.mark.parametrize("protocol", sorted(SETUP))
def test_round_trip_scene_to_raman_shift(protocol, one_sample):
    kwargs, laser, seconds, averages = SETUP[protocol]
    with PROTOCOLS[protocol].driver()(f"sim://{protocol}?paced=0&seed=5&scene={one_sample}", **kwargs) as spec:
        configure(spec, seconds, averages)
        m = measure(spec, laser)
        assert np.all(np.diff(m.shift) > 0) and m.meta["laser_nm"] == laser
        assert within_noise(m, spec, laser, seconds, averages), mismatch(m, spec, laser, seconds, averages)
        inst = spec.port.line.device.instrument
        assert m.intensity.max() - np.median(m.intensity) > 5 * inst.read_noise  # the scene is really there
        if spec.has_laser:
            assert spec.port.line.device.laser_on is False
        # A spectrum scaled by half again, or shifted by 5 pixels, is outside the noise: the check can fail.
        for wrong in (m.intensity * 1.5, np.roll(m.intensity, 5)):
            assert not within_noise(type(m)(m.shift, wrong, m.raw, m.meta), spec, laser, seconds, averages)


@pytest.mark.parametrize("protocol", sorted(SETUP))
@pytest.mark.slow
def test_faults_give_errors_never_wrong_spectra(protocol, one_sample):
    kwargs, laser, seconds, averages = SETUP[protocol]
    outcomes = {}
    spec = PROTOCOLS[protocol].driver()(f"sim://{protocol}?paced=0&seed=11&faults=0.05&scene={one_sample}", **kwargs)
    spec.timeout_margin = 0.1  # the simulator answers at once: stalls need not be waited out long
    try:  # opened in the loop, as the service does, retrying on errors
        for _ in range(60):
            try:
                if spec.port is None or not spec.port.is_open:
                    spec.open()
                configure(spec, seconds, averages)
                m = measure(spec, laser)
            except BridgeError as exc:  # a specific error is an acceptable outcome
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
                if isinstance(exc, (PortGoneError, DeviceNotAnswering)):
                    time.sleep(0.1)  # back off before reconnecting, as the service does
                continue
            assert within_noise(m, spec, laser, seconds, averages), mismatch(m, spec, laser, seconds, averages)
            outcomes["correct"] = outcomes.get("correct", 0) + 1
    finally:
        spec.close()
    assert outcomes.get("correct", 0) >= 10, outcomes  # the driver keeps working
    assert len(outcomes) >= 2, outcomes  # faults did happen and were reported


@pytest.mark.slow
def test_obp_identity_settings_and_nacks():
    with OBPSpectrometer("sim://obp?paced=0") as spec:
        info = spec.identify()
        assert info["serial"] == "STS04211" and info["pixels"] == 1024 and spec.port.baudrate == 115200
        assert spec.port.line.device.baud == 115200
        np.testing.assert_allclose(spec.wavelengths()[[0, -1]], [779.97, 1089.86], atol=0.01)
        assert 20 < spec.temperature() < 27
        with pytest.raises(SettingError, match="exceeds an OBP device's maximum 85 s"):
            spec.set_integration_time(100)
        with pytest.raises(NackError, match="error 2 \\(unknown message type\\)") as info:
            spec._query(0x00999999)
        assert info.value.code == 2
        spec._send(obp.SET_LAMP_ENABLE, b"\x07", ack=True)
        with pytest.raises(NackError, match="payload data invalid"):
            spec._receive(obp.SET_LAMP_ENABLE, 1.0)
        assert spec.identify()["serial"] == "STS04211"  # and the driver keeps working


def test_obp_baud_switch_is_acknowledged_at_the_old_rate():
    spec = OBPSpectrometer("sim://obp?paced=0")
    spec._connect(spec.POWER_UP_BAUD)
    line = spec.port.line
    spec._command(obp.SET_RS232_BAUD_RATE, (115200).to_bytes(4, "little"))  # raises if the ack is lost
    assert line.device.baud == 115200 and line.host_baud == 9600
    spec._send(obp.GET_SERIAL_NUMBER, b"", ack=False)  # the host still at 9600: lost both ways
    with pytest.raises(SpectrometerTimeout):
        spec._receive(obp.GET_SERIAL_NUMBER, 0.1)
    spec.port.baudrate = 115200
    line.device.baud = 9600
    line.emit(b"sent at 9600")  # output from before a switch never reaches a host at the new rate
    line.device.baud = 115200
    spec.port.timeout = 0.05
    assert line.waiting() == 0 and spec.port.read(12) == b""
    assert spec.identify()["serial"] == "STS04211"
    spec.close()


@pytest.mark.slow
def test_obp_device_checks_md5_and_driver_resyncs_after_garbage():
    with OBPSpectrometer("sim://obp?paced=0") as spec:
        bad = bytearray(obp.encode(obp.Message(obp.GET_SERIAL_NUMBER, checksum_type=obp.CHECKSUM_MD5)))
        bad[30] ^= 0xFF
        spec.port.write(bytes(bad))
        with pytest.raises(NackError, match="bad checksum"):
            spec._receive(obp.GET_SERIAL_NUMBER, 1.0)
        line = spec.port.line
        spec._send(obp.GET_SERIAL_NUMBER, b"", ack=False)
        line._chunks.appendleft([0.0, 0.0, b"\x17\xc1garbage\xc1", 0, line.device.baud])  # noise before the reply
        assert spec._receive(obp.GET_SERIAL_NUMBER, 1.0).data == b"STS04211"
        line.emit(obp.encode(obp.Message(obp.GET_SERIAL_NUMBER, b"x"))[:50])  # a torn reply on the line
        assert spec.identify()["serial"] == "STS04211"


@pytest.mark.slow
def test_obp_reset_goes_silent_and_comes_back_at_9600():
    spec = OBPSpectrometer("sim://obp?paced=0")
    spec.open()
    spec._send(obp.RESET, b"", ack=False)
    assert spec.port.line.device.baud == 9600
    with pytest.raises(SpectrometerTimeout):
        spec._query(obp.GET_SERIAL_NUMBER)
    spec.port.close()
    spec.open()  # power-up rate again, switched to 115200
    assert spec.identify()["serial"] == "STS04211"
    spec.close()


@pytest.mark.slow
def test_wrong_baud_and_missing_port():
    with pytest.raises(DeviceNotAnswering, match="no OBP device answers"):
        spec = OBPSpectrometer("sim://obp?paced=0")
        spec.POWER_UP_BAUD = 19200
        spec.open()
    with pytest.raises(PortGoneError, match="ls /dev/ttyACM"):
        open_port("/dev/ttyNOSUCHPORT", 115200, 1.0)
    with TCD1304Spectrometer("sim://tcd1304?paced=0", baud=57600) as spec:
        with pytest.raises(SpectrometerTimeout, match="no TCD1304 frame"):
            spec.acquire()


@pytest.mark.slow
def test_tcd1304_rotation_short_frames_and_software_averaging():
    with TCD1304Spectrometer("sim://tcd1304?paced=0") as spec:
        spec.set_integration_time(0.01)
        with pytest.raises(SettingError):
            spec.set_integration_time(1e-6)
        spec.port.write(b"\x00")  # one stray byte: the next command's 12-byte window is rotated
        spec.port.write(tcd1304.encode_command(20000, 20000, 0, 1))
        # the window [00 'E' 'R' ... 00] rotates to 'E','R' first: a command, garbled but accepted
        assert spec.port.line.device.settings is not None
        counts, meta = spec.acquire()  # the driver drains and works again
        assert counts.shape == (3648,) and meta["inverted"] and 3000 < meta["dark_reference"] < 4095
        spec.set_averages(20)
        sent = []
        write = spec.port.write
        spec.port.write = lambda data: sent.append(bytes(data)) or write(data)
        spec.acquire()
        assert [c[11] for c in sent] == [15, 5]
        spec.port.line.device.rng = np.random.default_rng(0)
        spec.port.write = lambda data: write(data) or spec.port.line._chunks[-1].__setitem__(2, b"\x00" * 100) \
            if spec.port.line._chunks else None
        with pytest.raises((ShortFrameError, SpectrometerTimeout)):
            spec.acquire()


def test_tcd1304_firmware_2017_mode_byte():
    with TCD1304Spectrometer("sim://tcd1304?paced=0&firmware=2017", firmware="2017") as spec:
        spec.set_integration_time(0.01)
        spec.set_averages(2)
        counts, _ = spec.acquire()
        assert counts.shape == (3648,)
    with pytest.raises(SettingError):
        TCD1304Spectrometer("sim://tcd1304", firmware="2020")


def test_microspec_errors_are_device_errors():
    with MicrospecSpectrometer("sim://microspec?paced=0") as spec:
        spec.port.write(b"SPEC.INTEG\n")
        with pytest.raises(DeviceError, match="requires 1 argument"):

            microspec.parse_spectrum(spec._readline(1.0, "reply"))
        spec.set_integration_time(0.01)
        counts, _ = spec.acquire()
        assert counts.shape == (288,)
        with pytest.raises(SettingError):
            spec.set_integration_time(0)
        with pytest.raises(SettingError):
            spec.set_laser(True)


@pytest.mark.slow
def test_groupgets_stream_and_measurement_as_device_spectrum(shipped_bundle):
    from device.inference.classifier import Classifier
    from device.inference.spectrum import Spectrum

    with GroupGetsSpectrometer("sim://groupgets?paced=0") as spec:
        with pytest.raises(SettingError, match="fixed integration time"):
            spec.set_integration_time(0.1)
        m = measure(spec, 532.0)
    with OBPSpectrometer("sim://obp?paced=0") as spec:
        spec.set_integration_time(0.05)
        s = Spectrum.from_measurement(measure(spec, 785.0))
    assert s.meta["protocol"] == "obp" and s.meta["serial"] == "STS04211" and np.all(np.diff(s.shift) > 0)
    assert Classifier(shipped_bundle).classify(s).label in shipped_bundle.class_names
    assert m.intensity.shape == (288,)


@pytest.mark.parametrize("protocol", sorted(SETUP))
def test_every_driver_reports_its_full_scale(protocol):
    """The saturation checks need it: each driver's full scale is its simulated ADC's largest count."""
    from firmware_bridge.sim.serve import make_device

    kwargs, _, seconds, averages = SETUP[protocol]
    with PROTOCOLS[protocol].driver()(f"sim://{protocol}?paced=0&seed=5", **kwargs) as spec:
        configure(spec, seconds, averages)
        _, meta = spec.acquire()
    assert meta["full_scale"] == make_device(protocol).instrument.max_count


def test_a_saturated_c12880ma_spectrum_is_refused():
    """Ten seconds on the microspec sketch fill its ADC; the device's quality check says so, 20 ms does not."""
    from device.inference.quality import problems

    with MicrospecSpectrometer("sim://microspec?paced=0&seed=5") as spec:
        spec.set_averages(1)
        for seconds, saturated in ((10.0, True), (0.02, False)):
            spec.set_integration_time(seconds)
            m = measure(spec, 532.0)
            found = problems(m.intensity, m.raw, m.meta, min_snr=0)
            assert any(p.startswith("saturated") for p in found) == saturated, (seconds, found)
