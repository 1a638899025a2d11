"""``raman-device``: the device runtime's command line."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from device.errors import RamanEdgeError, SpectrumError, SpectrumFileError
from device.inference.backends import BACKENDS
from device.inference.library import TOP_HITS
from device.service.control import COMMANDS
from firmware_bridge.commandline import add_subcommand, positive_float, refuse_existing
from firmware_bridge.commandline import run as run_command


def table(rows: list[dict], heads=("file", "label", "confidence", "expected")) -> str:
    """``rows`` as a text table of the columns ``heads`` that some row has, each as wide as its widest cell."""
    show = [h for h in heads if any(h in r for r in rows)]
    cells = [[str(r.get(h, "")) for h in show] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(show)]

    def line(vals) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()

    return "\n".join([line(show), line(["-" * w for w in widths])] + [line(c) for c in cells])


def short_names(paths) -> list[str]:
    """For each path, its shortest trailing part (``B/1.txt``) that no other of the paths ends with.

    The same file named twice counts once; at worst a path is shown whole (absolute).
    """
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    distinct = set(parts)
    keep, pending, k = {}, set(distinct), 1
    while pending:
        counts = Counter(q[-k:] for q in distinct)
        for p in [p for p in pending if counts[p[-k:]] == 1 or k >= len(p)]:
            keep[p] = k
            pending.remove(p)
        k += 1
    return [str(Path(*p[-keep[p]:])) for p in parts]


def cmd_classify(args) -> int:
    """Classify spectrum files; one JSON line (or table row) per spectrum, errors to stderr."""
    from device.errors import LibraryError, ResolutionError
    from device.inference.analysis import identify
    from device.inference.bundle import load_bundle
    from device.inference.classifier import Classifier
    from device.inference.library import load_library
    from device.inference.readers import read_spectra
    from device.inference.resolution import resolution_problem

    bundle = load_bundle(args.model)
    problem = resolution_problem(args.resolution_cm1, bundle.resolution_cm1, setting="--resolution-cm1")
    if problem:
        raise ResolutionError(f"model bundle {bundle.path}: {problem}.")
    clf = Classifier(bundle, backend=args.backend, resolution_cm1=args.resolution_cm1)
    library = load_library(args.library) if args.library else None
    expected = {p.resolve(): label for p, label in bundle.examples}
    failed = 0
    rows = []
    shown_names = dict(zip(args.files, short_names(args.files)))
    for name in args.files:
        try:
            spectra = read_spectra(name)
            predictions = clf.classify_many(spectra)
            mixtures = [identify(library, s) if library is not None else None for s in spectra]
        except (SpectrumFileError, SpectrumError, LibraryError) as exc:
            msg = str(exc)
            print(f"error: {msg if msg.startswith(str(name)) else f'{name}: {msg}'}", file=sys.stderr)
            failed += 1
            continue
        for s, p, mixed in zip(spectra, predictions, mixtures):
            row = {"file": str(name)}
            if "index" in s.meta:
                row["index"] = s.meta["index"]
            row.update(p.reported(), probabilities={k: round(v, 6) for k, v in p.probabilities.items()},
                       model=p.model_id)
            if p.ood_score is not None:
                row.update(ood_score=round(p.ood_score, 4), unknown=p.unknown)
            if mixed is not None and "mixture" in mixed.analysis:
                row.update(library=mixed.analysis["library"], mixture=mixed.analysis["mixture"])
                if mixed.is_mixture:  # never one confident class for a mixture of known materials
                    row.update(label=mixed.verdict, confidence=None)
            if args.format == "json":
                print(json.dumps(row), flush=True)
            else:
                mixture = mixed is not None and mixed.is_mixture
                shown = {"file": shown_names[name] + (f"[{row['index']}]" if "index" in row else ""),
                         "label": row["label"] if mixture else f"unknown (nearest {p.label})" if p.unknown else p.label,
                         "confidence": "-" if p.unknown or mixture else f"{p.confidence:.3f}"}
                if Path(name).resolve() in expected:
                    shown["expected"] = expected[Path(name).resolve()]
                rows.append(shown)
    if args.format == "table" and rows:
        print(f"model {bundle.model_id} ({clf.backend.name} backend)")
        print(table(rows))
    if failed:
        print(f"{failed} of {len(args.files)} file(s) could not be classified", file=sys.stderr)
    return 1 if failed else 0


def cmd_info(args) -> int:
    """Print a bundle's identity, kinds, classes, axis and FLOP count after verifying it."""
    from device.inference.bundle import load_bundle
    from device.inference.cost import bundle_flop_count

    b = load_bundle(args.model)
    out = {"id": b.model_id, "kind": b.kind, "network_kind": b.network_kind, "architecture": b.architecture,
           "written_by": b.written_by, "classes": list(b.class_names),
           "axis_cm-1": str(b.axis), "inputs": b.input_size, "normalisation": b.normalisation,
           "response_corrected": b.response_corrected, "resolution_cm1": b.resolution_cm1,
           "flop_per_spectrum": bundle_flop_count(b)["total"], "files_verified": sorted(b.card["files"])}
    print(json.dumps(out, indent=2))
    return 0


def _analyse_files(args, analyse, columns) -> int:
    """Run ``analyse(spectrum)`` -> Analysis on every spectrum of ``args.files``; JSON lines or a table.

    ``columns(analysis)`` gives the table's cells after ``file``; errors go to stderr, one line per file.
    """
    from device.errors import LibraryError
    from device.inference.readers import read_spectra

    failed, rows = 0, []
    shown_names = dict(zip(args.files, short_names(args.files)))
    for name in args.files:
        try:
            spectra = read_spectra(name)
            results = [analyse(s) for s in spectra]
        except (SpectrumFileError, SpectrumError, LibraryError) as exc:
            msg = str(exc)
            print(f"error: {msg if msg.startswith(str(name)) else f'{name}: {msg}'}", file=sys.stderr)
            failed += 1
            continue
        for s, a in zip(spectra, results):
            row = {"file": str(name), **({"index": s.meta["index"]} if "index" in s.meta else {}),
                   "verdict": a.verdict, **a.analysis}
            if args.format == "json":
                print(json.dumps(row), flush=True)
            else:
                rows.append({"file": shown_names[name] + (f"[{row['index']}]" if "index" in row else ""),
                             **columns(a)})
    if rows:
        print(table(rows, list(rows[0])))
    return 1 if failed else 0


def cmd_identify(args) -> int:
    """Search a reference library for each spectrum: the best hits with their HQI, no match, or a mixture."""
    from device.inference.analysis import identify
    from device.inference.library import load_library

    library = load_library(args.library)

    def columns(a) -> dict:
        hits = a.analysis["hits"]
        return {"verdict": a.verdict, "best": f"{hits[0]['name']} ({hits[0]['hqi']:.1f})",
                "next": ", ".join(f"{h['name']} ({h['hqi']:.1f})" for h in hits[1:3])}

    return _analyse_files(args, lambda s: identify(library, s, top=args.top, mixtures=not args.no_mixtures), columns)


def cmd_verify(args) -> int:
    """Verify each spectrum against the library entry it should be: PASS or FAIL with a p-value."""
    from device.inference.analysis import verify
    from device.inference.library import load_library

    library = load_library(args.library)
    library.variation(args.expect)  # an unknown entry or too few replicates: one message before any file

    def columns(a) -> dict:
        return {"expected": args.expect, "result": a.verdict, "p-value": f"{a.analysis['p_value']:.3g}"}

    return _analyse_files(args, lambda s: verify(library, s, args.expect, args.alpha), columns)


def _significance(text: str) -> float:
    """``--alpha``: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"give a significance level between 0 and 1 (exclusive), e.g. 0.05, not "
                                         f"{text!r}")
    return value


def parse_when(text: str | None) -> float | None:
    """ISO 8601 date or date-time (UTC unless it says otherwise) -> seconds since the epoch."""
    from datetime import datetime, timezone

    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise RamanEdgeError(f"expected a date or time like 2026-11-22 or 2026-11-22T14:30, got {text!r}") from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def _records(args):
    from device.service.record import RecordStore

    if not Path(args.db).is_file():
        raise RamanEdgeError(f"no record at {args.db}; give the service's database file with --db")
    store = RecordStore(args.db)
    return store.query(parse_when(args.since), parse_when(args.until), args.label, args.limit)


def cmd_history(args) -> int:
    """List measurements, newest first: one JSON line each (without the spectra)."""
    from device.service.record import history_entry

    for r in _records(args):
        print(json.dumps(history_entry(r)))
    return 0


def cmd_export(args) -> int:
    """Export recorded spectra (on the model's axis) as training data for raman-train."""
    from device.inference.bundle import load_bundle
    from device.service.export import export

    refuse_existing(args.out, args.force)
    n = export(_records(args), args.out, load_bundle(args.model).axis, args.format)
    print(f"wrote {n} spectra to {args.out} (labels are the recorded verdicts: review them before training)")
    return 0


def cmd_run(args) -> int:
    """Run the measurement service until SIGTERM; one it cannot start is an error, exit status 6 (not configured)."""
    from device.service.config import load_config
    from device.service.runner import Runner
    from device.service.systemd import EXIT_NOT_CONFIGURED

    try:
        runner = Runner(load_config(args.config), log=lambda msg: print(msg, flush=True))
        return runner.run()
    except RamanEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_CONFIGURED


def cmd_measure(args) -> int:
    """Send a command to the running service and print its reply."""
    from device.service.config import load_config
    from device.service.control import SOCKET_FILE, send_command

    path = Path(args.socket) if args.socket else load_config(args.config).data_directory / SOCKET_FILE
    command = args.command
    if args.mode or args.expect:
        if command != "MEASURE":
            raise RamanEdgeError(f"--mode and --expect go with MEASURE, not {command}")
        if args.expect and args.mode not in (None, "verify"):
            raise RamanEdgeError(f"--expect is the entry to verify against; it does not go with --mode {args.mode}")
        command = f"MEASURE VERIFY {args.expect}" if args.expect else f"MEASURE {args.mode.upper()}"
        if args.mode == "verify" and not args.expect:
            raise RamanEdgeError("--mode verify needs --expect NAME, the library entry to verify against")
    try:
        answer = send_command(path, command)
    except (FileNotFoundError, ConnectionRefusedError):
        raise RamanEdgeError(f"no service is listening at {path}; is raman-device run going?") from None
    except OSError as exc:
        raise RamanEdgeError(f"cannot talk to the service at {path}: {exc}") from None
    print(json.dumps(answer))
    return 0 if answer.get("ok") else 1


def cmd_install(args) -> int:
    """Lay out the service on this board from the unpacked offline installer."""
    from device.service.install import install

    install(Path(args.source), Path(args.root), config=Path(args.config) if args.config else None,
            port=args.port, usb_id=args.usb_id, operator=args.operator, enable=args.enable, venv=args.venv,
            signing_key=Path(args.signing_key) if args.signing_key else None, log=lambda msg: print(msg, flush=True))
    return 0


def cmd_update(args) -> int:
    """Install a new bundle or library atomically (or go back to the one before) and switch the service to it."""
    from device.service.config import load_config
    from device.service.update import LIBRARY, MODEL, rollback, update

    log = lambda msg: print(msg, flush=True)  # noqa: E731
    kind = MODEL if args.update == "update-model" else LIBRARY
    config = load_config(args.config)
    reply = rollback(kind, config, log=log) if args.rollback else \
        update(kind, config, Path(args.new), log=log, require_signature=args.require_signature)
    print(json.dumps(reply))
    return 0 if reply.get("ok") else 1


def _library_files(p) -> None:
    """``--library``, ``--format`` and the files: the same for identify and verify."""
    p.add_argument("--library", required=True, help="reference library directory (raman-train library)")
    p.add_argument("--format", choices=("json", "table"), default="json",
                   help="one JSON line per spectrum (default) or a readable table")
    p.add_argument("files", nargs="+", metavar="FILE")


def _record_filters(p) -> None:
    p.add_argument("--db", required=True, help="the service's record (SQLite file)")
    p.add_argument("--since", help="from this date or time (ISO 8601, UTC unless stated; default: the first)")
    p.add_argument("--until", help="up to this date or time (default: now)")
    p.add_argument("--label", help="only this verdict (default: every verdict and error)")
    p.add_argument("--limit", type=int, help="at most this many, newest first (default: all)")


def build_parser() -> argparse.ArgumentParser:
    """The ``raman-device`` command line: one subcommand per task."""
    p = argparse.ArgumentParser(prog="raman-device", description="Raman spectrum classification on the device.")
    sub = p.add_subparsers(dest="command", required=True)
    c = add_subcommand(sub, "classify", help="classify spectrum files (two-column text/CSV, .npz with X/wavenumber, "
                                              "JCAMP-DX, SPC)")
    c.add_argument("--model", required=True, help="model bundle directory")
    c.add_argument("--backend", choices=BACKENDS, default="numpy", help="inference backend (default numpy)")
    c.add_argument("--library", help="reference library to unmix each spectrum against: a mixture of its entries "
                                     "is reported as 'mixture of A + B', never as one class (default: none)")
    c.add_argument("--resolution-cm1", type=positive_float, metavar="FWHM",
                   help="the resolution (FWHM of polystyrene's bands, cm-1, as raman-device sst reports it) of the "
                        "instrument that recorded the files; needed by a model trained with --resolution-cm1, whose "
                        "resolution the spectra are broadened to (default: none; such a model then refuses the files)")
    c.add_argument("--format", choices=("json", "table"), default="json",
                   help="one JSON line per spectrum (default) or a readable table")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.set_defaults(func=cmd_classify)
    d = add_subcommand(sub, "identify", help="search a reference library: best hits with their HQI, no match, "
                                              "or a mixture of entries")
    _library_files(d)
    d.add_argument("--top", type=int, default=TOP_HITS, help=f"hits to report (default {TOP_HITS})")
    d.add_argument("--no-mixtures", action="store_true", help="search only, do not unmix (default: unmix too)")
    d.set_defaults(func=cmd_identify)
    v = add_subcommand(sub, "verify", help="verify spectra against the library entry they should be: PASS or FAIL")
    _library_files(v)
    v.add_argument("--expect", required=True, metavar="NAME", help="the entry the sample should be")
    v.add_argument("--alpha", type=_significance, help="least p-value to pass (default 0.05)")
    v.set_defaults(func=cmd_verify)
    i = add_subcommand(sub, "info", help="verify a model bundle and show what it is")
    i.add_argument("--model", required=True, help="model bundle directory")
    i.set_defaults(func=cmd_info)
    r = add_subcommand(sub, "run", help="run the measurement service (triggers: control port, button, local socket)")
    r.add_argument("--config", required=True, help="configuration file (TOML)")
    r.set_defaults(func=cmd_run)
    m = add_subcommand(sub, "measure", help="ask the running service to measure (or STATUS, LAST, MODEL)")
    where = m.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="the service's configuration file (to find its socket)")
    where.add_argument("--socket", help="the service's socket (DATA/control.sock)")
    m.add_argument("--command", default="MEASURE", choices=tuple(COMMANDS), help="what to ask the service")
    m.add_argument("--mode", choices=("classify", "identify", "verify"),
                   help="MEASURE in this mode (default: the configured library.mode)")
    m.add_argument("--expect", metavar="NAME", help="MEASURE and verify against this library entry (default: none; "
                                                    "without --mode, a MEASURE in library.mode verify uses "
                                                    "library.expect)")
    m.set_defaults(func=cmd_measure)
    t = add_subcommand(sub, "sst", help="ask the running service for the system suitability test (the standard in the "
                                        "beam): PASS or FAIL with every figure, recorded")
    where = t.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="the service's configuration file (to find its socket)")
    where.add_argument("--socket", help="the service's socket (DATA/control.sock)")
    t.set_defaults(func=cmd_measure, command="SST", mode=None, expect=None)
    h = add_subcommand(sub, "history", help="list recorded measurements")
    _record_filters(h)
    h.set_defaults(func=cmd_history)
    x = add_subcommand(sub, "export", help="export recorded spectra as training data (csv, npz or JCAMP-DX)")
    _record_filters(x)
    x.add_argument("--model", required=True, help="bundle whose axis the spectra are resampled onto")
    x.add_argument("--format", choices=("csv", "npz", "jsonl", "jcamp"), required=True,
                   help="csv: wide table; npz: X, y, wavenumber, class_names; jsonl: one JSON object per spectrum "
                        "with its analysis; jcamp: JCAMP-DX 5.01, one block per spectrum titled with its label")
    x.add_argument("--out", required=True, help="file to write (an existing one only with --force)")
    x.add_argument("--force", action="store_true", help="replace --out if it exists")
    x.set_defaults(func=cmd_export)
    for name, what, where in (("update-model", "model bundle", "model.bundle"),
                              ("update-library", "reference library", "library.path")):
        u = add_subcommand(sub, name, help=f"install a new {what} atomically at {where} and switch the service to it")
        u.add_argument("--config", required=True, help="the service's configuration file")
        which = u.add_mutually_exclusive_group(required=True)
        which.add_argument("new", nargs="?", metavar="DIR",
                           help=f"the new {what} directory (verified before anything changes)")
        which.add_argument("--rollback", action="store_true",
                           help=f"swap back the {what} the last update replaced (kept as {where}.previous)")
        u.add_argument("--require-signature", action="store_true",
                       help="refuse it unless signed by the fleet's key (signatures.public_key), even where "
                            "signatures.required is not set (the uplink's rollouts)")
        u.set_defaults(func=cmd_update, update=name)
    n = add_subcommand(sub, "install",
                       help="lay out the service on this board from the unpacked offline installer (make installer)")
    n.add_argument("--from", dest="source", required=True, help="the unpacked installer")
    n.add_argument("--root", default="/", help="install under this directory instead of / (staging)")
    n.add_argument("--config", help="configuration file to install (default: keep the one there, or the example)")
    spectrometer = n.add_mutually_exclusive_group()
    spectrometer.add_argument("--port", help="the spectrometer's port now (e.g. /dev/ttyUSB0), for the udev rule "
                                             "(default: none; without it or --usb-id no rule is written)")
    spectrometer.add_argument("--usb-id", help="the spectrometer's USB identity VID:PID[:SERIAL], for the udev rule "
                                               "(default: none; read from --port when that is given)")
    n.add_argument("--operator", help="a login that may use 'raman-device measure' (joins group raman-edge; "
                                      "default: none)")
    n.add_argument("--enable", action="store_true",
                   help="enable and (re)start the service (where systemd does not run, as in an image's chroot: "
                        "enable it for the next boot)")
    n.add_argument("--signing-key", metavar="PUB.pem",
                   help="the fleet's public key (raman-train keygen's fleet-signing.pub): installed as "
                        "/etc/raman-edge/fleet-signing.pub, and the configuration then requires every model and "
                        "library to be signed with it (default: none; signatures are not checked)")
    n.add_argument("--venv", help="the new environment to switch /opt/raman-edge/venv to (install.sh gives it; "
                                  "default: leave the link as it is)")
    n.set_defaults(func=cmd_install)
    return p


def run(args, interrupted: str = "interrupted") -> int:
    """Run ``args.func(args)`` as a command: user errors are one message and exit status 2."""
    return run_command(args.func, args, (RamanEdgeError,), interrupted)


def main(argv=None) -> int:
    """The ``raman-device`` command; its exit status."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
