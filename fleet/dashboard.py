"""``raman-fleet serve``: the fleet's read-only web dashboard over the collector's database.

Server-rendered pages without a script: the devices and their status; the measurements, newest first,
paged, filtered by device, verdict and dates (UTC); one measurement with its probabilities, its analysis,
and its spectrum and evidence drawn as SVG (:mod:`fleet.plot`); and the filtered list to download as CSV
(without spectra) or JSON Lines (with them).

Every page needs the dashboard's token: typed once into the login form (the session is then a cookie
signed with a key made at start-up, so a restart logs everyone out), or sent as ``Authorization: Bearer
TOKEN`` with each request (scripts fetching the downloads). Everything shown came from a device and is
escaped (Jinja's autoescape, :func:`html.escape` in the SVG), CSV cells are kept from being read as
formulas, and a Content-Security-Policy allows no script at all. No route writes: each request opens
the database, reads, and closes it.
"""
from __future__ import annotations

import csv
import hmac
import io
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from device.service.record import analysis_summary, iso_time
from fleet.database import DatabaseError, FleetDatabase
from fleet.plot import measurement_svg, number

#: Measurements on one page of the list.
PAGE_SIZE = 50
#: Shortest token the dashboard accepts.
MIN_TOKEN_CHARS = 16
#: The CSV download's columns, one row per measurement.
CSV_COLUMNS = ("seq", "device", "store", "record_id", "time", "received", "trigger", "verdict", "confidence",
               "error", "model", "mode", "analysis")
#: A CSV cell starting with one of these is read as a formula by spreadsheets; it gets a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: No script, no frames, nothing from elsewhere: the pages need only their own style sheet.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
#: The routes for scripts: refused with 401 rather than sent to the login form.
DOWNLOADS = ("dashboard.measurements_csv", "dashboard.measurements_jsonl")

pages = Blueprint("dashboard", __name__)


@dataclass(frozen=True)
class Filters:
    """What the measurement list and its downloads are filtered by (GET parameters device, verdict, from, to).

    ``start`` and ``end`` are dates in UTC, both included.
    """

    device: str | None = None
    verdict: str | None = None
    start: date | None = None
    end: date | None = None

    @classmethod
    def from_args(cls, args) -> Filters:
        """The filters of a request's arguments; empty ones are no filter.

        Raises
        ------
        werkzeug.exceptions.BadRequest
            If a date is not YYYY-MM-DD.
        """
        dates = {}
        for name in ("from", "to"):
            text = args.get(name, "").strip()
            try:
                dates[name] = date.fromisoformat(text) if text else None
            except ValueError:
                abort(400, description=f"the date {text[:40]!r} ({name}) is not a date as YYYY-MM-DD")
        return cls(args.get("device") or None, args.get("verdict") or None, dates["from"], dates["to"])

    def query(self) -> dict:
        """The keyword arguments of :meth:`fleet.database.FleetDatabase.measurements` (times in s since the epoch)."""
        def midnight(day):
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
        return {"device": self.device, "verdict": self.verdict,
                "since": None if self.start is None else midnight(self.start),
                "until": None if self.end is None else midnight(self.end + timedelta(days=1))}

    def args(self) -> dict:
        """The filters as GET parameters, the empty ones left out (for links that keep them)."""
        given = {"device": self.device, "verdict": self.verdict, "from": self.start and self.start.isoformat(),
                 "to": self.end and self.end.isoformat()}
        return {k: v for k, v in given.items() if v}


def summary(analysis) -> str | None:
    """:func:`device.service.record.analysis_summary`, or a note when a device sent an analysis it cannot read."""
    try:
        return analysis_summary(analysis)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return "analysis not readable"


def spreadsheet_safe(value):
    """``value`` for a CSV cell: a string a spreadsheet would take for a formula gets a leading apostrophe."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def csv_row(m: dict) -> list:
    """One measurement of :meth:`~fleet.database.FleetDatabase.measurements` as a row of :data:`CSV_COLUMNS`."""
    analysis = m["analysis"] if isinstance(m["analysis"], dict) else {}
    values = {**m, "time": iso_time(m["time"]), "received": iso_time(m["received"]), "mode": analysis.get("mode"),
              "analysis": summary(m["analysis"])}
    return [spreadsheet_safe(values[c]) for c in CSV_COLUMNS]


def _numbers(a: np.ndarray | None) -> list[float] | None:
    """A float32 array as a list of the shortest decimals that give each value back."""
    return None if a is None else [float(str(v)) for v in a.astype(np.float32)]


def jsonl_line(m: dict) -> str:
    """One measurement of :meth:`~fleet.database.FleetDatabase.measurement` as a line of JSON, arrays as lists."""
    fields = {k: v for k, v in m.items() if k not in ("shift", "intensity", "evidence")}
    fields.update(time_utc=iso_time(m["time"]), shift=_numbers(m["shift"]), intensity=_numbers(m["intensity"]),
                  evidence=None if m["evidence"] is None else {k: _numbers(v) for k, v in m["evidence"].items()})
    return json.dumps(fields, separators=(",", ":")) + "\n"


def megabytes(mb) -> str | None:
    """Free space for people: ``512 MB``, ``10.0 GB``; None when not reported."""
    mb = number(mb)
    if mb is None:
        return None
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def device_row(d: dict) -> dict:
    """One device of :meth:`~fleet.database.FleetDatabase.devices` as the devices page shows it."""
    status = d["status"] or {}
    rollout = status.get("rollout") if isinstance(status.get("rollout"), dict) else None
    return {"device": d["device"], "online": d["online"], "model": d["model"], "software": status.get("software"),
            "last_seen": iso_time(d["last_seen"]), "measurements": d["measurements"],
            "last_verdict": d["last_verdict"], "free": megabytes(status.get("free_mb")), "rollout": rollout}


def probabilities(p) -> list[tuple[str, float]]:
    """A measurement's probabilities, most probable first (a value that is not a number is left out)."""
    numbers = [(str(k), number(v)) for k, v in (p or {}).items() if number(v) is not None]
    return sorted(numbers, key=lambda kv: -kv[1])


def fixed(value, digits: int = 3) -> str:
    """A number with ``digits`` decimals; anything else (from a device) as it is, or an en dash for None."""
    if number(value) is not None:
        return f"{value:.{digits}f}"
    return "\u2013" if value is None else str(value)


def _database() -> FleetDatabase:
    """The request's connection to the fleet database (closed when the request ends)."""
    if "fleet_database" not in g:
        g.fleet_database = FleetDatabase(current_app.config["FLEET_DATABASE"])
    return g.fleet_database


def _matches(given: str) -> bool:
    return hmac.compare_digest(given.encode(), current_app.config["FLEET_TOKEN"].encode())


def _authorised() -> bool:
    """Whether the request carries the token: a bearer header (which decides when given) or the session."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and _matches(given.strip())
    return session.get("authorised") is True


def _local(target: str | None) -> str:
    """Where to go after logging in: a path on this site only, else the devices page."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target.rstrip("?")
    return url_for("dashboard.devices")


def _refused(message: str, status: int, **headers):
    return render_template("error.html", status=status, message=message), status, headers


@pages.before_app_request
def _login_required():
    if request.endpoint in ("dashboard.login", "static") or _authorised():
        return None
    if request.endpoint in DOWNLOADS or "Authorization" in request.headers:
        return _refused("the token is missing or wrong: send the dashboard's token as 'Authorization: Bearer "
                        "TOKEN'", 401, **{"WWW-Authenticate": 'Bearer realm="raman-fleet"'})
    return redirect(url_for("dashboard.login", next=request.full_path))


@pages.after_app_request
def _headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


@pages.app_context_processor
def _context() -> dict:
    return {"authorised": request.endpoint != "dashboard.login" and _authorised()}


@pages.route("/login", methods=["GET", "POST"])
def login():
    """The login form; the right token opens a session, a wrong one is refused with 401."""
    target = _local(request.values.get("next"))
    if request.method == "POST":
        if _matches(request.form.get("token", "")):
            session.clear()
            session["authorised"] = True
            return redirect(target)
        return render_template("login.html", next=target, refused=True), 401
    return render_template("login.html", next=target, refused=False)


@pages.post("/logout")
def logout():
    """End the session."""
    session.clear()
    return redirect(url_for("dashboard.login"))


@pages.get("/")
def devices():
    """Every device: online or not, model, software, last seen, measurements, free space, last rollout."""
    return render_template("devices.html", devices=[device_row(d) for d in _database().devices()])


@pages.get("/measurements")
def measurements():
    """The measurements, newest first, :data:`PAGE_SIZE` a page, filtered by :class:`Filters`."""
    filters = Filters.from_args(request.args)
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        page = 0
    if page < 1:
        abort(400, description="the page is not a whole number from 1")
    db = _database()
    rows = db.measurements(**filters.query(), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_template("measurements.html", rows=rows[:PAGE_SIZE], page=page, more=len(rows) > PAGE_SIZE,
                           filters=filters, args=filters.args(), known=[d["device"] for d in db.devices()])


@pages.get("/measurements/<int:seq>")
def measurement(seq: int):
    """One measurement: its fields, probabilities and analysis, and its spectrum with the evidence drawn."""
    m = _database().measurement(seq)
    if m is None:
        abort(404, description=f"there is no measurement {seq} in the fleet database")
    analysis = m["analysis"] if isinstance(m["analysis"], dict) else {}
    figure = None
    if m["shift"] is not None:
        # measurement_svg escapes every text in it (the names and verdicts a device sent).
        figure = Markup(measurement_svg(m["shift"], m["intensity"], analysis, m["evidence"],
                                        f"measurement {seq} of {m['device']}: {m['verdict']}"))
    return render_template("measurement.html", m=m, analysis=analysis, figure=figure,
                           probabilities=probabilities(m["probabilities"]),
                           analysis_json=json.dumps(m["analysis"], indent=1, sort_keys=True))


def _download(lines, mimetype: str, filename: str) -> Response:
    return Response(lines, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@pages.get("/measurements.csv")
def measurements_csv():
    """The filtered measurements as CSV (:data:`CSV_COLUMNS`), newest first, without spectra."""
    rows = _database().measurements(**Filters.from_args(request.args).query())

    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for m in rows:
            writer.writerow(csv_row(m))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()
    return _download(lines(), "text/csv", "measurements.csv")


@pages.get("/measurements.jsonl")
def measurements_jsonl():
    """The filtered measurements as JSON Lines (:func:`jsonl_line`), newest first, with spectra and evidence."""
    query, url = Filters.from_args(request.args).query(), current_app.config["FLEET_DATABASE"]

    def lines():  # its own connection: it runs after the request's has closed, and closes when the response does
        db = FleetDatabase(url)
        try:
            for m in db.measurements(**query):
                yield jsonl_line(db.measurement(m["seq"]))
        finally:
            db.close()
    return _download(lines(), "application/x-ndjson", "measurements.jsonl")


@pages.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return _refused(exc.description, exc.code)


@pages.app_errorhandler(DatabaseError)
def _database_error(exc: DatabaseError):
    return _refused(str(exc), 503)


@pages.teardown_app_request
def _close(exc) -> None:
    db = g.pop("fleet_database", None)
    if db is not None:
        db.close()


def create_app(database_url: str, token: str) -> Flask:
    """The dashboard as a WSGI application.

    Parameters
    ----------
    database_url : str
        The collector's database: a SQLite file that exists, or a ``postgresql://`` URL.
    token : str
        The secret every request needs (at least :data:`MIN_TOKEN_CHARS` characters).

    Raises
    ------
    ValueError
        If the token is too short.
    DatabaseError
        If the database is missing or cannot be read.
    """
    if len(token.strip()) < MIN_TOKEN_CHARS:
        raise ValueError(f"the dashboard's token must have at least {MIN_TOKEN_CHARS} characters; make one with "
                         "openssl rand -hex 24")
    if not database_url.startswith(("postgresql://", "postgres://")) and not Path(database_url).is_file():
        raise DatabaseError(f"there is no fleet database at {database_url}; give the collector's database "
                            "(raman-fleet collect --db)")
    probe = FleetDatabase(database_url)  # readable, and of a schema this raman-edge knows
    shown = probe.shown_url()
    probe.close()
    app = Flask(__name__)
    app.config.update(FLEET_DATABASE=database_url, FLEET_DATABASE_SHOWN=shown, FLEET_TOKEN=token,
                      SECRET_KEY=secrets.token_bytes(32), SESSION_COOKIE_NAME="raman_fleet_session",
                      SESSION_COOKIE_SAMESITE="Lax", MAX_CONTENT_LENGTH=64 * 1024)
    app.register_blueprint(pages)
    app.add_template_filter(fixed)
    app.add_template_filter(iso_time)
    app.add_template_filter(summary)
    return app


def serve(database_url: str, host: str, port: int, token: str, log=print) -> None:
    """Serve the dashboard with waitress until interrupted.

    Parameters
    ----------
    database_url : str
        The collector's database (:func:`create_app`).
    host : str
        The address to listen on: ``127.0.0.1`` behind a reverse proxy on the same machine (which adds TLS).
    port : int
        The TCP port; 0 takes a free one (the log line says which).
    token : str
        The secret a user types into the login form, or a script sends as ``Authorization: Bearer TOKEN``.
    log : callable
        Where the address served goes.

    Raises
    ------
    ValueError, DatabaseError
        As :func:`create_app`.
    """
    from waitress import create_server

    app = create_app(database_url, token)
    server = create_server(app, host=host, port=port)
    log(f"serve: the dashboard of {app.config['FLEET_DATABASE_SHOWN']} at http://{host}:{server.effective_port}/ "
        "(read-only)")
    server.run()
