"""Detection resolution: recall and detector time per setting of `--detect-size`.

    .venv/bin/python benchmarks/detect_size.py [--frames 60] [--sizes 320,480,640,960,4096] [--write]

On the bundled sample and the generated 720p/1080p clips of benchmarks/speed.py,
YuNet runs on every frame at each detection size (the longer side of the
downscaled copy; 4096 = the frame as it is). Reference faces are the union over
all sizes (a face found at any size, matched across sizes by IoU > 0.5), so no
setting is its own yardstick. For each size it prints recall against that union
(and the smallest reference face it missed), extra faces no other size found,
and the detector's ms per frame (one thread, median of the frames). With
--write it replaces the "Detection size" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speed import make_clips, write_section  # noqa: E402

from vidanon.config import DetectConfig  # noqa: E402
from vidanon.detect.yunet import YuNetDetector  # noqa: E402
from vidanon.io.decode import iter_frames  # noqa: E402
from vidanon.metrics.tracks import iou_matrix  # noqa: E402


def union_faces(per_size: dict[int, list[np.ndarray]], n_frames: int) -> list[np.ndarray]:
    """Per frame, the boxes found at any size (merged at IoU > 0.5)."""
    out = []
    for i in range(n_frames):
        ref = np.zeros((0, 4), np.float32)
        for boxes in per_size.values():
            b = boxes[i]
            if len(b) == 0:
                continue
            if len(ref) == 0:
                ref = b.copy()
                continue
            seen = (iou_matrix(b, ref) > 0.5).any(axis=1)
            ref = np.concatenate([ref, b[~seen]])
        out.append(ref)
    return out


def measure(frames: list[np.ndarray], sizes: list[int]) -> tuple[list[tuple[int, float, float, int, float]], int]:
    """Per size: (size, recall, median ms, extra faces, smallest missed height); and the reference count."""
    per_size: dict[int, list[np.ndarray]] = {}
    ms: dict[int, float] = {}
    for s in sizes:
        det = YuNetDetector(DetectConfig(max_size=s))
        det.detect(frames[0])  # warm-up
        boxes, times = [], []
        for f in frames:
            t0 = time.perf_counter()
            d = det.detect(f)
            times.append(time.perf_counter() - t0)
            boxes.append(d.xyxy)
        per_size[s], ms[s] = boxes, float(np.median(times) * 1000)
    ref = union_faces(per_size, len(frames))
    total = sum(len(r) for r in ref)
    rows = []
    for s in sizes:
        hit, extra, missed = 0, 0, []
        for r, b in zip(ref, per_size[s]):
            if len(r) == 0:
                continue
            m = (iou_matrix(r, b) > 0.5).any(axis=1) if len(b) else np.zeros(len(r), bool)
            hit += int(m.sum())
            missed += list(r[~m, 3] - r[~m, 1])
        for i, b in enumerate(per_size[s]):
            if len(b) == 0:
                continue
            found_elsewhere = [per_size[o][i] for o in sizes if o != s and len(per_size[o][i])]
            for box in b:
                if not any((iou_matrix(box[None], e) > 0.5).any() for e in found_elsewhere):
                    extra += 1
        rows.append((s, hit / max(total, 1), ms[s], extra, min(missed) if missed else float("nan")))
    return rows, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--sizes", default="320,480,640,960,4096")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    cv2.setNumThreads(1)
    lines = [
        f"`.venv/bin/python benchmarks/detect_size.py --frames {a.frames}`, {os.cpu_count()} cores, detector on one "
        "thread. Recall against the union of faces found at any size (IoU > 0.5); extra = faces only that size "
        "found; missed = height in pixels of the smallest reference face that size missed.\n",
        "| clip | faces | --detect-size | recall | extra | smallest missed px | detect ms/frame |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for clip in make_clips(Path(tmp), a.frames, [720, 1080]):
            frames = [rgb for _, (rgb, _meta) in zip(range(a.frames), iter_frames(clip))]
            rows, total = measure(frames, sizes)
            h, w = frames[0].shape[:2]
            for s, rec, ms, extra, miss in rows:
                label = f"{s}" if s < max(h, w) else f"{s} (full {w}x{h})"
                miss_txt = "-" if np.isnan(miss) else f"{miss:.0f}"
                lines.append(f"| {clip.name} | {total} | {label} | {rec:.1%} | {extra} | {miss_txt} | {ms:.1f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if a.write:
        write_section("Detection size", table)


if __name__ == "__main__":
    main()
