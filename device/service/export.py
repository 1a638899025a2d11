"""Exporting recorded spectra: training data for ``raman-train`` (csv, npz), or with their analyses (jsonl, jcamp).

Kept apart from the record itself (:mod:`device.service.record`), which the uplink reads without NumPy.
"""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from device.errors import RamanEdgeError
from device.fileio import write_replacing
from device.inference.verdict import UNCERTAIN, UNKNOWN
from device.service.record import Record, iso_time
from firmware_bridge.jcamp import write_jcamp


class ExportError(RamanEdgeError):
    """No recorded spectrum can be exported; the message says why."""


def _analysis_json(analysis: dict) -> str:
    """``analysis`` as JSON on one ASCII line without ``$`` (which a JCAMP-DX ``$$`` comment would cut)."""
    return json.dumps(analysis, separators=(",", ":")).replace("$", "\\u0024")


def _jcamp_date(t: float) -> str:
    """Seconds since the epoch -> a JCAMP-DX ``##LONG DATE`` (``2026/11/22 14:30:05``, UTC)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y/%m/%d %H:%M:%S")

def export(records: list[Record], path, axis, fmt: str) -> int:
    """Write recorded spectra: as training data for ``raman-train`` (csv, npz), or with their analyses (jsonl, jcamp).

    Spectra are resampled onto ``axis`` (the model's); those that do not cover it are left out, and so are
    failed or refused measurements. The training formats also leave out the verdicts ``uncertain`` and
    ``unknown`` and those that name no one material: verification results, suitability tests, searches
    without a match and mixtures (by their ``analysis``); the formats that carry the analysis keep them, so an
    audit sees every verdict with its p-values, hits and components.
    ``csv``: a wide table (label column, one column per Raman shift); ``npz``: ``X``, ``y``,
    ``wavenumber``, ``class_names``, plus ``time`` and ``record_id``; ``jsonl``: one JSON object per
    spectrum (``record_id``, ``time``, ``label``, ``analysis`` as recorded or null, ``shift``, ``intensity``);
    ``jcamp``: JCAMP-DX 5.01, one ``(XY..XY)`` block per spectrum titled with its label (with ``##LONG DATE``,
    ``##$RECORD ID`` and, when recorded, ``##$RAMAN EDGE ANALYSIS=`` the analysis as one line of JSON, ``$``
    written ``\u0024``), in a ``##DATA TYPE=LINK`` compound file when there are several. The label is the
    verdict: review it before training on it. The file is written whole or not at all. Returns the number
    of spectra written.

    Raises
    ------
    ExportError
        When none is left to write (nothing is written then), saying why.
    """
    from device.errors import AxisCoverageError
    from device.inference.resample import ResamplerCache

    resamplers = ResamplerCache(axis)
    rows, labels, ids, times, analyses = [], [], [], [], []
    left_out = {"failed or refused": 0, "uncertain or unknown": 0,
                "verifications, suitability tests, no match or mixtures": 0,
                f"not covering the model's axis {axis.start:g}..{axis.stop:g} cm-1": 0}
    reasons = list(left_out)
    training = fmt in ("csv", "npz")
    for r in records:
        a = r.analysis or {}
        if r.verdict is None or r.shift is None:
            left_out[reasons[0]] += 1
            continue
        if training and r.verdict in (UNCERTAIN, UNKNOWN):
            left_out[reasons[1]] += 1
            continue
        if training and (a.get("mode") in ("verify", "sst") or not a.get("match", True)
                         or (a.get("mixture") or {}).get("is_mixture")):
            left_out[reasons[2]] += 1
            continue
        try:
            rows.append(resamplers.get(r.shift)(r.intensity))
        except AxisCoverageError:
            left_out[reasons[3]] += 1
            continue
        labels.append(r.verdict)
        ids.append(r.id)
        times.append(r.time)
        analyses.append(r.analysis)
    if not rows:
        if not records:
            raise ExportError("no measurement matches the filters (--since, --until, --label); nothing was written")
        why = ", ".join(f"{n} {reason}" for reason, n in left_out.items() if n)
        raise ExportError(f"none of the {len(records)} matching measurements has a spectrum with a class verdict "
                          f"to export ({why}); nothing was written")
    path = Path(path)
    buffer = io.BytesIO()
    if fmt == "npz":
        classes = sorted(set(labels))
        np.savez(buffer, X=np.array(rows).reshape(len(rows), axis.points), wavenumber=axis.values,
                 y=np.array([classes.index(c) for c in labels], dtype=np.int64), class_names=np.array(classes),
                 record_id=np.array(ids, dtype=np.int64), time=np.array(times))
    elif fmt == "csv":
        text = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
        text.write("label," + ",".join(f"{x:g}" for x in axis.values) + "\n")
        for label, row in zip(labels, rows):
            text.write(label + "," + ",".join(f"{v:.6g}" for v in row) + "\n")
        text.flush()
    elif fmt == "jsonl":
        shift = axis.values.tolist()
        for label, row, t, i, a in zip(labels, rows, times, ids, analyses):
            buffer.write((json.dumps({"record_id": i, "time": iso_time(t), "label": label, "analysis": a,
                                      "shift": shift, "intensity": row.tolist()}) + "\n").encode())
    elif fmt == "jcamp":
        blocks = [(axis.values, row, {"TITLE": label, "LONG DATE": _jcamp_date(t), "$RECORD ID": i,
                                      **({} if a is None else {"$RAMAN EDGE ANALYSIS": _analysis_json(a)})})
                  for label, row, t, i, a in zip(labels, rows, times, ids, analyses)]
        buffer.write(write_jcamp(blocks, title=f"raman-edge export, {len(blocks)} spectra"))
    else:
        raise ValueError(f"export format is csv, npz, jsonl or jcamp, not {fmt!r}")
    write_replacing(path, buffer.getvalue())
    return len(rows)
