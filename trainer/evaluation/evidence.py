"""``raman-train report``: one recorded measurement's analysis and its evidence, as a page to file.

The page (A4 portrait; written as ``ID.png`` and a one-page ``ID.pdf``) has a header (the measurement's
time, device, trigger, the model's and the library's ids with the model's file hashes, the verdict) and
one panel for each part of the analysis the record holds (:mod:`device.service.record`):

* the calibrated spectrum as measured, always;
* identify: the sample over each best hit, with its HQI;
* verify: the sample over the expected material's reference, with the p-value and PASS or FAIL;
* mixture: the sample, the fit, each component with its fraction and the background; under it the residual;
* a model verdict: the sample with its relevance shaded and the top bands marked.

In the identify and verify panels each curve is scaled to 0..1 (HQI and the test do not depend on the
scale); the mixture panel keeps the unmixing's own units, in which the fit is the sum of its parts.
"""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np

from device.errors import RamanEdgeError
from device.fileio import write_replacing
from device.service.record import Record, RecordStore, analysis_summary, iso_time

#: A4 portrait, inches.
PAGE_INCHES = (210 / 25.4, 297 / 25.4)
#: Resolution of the PNG, dots per inch (1240 x 1753 pixels).
PNG_DPI = 150
#: Most hits drawn in the identify panel.
HITS_DRAWN = 5
#: Header text wraps at this many characters.
HEADER_COLUMNS = 110


class ReportError(RamanEdgeError):
    """A recorded measurement cannot be reported; the message says why and what to do."""


def report_paths(out, measurement_id: int) -> tuple[Path, Path]:
    """The PNG and the PDF ``report`` writes for ``measurement_id`` in directory ``out``."""
    out = Path(out)
    return out / f"{measurement_id}.png", out / f"{measurement_id}.pdf"


def load_measurement(db, measurement_id: int) -> Record:
    """Recorded measurement ``measurement_id`` of the record file ``db``, with an analysis to report.

    Raises
    ------
    ReportError
        The file is missing, the id is not in it, the measurement failed, or it was recorded without an
        analysis (before the record kept them).
    RecordError
        The file cannot be opened as a record.
    """
    path = Path(db)
    if not path.is_file():
        raise ReportError(f"no record at {db}; give the device's record file (DATA/record.db, copied from the "
                          "device) with --db")
    store = RecordStore(path)
    try:
        rec = store.get(measurement_id)
        count = store.count()
    finally:
        store.close()
    if rec is None:
        held = f"it holds {count} measurement(s)" if count else "it holds no measurement"
        raise ReportError(f"measurement {measurement_id} is not in the record {db} ({held}); list them with "
                          f"raman-device history --db {db}")
    if rec.error is not None or rec.shift is None:
        raise ReportError(f"measurement {measurement_id} failed ({rec.error or 'no spectrum recorded'}), so it has "
                          "no verdict to report; list the others with raman-device history")
    if rec.analysis is None:
        raise ReportError(f"measurement {measurement_id} was recorded without an analysis (by a raman-edge before "
                          "the record kept analyses, record schema version 1); only measurements recorded since "
                          "can be reported")
    return rec


def write_report(rec: Record, png: Path, pdf: Path) -> None:
    """Draw ``rec`` and write it as ``png`` (A4 at :data:`PNG_DPI`) and the one-page ``pdf``, each whole or not at all.

    The directory is created if missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    fig = draw(rec)
    title = f"raman-edge measurement {rec.id}"
    summary = _verdict_line(rec)
    outputs = {}
    for fmt, path, meta in (("png", png, {"Title": title, "Description": summary}),
                            ("pdf", pdf, {"Title": title, "Subject": summary, "Creator": "raman-edge"})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata=meta)
        outputs[path] = buffer.getvalue()
    for path, data in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_replacing(path, data)


def draw(rec: Record):
    """The report page of ``rec`` (with ``analysis``; ``evidence`` may be None) as a matplotlib Figure."""
    from matplotlib.figure import Figure

    analysis, evidence = rec.analysis, rec.evidence or {}
    mode = analysis.get("mode")
    hits = sum(f"hit.{i}" in evidence for i in range(min(len(analysis.get("hits", [])), HITS_DRAWN)))
    layout = [("measured", 1.0, None)]  # (panel, height in units, the panel it hangs under)
    if mode == "identify" and hits and "sample" in evidence:
        layout.append(("identify", max(1.2, 0.55 * hits), None))
    if mode == "verify" and "sample" in evidence and "hit.0" in evidence:
        layout.append(("verify", 1.0, None))
    if analysis.get("mixture") and "sample" in evidence and "fit" in evidence:
        layout += [("mixture", 1.3, None), ("residual", 0.45, "mixture")]
    if "relevance" in evidence:
        layout += [("relevance", 1.0, None), ("map", 0.4, "relevance")]
    fig = Figure(figsize=PAGE_INCHES)
    header = _header(rec)
    fig.text(0.06, 0.975, header[0], fontsize=12, weight="bold", va="top")
    fig.text(0.06, 0.952, "\n".join(header[1:]), fontsize=7.5, va="top", family="monospace", linespacing=1.4)
    top, bottom = 0.945 - 0.0135 * (len(header) - 1), 0.05
    gaps = [0.012 if parent == "relevance" else 0.035 if parent else 0.05 for _, _, parent in layout]
    gaps[0] = 0.03
    unit = min(0.15, (top - bottom - sum(gaps)) / sum(h for _, h, _ in layout))
    axes, y = {}, top
    for (name, height, parent), gap in zip(layout, gaps):
        y -= gap + height * unit
        axes[name] = fig.add_axes((0.1, y, 0.7, height * unit), sharex=axes.get(parent))
        axes[name].tick_params(labelsize=7)
        if parent:
            axes[parent].tick_params(labelbottom=False)
    _measured(axes["measured"], rec)
    if "identify" in axes:
        _identify(axes["identify"], analysis, evidence)
    if "verify" in axes:
        _verify(axes["verify"], analysis, evidence)
    if "mixture" in axes:
        _mixture(axes["mixture"], axes["residual"], analysis["mixture"], evidence)
    if "relevance" in axes:
        _relevance(axes["relevance"], axes["map"], rec, evidence)
    elif analysis.get("bands"):
        listed = _mark_bands(axes["measured"], analysis["bands"])
        axes["measured"].set_title(f"{axes['measured'].get_title(loc='left')}; the bands that decided "
                                   f"{rec.verdict}: {listed} cm-1", fontsize=9, loc="left")
    axes[layout[-1][0]].set_xlabel("Raman shift (cm-1)")
    return fig


def _verdict_line(rec: Record) -> str:
    """``verdict PET (confidence 0.912); identify: PET (HQI 93.1)``."""
    verdict = f"verdict {rec.verdict}" + ("" if rec.confidence is None else f" (confidence {rec.confidence:.3f})")
    summary = analysis_summary(rec.analysis)
    return verdict + (f"; {summary}" if summary else "")


def _header(rec: Record) -> list[str]:
    """The title line, then the header's lines (device, trigger, model, hashes, library, verdict)."""
    device = ", ".join(f"{k} {v}" for k, v in rec.device.items() if not isinstance(v, (dict, list)))
    lines = [f"time      {iso_time(rec.time)}    trigger {rec.trigger}"]
    lines += textwrap.wrap(f"device    {device or 'not recorded'}", HEADER_COLUMNS, subsequent_indent=" " * 10)
    lines.append(f"model     {rec.model or 'none'}")
    examples = [name for name in rec.model_files if name.startswith("examples/")]
    lines += [f"          {name} sha256 {digest}" for name, digest in sorted(rec.model_files.items())
              if name not in examples]
    if examples:
        lines.append(f"          and {len(examples)} example spectra of its self-test (hashes in the record)")
    if rec.analysis.get("library"):
        lines.append(f"library   {rec.analysis['library']}")
    lines += textwrap.wrap(f"result    {_verdict_line(rec)}", HEADER_COLUMNS, subsequent_indent=" " * 10)
    return [f"raman-edge measurement {rec.id}", *lines]


def _unit(y: np.ndarray) -> np.ndarray:
    """``y`` (P,) scaled to 0..1 (a flat curve to 0)."""
    span = np.ptp(y)
    return (y - y.min()) / span if span > 0 else np.zeros_like(y)


def _measured(ax, rec: Record) -> None:
    ax.plot(rec.shift, rec.intensity, color="k", lw=0.7)
    ax.set_title(f"measured spectrum, calibrated ({rec.shift.size} points)", fontsize=9, loc="left")
    ax.set_ylabel("intensity", fontsize=8)


def _identify(ax, analysis: dict, evidence: dict) -> None:
    """The sample (black) over each hit's reference (colour), best at the top, one row per hit."""
    x, sample = evidence["axis"], _unit(evidence["sample"])
    hits = [(h, evidence[f"hit.{i}"]) for i, h in enumerate(analysis.get("hits", [])[:HITS_DRAWN])
            if f"hit.{i}" in evidence]
    for k, (hit, reference) in enumerate(hits):
        offset = -1.15 * k
        ax.plot(x, sample + offset, color="k", lw=0.6)
        ax.plot(x, _unit(reference) + offset, color=f"C{k}", lw=0.9, alpha=0.85)
        ax.text(1.01, 0.5 + offset, f"{k + 1}. {hit['name']}\nHQI {hit['hqi']:.1f}", transform=ax.get_yaxis_transform(),
                fontsize=8, color=f"C{k}", va="center")
    best = hits[0][0]
    if analysis.get("match", True):
        outcome = f"best {best['name']}, HQI {best['hqi']:.1f}"
    else:
        outcome = f"no match: best {best['name']}, HQI {best['hqi']:.1f} below {analysis['no_match_below']:g}"
    ax.set_title(f"identify against {analysis.get('library', 'the library')}: {outcome} "
                 "(sample black over each reference)", fontsize=9, loc="left")
    ax.set_yticks([])
    ax.set_ylabel("scaled, offset", fontsize=8)


def _verify(ax, analysis: dict, evidence: dict) -> None:
    x = evidence["axis"]
    passed = analysis.get("result") == "PASS"
    ax.plot(x, _unit(evidence["sample"]), color="k", lw=0.7, label="sample")
    ax.plot(x, _unit(evidence["hit.0"]), color="tab:green" if passed else "tab:red", lw=0.9, alpha=0.85,
            label=f"{analysis['expected']} (expected)")
    stats = "".join(f", {k.upper()} {analysis[k]:.3g}" for k in ("t2", "q") if k in analysis)
    ax.set_title(f"verify {analysis['expected']}: {analysis['result']} (p = {analysis['p_value']:.3g}, "
                 f"alpha {analysis['alpha']:g}{stats})", fontsize=9, loc="left",
                 color="tab:green" if passed else "tab:red")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_ylabel("scaled", fontsize=8)


def _mixture(ax, ax_residual, mixture: dict, evidence: dict) -> None:
    x = evidence["axis"]
    ax.plot(x, evidence["sample"], color="k", lw=0.8, label="sample")
    ax.plot(x, evidence["fit"], color="tab:red", lw=0.9, ls="--", label="fit")
    for i, c in enumerate(mixture["components"]):
        if f"component.{i}" in evidence:
            ax.plot(x, evidence[f"component.{i}"], color=f"C{i}", lw=0.8, label=f"{c['name']} {c['fraction']:.2f}")
    if "background" in evidence:
        ax.plot(x, evidence["background"], color="0.5", lw=0.8, ls=":", label="background")
    called = "a mixture" if mixture["is_mixture"] else "one material"
    relation = "above" if mixture["statistic"] > mixture["threshold"] else "not above"
    parts = " + ".join(f"{c['name']} {c['fraction']:.2f}" for c in mixture["components"])
    ax.set_title(f"mixture: {parts}; {called} (statistic {mixture['statistic']:.3g} {relation} threshold "
                 f"{mixture['threshold']:.3g})", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_ylabel("preprocessed", fontsize=8)
    if "residual" in evidence:
        ax_residual.plot(x, evidence["residual"], color="tab:purple", lw=0.7)
    ax_residual.axhline(0, color="0.5", lw=0.5)
    ax_residual.set_title(f"residual of the fit ({mixture['residual']:.3g})", fontsize=9, loc="left")


def _relevance(ax, ax_map, rec: Record, evidence: dict) -> None:
    """The sample (or the measured spectrum) with the top bands marked; under it the relevance, shaded."""
    x, relevance = evidence["axis"], evidence["relevance"]
    if "sample" in evidence:
        ax.plot(x, evidence["sample"], color="k", lw=0.7)
    else:
        ax.plot(rec.shift, rec.intensity, color="k", lw=0.7)
    listed = _mark_bands(ax, rec.analysis.get("bands", []))
    ax.set_title(f"bands that decided {rec.verdict}: {listed} cm-1 (numbered by relevance)", fontsize=9, loc="left")
    ax.set_ylabel("sample", fontsize=8)
    peak = np.abs(relevance).max()
    scaled = relevance / peak if peak > 0 else relevance
    ax_map.fill_between(x, 0, np.maximum(scaled, 0), color="tab:red", alpha=0.6, lw=0)
    ax_map.fill_between(x, 0, np.minimum(scaled, 0), color="tab:blue", alpha=0.6, lw=0)
    ax_map.axhline(0, color="0.5", lw=0.5)
    ax_map.set_ylim(-1.05 if scaled.min() < 0 else 0, 1.05)
    ax_map.set_ylabel("relevance", fontsize=8)


def _mark_bands(ax, bands: list) -> str:
    """Dashed lines at ``bands``, numbered from 1 (the most relevant) above the panel; their shifts as text."""
    for rank, band in enumerate(bands, 1):
        ax.axvline(band["shift"], color="tab:red", lw=0.6, ls="--")
        ax.text(band["shift"], 0.97, str(rank), transform=ax.get_xaxis_transform(), ha="center", va="top",
                fontsize=7, color="tab:red")
    return ", ".join(f"{band['shift']:.0f}" for band in bands) or "none"
