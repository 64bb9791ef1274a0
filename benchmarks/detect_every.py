"""Detecting every Nth frame (`--detect-every N`): what it saves and what it costs.

    .venv/bin/python benchmarks/detect_every.py [--every 1,2] [--modes blur,gan] [--write]

On every bundled sample (samples/*.mp4), for each mode and each N, one run of
`anonymize_video` with the tracker covering the frames between detections. It
prints, per run:

- frames/s and the speed-up over N = 1 of the same mode, in this run;
- covered: the share of the faces YuNet finds in the original, in every frame,
  that the run covered (its tracks file: a face counts when at least 90% of its
  box lies inside a covered box, grown by `mask_scale` as the cover is). This is
  the recall cost of skipping detection;
- leak frames (`vidanon bench`: a face found in the output at an original
  position with the original identity), the highest privacy cosine, and the
  low-pass flicker ratio (1 = as steady as the original).

With --write it replaces the "Detecting every Nth frame" section of
benchmarks/RESULTS.md. N is at most 2 (`vidanon.config.DETECT_EVERY_MAX`); the
figures for 3 to 10 that set that limit are in the section after it.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speed import write_section  # noqa: E402

from vidanon.config import CoverConfig, DetectConfig, PipelineConfig  # noqa: E402
from vidanon.detect.yunet import YuNetDetector  # noqa: E402
from vidanon.io.decode import iter_frames  # noqa: E402
from vidanon.metrics.bench import run_bench  # noqa: E402
from vidanon.metrics.tracks import load_tracks  # noqa: E402
from vidanon.pipeline import anonymize_video  # noqa: E402

SECTION = "Detecting every Nth frame"
INSIDE = 0.9  # share of a face's box that must lie inside a covered box


def reference_faces(path: Path) -> list[np.ndarray]:
    """YuNet's boxes in every frame of the original, (n, 4) per frame."""
    det = YuNetDetector(DetectConfig())
    return [det.detect(rgb).xyxy.astype(np.float64) for rgb, _ in iter_frames(path)]


def grown(xyxy: np.ndarray, scale: float) -> np.ndarray:
    c = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) / 2 * scale
    return np.concatenate([c - half, c + half], axis=1)


def covered_share(ref: list[np.ndarray], tracks_path: Path, mask_scale: float) -> tuple[int, int]:
    """(faces covered, faces) over all frames: a reference box counts as covered when at
    least INSIDE of its area lies inside one covered box grown by mask_scale."""
    tracks = load_tracks(tracks_path)
    hit = total = 0
    for i, boxes in enumerate(ref):
        total += len(boxes)
        if not len(boxes):
            continue
        cov = grown(tracks.at(i).xyxy.astype(np.float64), mask_scale)
        if not len(cov):
            continue
        lo = np.maximum(boxes[:, None, :2], cov[None, :, :2])
        hi = np.minimum(boxes[:, None, 2:], cov[None, :, 2:])
        inter = np.clip(hi - lo, 0, None).prod(axis=2)
        area = np.clip(boxes[:, 2:] - boxes[:, :2], 1e-9, None).prod(axis=1)
        hit += int(((inter / area[:, None]) >= INSIDE).any(axis=1).sum())
    return hit, total


def run(samples: list[Path], modes: list[str], everies: list[int], work: Path) -> list[dict]:
    rows = []
    for src in samples:
        ref = reference_faces(src)
        for mode in modes:
            base = None
            for n in everies:
                cfg = PipelineConfig(detect=DetectConfig(every=n), cover=CoverConfig(mode=mode))
                dst, tr = work / f"{src.stem}.{mode}.{n}.mp4", work / f"{src.stem}.{mode}.{n}.json"
                print(f"[{src.name}] {mode}, every {n}: anonymizing ...", file=sys.stderr, flush=True)
                s = anonymize_video(src, dst, cfg, tracks_path=tr, overwrite=True)
                fps = s.frames_written / max(s.seconds, 1e-9)
                base = fps if base is None else base
                hit, total = covered_share(ref, tr, cfg.cover.mask_scale)
                print(f"[{src.name}] {mode}, every {n}: measuring ...", file=sys.stderr, flush=True)
                r = run_bench(src, dst)
                rows.append(
                    {
                        "sample": src.name,
                        "mode": mode,
                        "every": n,
                        "fps": fps,
                        "speedup": fps / base,
                        "covered": hit / max(total, 1),
                        "faces": total,
                        "leaks": r.leak.count,
                        "frames": r.frames,
                        "privacy_max": r.privacy.max,
                        "lowpass": r.flicker.ratio_lowpass,
                    }
                )
    return rows


def table(rows: list[dict]) -> str:
    out = [
        "| sample | mode | --detect-every | frames/s | x every 1 | covered | leak frames | privacy cos max "
        "| low-pass flicker ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        pm = "n/a" if r["privacy_max"] is None else f"{r['privacy_max']:.2f}"
        lp = "n/a" if r["lowpass"] is None else f"{r['lowpass']:.2f}"
        out.append(
            f"| {r['sample']} | {r['mode']} | {r['every']} | {r['fps']:.1f} | {r['speedup']:.2f} "
            f"| {100 * r['covered']:.1f}% of {r['faces']} | {r['leaks']} / {r['frames']} | {pm} | {lp} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", nargs="*", type=Path, help="videos (default: samples/*.mp4)")
    ap.add_argument("--every", default="1,2", help="values of --detect-every, comma-separated")
    ap.add_argument("--modes", default="blur,gan", help="cover modes, comma-separated")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    samples = args.samples or sorted((ROOT / "samples").glob("*.mp4"))
    everies = [int(v) for v in args.every.split(",")]
    if not samples or not everies or everies[0] != 1:
        print("need samples and --every starting with 1 (the baseline)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidanon-every-") as tmp:
        rows = run(samples, args.modes.split(","), everies, Path(tmp))
    body = (
        f"`.venv/bin/python benchmarks/detect_every.py --every {args.every} --modes {args.modes}`, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {platform.machine()}, 2 cores; total "
        f"{time.perf_counter() - t0:.0f} s. Covered: share of the faces YuNet finds in every frame of the "
        f"original that the run's tracks covered (at least {INSIDE:.0%} of the box inside a covered box grown "
        "by --mask-scale); leak frames and privacy by `vidanon bench` (tracks recomputed on the original); "
        "frames/s of the whole run, speed-up against every 1 of the same mode in this run.\n\n" + table(rows)
    )
    print(f"## {SECTION}\n\n{body}")
    if args.write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
