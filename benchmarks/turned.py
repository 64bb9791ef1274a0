"""Faces rolled in the picture's plane: what the turned detector passes find, and what they cost.

    .venv/bin/python benchmarks/turned.py [--write]

1. Recall by roll angle: each bundled photo turned in 10-degree steps; a face counts as found
   when a detection lies near where its face went (centre within 0.4 of its size). Upright
   pass only, against upright plus the frame turned by 90, 180 and 270 degrees
   (`vidanon.detect.turn.with_turns`).
2. False faces: faces that only the turned passes add on the bundled clips (every frame), whose
   faces are all upright, so every one is a false face.
3. Cost: detection time per frame of `FrameAnonymizer.detect` over the same frames, with the
   default schedule (`DetectConfig.turns`, `turn_every`) and with --turns none.

With --write it replaces the "Turned faces" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speed import write_section  # noqa: E402

from vidanon.config import DetectConfig, PipelineConfig  # noqa: E402
from vidanon.detect.turn import SURE, with_turns  # noqa: E402
from vidanon.detect.yunet import YuNetDetector  # noqa: E402
from vidanon.pipeline import FrameAnonymizer  # noqa: E402

SECTION = "Turned faces"
ROLLS = list(range(-180, 180, 10))


def turned_photo(img: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo turned by `angle` degrees (counter-clockwise) on a canvas that holds it, and the 2x3 map."""
    h, w = img.shape[:2]
    c, s = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    size = (int(w * c + h * s) + 1, int(w * s + h * c) + 1)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += [(size[0] - w) / 2, (size[1] - h) / 2]
    return cv2.warpAffine(img, m, size, borderValue=(40, 40, 40)), m


def recall_by_roll(detector) -> list[tuple[int, float, float]]:
    photos = sorted((ROOT / "samples" / "photos").glob("*.jpg"))
    hits = {roll: ([], [], []) for roll in ROLLS}
    for p in photos:
        img = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        faces = detector.detect(img)
        for roll in ROLLS:
            turned, m = turned_photo(img, roll)
            up = detector.detect(turned)
            every, _ = with_turns(detector, turned, DetectConfig().turns, found=up)
            sure = every[np.flatnonzero((every.score >= SURE) | np.isin(every.xyxy[:, 0], up.xyxy[:, 0]))]
            for box in faces.xyxy:
                centre = m[:, :2] @ ((box[:2] + box[2:]) / 2) + m[:, 2]
                reach = 0.4 * (box[2] - box[0])
                for k, found in enumerate((up, every, sure)):
                    c = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
                    hits[roll][k].append(bool(len(found)) and bool((np.linalg.norm(c - centre, axis=1) < reach).any()))
    return [(roll, float(np.mean(a)), float(np.mean(b)), float(np.mean(c))) for roll, (a, b, c) in hits.items()]


def clip_frames(name: str) -> list[np.ndarray]:
    with av.open(str(ROOT / "samples" / name)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    detector = YuNetDetector()
    t0 = time.perf_counter()
    rows = recall_by_roll(detector)
    body = [
        f"`.venv/bin/python benchmarks/turned.py`, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"detector on one thread. Share of the {len(list((ROOT / 'samples' / 'photos').glob('*.jpg')))} bundled "
        "photos' faces found, the photo turned by each roll (degrees, counter-clockwise), upright pass alone and "
        "with the turned passes (90, 180, 270):",
        "",
        "| roll | " + " | ".join(str(r[0]) for r in rows) + " |",
        "| --- | " + " | ".join("---" for _ in rows) + " |",
        "| upright | " + " | ".join(f"{r[1]:.2f}" for r in rows) + " |",
        "| + turns | " + " | ".join(f"{r[2]:.2f}" for r in rows) + " |",
        f"| + turns scoring {SURE} | " + " | ".join(f"{r[3]:.2f}" for r in rows) + " |",
        "",
        "Mean over the rolls (lowest): upright "
        + ", with turns ".join(f"{np.mean([r[k] for r in rows]):.3f} ({min(r[k] for r in rows):.2f})" for k in (1, 2))
        + f", with turns scoring {SURE} or more (what gan mode generates a face for; the rest get the fallback filter, "
        f"and their turns are not searched every frame) {np.mean([r[3] for r in rows]):.3f}.",
        "",
        "False faces (added by the turned passes alone, every frame; the clips' faces are all upright) and "
        "`FrameAnonymizer.detect` time per frame, default schedule against --turns none:",
        "",
        "| clip | frames | frames with a false face | false faces | score max | detect ms/frame, turns | none | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("people.mp4", "handheld.mp4"):
        frames = clip_frames(name)
        false, scores = [], []
        for f in frames:
            up = detector.detect(f)
            every, _ = with_turns(detector, f, DetectConfig().turns, found=up)
            false.append(len(every) - len(up))
            scores += list(every.score[len(up) :])
        ms = {}
        for turns in (DetectConfig().turns, ()):
            fa = FrameAnonymizer(PipelineConfig(detect=DetectConfig(turns=turns, workers=1)))
            t = time.perf_counter()
            for i, f in enumerate(frames):
                fa.detect(f, i)
            ms[turns] = (time.perf_counter() - t) / len(frames) * 1000
        on, off = ms[DetectConfig().turns], ms[()]
        top = f"{max(scores):.2f}" if scores else "-"
        body.append(
            f"| {name} | {len(frames)} | {sum(1 for n in false if n)} | {sum(false)} | {top} | {on:.1f} | "
            f"{off:.1f} | {on / off:.2f}x |"
        )
    body.append("")
    body.append(f"Total {time.perf_counter() - t0:.0f} s.")
    print("\n".join(body))
    if args.write:
        write_section(SECTION, "\n".join(body))


if __name__ == "__main__":
    main()
