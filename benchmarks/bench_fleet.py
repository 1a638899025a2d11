"""Fleet benchmark: collector ingest, end-to-end latency and the uplink's memory, on one local Mosquitto.

Run with ``make bench-fleet``. Everything is real but the devices' services: Mosquitto with the fleet's
configuration (TLS, a certificate per device, the access list), ``raman-fleet collect`` into SQLite, and
``--devices`` lightweight device clients (one TLS connection and identity each), all on this machine.
Every message is a real measurement payload: one the measuring service recorded (OBP simulator, the
shipped SERS model and library: spectrum, analysis, unmixing evidence), renumbered per message.

1. **Ingest.** The collector's session exists (it subscribed once) but the collector is stopped; the
   devices publish ``--per-device`` measurements each (QoS 1, every one acknowledged by the broker). Then
   ``raman-fleet collect`` starts and the time from its connection to the last commit gives its ingest
   rate; once for the full measurement, once for the same without its evidence arrays. Baseline in the
   same run: a bare subscriber that drains the same backlog and only counts (``fleet-admin``'s own
   session): what the broker and one Python MQTT client deliver at all.
2. **Latency.** The collector runs; every device publishes one measurement per ``--period`` s for
   ``--seconds`` s, each stamped when published; latency = the collector's commit time minus that stamp.
3. **The real uplink.** One ``raman-edge-uplink`` process reads a real record, to which this process
   commits a measurement every 0.5 s during phase 2: latency from the record's commit to the central
   commit (the uplink's poll of the record included), and the uplink's memory (VmHWM, peak resident),
   beside a bare Python interpreter that imports the same MQTT client (baseline).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.service.config import parse_config  # noqa: E402
from device.service.measurement import Service  # noqa: E402
from device.service.record import (  # noqa: E402
    RECORD_FILE,  # noqa: E402
    Record,
    RecordStore,
)
from device.uplink import messages  # noqa: E402
from device.uplink.connection import connect_async, tls_client  # noqa: E402
from fleet import pki  # noqa: E402
from fleet.broker import BrokerProcess, free_port  # noqa: E402
from fleet.database import FleetDatabase  # noqa: E402

HOST = "127.0.0.1"
TIMEOUT = 300.0
#: Targets of the fleet (docs/fleet.md): ingest into SQLite, and the uplink's memory on the device.
INGEST_TARGET, UPLINK_MB_TARGET = 5000.0, 40.0


def real_payload(directory: Path) -> tuple[bytes, Record]:
    """A measurement the service records (classify with the shipped library: unmixing evidence), as sent."""
    cfg = parse_config(f'[spectrometer]\nprotocol = "obp"\nport = "sim://obp?paced=0&seed=4"\nlaser_nm = 785.0\n'
                       f'integration_s = 0.05\n[model]\nbundle = "{ROOT / "models/sers-pesticides"}"\n'
                       f'[library]\npath = "{ROOT / "models/libraries/sers-pesticides"}"\n'
                       f'[data]\ndirectory = "{directory}"\n')
    service = Service(cfg)
    assert service.measure("control-port")["ok"]
    service.close()
    record = RecordStore(directory / RECORD_FILE)
    (stored,) = record.stored_after(0, 1)
    return messages.measurement_payload("template", "0" * 32, stored), record.last()


def renumbered(template: dict, device: str, store: str, n: int, stamp: float) -> bytes:
    return json.dumps({**template, "device": device, "store": store, "id": n, "time": stamp},
                      separators=(",", ":")).encode()


class Devices:
    """``n`` lightweight device clients, each connected with its own certificate."""

    def __init__(self, pki_dir: Path, n: int, port: int):
        self.names = [f"bench-{i:03d}" for i in range(n)]
        self.clients = []
        connected = threading.Semaphore(0)
        for name in self.names:
            client = tls_client(name, pki_dir / "ca.pem", pki_dir / f"{name}.pem", pki_dir / f"{name}.key")
            client.max_inflight_messages_set(100)
            client.on_connect = lambda c, u, f, rc, p: connected.release()
            connect_async(client, HOST, port, persistent=False)
            client.loop_start()
            self.clients.append(client)
        for _ in self.names:
            assert connected.acquire(timeout=TIMEOUT), "a device client did not connect"

    def publish(self, device: int, payload: bytes):
        return self.clients[device].publish(messages.measurements_topic(self.names[device]), payload, qos=1)

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()


def wait_published(infos, what: str) -> None:
    for info in infos:
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"the broker did not acknowledge every {what}"


def subscribe_once(pki_dir: Path, identity: str, port: int) -> None:
    """Make ``identity``'s persistent session with its subscription to every device, then leave."""
    client = tls_client(identity, pki_dir / "ca.pem", pki_dir / f"{identity}.pem", pki_dir / f"{identity}.key")
    done = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(messages.DEVICES_FILTER, qos=1)
    client.on_subscribe = lambda *a: done.set()
    connect_async(client, HOST, port)
    client.loop_start()
    assert done.wait(TIMEOUT), f"{identity} did not subscribe"
    client.disconnect()
    client.loop_stop()


def drain_bare(pki_dir: Path, port: int, n: int) -> float:
    """Seconds for a bare subscriber (``fleet-admin``'s session) to receive ``n`` queued messages."""
    client = tls_client("fleet-admin", pki_dir / "ca.pem", pki_dir / "fleet-admin.pem", pki_dir / "fleet-admin.key")
    count, done, start = [0], threading.Event(), []

    def on_message(c, u, m):
        count[0] += 1
        if count[0] >= n:
            done.set()
    client.on_connect = lambda *a: start.append(time.perf_counter())
    client.on_message = on_message
    connect_async(client, HOST, port)
    client.loop_start()
    assert done.wait(TIMEOUT), f"the bare subscriber got {count[0]} of {n}"
    elapsed = time.perf_counter() - start[0]
    client.disconnect()
    client.loop_stop()
    return elapsed


def collector_process(pki_dir: Path, port: int, db: Path) -> tuple[subprocess.Popen, float]:
    """``raman-fleet collect``, once it has subscribed, and when (perf_counter) it said it had connected.

    A session's backlog comes as soon as it connects, so that is when its ingest starts.
    """
    proc = subprocess.Popen([sys.executable, "-m", "fleet.cli", "collect", "--db", str(db), "--broker", HOST,
                             "--port", str(port), "--ca", str(pki_dir / "ca.pem"), "--cert",
                             str(pki_dir / "collector.pem"), "--key", str(pki_dir / "collector.key")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stamp = None
    for line in proc.stdout:
        if line.startswith("collect: connected"):
            stamp = time.perf_counter()
        if line.startswith("collect: subscribed"):
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keeps the pipe drained
            return proc, stamp
    raise RuntimeError("raman-fleet collect ended before it subscribed")


def wait_count(db: FleetDatabase, n: int) -> float:
    """perf_counter when the fleet database holds ``n`` measurements (looked at every 10 ms)."""
    deadline = time.monotonic() + TIMEOUT
    while db.count() < n:
        assert time.monotonic() < deadline, f"{db.count()} of {n} measurements stored"
        time.sleep(0.01)
    return time.perf_counter()


def memory_mb(pid: int) -> tuple[float, float, float]:
    """(peak resident VmHWM, resident VmRSS, unique USS) of a process, MB.

    USS, the pages no other process maps (``Private_*`` of ``smaps_rollup``), is what the device gets back
    when the process ends: the interpreter's and NumPy's code it shares with the measuring service is not
    in it.
    """
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    peak, rss = (int(re.search(rf"{k}:\s+(\d+) kB", status).group(1)) / 1024 for k in ("VmHWM", "VmRSS"))
    uss = sum(int(v) for v in re.findall(r"Private_(?:Clean|Dirty):\s+(\d+) kB", rollup)) / 1024
    return peak, rss, uss


def bare_interpreter_mb() -> float:
    """Peak resident memory of a Python that imports the MQTT client and ssl and does nothing else, MB."""
    code = ("import re, ssl, paho.mqtt.client; s = open('/proc/self/status').read(); "
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', s).group(1)))")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout) / 1024


def uplink_config(directory: Path, pki_dir: Path, port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "raman-edge.toml"
    path.write_text(f'[spectrometer]\nprotocol = "obp"\nport = "/dev/null"\nlaser_nm = 785.0\n'
                    f'[model]\nbundle = "{ROOT / "models/sers-pesticides"}"\n[data]\ndirectory = "{directory}"\n'
                    f'[uplink]\nbroker = "{HOST}"\nport = {port}\ndevice_id = "bench-uplink"\n'
                    f'ca = "{pki_dir / "ca.pem"}"\ncertificate = "{pki_dir / "bench-uplink.pem"}"\n'
                    f'key = "{pki_dir / "bench-uplink.key"}"\n')
    return path


def percentiles(x) -> str:
    x = 1e3 * np.asarray(x)
    return f"{np.median(x):.0f} ms | {np.percentile(x, 99):.0f} ms | {x.max():.0f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=200, help="lightweight device clients")
    ap.add_argument("--per-device", type=int, default=100, help="measurements each publishes in the ingest phase")
    ap.add_argument("--period", type=float, default=2.0, help="seconds between a device's measurements (latency)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the latency phase, s")
    args = ap.parse_args()
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("error: the benchmark needs Mosquitto: apt-get install mosquitto", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pki_dir = tmp / "pki"
        pki.init(pki_dir)
        for name in ["collector", "fleet-admin", "bench-uplink"] + [f"bench-{i:03d}" for i in range(args.devices)]:
            pki.issue_client(pki_dir, name)
        port = free_port(HOST)
        broker = BrokerProcess(pki_dir, tmp / "broker", port, HOST)
        broker.start()
        template_bytes, template_rec = real_payload(tmp / "template")
        template = json.loads(template_bytes)
        try:
            result = run(args, tmp, pki_dir, port, template, template_rec)
        finally:
            broker.stop()
    report(args, result)
    return 0


def ingest(args, devices: Devices, pki_dir: Path, port: int, template: dict, store: str, db_path: Path,
           db: FleetDatabase) -> tuple[float, float, int]:
    """(bare subscriber s, collector s, measurements) for a backlog of ``template`` published while both are away."""
    n = args.devices * args.per_device
    infos = [devices.publish(d, renumbered(template, devices.names[d], store, k + 1, time.time()))
             for k in range(args.per_device) for d in range(args.devices)]
    wait_published(infos, "backlog measurement")
    bare = drain_bare(pki_dir, port, n)
    before = db.count()
    collector, subscribed = collector_process(pki_dir, port, db_path)
    took = wait_count(db, before + n) - subscribed
    collector.terminate()
    collector.wait(TIMEOUT)
    return bare, took, n


def run(args, tmp: Path, pki_dir: Path, port: int, template: dict, template_rec: Record) -> dict:
    out = {}
    subscribe_once(pki_dir, "collector", port)
    subscribe_once(pki_dir, "fleet-admin", port)
    devices = Devices(pki_dir, args.devices, port)
    db_path = tmp / "fleet.db"
    db = FleetDatabase(db_path)
    out["full"] = ingest(args, devices, pki_dir, port, template, "1" * 32, db_path, db)
    lean = {**template, "evidence": None}
    out["lean"] = ingest(args, devices, pki_dir, port, lean, "3" * 32, db_path, db)
    out["sizes"] = [len(renumbered(t, "bench-000", "1" * 32, 1, 0.0)) for t in (template, lean)]
    n = sum(out[k][2] for k in ("full", "lean"))
    collector, _ = collector_process(pki_dir, port, db_path)

    # 2 and 3: steady load from every device, and one real uplink reading a real record
    config = uplink_config(tmp / "device", pki_dir, port)
    record = RecordStore(tmp / "device" / RECORD_FILE)
    uplink = subprocess.Popen([sys.executable, "-m", "device.uplink.cli", "--config", str(config)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()

    def measure_on_the_device():
        while not stop.wait(0.5):
            rec = Record(**{**template_rec.__dict__, "id": None, "time": None})
            record.add(rec)
    writer = threading.Thread(target=measure_on_the_device, daemon=True)
    writer.start()
    steps = int(args.seconds / args.period)
    t0, sent = time.perf_counter(), []
    for step in range(steps):
        for d in range(args.devices):
            due = t0 + (step + d / args.devices) * args.period
            time.sleep(max(0.0, due - time.perf_counter()))
            sent.append(devices.publish(d, renumbered(template, devices.names[d], "2" * 32, step + 1, time.time())))
    wait_published(sent, "steady measurement")
    stop.set()
    writer.join()
    recorded = record.count()
    wait_count(db, n + len(sent) + recorded)
    out["uplink_peak_mb"], out["uplink_rss_mb"], out["uplink_uss_mb"] = memory_mb(uplink.pid)
    uplink.terminate()
    uplink.wait(TIMEOUT)
    collector.terminate()
    collector.wait(TIMEOUT)
    devices.close()
    rows = db.measurements()
    out["steady"] = [m["received"] - m["time"] for m in rows if m["store"] == "2" * 32]
    out["uplink"] = [m["received"] - m["time"] for m in rows if m["device"] == "bench-uplink"]
    out["rate"] = len(sent) / args.seconds
    out["bare_mb"] = bare_interpreter_mb()
    out["duplicates"] = db.count() - (n + len(sent) + recorded)
    return out


def report(args, r: dict) -> None:
    print(f"machine: {os.cpu_count()} cores; Mosquitto (TLS, a certificate per client), {args.devices} device "
          "clients; every payload a real measurement (OBP simulator, shipped model and library)\n")
    print("| ingest of a backlog | payload | measurements | seconds | per second | MB/s | target |")
    print("|---|---|---|---|---|---|---|")
    for key, what, size in (("full", "spectrum, analysis, unmixing evidence", r["sizes"][0]),
                            ("lean", "the same without its evidence arrays", r["sizes"][1])):
        bare_s, took, n = r[key]
        print(f"| bare subscriber, counting only (baseline) | {what}, {size / 1024:.0f} KiB | {n} | {bare_s:.2f} | "
              f"{n / bare_s:.0f} | {n * size / bare_s / 1e6:.0f} | |")
        rate = n / took
        print(f"| **raman-fleet collect into SQLite** | {what}, {size / 1024:.0f} KiB | {n} | {took:.2f} | "
              f"**{rate:.0f}** ({rate * bare_s / n:.2f} x baseline) | {n * size / took / 1e6:.0f} | "
              f">= {INGEST_TARGET:.0f}: {'met' if rate >= INGEST_TARGET else 'NOT met'} |")
    print("\n| latency, commit to central commit | measurements | median | p99 | max |\n|---|---|---|---|---|")
    print(f"| {args.devices} device clients, {r['rate']:.0f}/s in all (published -> stored) | {len(r['steady'])} | "
          f"{percentiles(r['steady'])} |")
    print(f"| the real uplink (record commit -> stored), beside them | {len(r['uplink'])} | "
          f"{percentiles(r['uplink'])} |")
    print("\n| memory of the uplink | peak (VmHWM) | resident at the end | unique (USS) | target |")
    print("|---|---|---|---|---|")
    print(f"| bare Python importing the MQTT client (baseline) | {r['bare_mb']:.1f} MB | | | |")
    print(f"| **raman-edge-uplink** | **{r['uplink_peak_mb']:.1f} MB** ({r['uplink_peak_mb'] / r['bare_mb']:.2f} x "
          f"baseline) | {r['uplink_rss_mb']:.1f} MB | {r['uplink_uss_mb']:.1f} MB | <= {UPLINK_MB_TARGET:.0f} MB: "
          f"{'met' if r['uplink_peak_mb'] <= UPLINK_MB_TARGET else 'NOT met'} |")
    print(f"\nduplicates stored centrally: {r['duplicates']}")


if __name__ == "__main__":
    sys.exit(main())
