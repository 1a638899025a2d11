"""The fleet's dashboard: its figure (fleet/plot.py) and its pages, in Flask's test client and in a real Chromium.

The database is filled the way the collector fills it: records, as the device keeps them, go through the
payload builders and readers of device/uplink/messages.py into :meth:`FleetDatabase.store`. One device
sends markup and formulas wherever a device may put text, and nothing of it may run or be read as markup:
the HTML holds it escaped, the browser's DOM holds no element of it (the Content-Security-Policy would stop
a script anyway, so the DOM is what proves the escaping), and no dialog opens.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import flask
import numpy as np
import pytest
import waitress
from helpers import payload_of

from device.service.record import Record, iso_time
from device.uplink import messages
from fleet.dashboard import PAGE_SIZE, create_app, csv_row, spreadsheet_safe
from fleet.database import DatabaseError, FleetDatabase
from fleet.plot import LEFT, RIGHT, SPECTRUM, WIDTH, Frame, measurement_svg, thinned, ticks

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "correct-horse-battery-staple-42"
SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'
FORMULA = '=HYPERLINK("http://example.invalid","x")'
SVG = "{http://www.w3.org/2000/svg}"
#: 2026-11-20T00:00:00Z: the measurements are spread over the four days from it.
DAY0 = datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp()
SHIFT = np.linspace(200.0, 2000.0, 800)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def peaks(centres, heights, x=SHIFT, width=12.0, baseline=50.0):
    return baseline + sum(h * np.exp(-0.5 * ((x - c) / width) ** 2) for c, h in zip(centres, heights))


def classify_record(i: int, verdict: str) -> Record:
    axis = np.linspace(500.0, 1800.0, 400)
    relevance = np.exp(-0.5 * ((axis - 1001.0) / 8) ** 2) - 0.3 * np.exp(-0.5 * ((axis - 1450.0) / 10) ** 2)
    return Record(trigger="button", device={"protocol": "obp", "serial": "STS04211", "integration_s": 0.7},
                  shift=SHIFT, intensity=peaks([1001, 1450, 620], [900 + i, 400, 250]), model="sers-pesticides@da35",
                  probabilities={verdict: 0.97, "Blank": 0.03}, verdict=verdict, confidence=0.97,
                  analysis={"mode": "classify", "relevance": "gradient",
                            "bands": [{"shift": 1001.0, "weight": 1.0}, {"shift": 1450.0, "weight": 0.4}]},
                  evidence={"axis": axis, "sample": peaks([1001, 1450], [1.0, 0.5], axis, baseline=0.0),
                            "relevance": relevance},
                  time=DAY0 + i * 3600.0)


def identify_record(i: int, names=("PET", "PS"), trigger="socket", verdict="PET", model=None) -> Record:
    axis = np.linspace(400.0, 1900.0, 300)
    sample = peaks([1615, 1725, 860], [1.0, 0.8, 0.4], axis, baseline=0.0)
    hits = [peaks([1615, 1725, 860], [1.0, 0.7, 0.5], axis, baseline=0.0),
            peaks([1001, 1602], [1.0, 0.6], axis, baseline=0.0)]
    return Record(trigger=trigger, device={"protocol": "tcd1304", "serial": "T-9"}, shift=SHIFT,
                  intensity=peaks([1615, 1725, 860], [500, 420, 200]), model=model, verdict=verdict,
                  analysis={"mode": "identify", "library": "polymers@0c1d2e3f4a5b",
                            "hits": [{"name": names[0], "hqi": 93.1}, {"name": names[1], "hqi": 41.7}],
                            "match": True, "no_match_below": 70.0,
                            "mixture": {"components": [{"name": names[0], "fraction": 0.8},
                                                       {"name": names[1], "fraction": 0.2}],
                                        "residual": 0.012, "statistic": 9.1, "threshold": 4.0, "is_mixture": True}},
                  evidence={"axis": axis, "sample": sample, "hit.0": hits[0], "hit.1": hits[1],
                            "fit": 0.8 * hits[0] + 0.2 * hits[1], "component.0": 0.8 * hits[0],
                            "component.1": 0.2 * hits[1], "background": np.full_like(axis, 0.01),
                            "residual": sample - 0.8 * hits[0] - 0.2 * hits[1]},
                  time=DAY0 + 86400.0 + i * 1800.0)


def received(device: str, records: list[Record]) -> list[tuple[dict, bytes]]:
    """``records`` of one device's record file as the collector has them: built, sent, read back."""
    store = uuid.uuid4().hex
    for n, rec in enumerate(records, 1):
        rec.id = n
    payloads = [payload_of(rec, device, store) for rec in records]
    return [(messages.read_measurement(p, device), p) for p in payloads]


def status(device: str, **fields) -> dict:
    return messages.read_status(messages.status_payload(device, DAY0 + 4 * 86400.0, **fields), device)


def fill(path: Path) -> dict:
    """A fleet database of four devices, one gone offline; the records of each (the tests' expected answers)."""
    sers = [classify_record(i, "Phosmet_present" if i % 3 else "Blank") for i in range(60)]
    sers.append(Record(trigger="button", device={"protocol": "obp"}, error="PortGoneError: cannot open /dev/ttyUSB0",
                       time=DAY0 + 3 * 86400.0))
    polymers = [identify_record(i) for i in range(6)]
    evil = [identify_record(0, names=(SCRIPT, IMAGE), trigger=IMAGE, verdict=SCRIPT, model=IMAGE),
            Record(trigger=SCRIPT, device={"protocol": SCRIPT}, error=FORMULA, time=DAY0 + 2 * 86400.0 + 60)]
    db = FleetDatabase(str(path))
    db.store(received("pi-017", sers) + received("pi-022", polymers) + received("evil-1", evil),
             [status("pi-017", software="0.18.0", model="sers-pesticides@da35", free_mb=10240.5, records=61,
                     sent=61, rollout={"id": "r-20261204-0001", "bundle": "sers-pesticides@0123456789ab",
                                       "result": "installed", "reason": None, "time": DAY0}),
              status("pi-022", software="0.18.0", free_mb=512.0, records=6, sent=6,
                     rollout={"id": "r-20261204-0002", "bundle": "polymers@0c1d2e3f4a5b", "result": "refused",
                              "reason": "the signature does not verify", "time": DAY0}),
              status("evil-1", software=SCRIPT, model=IMAGE, free_mb=1.0,
                     rollout={"id": IMAGE, "bundle": SCRIPT, "result": SCRIPT, "reason": IMAGE, "time": DAY0}),
              status("pi-031", software="0.17.2", model="microplastics@77aa", free_mb=800.0)],
             received=DAY0 + 4 * 86400.0)
    db.store([], [messages.read_status(messages.offline_payload("pi-031", DAY0 + 5 * 86400.0), "pi-031")],
             received=DAY0 + 5 * 86400.0)
    db.close()
    return {"pi-017": sers, "pi-022": polymers, "evil-1": evil}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    path = tmp_path_factory.mktemp("fleet") / "fleet.db"
    return path, fill(path)


@pytest.fixture
def client(fleet):
    return create_app(str(fleet[0]), TOKEN).test_client()


def logged_in(client):
    assert client.post("/login", data={"token": TOKEN}).status_code == 302
    return client


def points(polyline) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in polyline.get("points").split()])


# --- the figure -------------------------------------------------------------------------------------------
def test_the_polyline_maps_shift_and_intensity_onto_the_frame():
    intensity = peaks([1001, 1450], [900, 400])
    root = ET.fromstring(measurement_svg(SHIFT, intensity))
    line = root.find(f".//{SVG}polyline[@class='spectrum']")
    assert line is not None and line.get("stroke") == SPECTRUM
    frame = root.find(f".//{SVG}rect[@class='frame']")
    left, top, width, height = (float(frame.get(k)) for k in ("x", "y", "width", "height"))
    xy = points(line)
    assert xy.shape == (SHIFT.size, 2)
    # x: the shift's range spans the frame exactly, linearly (to the 0.1 px the points are written with)
    np.testing.assert_allclose(xy[:, 0], left + (SHIFT - SHIFT[0]) / (SHIFT[-1] - SHIFT[0]) * width, atol=0.051)
    # y: linear in intensity, upwards, inside the frame
    slope, offset = np.polyfit(intensity, xy[:, 1], 1)
    assert slope < 0 and np.abs(slope * intensity + offset - xy[:, 1]).max() < 0.1
    assert top < xy[:, 1].min() and xy[:, 1].max() < top + height
    assert xy[np.argmax(intensity), 1] == xy[:, 1].min()
    # the tick labels stand where the line puts their values (cm-1 along x, intensity along y)
    x_ticks = [(float(t.text), float(t.get("x"))) for t in root.iter(f"{SVG}text") if t.get("class") == "x-tick"]
    assert [v for v, _ in x_ticks] == [200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800, 2000]
    for value, x in x_ticks:
        assert x == pytest.approx(np.interp(value, SHIFT, xy[:, 0]), abs=0.06)
    y_ticks = [(float(t.text), float(t.get("y")) - 3.5) for t in root.iter(f"{SVG}text") if t.get("class") == "y-tick"]
    assert len(y_ticks) >= 3
    for value, y in y_ticks:
        assert y == pytest.approx(slope * value + offset, abs=0.15)
    assert any(t.text == "Raman shift (cm-1)" for t in root.iter(f"{SVG}text"))


def test_the_evidence_layers_of_each_analysis():
    rec = identify_record(0)
    root = ET.fromstring(measurement_svg(rec.shift, rec.intensity, rec.analysis, rec.evidence))
    classes = [p.get("class") for p in root.iter(f"{SVG}polyline")]
    for layer in ("spectrum", "hit hit-0", "hit hit-1", "fit", "component component-0", "component component-1",
                  "background", "residual"):
        assert layer in classes, layer
    assert classes.count("sample") == 3  # under each hit's row, and in the mixture panel
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "1. PET HQI 93.1" in labels and "2. PS HQI 41.7" in labels and "PET 0.80" in labels
    assert sum(g.get("class") == "panel" for g in root.iter(f"{SVG}g")) == 4  # measured, hits, mixture, residual
    hit = points(root.find(f".//{SVG}polyline[@class='hit hit-1']"))
    assert hit.shape == (rec.evidence["axis"].size, 2)  # drawn on the evidence's own axis

    verify = {"mode": "verify", "expected": "PS", "result": "FAIL", "p_value": 0.001, "alpha": 0.05}
    root = ET.fromstring(measurement_svg(rec.shift, rec.intensity, verify, rec.evidence))
    assert [p.get("class") for p in root.iter(f"{SVG}polyline")] == ["spectrum", "sample", "hit hit-0"]
    assert "PS (expected)" in [t.text for t in root.iter(f"{SVG}text")]
    assert "verify PS: FAIL" in [t.text for t in root.iter(f"{SVG}text")]

    rec = classify_record(0, "Phosmet_present")
    root = ET.fromstring(measurement_svg(rec.shift, rec.intensity, rec.analysis, rec.evidence))
    bands = [b for b in root.iter(f"{SVG}line") if b.get("class") == "band"]
    assert len(bands) == 4  # the two bands, on the sample and on the relevance map
    assert sorted(t.text for t in root.iter(f"{SVG}text") if t.get("class") == "band-label") == [
        "1001", "1450", "1: 1001", "2: 1450"]
    shaded = [p for p in root.iter(f"{SVG}polygon") if p.get("class") == "relevance"]
    assert len(shaded) == 2 and all(p.get("fill-opacity") for p in shaded)

    without_map = {k: v for k, v in rec.evidence.items() if k != "relevance"}
    root = ET.fromstring(measurement_svg(rec.shift, rec.intensity, rec.analysis, without_map))
    assert sum(g.get("class") == "panel" for g in root.iter(f"{SVG}g")) == 1
    assert sum(b.get("class") == "band" for b in root.iter(f"{SVG}line")) == 2  # marked on the measured spectrum


def test_device_text_is_escaped_and_malformed_evidence_is_left_out():
    rec = identify_record(0, names=(SCRIPT, IMAGE))
    evidence = {**rec.evidence, "hit.1": np.ones(7), "component.0": np.ones(3)}  # of the wrong shape
    analysis = {**rec.analysis, "library": SCRIPT, "bands": "not a list"}
    analysis["hits"] = ["not a hit", *analysis["hits"], {"name": IMAGE, "hqi": "high"}]
    evidence = {**evidence, "hit.2": evidence.pop("hit.0")}  # each hit.N stays with the N-th entry of hits
    svg = measurement_svg(rec.shift, rec.intensity, analysis, evidence, title=SCRIPT)
    assert SCRIPT not in svg and IMAGE not in svg and "<img" not in svg
    root = ET.fromstring(svg)  # well-formed: the markup stayed text
    assert not [e for e in root.iter() if e.tag in (f"{SVG}script", f"{SVG}img", "script", "img")]
    texts = [t.text for t in root.iter() if t.text]
    assert f"3. {IMAGE} HQI 41.7" in texts and f"4. {IMAGE}" not in texts and root.find(f"{SVG}title").text == SCRIPT
    classes = [p.get("class") for p in root.iter(f"{SVG}polyline")]
    assert "hit hit-2" in classes and "hit hit-1" not in classes and "hit hit-0" not in classes
    assert "component component-0" not in classes and "component component-1" in classes


def test_thinning_keeps_what_shows():
    x = np.linspace(100.0, 3200.0, 50_000)
    y = np.sin(x / 7.0) + (np.abs(x - 1234.5) < 0.05) * 10.0  # a spike one point wide
    frame = Frame(0, 0, 100, 100, 100.0, 3200.0, -1.0, 11.0)
    tx, ty = thinned(frame, x, y)
    assert tx.size <= 200 and ty.max() == y.max() and ty.min() == y.min()
    assert np.all(np.diff(tx) >= 0) and tx[0] == x[0]
    few = np.linspace(0.0, 1.0, 150)
    assert thinned(frame, few, few)[0] is few  # fewer than two a pixel column: as they are
    svg = measurement_svg(x, y)
    xy = points(ET.fromstring(svg).find(f".//{SVG}polyline[@class='spectrum']"))
    assert len(xy) <= 2 * (WIDTH - LEFT - RIGHT) and len(svg) < 60_000


def test_ticks_are_round_and_cover_the_range():
    values, decimals = ticks(200.0, 2000.0, 9)
    assert values.tolist() == [200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800, 2000] and decimals == 0
    values, decimals = ticks(-0.013, 0.061, 4)
    assert values.tolist() == pytest.approx([0.0, 0.02, 0.04, 0.06]) and decimals == 2
    values, _ = ticks(12.0, 13.0)
    assert values[0] >= 12.0 and values[-1] <= 13.0 and len(values) >= 4


# --- the pages, in Flask's test client --------------------------------------------------------------------
def test_every_page_needs_the_token(client):
    page = client.get("/measurements?device=pi-017")
    assert page.status_code == 302 and "/login?next=" in page.headers["Location"]
    refused = client.post("/login", data={"token": TOKEN[:-1] + "x", "next": "/"})
    assert refused.status_code == 401 and b"Wrong token" in refused.data
    assert client.get("/").status_code == 302  # still not logged in
    assert client.get("/measurements.csv").status_code == 401
    wrong = client.get("/", headers={"Authorization": "Bearer " + TOKEN + "x"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/", headers={"Authorization": "Bearer " + TOKEN}).status_code == 200
    assert client.get("/", headers={"Authorization": "Basic " + TOKEN}).status_code == 401
    done = client.post("/login", data={"token": TOKEN, "next": "//elsewhere.example/"})
    assert done.status_code == 302 and done.headers["Location"] == "/"  # no redirection off the site
    assert client.get("/").status_code == 200
    assert client.post("/logout").status_code == 302 and client.get("/").status_code == 302


def test_a_short_token_or_a_missing_database_is_refused(fleet, tmp_path):
    with pytest.raises(ValueError, match="at least 16 characters"):
        create_app(str(fleet[0]), "short")
    with pytest.raises(DatabaseError, match="no fleet database"):
        create_app(str(tmp_path / "none.db"), TOKEN)
    assert not (tmp_path / "none.db").exists()


def test_device_text_is_escaped_on_every_page(client):
    logged_in(client)
    evil = [m["seq"] for m in FleetDatabase(client.application.config["FLEET_DATABASE"]).measurements(
        device="evil-1")]
    for url in ["/", "/measurements", "/measurements?device=evil-1", *(f"/measurements/{s}" for s in evil)]:
        page = client.get(url)
        assert page.status_code == 200, url
        body = page.get_data(as_text=True)
        assert SCRIPT not in body and "<img" not in body and "onerror=alert(1)>" not in body, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, url
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in client.get(f"/measurements/{evil[-1]}").get_data(True)
    with client.application.test_request_context():  # the check can fail: unescaped, the markup would be there
        assert SCRIPT in flask.render_template_string("{{ text|safe }}", text=SCRIPT)


def test_the_list_filters_and_pages(client, fleet):
    logged_in(client)
    expected = fleet[1]

    def rows(url):
        page = client.get(url)
        assert page.status_code == 200, url
        return re.findall(r'<td class="device">(.*?)</td>\s*<td class="verdict">(.*?)</td>', page.get_data(True))

    everything = len(expected["pi-017"]) + len(expected["pi-022"]) + len(expected["evil-1"])
    assert len(rows("/measurements")) == PAGE_SIZE and everything > PAGE_SIZE
    assert len(rows("/measurements?page=2")) == everything - PAGE_SIZE
    found = rows("/measurements?device=pi-017&verdict=Blank")
    assert found == [("pi-017", "Blank")] * sum(r.verdict == "Blank" for r in expected["pi-017"])
    day = [(device, r.verdict) for device, records in expected.items() for r in records
           if DAY0 + 86400.0 <= r.time < DAY0 + 2 * 86400.0]  # 2026-11-21, UTC
    shown = rows("/measurements?from=2026-11-21&to=2026-11-21")
    assert len(shown) == len(day) < everything and {d for d, _ in shown} == {"pi-017", "pi-022", "evil-1"}
    assert ("evil-1", "&lt;script&gt;alert(1)&lt;/script&gt;") in shown
    assert len(rows("/measurements?from=2026-11-22")) == sum(r.time >= DAY0 + 2 * 86400.0
                                                             for records in expected.values() for r in records)
    assert client.get("/measurements?from=21.11.2026").status_code == 400
    assert client.get("/measurements?page=0").status_code == 400
    assert client.get("/measurements/99999").status_code == 404


def test_the_devices_page(client):
    logged_in(client)
    body = client.get("/").get_data(as_text=True)
    rows = re.findall(r"<tr>\s*<td><a [^>]*>([^<]*)</a></td>\s*<td class=\"(online|offline)\">", body)
    assert rows == [("evil-1", "online"), ("pi-017", "online"), ("pi-022", "online"), ("pi-031", "offline")]
    for text in ("10.0 GB", "0.18.0", "installed: sers-pesticides@0123456789ab (r-20261204-0001)",
                 "512 MB", iso_time(DAY0 + 4 * 86400.0), iso_time(DAY0 + 5 * 86400.0)):
        assert text in body, text
    pi_022 = body[body.index(">pi-022<"):]
    assert "<td>PET</td>" in pi_022 and "refused: polymers@0c1d2e3f4a5b (r-20261204-0002): the signature" in pi_022


def test_downloads_guard_formulas_and_carry_the_spectra(client, fleet):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    table = list(csv.reader(io.StringIO(client.get("/measurements.csv?device=evil-1", headers=headers)
                                        .get_data(as_text=True))))
    assert table[0][:4] == ["seq", "device", "store", "record_id"] and len(table) == 3
    failed, identified = (dict(zip(table[0], row)) for row in table[1:])
    assert failed["error"] == "'" + FORMULA and failed["trigger"] == SCRIPT and failed["verdict"] == ""
    assert identified["verdict"] == SCRIPT and identified["model"] == IMAGE and identified["mode"] == "identify"
    assert spreadsheet_safe("-1+2") == "'-1+2" and spreadsheet_safe(-1.5) == -1.5 and spreadsheet_safe("PET") == "PET"
    lines = client.get("/measurements.jsonl?device=pi-022", headers=headers).get_data(as_text=True).splitlines()
    sent = sorted(fleet[1]["pi-022"], key=lambda r: -r.time)
    assert len(lines) == len(sent)
    for line, rec in zip(lines, sent):
        m = json.loads(line)
        assert m["device"] == "pi-022" and m["record_id"] == rec.id and m["time"] == rec.time
        np.testing.assert_array_equal(np.float32(m["intensity"]), rec.intensity.astype(np.float32))
        np.testing.assert_array_equal(np.float32(m["evidence"]["hit.1"]), rec.evidence["hit.1"].astype(np.float32))
        assert m["analysis"] == rec.analysis


def test_an_analysis_a_device_garbled_is_shown_as_such(tmp_path):
    db = FleetDatabase(str(tmp_path / "fleet.db"))
    rec = identify_record(0)
    rec.analysis = {"mode": "identify", "hits": [{"name": "PET"}], "mixture": {"components": "x"}}
    db.store(received("pi-030", [rec]), [], received=DAY0)
    db.close()
    client = logged_in(create_app(str(tmp_path / "fleet.db"), TOKEN).test_client())
    assert "analysis not readable" in client.get("/measurements").get_data(as_text=True)
    page = client.get("/measurements/1")
    assert page.status_code == 200 and "<polyline" in page.get_data(as_text=True)
    row = csv_row(FleetDatabase(str(tmp_path / "fleet.db")).measurements()[0])
    assert row[-1] == "analysis not readable"


def test_arrays_a_device_sent_damaged_are_named_not_drawn(tmp_path):
    db = FleetDatabase(str(tmp_path / "fleet.db"))
    (fields, payload), = received("pi-031", [identify_record(0)])
    damaged = json.loads(payload)
    damaged["spectrum"]["intensity"] = {"f4": "!!!!" * (len(damaged["spectrum"]["intensity"]["f4"]) // 4)}
    payload = json.dumps(damaged).encode()
    db.store([(messages.read_measurement(payload, "pi-031"), payload)], [], received=DAY0)
    db.close()
    client = logged_in(create_app(str(tmp_path / "fleet.db"), TOKEN).test_client())
    page = client.get("/measurements/1").get_data(as_text=True)
    assert "cannot be read (spectrum.intensity is not valid base64)" in page and "<polyline" not in page


def test_no_route_writes(client, fleet):
    path = fleet[0]

    def digest():
        return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
                for p in (path, path.with_name(path.name + "-wal"))]  # (readers mark their place in -shm)

    before = digest()
    logged_in(client)
    for url in ["/", "/measurements", "/measurements?device=pi-017&page=2", "/measurements/1", "/measurements/62",
                "/measurements.csv", "/measurements.jsonl"]:
        assert client.get(url).status_code == 200, url
    assert digest() == before
    methods = {m for rule in client.application.url_map.iter_rules() for m in rule.methods} - {"HEAD", "OPTIONS"}
    posts = {rule.endpoint for rule in client.application.url_map.iter_rules() if "POST" in rule.methods}
    assert methods == {"GET", "POST"} and posts == {"dashboard.login", "dashboard.logout"}


# --- served, in a real browser ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(fleet):
    server = waitress.create_server(create_app(str(fleet[0]), TOKEN), host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    server.task_dispatcher.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path="/usr/bin/chromium",
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900}, device_scale_factor=1,
            accept_downloads=False)
        yield context
        context.close()


def colour_pixels(png: np.ndarray, colour: str, box=None, tolerance=0.04) -> int:
    """How many pixels of ``png`` (as imread gives it) in ``box`` (x, y, w, h) are of ``colour`` (#rrggbb)."""
    rgb = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    if box is not None:
        x, y, w, h = (int(round(v)) for v in box)
        png = png[y:y + h, x:x + w]
    return int((np.abs(png[..., :3] - rgb).max(axis=-1) < tolerance).sum())


@pytest.mark.slow
def test_in_chromium(served, browser, fleet, tmp_path):
    from matplotlib.image import imread

    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(served + "/")
    assert "/login" in page.url
    page.fill("#token", "not-the-token-at-all-0000")
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as response:
        page.click("form.login button[type=submit]")
    assert response.value.status == 401 and "Wrong token" in page.inner_text("main")
    page.fill("#token", TOKEN)
    page.click("form.login button[type=submit]")
    page.wait_for_selector("table#devices")
    rows = page.locator("table#devices tbody tr")
    assert rows.count() == 4
    devices = page.inner_text("table#devices")
    assert "pi-017\tonline\tsers-pesticides@da35\t0.18.0" in devices and "10.0 GB" in devices
    assert "pi-031\toffline\tmicroplastics@77aa" in devices and "refused: polymers@0c1d2e3f4a5b" in devices
    assert SCRIPT in devices and IMAGE in devices  # shown as text

    page.click("header nav >> text=Measurements")
    page.select_option("select[name=device]", "pi-017")
    page.fill("input[name=verdict]", "Blank")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*device=pi-017.*verdict=Blank"))
    shown = page.locator("table#measurements tbody tr")
    blank = sum(r.verdict == "Blank" for r in fleet[1]["pi-017"])
    assert shown.count() == blank > 0
    assert set(page.locator("td.device").all_inner_texts()) == {"pi-017"}
    assert set(page.locator("td.verdict").all_inner_texts()) == {"Blank"}

    page.goto(served + "/measurements?device=evil-1")
    assert page.locator("td.verdict").all_inner_texts()[1] == SCRIPT
    page.locator("table#measurements tbody tr a").nth(1).click()
    page.wait_for_selector("figure.plot svg polyline.spectrum")
    text = page.inner_text("main")
    assert SCRIPT in text and IMAGE in text and "Library hits" in text
    assert page.locator("script").count() == 0 and page.locator("img").count() == 0

    page.goto(served + "/measurements?device=pi-017&verdict=Phosmet_present")
    page.locator("table#measurements tbody tr a").first.click()
    svg = page.locator("figure.plot svg")
    svg.wait_for()
    assert page.locator("figure.plot svg polyline.spectrum").count() == 1
    assert page.locator("figure.plot svg line.band").count() == 4
    screenshot = tmp_path / "measurement.png"
    page.screenshot(path=str(screenshot), full_page=True)
    png = imread(str(screenshot))
    frame = page.locator("figure.plot svg rect.frame").first.bounding_box()
    box = (frame["x"], frame["y"], frame["width"], frame["height"])
    assert colour_pixels(png, SPECTRUM, box) > 300  # the spectrum drawn in its plot area ...
    header = page.locator("header").bounding_box()
    assert colour_pixels(png, SPECTRUM, (0, 0, header["width"], header["height"])) == 0  # ... and not everywhere
    flat = png[..., :3].reshape(-1, 3)
    assert (flat.min(axis=1) < 0.9).mean() > 0.03 and len(np.unique((flat * 255).astype(int), axis=0)) > 50

    assert dialogs == []  # nothing a device sent ran; and a dialog would have been seen:
    page.evaluate("alert('probe')")
    assert dialogs == ["probe"]
    page.close()


@pytest.mark.slow
def test_downloads_over_http_with_the_token(served, fleet):
    def get(path, token):
        request = urllib.request.Request(served + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers, response.read().decode()

    headers, text = get("/measurements.csv?device=pi-017&from=2026-11-20&to=2026-11-20", TOKEN)
    assert headers["Content-Type"].startswith("text/csv") and "attachment" in headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(text)))
    day = [r for r in fleet[1]["pi-017"] if r.time < DAY0 + 86400.0]
    assert len(table) == len(day) == 24 and {r["device"] for r in table} == {"pi-017"}
    assert [datetime.fromisoformat(r["time"]).timestamp() for r in table] == sorted((r.time for r in day),
                                                                                    reverse=True)
    assert "shift" not in table[0] and "intensity" not in table[0]
    _, text = get("/measurements.jsonl?verdict=Phosmet_present&device=pi-017", TOKEN)
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == sum(r.verdict == "Phosmet_present" for r in fleet[1]["pi-017"])
    assert all(len(m["shift"]) == SHIFT.size and m["verdict"] == "Phosmet_present" for m in lines)
    np.testing.assert_array_equal(np.float32(lines[0]["shift"]), SHIFT.astype(np.float32))
    with pytest.raises(urllib.error.HTTPError) as refused:
        get("/measurements.csv", TOKEN + "-wrong")
    assert refused.value.code == 401 and b"token is missing or wrong" in refused.value.read()


@pytest.mark.slow
def test_serve_logs_where_and_serves(fleet):
    code = ("import sys; from fleet.dashboard import serve; "
            "serve(sys.argv[1], '127.0.0.1', 0, sys.argv[2], log=lambda m: print(m, flush=True))")
    process = subprocess.Popen([sys.executable, "-c", code, str(fleet[0]), TOKEN], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline()
        assert "(read-only)" in line and str(fleet[0]) in line
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        request = urllib.request.Request(url + "measurements.csv", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and len(response.read().decode().splitlines()) == 70
    finally:
        process.terminate()
        process.wait(10)
