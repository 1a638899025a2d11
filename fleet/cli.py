"""``raman-fleet``: the central side of a fleet (docs/fleet.md).

Certificates, the broker's configuration, the collector and its database, the dashboard, and rollouts.
"""
from __future__ import annotations

import argparse
import sys

from firmware_bridge.commandline import add_subcommand, refuse_existing


def port(text: str) -> int:
    """An argparse type: a TCP port, 1-65535."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"takes a port number 1-65535; got {text!r}")
    return int(text)


def cmd_pki_init(args) -> int:
    """Make the CA and the broker's certificate."""
    from fleet.pki import DEFAULT_HOSTS, init

    init(args.dir, args.hosts or DEFAULT_HOSTS, force=args.force)
    print(f"{args.dir}: ca.pem, ca.key, crl.pem, broker.pem, broker.key (for {', '.join(args.hosts or DEFAULT_HOSTS)})")
    return 0


def cmd_pki_issue(args) -> int:
    """Issue one client certificate per identity, all names checked before any is written."""
    from fleet.pki import check_identity, issue_client

    for name in args.names:
        check_identity(name)
    for name in dict.fromkeys(args.names):
        print(issue_client(args.dir, name, force=args.force))
    return 0


def cmd_pki_revoke(args) -> int:
    """Revoke identities: their certificates go into the CRL, their files are deleted."""
    from fleet.pki import revoke

    for name in args.names:
        print(f"{name}: certificate {revoke(args.dir, name):x} revoked; restart the broker to apply")
    return 0


def cmd_broker_config(args) -> int:
    """Write the broker's configuration, access list and persistence directory."""
    from fleet.broker import write_config

    conf = write_config(args.pki, args.out, port=args.port, bind=args.bind, user=args.user, force=args.force)
    print(f"{conf} (run: mosquitto -c {conf})")
    return 0


def _interruptible(part) -> int:
    """Run ``part`` (with ``run()`` and ``stop()``) until SIGTERM or Ctrl-C, which stop it cleanly."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: part.stop())
    return part.run()


def cmd_collect(args) -> int:
    """Store every device's measurements and status until SIGTERM."""
    from fleet.collector import Collector
    from fleet.database import FleetDatabase

    collector = Collector(FleetDatabase(args.db), args.broker, args.port, args.ca, args.cert, args.key,
                          log=lambda msg: print(msg, flush=True))
    return _interruptible(collector)


def cmd_status(args) -> int:
    """List the devices: online, model, last seen, measurements, last verdict."""
    import json

    from device.service.record import iso_time
    from fleet.database import FleetDatabase

    devices = FleetDatabase(args.db).devices()
    if args.format == "json":
        for d in devices:
            print(json.dumps({**d, "last_seen": iso_time(d["last_seen"])}))
        return 0
    from device.cli import table

    heads = ("device", "state", "model", "last seen (UTC)", "measurements", "last verdict", "rollout")
    rows = [dict(zip(heads, (d["device"], "online" if d["online"] else "offline", d["model"] or "-",
                             iso_time(d["last_seen"]), d["measurements"], d["last_verdict"] or "-",
                             ((d["status"] or {}).get("rollout") or {}).get("result", "-")))) for d in devices]
    print(table(rows, heads) if rows else "no device has reported yet")
    return 0


def cmd_export(args) -> int:
    """Write the fleet's measurements as training data (csv, npz) or with their analyses (jsonl, jcamp)."""
    from device.cli import parse_when
    from device.inference.bundle import load_bundle
    from device.service.export import export
    from fleet.database import FleetDatabase

    refuse_existing(args.out, args.force)
    records = FleetDatabase(args.db).records(args.device, args.label, parse_when(args.since), parse_when(args.until))
    n = export(records, args.out, load_bundle(args.model).axis, args.format)
    print(f"wrote {n} spectra to {args.out} (labels are the recorded verdicts: review them before training)")
    return 0


def cmd_rollout(args) -> int:
    """Publish a signed bundle to devices and report what each one did with it."""
    from fleet.rollout import roll_out

    devices = None if args.all else [d for d in args.devices.split(",") if d]
    outcomes = roll_out(args.bundle, devices, args.broker, args.port, args.ca, args.cert, args.key, args.wait,
                        log=lambda msg: print(msg, flush=True))
    for device, outcome in sorted(outcomes.items()):
        print(f"{device}: {outcome['result']} {outcome.get('bundle') or ''}"
              + (f" ({outcome['reason']})" if outcome.get("reason") else ""))
    missing = sorted(set(devices or ()) - set(outcomes))
    if missing and args.wait > 0:
        print(f"no outcome within {args.wait:g} s from {', '.join(missing)} (offline devices get it when they "
              "come back; raman-fleet status shows it)")
    refused = any(o["result"] == "refused" for o in outcomes.values())
    return 1 if refused or missing and args.wait > 0 else 0


def cmd_serve(args) -> int:
    """Serve the dashboard over the fleet database until Ctrl-C."""
    from device.errors import RamanEdgeError
    from fleet.dashboard import serve

    try:
        token = open(args.token_file, encoding="utf-8").read().strip()
    except OSError as exc:
        raise RamanEdgeError(f"cannot read the token file {args.token_file} ({exc.strerror}); write a long random "
                             "token into it (e.g. openssl rand -hex 24 > FILE)") from None
    if len(token) < 16:
        raise RamanEdgeError(f"the token in {args.token_file} has {len(token)} characters; use at least 16 (e.g. "
                             "openssl rand -hex 24 > FILE)")
    serve(args.db, args.host, args.port, token, log=lambda msg: print(msg, flush=True))
    return 0


def _broker_options(p, identity: str) -> None:
    """``--broker``, ``--port`` and the TLS files of ``identity``."""
    from fleet.broker import DEFAULT_PORT

    p.add_argument("--broker", required=True, help="the broker's host name or address")
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help="the broker's TLS port")
    p.add_argument("--ca", required=True, help="the fleet CA's certificate (ca.pem of raman-fleet pki)")
    p.add_argument("--cert", required=True, help=f"this identity's certificate ({identity}.pem)")
    p.add_argument("--key", required=True, help=f"this identity's private key ({identity}.key)")


def _db_option(p) -> None:
    p.add_argument("--db", required=True, help="the fleet database: a SQLite file, or postgresql://USER@HOST/DB")


def _add_collect(sub) -> None:
    c = add_subcommand(sub, "collect", help="store every device's measurements and status from the broker into the "
                                            "fleet database, each once")
    _db_option(c)
    _broker_options(c, "collector")
    c.set_defaults(func=cmd_collect)
    s = add_subcommand(sub, "status", help="list the devices: online, model, last seen, measurements, last verdict")
    _db_option(s)
    s.add_argument("--format", choices=("table", "json"), default="table", help="a table or one JSON line each")
    s.set_defaults(func=cmd_status)
    x = add_subcommand(sub, "export", help="write the fleet's measurements as training data for raman-train")
    _db_option(x)
    x.add_argument("--model", required=True, help="model bundle whose axis the spectra are resampled onto")
    x.add_argument("--out", required=True, help="the file to write")
    x.add_argument("--format", choices=("csv", "npz", "jsonl", "jcamp"), default="csv",
                   help="csv/npz: training data (class verdicts only); jsonl/jcamp: with every analysis")
    x.add_argument("--device", help="only this device (default: all)")
    x.add_argument("--since", help="from this date or time (ISO 8601, UTC unless stated; default: the first)")
    x.add_argument("--until", help="up to this date or time (default: now)")
    x.add_argument("--label", help="only this verdict (default: every verdict)")
    x.add_argument("--force", action="store_true", help="replace --out if it exists")
    x.set_defaults(func=cmd_export)


def _add_rollout(sub) -> None:
    r = add_subcommand(sub, "rollout", help="publish a signed model bundle or library to devices; each installs it "
                                            "(self-test, atomic exchange, rollback) and reports the outcome")
    r.add_argument("bundle", help="a model bundle or library directory signed with raman-train sign")
    which = r.add_mutually_exclusive_group(required=True)
    which.add_argument("--devices", help="comma-separated device ids")
    which.add_argument("--all", action="store_true", help="every device, those offline when they come back")
    _broker_options(r, "fleet-admin")
    r.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the devices' outcomes (0: none)")
    r.set_defaults(func=cmd_rollout)


def _add_serve(sub) -> None:
    s = add_subcommand(sub, "serve", help="serve the read-only dashboard over the fleet database")
    _db_option(s)
    s.add_argument("--host", default="127.0.0.1", help="the address to listen on (put a TLS proxy in front for "
                                                      "other machines)")
    s.add_argument("--port", type=port, default=8080, help="the port to listen on")
    s.add_argument("--token-file", required=True, help="a file holding the login token (16 characters or more)")
    s.set_defaults(func=cmd_serve)


def _add_pki(sub) -> None:
    from fleet.pki import DEFAULT_HOSTS

    pki = add_subcommand(sub, "pki", help="the fleet's certificate authority: the CA, the broker's and every "
                                          "identity's certificate")
    actions = pki.add_subparsers(dest="action", required=True)
    i = add_subcommand(actions, "init", help="make the CA (ca.pem, ca.key, crl.pem) and the broker's certificate "
                                             "(broker.pem, broker.key)")
    i.add_argument("dir", help="the PKI directory (made if missing)")
    i.add_argument("--host", dest="hosts", action="append", metavar="HOST",
                   help="a name or IP address devices reach the broker at; repeat for more "
                        f"(default: {' and '.join(DEFAULT_HOSTS)})")
    i.add_argument("--force", action="store_true", help="replace an existing CA and broker certificate (every "
                                                        "certificate the old CA issued stops working)")
    i.set_defaults(func=cmd_pki_init)
    s = add_subcommand(actions, "issue", help="issue client certificates NAME.pem and NAME.key: a device id, "
                                              "collector or fleet-admin")
    s.add_argument("dir", help="the PKI directory")
    s.add_argument("names", nargs="+", metavar="NAME", help="identity: 1-64 letters, digits, '.', '_', '-'")
    s.add_argument("--force", action="store_true", help="replace an existing certificate and key of NAME")
    s.set_defaults(func=cmd_pki_issue)
    r = add_subcommand(actions, "revoke", help="revoke identities: their certificates into crl.pem, their files "
                                               "deleted")
    r.add_argument("dir", help="the PKI directory")
    r.add_argument("names", nargs="+", metavar="NAME", help="identity to revoke")
    r.set_defaults(func=cmd_pki_revoke)


def _add_broker_config(sub) -> None:
    from fleet.broker import DEFAULT_PORT

    b = add_subcommand(sub, "broker-config", help="write the Mosquitto configuration of the fleet: TLS listener, "
                                                  "access list, persistence")
    b.add_argument("--pki", required=True, help="the PKI directory (raman-fleet pki init)")
    b.add_argument("--out", required=True, help="the broker's directory: mosquitto.conf, acl, data/")
    b.add_argument("--port", type=port, default=DEFAULT_PORT, help="the TLS listener's port")
    b.add_argument("--bind", metavar="ADDRESS", help="listen on this address only (default: every address)")
    b.add_argument("--user", help="the account Mosquitto runs as when started as root (default: mosquitto, which "
                                  "must be able to read the broker's key and write --out/data)")
    b.add_argument("--force", action="store_true", help="replace an existing mosquitto.conf and acl in --out")
    b.set_defaults(func=cmd_broker_config)


def build_parser() -> argparse.ArgumentParser:
    """The ``raman-fleet`` command line: one subcommand per task, each added by its ``_add_...`` function."""
    p = argparse.ArgumentParser(prog="raman-fleet", description="The central side of a raman-edge fleet.")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_pki, _add_broker_config, _add_collect, _add_rollout, _add_serve):
        add(sub)
    return p


def main(argv=None) -> int:
    """The ``raman-fleet`` command; its exit status (2 with one message when the fleet extra is missing)."""
    from device.cli import run

    try:
        return run(build_parser().parse_args(argv))
    except ModuleNotFoundError as exc:
        print(f"error: raman-fleet needs the fleet extra, pip install 'raman-edge[fleet]' ({exc})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
