"""`vidanon bench` command: the CLI face of `run_bench`.

Registered by the CLI as ``app.command("bench")(bench_cmd)``. Errors are raised
as `vidanon.errors` types; the CLI maps them to exit codes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import cv2
import typer

from vidanon.errors import OutputError
from vidanon.io.paths import check_side_output
from vidanon.metrics.bench import BenchReport, run_bench, write_plot

LEAK_FRAMES_SHOWN = 20


def bench_cmd(
    original: Annotated[Path, typer.Argument(help="The original video.", show_default=False)],
    anonymized: Annotated[
        Path, typer.Argument(help="Its anonymized version (any tool), same size and frame count.", show_default=False)
    ],
    tracks: Annotated[
        Path | None,
        typer.Option(
            "--tracks",
            help="Tracks file written by 'vidanon anonymize --tracks'. Without it, faces are detected "
            "and tracked again on the original.",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report (with per-frame series) as JSON.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG plot of identity consistency and flicker over time.")
    ] = None,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", min=1, help="Compare only the first N frames.")
    ] = None,
) -> None:
    """Measure privacy, leaks, realism and temporal consistency of an anonymized video."""
    for path, what in ((json_out, "--json"), (plot, "--plot")):
        if path is not None:  # refused before the measurement, not after it
            check_side_output(path, what)
    if plot is not None and not cv2.haveImageWriter(str(plot)):
        raise OutputError(f"{plot}: --plot writes an image; give it an image extension such as .png")
    report = run_bench(original, anonymized, tracks, max_frames, progress=_progress if sys.stderr.isatty() else None)
    if sys.stderr.isatty():
        typer.echo("\r" + " " * 30 + "\r", err=True, nl=False)
    for w in report.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(format_report(report))
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {json_out}: {exc}") from exc
        typer.echo(f"report written to {json_out}")
    if plot is not None:
        write_plot(report, plot)
        typer.echo(f"plot written to {plot}")


def _progress(n: int) -> None:
    if n % 10 == 0:
        typer.echo(f"\rmeasured {n} frames", err=True, nl=False)


def format_report(r: BenchReport) -> str:
    """The human-readable table that `vidanon bench` prints."""
    p, lk, re, f = r.privacy, r.leak, r.realism, r.flicker
    rows: list[tuple[str, str, str]] = [
        (
            "privacy",
            f"cosine to original: mean {_n(p.mean)}, max {_n(p.max)}",
            f"{_pct(p.share_at_or_above)} of faces at or above {p.threshold:g} (same person)",
        ),
        ("leak", f"{lk.count} of {lk.face_frames} frames with faces", _frames(lk.frames)),
        ("realism", f"{_pct(re.share)} of faces still detected", f"{re.detected} of {re.faces}"),
    ]
    for lag, s in r.identity.items():
        rows.append(
            (
                f"identity {lag:>2}",
                f"cosine {lag} frame{'s' if lag > 1 else ''} apart: mean {_n(s.mean)}, p5 {_n(s.p5)}",
                f"{s.pairs} pairs, {len(r.tracks)} tracks",
            )
        )
    rows.append(
        (
            "flicker",
            f"output {_n(f.output, 2)}, original {_n(f.original, 2)}",
            f"ratio {_n(f.ratio, 2)} over {f.pairs} frame pairs" + (f" ({f.cuts} cuts left out)" if f.cuts else ""),
        )
    )
    rows.append(
        (
            "flicker, low-pass",
            f"output {_n(f.output_lowpass, 2)}, original {_n(f.original_lowpass, 2)}",
            f"ratio {_n(f.ratio_lowpass, 2)} (detail finer than the flow left out; sharpness alone raises the plain ratio)",
        )
    )
    head = (
        f"{r.original}  vs  {r.anonymized}\n"
        f"{r.frames} frames {r.width}x{r.height}, {r.faces} face positions ({p.faces} detected in the original), "
        f"tracks {r.tracks_source}, {r.seconds:.1f} s"
    )
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(b) for _, b, _ in rows)
    lines = [head, ""] + [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]
    return "\n".join(lines)


def _n(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _frames(frames: list[int]) -> str:
    if not frames:
        return ""
    shown = ", ".join(str(i) for i in frames[:LEAK_FRAMES_SHOWN])
    more = f" ... (+{len(frames) - LEAK_FRAMES_SHOWN})" if len(frames) > LEAK_FRAMES_SHOWN else ""
    return f"frames {shown}{more}"
