"""The bench plot, drawn with OpenCV (matplotlib is not a dependency).

Two panels over frame index: per-track identity consistency (SFace cosine
between a track's replaced faces one frame apart, with the same-person
threshold), and flicker of the output next to the original's floor.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vidanon.errors import OutputError

if TYPE_CHECKING:
    from vidanon.metrics.bench import BenchReport

W, H = 1200, 760
MARGIN_L, MARGIN_R, MARGIN_T, GAP, MARGIN_B = 80, 190, 70, 70, 50
FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK, GREY, LIGHT = (30, 30, 30), (140, 140, 140), (225, 225, 225)
# BGR, colour-blind-friendly (Okabe-Ito) then tab10-like
PALETTE = [
    (178, 114, 0),
    (0, 94, 213),
    (115, 158, 0),
    (167, 121, 204),
    (66, 228, 240),
    (233, 180, 86),
    (0, 159, 230),
    (40, 39, 214),
    (189, 103, 148),
    (34, 189, 188),
]
MAX_LEGEND = 10


def write_plot(report: BenchReport, path: Path) -> None:
    """Writes the bench plot of `report` as an image (PNG by the extension of `path`).

    Raises:
        OutputError: the image could not be written.
    """
    path = Path(path)
    img = render_plot(report)
    try:
        ok = cv2.imwrite(str(path), img)
    except cv2.error as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise OutputError(f"cannot write plot {path}: {first}") from None
    if not ok:
        raise OutputError(f"cannot write plot {path} (missing folder or unknown image extension?)")


def render_plot(report: BenchReport) -> np.ndarray:
    """The plot as an (H, W, 3) uint8 BGR image."""
    img = np.full((H, W, 3), 255, np.uint8)
    header = (
        f"vidanon bench   {Path(report.original).name}  vs  {Path(report.anonymized).name}   ({report.frames} frames)"
    )
    _put(img, header, (10, 22), 0.55, BLACK)
    x_max = max(1, report.frames - 1)
    panel_h = (H - MARGIN_T - GAP - MARGIN_B) // 2
    top = _Panel(img, MARGIN_L, MARGIN_T, W - MARGIN_L - MARGIN_R, panel_h, (0, x_max), (-0.2, 1.0))
    bottom = _Panel(img, MARGIN_L, MARGIN_T + panel_h + GAP, W - MARGIN_L - MARGIN_R, panel_h, (0, x_max), None)

    # identity consistency
    top.axes("identity consistency: SFace cosine to the same track 1 frame earlier", "cosine")
    thr = report.privacy.threshold
    top.hline(thr, GREY, dashed=True)
    top.text_at(x_max, thr, f"same person {thr:.3f}", GREY)
    legend = []
    by_length = sorted(report.identity_series, key=lambda t: -len(report.identity_series[t]))
    for k, tid in enumerate(by_length):
        colour = PALETTE[k % len(PALETTE)]
        top.series(report.identity_series[tid], colour)
        if k < MAX_LEGEND:
            mean = report.tracks[tid].lags.get(1)
            label = f"track {tid}" + (f" {mean.mean:.2f}" if mean and mean.mean is not None else "")
            legend.append((label, colour))
    if len(by_length) > MAX_LEGEND:
        legend.append((f"+{len(by_length) - MAX_LEGEND} more", GREY))
    if not by_length:
        top.note("no track has faces in consecutive frames")
    top.legend(legend)

    # flicker
    fl = report.flicker_series
    y_hi = max([s.output for s in fl] + [s.original for s in fl] + [1.0])
    bottom.set_y((0.0, _nice_ceil(y_hi * 1.05)))
    bottom.axes("flicker: flow-warped mean abs difference in face regions (0-255)", "abs diff", xlabel="frame")
    orig_colour, out_colour = (120, 120, 120), (40, 39, 214)
    bottom.series([(s.index, s.original) for s in fl], orig_colour)
    bottom.series([(s.index, s.output) for s in fl], out_colour)
    f = report.flicker
    ratio = f"ratio {f.ratio:.2f}" if f.ratio is not None else "ratio n/a"
    bottom.legend(
        [
            (f"output {f.output:.2f}" if f.output is not None else "output", out_colour),
            (f"original {f.original:.2f}" if f.original is not None else "original", orig_colour),
            (ratio, None),
        ]
    )
    if not fl:
        bottom.note("no consecutive frames with faces")
    return img


class _Panel:
    def __init__(self, img, x, y, w, h, xr, yr) -> None:
        self.img, self.x, self.y, self.w, self.h, self.xr, self.yr = img, x, y, w, h, xr, yr

    def set_y(self, yr) -> None:
        self.yr = yr

    def px(self, xv: float, yv: float) -> tuple[int, int]:
        (x0, x1), (y0, y1) = self.xr, self.yr
        yv = min(max(yv, y0), y1)
        px = self.x + (xv - x0) / max(x1 - x0, 1e-9) * self.w
        py = self.y + self.h - (yv - y0) / max(y1 - y0, 1e-9) * self.h
        return int(round(px)), int(round(py))

    def axes(self, title: str, ylabel: str, xlabel: str | None = None) -> None:
        img, x, y, w, h = self.img, self.x, self.y, self.w, self.h
        for yv in _ticks(*self.yr):
            _, py = self.px(self.xr[0], yv)
            cv2.line(img, (x, py), (x + w, py), LIGHT, 1)
            _put(img, _fmt(yv), (x - 8, py + 5), 0.45, BLACK, anchor="right")
        for xv in _ticks(*self.xr, integer=True):
            px, _ = self.px(xv, self.yr[0])
            cv2.line(img, (px, y + h), (px, y + h + 5), BLACK, 1)
            _put(img, _fmt(xv), (px, y + h + 20), 0.45, BLACK, anchor="center")
        cv2.rectangle(img, (x, y), (x + w, y + h), BLACK, 1)
        _put(img, title, (x, y - 10), 0.55, BLACK)
        _put_vertical(img, ylabel, (x - 58, y + h // 2), 0.45, BLACK)
        if xlabel:
            _put(img, xlabel, (x + w // 2, y + h + 42), 0.5, BLACK, anchor="center")

    def hline(self, yv: float, colour, dashed: bool = False) -> None:
        _, py = self.px(0, yv)
        step = 10 if dashed else self.w
        for x0 in range(self.x, self.x + self.w, step):
            cv2.line(self.img, (x0, py), (min(x0 + (6 if dashed else step), self.x + self.w), py), colour, 1)

    def series(self, points, colour) -> None:
        if not points:
            return
        pts = sorted(points)
        segment: list[tuple[int, int]] = []
        prev_f = None
        for f, v in pts:
            if prev_f is not None and f - prev_f > 1:
                self._draw(segment, colour)
                segment = []
            segment.append(self.px(f, v))
            prev_f = f
        self._draw(segment, colour)

    def _draw(self, seg, colour) -> None:
        if len(seg) == 1:
            cv2.circle(self.img, seg[0], 2, colour, -1, cv2.LINE_AA)
        elif seg:
            cv2.polylines(self.img, [np.array(seg, np.int32)], False, colour, 2, cv2.LINE_AA)

    def text_at(self, xv, yv, text, colour) -> None:
        """Text ending at (xv, yv), just above it."""
        px, py = self.px(xv, yv)
        _put(self.img, text, (px - 4, py - 6), 0.45, colour, anchor="right")

    def note(self, text: str) -> None:
        _put(self.img, text, (self.x + self.w // 2, self.y + self.h // 2), 0.6, GREY, anchor="center")

    def legend(self, items) -> None:
        lx, ly = self.x + self.w + 15, self.y + 12
        for k, (label, colour) in enumerate(items):
            yy = ly + k * 22
            if colour is not None:
                cv2.line(self.img, (lx, yy - 4), (lx + 22, yy - 4), colour, 3, cv2.LINE_AA)
            _put(self.img, label, (lx + 30, yy), 0.45, BLACK)


def _put(img, text, org, scale, colour, anchor="left") -> None:
    (tw, _), _ = cv2.getTextSize(text, FONT, scale, 1)
    x, y = org
    if anchor == "right":
        x -= tw
    elif anchor == "center":
        x -= tw // 2
    cv2.putText(img, text, (int(x), int(y)), FONT, scale, colour, 1, cv2.LINE_AA)


def _put_vertical(img, text, centre, scale, colour) -> None:
    """Text rotated 90 degrees counter-clockwise, centred at `centre`."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    tile = np.full((th + base + 4, tw + 4, 3), 255, np.uint8)
    cv2.putText(tile, text, (2, th + 2), FONT, scale, colour, 1, cv2.LINE_AA)
    tile = np.rot90(tile)
    x0, y0 = centre[0] - tile.shape[1] // 2, centre[1] - tile.shape[0] // 2
    y1, x1 = max(0, y0), max(0, x0)
    y2, x2 = min(img.shape[0], y0 + tile.shape[0]), min(img.shape[1], x0 + tile.shape[1])
    if y2 > y1 and x2 > x1:
        sub = tile[y1 - y0 : y2 - y0, x1 - x0 : x2 - x0]
        region = img[y1:y2, x1:x2]
        np.copyto(region, sub, where=sub < 255)


def _ticks(lo: float, hi: float, integer: bool = False, target: int = 6) -> list[float]:
    span = max(hi - lo, 1e-9)
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1, round(step))
    start = math.ceil(lo / step - 1e-9) * step
    out, v = [], start
    while v <= hi + 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def _nice_ceil(v: float) -> float:
    ticks = _ticks(0, v)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else v
    return math.ceil(v / step - 1e-9) * step


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
