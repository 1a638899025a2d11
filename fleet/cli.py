"""``raman-fleet``: the central side of a fleet (certificates, the broker's configuration, ...)."""
from __future__ import annotations

import argparse
import sys

from firmware_bridge.commandline import add_subcommand


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
    for add in (_add_pki, _add_broker_config):
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
