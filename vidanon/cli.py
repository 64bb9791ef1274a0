"""Command line: `vidanon anonymize`, `vidanon bench`, `vidanon train`.

The only place that prints for the user and turns errors into exit codes:
2 for bad input or output paths, 1 for other failures, 130 on Ctrl-C, 143 on SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from enum import Enum
from pathlib import Path

import typer

from vidanon import __version__
from vidanon.errors import ConfigError, OutputError, VidanonError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Anonymize faces in recorded video: every face covered, each person one consistent fake face.",
    pretty_exceptions_enable=False,
)


class Terminated(BaseException):
    """SIGTERM arrived."""


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    raise Terminated()


def _err(msg: str) -> None:
    typer.echo(f"vidanon: error: {msg}", err=True)


def _warn(msg: str) -> None:
    typer.echo(f"vidanon: warning: {msg}", err=True)


def run_guarded(fn) -> int:
    """Runs `fn`, mapping every failure to a one-line message and an exit code."""
    old = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        fn()
        return 0
    except VidanonError as exc:
        _err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt as exc:
        _err(f"interrupted; {_left(exc)}")
        return 130
    except Terminated as exc:
        _err(f"terminated; {_left(exc)}")
        return 143
    except MemoryError:
        _err("out of memory")
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback
        if os.environ.get("VIDANON_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        _err(f"unexpected {type(exc).__name__}: {first} (set VIDANON_DEBUG=1 for details)")
        return 1
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


# settings whose names differ from their options (any other `a_b` is `--a-b`), as config errors name them
_OPTION_OF = {
    "score_threshold": "--threshold",
    "max_size": "--detect-size",
    "every": "--detect-every",
    "shape": "--mask-shape",
    "encoder threads": "--encode-threads",
}


def _option_names(msg: str) -> str:
    """A config error as the user typed it: "every must be ..." -> "--detect-every must be ..."."""
    name, sep, rest = msg.partition(" must")
    if not sep or not (name in _OPTION_OF or name.isidentifier()):
        return msg
    return _OPTION_OF.get(name, "--" + name.replace("_", "-")) + sep + rest


def _turn_list(text: str) -> tuple[int, ...]:
    """--turns as typed ("90,270,180", "none") -> the degrees; DetectConfig checks their values."""
    text = text.strip().lower()
    if text in ("", "none", "0"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--turns must be a comma-separated list of 90, 180 and 270, or 'none'; got {text!r}"
        ) from None


def _left(exc: BaseException) -> str:
    """What an interrupted command left: a training run saves its checkpoint first."""
    saved = getattr(exc, "vidanon_saved", None)
    return f"checkpoint {saved[0]} saved at step {saved[1]}" if saved else "no output written"


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class Progress:
    """A one-line progress bar on stderr: frames done/total, fps, ETA."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last < 0.2 and done != total:
            return
        self.last = now
        fps = done / max(now - self.t0, 1e-6)
        if total > 0:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * 30)
            eta = (total - done) / fps if fps > 0 else 0
            line = f"\r[{bar:<30}] {done}/{total} frames  {fps:5.1f} fps  ETA {eta:4.0f}s"
        else:
            line = f"\r{done} frames  {fps:5.1f} fps"
        sys.stderr.write(line)
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


class Mode(str, Enum):
    blur = "blur"
    pixelate = "pixelate"
    solid = "solid"
    gan = "gan"


class Fallback(str, Enum):
    blur = "blur"
    pixelate = "pixelate"
    solid = "solid"


class Shape(str, Enum):
    ellipse = "ellipse"
    box = "box"


class ZMode(str, Enum):
    per_track = "per-track"
    per_frame = "per-frame"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vidanon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details of each stage."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="vidanon: %(message)s")


@app.command()
def anonymize(
    input: Path = typer.Argument(..., readable=False, help="Video file, image file, or a folder of images."),
    output: Path = typer.Argument(..., help="Output video/image file, or folder for a folder input."),
    mode: Mode = typer.Option(Mode.blur, "--mode", "-m", help="How faces are covered."),
    mask_shape: Shape = typer.Option(Shape.ellipse, "--mask-shape", help="Shape of the covered region."),
    mask_scale: float = typer.Option(1.3, "--mask-scale", help="Covered region = face box scaled by this (1-4)."),
    fallback: Fallback = typer.Option(
        Fallback.blur, "--fallback", help="Filter for faces the generator cannot handle and for failed frames."
    ),
    seed: int = typer.Option(0, "--seed", help="Run seed: with the track id it fixes each fake identity (gan mode)."),
    z_mode: ZMode = typer.Option(
        ZMode.per_track,
        "--z-mode",
        help="per-track: one fake identity per track; per-frame: a new one each frame (DeepPrivacy's behaviour, for comparison).",
    ),
    temporal_blend: float = typer.Option(
        0.1,
        "--temporal-blend",
        help="gan mode: weight of the new generated face against the track's running one while the head holds "
        "its pose (1 = off; lower = steadier; the weight rises to 1 as the pose changes).",
    ),
    regenerate_every: int = typer.Option(
        4,
        "--regenerate-every",
        help="gan mode: generate a track's face anew every Nth frame only (and whenever its pose or "
        "surroundings change, or the identity guard checks it), its running face pasted between (1-8). "
        "4 (the default) is ~12% faster on 2 cores than 1; a face the frame edge cuts is generated every frame.",
    ),
    donor_context: float | None = typer.Option(
        None,
        "--donor-context",
        help="gan mode, experimental: show the generator the donor face within its face region grown by this "
        "factor (1-4), the crop's own surroundings around it instead of the donor's hair and background; 0: "
        "the donor as drawn. Default: the checkpoint's (the bundled one: 0; with it at 1.5 the stress scenes "
        "showed leaks, see the weights README).",
    ),
    donor_detail: float = typer.Option(
        24.0,
        "--donor-detail",
        help="gan mode: take the generated face's detail finer than this (pixels of the 64 px crop) from its "
        "donor face, sharp, its colour and light from the generator (0-32; 0: off). Faces blurred or under "
        "27 px get less or none.",
    ),
    donor_reach: float = typer.Option(
        3.0,
        "--donor-reach",
        help="gan mode: how far that detail reaches: the donor's face region grown by this (1-4; 1.1: the face "
        "alone; 3: the whole replaced region, with the donor's hair, so each z is another head, not only "
        "another face in the same guessed hair).",
    ),
    ring: float = typer.Option(
        0.25,
        "--ring",
        help="gan mode: blend the outer share of each generated region (0-0.5 of its radius) into the "
        "surroundings mirrored inward across its edge, so no disc edge shows on hair (0: off).",
    ),
    identity_guard: bool = typer.Option(
        True,
        "--identity-guard/--no-identity-guard",
        help="gan mode, per-track z: check each track's first fake face against the original with SFace and "
        "draw another z if it looks like the same person.",
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Generator checkpoint (default: the bundled one)."
    ),
    device: str = typer.Option("cpu", "--device", help="Torch device for the generator: cpu or cuda."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="Generator arithmetic on the CPU: auto (bf16 where the CPU has native bf16, else fp32), fp32 or bf16.",
    ),
    threshold: float = typer.Option(0.5, "--threshold", help="Detector score threshold (lower covers more)."),
    detect_size: int = typer.Option(640, "--detect-size", help="Detect on a copy downscaled to this longer side."),
    detect_every: int = typer.Option(
        1,
        "--detect-every",
        help="1 or 2: run the detector every Nth frame; a skipped frame places each face halfway between its "
        "detections before and after (the hold is N - 1 frames longer and the lookahead at least N). At 2 on the "
        "samples: blur 1.2-1.3x faster, gan 1.0-1.5x, every face covered, no more flicker than at 1. "
        "A face the detector finds only in skipped frames (at the frame edge, say) stays bare, unless the "
        "picture changed much since the previous frame or it is the last frame (those are detected). "
        "From 3 on faces went partly bare, so 3 is refused (benchmarks/detect_every.py).",
    ),
    turns: str = typer.Option(
        "90,270,180",
        "--turns",
        help="Also search the frame turned clockwise by these degrees (90, 180, 270; 'none': upright only), for "
        "faces rolled sideways or upside down, which the upright pass misses from about 45 degrees on (found on the "
        "bundled photos at every roll: 94% against 44% upright only). One turn every 2nd frame, each turn every 6th "
        "(the lookahead is at least 6, so a face found turned is covered back to where it entered), all of them on "
        "the first frame, at a cut and on the last frame, and a turn that found a face scoring 0.75 on every frame "
        "while it is held. In gan mode a turned face scoring under 0.75 gets the fallback filter (the turns also took "
        "a wine glass and a torso for faces). Costs 1.5-1.7x the detection time (blur at 720p on 2 cores ran "
        "0.85x as fast as with 'none'; benchmarks/turned.py, speed.py --upright).",
    ),
    hold_frames: int = typer.Option(
        12,
        "--hold-frames",
        help="Keep covering a missed face at its predicted place for this many frames (N - 1 more with --detect-every N).",
    ),
    lookahead: int = typer.Option(
        8,
        "--lookahead",
        help="Frames buffered so a new face is also covered in the frames before its first detection (at least 2 per "
        "turn with --turns, 6 with the default turns; at least N with --detect-every N).",
    ),
    smoothing: bool = typer.Option(
        True, "--smoothing/--no-smoothing", help="Smooth face boxes and landmarks over time."
    ),
    motion: bool | None = typer.Option(
        None,
        "--motion/--no-motion",
        help="With smoothing, carry each face from frame to frame by its own image motion (optical flow), the "
        "detector correcting it slowly: steadier faces, ~0.3 ms per face per frame. Default: on in gan mode only.",
        show_default=False,
    ),
    motion_gain: float = typer.Option(
        0.1,
        "--motion-gain",
        help="With motion: the share of the gap to the detection closed per frame (0-1]. Lower is steadier; "
        "higher follows expressions and turns sooner (a landmark a tenth of the face off snaps to it either way).",
    ),
    codec: str = typer.Option(
        "libx264",
        "--codec",
        help="Video encoder, e.g. libx264, libx265, h264_nvenc (NVIDIA GPU; falls back to libx264 with a warning "
        "where it cannot open).",
    ),
    crf: int = typer.Option(18, "--crf", help="Constant rate factor (quality) for x264/x265, 0-51."),
    preset: str = typer.Option("veryfast", "--preset", help="Encoder speed preset."),
    encode_threads: int = typer.Option(
        0,
        "--encode-threads",
        help="x264/x265 threads (0: half the cores, 2 to 8). Output bytes depend on it: pin it for identical files "
        "across machines.",
    ),
    keep_metadata: bool = typer.Option(
        False,
        "--keep-metadata",
        help="Keep location/creation metadata, and subtitle tracks of GPS positions (stripped by default; rotation is always kept).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    tracks: Path | None = typer.Option(
        None, "--tracks", help="Write per-frame faces (box, landmarks, score, track id, state) to this JSON file."
    ),
    json_summary: Path | None = typer.Option(None, "--json-summary", help="Write the run summary to this JSON file."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 1, no output) if the input has damaged packets."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary line."),
) -> None:
    """Cover every face of INPUT and write OUTPUT. Audio and other streams are copied."""
    from vidanon.config import CoverConfig, DetectConfig, EncodeConfig, PipelineConfig, TrackConfig

    def work() -> None:
        try:
            cfg = PipelineConfig(
                detect=DetectConfig(
                    score_threshold=threshold, max_size=detect_size, every=detect_every, turns=_turn_list(turns)
                ),
                track=TrackConfig(
                    hold_frames=hold_frames,
                    lookahead=lookahead,
                    smoothing=smoothing,
                    motion=motion,
                    motion_gain=motion_gain,
                ),
                cover=CoverConfig(
                    mode=mode.value,
                    shape=mask_shape.value,
                    mask_scale=mask_scale,
                    fallback=fallback.value,
                    seed=seed,
                    temporal_blend=temporal_blend,
                    regenerate_every=regenerate_every,
                    donor_context=donor_context,
                    donor_detail=donor_detail,
                    donor_reach=donor_reach,
                    ring=ring,
                    z_mode=z_mode.value,
                    identity_guard=identity_guard,
                    checkpoint=str(checkpoint) if checkpoint else None,
                    device=device,
                    precision=precision,
                ),
                encode=EncodeConfig(
                    codec=codec, crf=crf, preset=preset, keep_metadata=keep_metadata, threads=encode_threads
                ),
                strict=strict,
            )
        except ValueError as exc:
            raise ConfigError(_option_names(str(exc))) from None
        from vidanon.io.paths import check_side_output
        from vidanon.pipeline import anonymize_path

        if json_summary is not None:
            check_side_output(json_summary, "--json-summary")
        bar = Progress() if (not quiet and sys.stderr.isatty()) else None
        try:
            summary = anonymize_path(input, output, cfg, tracks_path=tracks, overwrite=overwrite, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        for w in summary.warnings:
            _warn(w)
        if json_summary is not None:
            try:
                json_summary.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
            except OSError as exc:
                raise OutputError(f"{json_summary}: could not write the run summary ({exc.strerror or exc})") from None
        if not quiet:
            fps = summary.frames_written / max(summary.seconds, 1e-6)
            streams = f", {len(summary.streams_copied)} stream(s) copied" if summary.streams_copied else ""
            # gan mode: how many of them the fallback filter covered instead of a generated face
            filtered = f" ({summary.faces_filtered} by the filter)" if mode == "gan" else ""
            typer.echo(
                f"wrote {output}: {summary.frames_written} frame(s), {summary.faces_covered} face region(s) "
                f"covered{filtered} in {summary.tracks} track(s), {summary.frames_with_fallback} frame(s) with fallback{streams}, "
                f"{summary.seconds:.1f} s ({fps:.1f} frames/s)",
                err=True,
            )

    code = run_guarded(work)
    if code:
        raise typer.Exit(code)


def _register_subsystem_commands() -> None:
    """Commands that live with their own subsystems (their modules import torch lazily)."""
    from vidanon.metrics.command import bench_cmd
    from vidanon.train.command import train_cmd

    app.command("bench")(_guarded(bench_cmd))
    app.command("train")(_guarded(train_cmd))


def _guarded(fn):
    """`fn` as a command whose failures become one-line errors and exit codes."""
    import functools

    @functools.wraps(fn)
    def command(*args, **kwargs):
        code = run_guarded(lambda: fn(*args, **kwargs))
        if code:
            raise typer.Exit(code)

    return command


_register_subsystem_commands()


def main() -> None:
    """The console entry point: a usage error (an unknown option or choice, a missing
    argument) is one line too, not click's boxed usage text."""
    import click

    try:
        code = app(standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C while click itself prompts or parses
        _err("interrupted; no output written")
        code = 130
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None and ctx.command_path else ""
        msg = exc.format_message().replace("\n", " ").strip()
        if msg:  # none where click printed the help itself (no arguments at all)
            _err(msg + hint)
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)
