"""One measurement's spectrum and evidence as an SVG figure, drawn from its arrays without a browser.

:func:`measurement_svg` returns one ``<svg>`` element of panels one above the other, as ``raman-train
report`` draws them on paper (:mod:`device.service.record` names the arrays and the analysis's keys):

* the calibrated spectrum as measured, intensity against Raman shift, always;
* identify: the sample over each best hit (``hit.N``), each scaled to 0..1, one row per hit, named with its HQI;
* verify: the sample over the expected material's reference (``hit.0``), both scaled to 0..1;
* mixture: the sample, the fit, each component (``component.N``) and the background in the unmixing's
  units; under it the residual;
* classify: the decisive bands (``analysis["bands"]``) marked on the sample, and under it the relevance,
  shaded (positive red, negative blue); without a relevance map, the bands are marked on the measured spectrum.

Everything a device supplied is untrusted: its text (names, verdicts) is escaped, a malformed analysis entry
is left out, and an evidence array of another shape than ``axis`` is not drawn. Colours are presentation
attributes (no style sheet, no script), so the figure shows under a strict Content-Security-Policy. The
arrays are taken to be finite, as :func:`fleet.database.decode_array` makes them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

#: The figure's width, pixels; its height follows from its panels.
WIDTH = 960
#: The margins around each panel's plot area, pixels: axis labels at the left, legend at the right.
LEFT, RIGHT, ABOVE, BELOW = 72, 240, 26, 44
#: The height of a panel of one unit, pixels (sub-panels are fractions of it).
UNIT = 150
#: The measured spectrum's colour, and the others' in turn (hits, components).
SPECTRUM = "#0057b8"
PALETTE = ("#e8710a", "#1e8e3e", "#9334e6", "#d01884", "#12a4af", "#8c6d1f")
SAMPLE, FIT, BACKGROUND, RESIDUAL, BAND = "#202124", "#d93025", "#80868b", "#7b1fa2", "#c5221f"
RELEVANT, AGAINST = "#d93025", "#1a73e8"
#: Most hits drawn in the identify panel.
HITS_DRAWN = 5
#: Longest label drawn in a legend, characters.
LABEL_CHARS = 34


@dataclass(frozen=True)
class Frame:
    """A plot area in the figure, pixels (``left``, ``top``, ``width``, ``height``), and the data range it shows."""

    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, x) -> np.ndarray:
        """Data x (cm-1) -> pixels from the figure's left (Raman shift grows to the right)."""
        return self.left + (np.asarray(x, dtype=float) - self.x0) / (self.x1 - self.x0) * self.width

    def py(self, y) -> np.ndarray:
        """Data y -> pixels from the figure's top (y grows upwards)."""
        return self.top + (self.y1 - np.asarray(y, dtype=float)) / (self.y1 - self.y0) * self.height


def span(values: list[np.ndarray], pad: float = 0.0) -> tuple[float, float]:
    """The range of all ``values``, widened by ``pad`` of it at each end; a single value gets a width of 2."""
    lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1.0):
        return lo - 1.0, hi + 1.0
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


def ticks(lo: float, hi: float, count: int = 8) -> tuple[np.ndarray, int]:
    """Round values in ``[lo, hi]``, about ``count`` of them, 1, 2 or 5 times a power of ten apart.

    Returns
    -------
    values : ndarray
        The ticks, ascending.
    decimals : int
        How many decimals show them exactly.
    """
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = power * min((1, 2, 5, 10), key=lambda m: abs(math.log(m * power / raw)))
    values = np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1) * step
    return values, max(0, -math.floor(math.log10(step) + 1e-9))


def thinned(frame: Frame, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` with at most two points per pixel column (its lowest and highest), when there are more.

    What shows on the screen is unchanged; a spectrum of tens of thousands of points stays a small page.
    """
    if x.size <= 2 * frame.width:
        return x, y
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    column = np.clip(((x - frame.x0) / (frame.x1 - frame.x0) * frame.width).astype(int), 0, int(frame.width) - 1)
    starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
    low, high = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    return np.repeat(x[starts], 2), np.column_stack([low, high]).ravel()


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs.tolist(), ys.tolist()))


def number(value) -> float | None:
    """``value`` as a float if it is a finite real number (not a bool), else None: what a device sent is unchecked."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _label(text) -> str:
    """Device text for a legend: a string, cut to :data:`LABEL_CHARS` (escaped when written)."""
    text = str(text)
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "\u2026"


def _unit(y: np.ndarray) -> np.ndarray:
    """``y`` scaled to 0..1 (a flat curve to 0)."""
    width = np.ptp(y)
    return (y - y.min()) / width if width > 0 else np.zeros_like(y)


class _Panel:
    """One panel: its frame, axes and layers, as SVG text."""

    def __init__(self, number: int, top: float, height: float, title: str, x: np.ndarray, ys: list[np.ndarray],
                 y_label: str | None, y_ticks: bool, pad: float):
        (x0, x1), (y0, y1) = span([x]), span(ys, pad)
        self.frame = Frame(LEFT, top + ABOVE, WIDTH - LEFT - RIGHT, height, x0, x1, y0, y1)
        self.clip = f"plot-area-{number}"
        self.bottom = self.frame.top + height + BELOW
        self.layers: list[str] = []  # clipped to the plot area
        self.labels: list[str] = []  # beside it
        self.legend: list[tuple[str, str]] = []
        self.title, self.y_label, self.y_ticks = title, y_label, y_ticks

    def line(self, x, y, colour: str, role: str, label: str | None = None, dash: str | None = None,
             width: float = 1.3) -> None:
        """A polyline of ``y`` against ``x``, named ``label`` in the legend when given."""
        xs, ys = thinned(self.frame, np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.layers.append(f'<polyline class="{role}" points="{_points(self.frame.px(xs), self.frame.py(ys))}" '
                           f'fill="none" stroke="{colour}" stroke-width="{width}"{dashed} '
                           'stroke-linejoin="round"/>')
        if label is not None:
            self.legend.append((colour, label))

    def area(self, x, y, colour: str, role: str) -> None:
        """The area between ``y`` and zero, shaded."""
        f = self.frame
        xs, ys = thinned(f, np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        xs, ys = f.px(xs), f.py(ys)
        zero = float(f.py(0.0))
        outline = _points(np.r_[xs[0], xs, xs[-1]], np.r_[zero, ys, zero])
        self.layers.append(f'<polygon class="{role}" points="{outline}" fill="{colour}" fill-opacity="0.45" '
                           'stroke="none"/>')

    def bands(self, bands, numbered: bool = True) -> None:
        """Dashed vertical lines at each band's shift (cm-1), labelled with its rank and shift above the panel."""
        f = self.frame
        for rank, band in enumerate(bands if isinstance(bands, list) else [], 1):
            shift = number(band.get("shift")) if isinstance(band, dict) else None
            if shift is None or not f.x0 <= shift <= f.x1:
                continue
            x = float(f.px(shift))
            text = f"{rank}: {shift:.0f}" if numbered else f"{shift:.0f}"
            self.layers.append(f'<line class="band" x1="{x:.1f}" y1="{f.top:.1f}" x2="{x:.1f}" '
                               f'y2="{f.top + f.height:.1f}" stroke="{BAND}" stroke-width="1" '
                               'stroke-dasharray="4 3"/>')
            self.labels.append(f'<text class="band-label" x="{x:.1f}" y="{f.top - 3:.1f}" text-anchor="middle" '
                               f'font-size="10" fill="{BAND}">{text}</text>')

    def note(self, y: float, text: str, colour: str) -> None:
        """``text`` in the right margin beside data height ``y`` (for the rows of the identify panel)."""
        self.labels.append(f'<text class="row-label" x="{self.frame.left + self.frame.width + 8:.1f}" '
                           f'y="{float(self.frame.py(y)):.1f}" font-size="11" fill="{colour}" '
                           f'dominant-baseline="middle">{escape(text)}</text>')

    def svg(self) -> str:
        """The panel: frame, ticks and their labels in cm-1, title, clipped layers and legend."""
        f = self.frame
        right, base = f.left + f.width, f.top + f.height
        parts = [f'<g class="panel"><clipPath id="{self.clip}"><rect x="{f.left}" y="{f.top:.1f}" '
                 f'width="{f.width}" height="{f.height:.1f}"/></clipPath>',
                 f'<text class="title" x="{f.left}" y="{f.top - 14:.1f}" font-size="12" font-weight="bold">'
                 f'{escape(self.title)}</text>']
        values, decimals = ticks(f.x0, f.x1, 9)
        for v, x in zip(values, f.px(values)):
            parts.append(f'<line x1="{x:.1f}" y1="{base:.1f}" x2="{x:.1f}" y2="{base + 5:.1f}" stroke="#5f6368"/>'
                         f'<text class="x-tick" x="{x:.1f}" y="{base + 17:.1f}" text-anchor="middle" '
                         f'font-size="10">{v + 0.0:.{decimals}f}</text>')
        parts.append(f'<text class="x-label" x="{f.left + f.width / 2:.1f}" y="{base + 34:.1f}" '
                     'text-anchor="middle" font-size="11">Raman shift (cm-1)</text>')
        if self.y_ticks:
            values, decimals = ticks(f.y0, f.y1, 5)
            for v, y in zip(values, f.py(values)):
                parts.append(f'<line x1="{f.left - 5}" y1="{y:.1f}" x2="{f.left}" y2="{y:.1f}" stroke="#5f6368"/>'
                             f'<text class="y-tick" x="{f.left - 8}" y="{y + 3.5:.1f}" text-anchor="end" '
                             f'font-size="10">{v + 0.0:.{decimals}f}</text>')
        if self.y_label:
            middle = f.top + f.height / 2
            parts.append(f'<text class="y-label" x="14" y="{middle:.1f}" transform="rotate(-90 14 {middle:.1f})" '
                         f'text-anchor="middle" font-size="11">{escape(self.y_label)}</text>')
        parts.append(f'<g clip-path="url(#{self.clip})">{"".join(self.layers)}</g>{"".join(self.labels)}')
        parts.append(f'<rect class="frame" x="{f.left}" y="{f.top:.1f}" width="{f.width}" height="{f.height:.1f}" '
                     'fill="none" stroke="#5f6368"/>')
        for i, (colour, label) in enumerate(self.legend):
            y = f.top + 8 + 16 * i
            parts.append(f'<line x1="{right + 8}" y1="{y:.1f}" x2="{right + 26}" y2="{y:.1f}" stroke="{colour}" '
                         f'stroke-width="2"/><text class="legend" x="{right + 31}" y="{y + 4:.1f}" '
                         f'font-size="11">{escape(label)}</text>')
        parts.append("</g>")
        return "".join(parts)


class _Figure:
    """Panels one above the other."""

    def __init__(self):
        self.panels: list[_Panel] = []
        self.height = 0.0

    def panel(self, title: str, x: np.ndarray, ys: list[np.ndarray], units: float, y_label: str | None = None,
              y_ticks: bool = True, pad: float = 0.06) -> _Panel:
        p = _Panel(len(self.panels), self.height, units * UNIT, title, x, ys, y_label, y_ticks, pad)
        self.panels.append(p)
        self.height = p.bottom
        return p

    def svg(self, description: str) -> str:
        height = math.ceil(self.height)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="spectrum" viewBox="0 0 {WIDTH} {height}" '
                f'width="{WIDTH}" height="{height}" font-family="sans-serif" role="img">'
                f'<title>{escape(description)}</title><rect width="{WIDTH}" height="{height}" fill="#ffffff"/>'
                + "".join(p.svg() for p in self.panels) + "</svg>")


def _evidence_on_axis(evidence: dict | None) -> dict[str, np.ndarray]:
    """The evidence arrays of ``axis``'s shape (P,), with ``axis``; empty without an axis."""
    arrays = {str(k): np.asarray(v, dtype=float) for k, v in (evidence or {}).items()}
    axis = arrays.get("axis")
    if axis is None or axis.ndim != 1 or axis.size < 2:
        return {}
    return {k: a for k, a in arrays.items() if a.shape == axis.shape}


def _entries(analysis: dict, key: str) -> list[tuple[int, dict]]:
    """The entries of the list ``analysis[key]`` that are dicts, each with its index (that of its array)."""
    value = analysis.get(key)
    return [(i, e) for i, e in enumerate(value) if isinstance(e, dict)] if isinstance(value, list) else []


def _identify(fig: _Figure, analysis: dict, evidence: dict) -> None:
    hits = [(i, h) for i, h in _entries(analysis, "hits")[:HITS_DRAWN] if f"hit.{i}" in evidence]
    if not hits:
        return
    x, sample = evidence["axis"], _unit(evidence["sample"])
    offsets = [-1.15 * k for k in range(len(hits))]
    p = fig.panel(f"identify against {_label(analysis.get('library', 'the library'))}: sample (black) over each "
                  "hit", x, [np.array([offsets[-1], 1.0])], max(1.2, 0.55 * len(hits)), "scaled, offset",
                  y_ticks=False, pad=0.03)
    for k, ((i, hit), offset) in enumerate(zip(hits, offsets)):
        colour = PALETTE[k % len(PALETTE)]
        p.line(x, sample + offset, SAMPLE, "sample", width=0.9)
        p.line(x, _unit(evidence[f"hit.{i}"]) + offset, colour, f"hit hit-{i}")
        hqi = number(hit.get("hqi"))
        p.note(offset + 0.5, f"{i + 1}. {_label(hit.get('name'))}" + ("" if hqi is None else f" HQI {hqi:.1f}"),
               colour)


def _verify(fig: _Figure, analysis: dict, evidence: dict) -> None:
    x, result = evidence["axis"], str(analysis.get("result"))
    p = fig.panel(f"verify {_label(analysis.get('expected'))}: {_label(result)}", x, [np.array([0.0, 1.0])], 1.0,
                  "scaled")
    p.line(x, _unit(evidence["sample"]), SAMPLE, "sample", "sample", width=1.0)
    p.line(x, _unit(evidence["hit.0"]), PALETTE[1] if result == "PASS" else FIT, "hit hit-0",
           f"{_label(analysis.get('expected'))} (expected)")


def _mixture(fig: _Figure, mixture: dict, evidence: dict) -> None:
    x = evidence["axis"]
    components = [(i, c) for i, c in _entries(mixture, "components") if f"component.{i}" in evidence]
    drawn = ["sample", "fit", *(f"component.{i}" for i, _ in components), "background"]
    called = "a mixture" if mixture.get("is_mixture") else "one material"
    p = fig.panel(f"mixture: {called}", x, [evidence[k] for k in drawn if k in evidence], 1.3, "preprocessed")
    p.line(x, evidence["sample"], SAMPLE, "sample", "sample", width=1.0)
    p.line(x, evidence["fit"], FIT, "fit", "fit", dash="6 3")
    for k, (i, c) in enumerate(components):
        fraction = number(c.get("fraction"))
        p.line(x, evidence[f"component.{i}"], PALETTE[k % len(PALETTE)], f"component component-{i}",
               _label(c.get("name")) + ("" if fraction is None else f" {fraction:.2f}"))
    if "background" in evidence:
        p.line(x, evidence["background"], BACKGROUND, "background", "background", dash="2 2")
    if "residual" in evidence:
        residual = number(mixture.get("residual"))
        r = fig.panel("residual of the fit" + ("" if residual is None else f" ({residual:.3g})"), x,
                      [evidence["residual"], np.zeros(1)], 0.5)
        r.line(x, evidence["residual"], RESIDUAL, "residual", width=1.0)


def _relevance(fig: _Figure, analysis: dict, evidence: dict, shift: np.ndarray, intensity: np.ndarray) -> None:
    x, relevance = evidence["axis"], evidence["relevance"]
    shown = (x, evidence["sample"]) if "sample" in evidence else (shift, intensity)
    p = fig.panel("the bands that decided (numbered by relevance)", shown[0], [shown[1]], 1.0, "sample")
    p.line(*shown, SAMPLE, "sample", "sample", width=1.0)
    p.bands(analysis.get("bands"))
    peak = float(np.abs(relevance).max())
    scaled = relevance / peak if peak > 0 else relevance
    m = fig.panel("relevance", x, [scaled, np.zeros(1), np.ones(1)], 0.5, y_ticks=False, pad=0.03)
    m.area(x, np.maximum(scaled, 0), RELEVANT, "relevance")
    m.area(x, np.minimum(scaled, 0), AGAINST, "relevance")
    m.bands(analysis.get("bands"), numbered=False)


def measurement_svg(shift: np.ndarray, intensity: np.ndarray, analysis: dict | None = None,
                    evidence: dict | None = None, title: str = "measured spectrum") -> str:
    """The figure of one measurement: its spectrum and the evidence of its analysis, as an SVG element.

    Parameters
    ----------
    shift, intensity : ndarray, (P,)
        The calibrated spectrum: Raman shift (cm-1) and intensity.
    analysis : dict or None
        The measurement's analysis (the keys of :mod:`device.service.record`).
    evidence : dict of ndarray (Q,) or None
        Its evidence arrays, on ``evidence["axis"]`` (cm-1).
    title : str
        The figure's accessible title (escaped).

    Returns
    -------
    str
        One ``<svg>`` element, :data:`WIDTH` pixels wide; the measured spectrum is the polyline of class
        ``spectrum`` in colour :data:`SPECTRUM`.
    """
    shift, intensity = np.asarray(shift, dtype=float), np.asarray(intensity, dtype=float)
    analysis = analysis if isinstance(analysis, dict) else {}
    evidence = _evidence_on_axis(evidence)
    fig = _Figure()
    measured = fig.panel(f"measured spectrum, calibrated ({shift.size} points)", shift, [intensity], 1.2,
                         "intensity")
    measured.line(shift, intensity, SPECTRUM, "spectrum", width=1.6)
    mode, sample = analysis.get("mode"), "sample" in evidence
    if mode == "identify" and sample:
        _identify(fig, analysis, evidence)
    if mode == "verify" and sample and "hit.0" in evidence:
        _verify(fig, analysis, evidence)
    mixture = analysis.get("mixture")
    if isinstance(mixture, dict) and sample and "fit" in evidence:
        _mixture(fig, mixture, evidence)
    if "relevance" in evidence:
        _relevance(fig, analysis, evidence, shift, intensity)
    elif mode == "classify":
        measured.bands(analysis.get("bands"))
    return fig.svg(title)
