"""Placement of tracked faces against known motion: how far a face's landmarks stray, frame to frame.

    .venv/bin/python benchmarks/placement.py [--frames 150] [--write]

A generated face is pasted where the tracker puts the face's landmarks, so any error there
that changes from frame to frame moves the fake face against the head: flicker that no
generator can remove, and that grows with the fake face's sharpness. `temporal.py` measures
the flicker; this measures its cause on the hand-held clip (`vidanon.synth.handheld_frames`:
drift, roll, zoom, a fast swing, a non-rigid warp), whose motion is known exactly
(`handheld_motion`, `handheld_points`). Truth: YuNet's landmarks on the photo at full size,
carried into every view. Per tracking configuration (blur mode; the tracking is that of gan
mode when motion is on):

- landmark error: mean distance of the tracked landmarks from the truth (px); it includes the
  detector's own bias at the clip's scale, which moves slowly and does not flicker;
- error change: mean and 95th percentile of how much that error changes between consecutive
  frames (px): the part a viewer sees as the face sliding.

The floor of a similarity tracker is printed too: the true motion of points inside each face
box, fitted by the best similarity, applied to the landmarks, against their true motion (the
non-rigid warp that a similarity cannot follow).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


from speed import write_section  # noqa: E402

from vidanon.config import CoverConfig, DetectConfig, PipelineConfig, TrackConfig  # noqa: E402
from vidanon.detect.yunet import YuNetDetector  # noqa: E402
from vidanon.metrics.tracks import load_tracks  # noqa: E402
from vidanon.pipeline import anonymize_video  # noqa: E402
from vidanon.synth import handheld_frames, handheld_motion, handheld_points, photo, write_frames  # noqa: E402

SECTION = "Placement against known motion"
PHOTO = "faceapi-sample3.jpg"  # as samples/make_sample.py makes samples/handheld.mp4
CONFIGS = [
    (f"motion, gain {TrackConfig().motion_gain:g} (gan mode's default)", TrackConfig(motion=True)),
    ("motion, gain 0.05", TrackConfig(motion=True, motion_gain=0.05)),
    ("motion, gain 0.2", TrackConfig(motion=True, motion_gain=0.2)),
    ("One-Euro smoothing only (blur mode's default)", TrackConfig(motion=False)),
    ("raw detections (no smoothing)", TrackConfig(motion=False, smoothing=False)),
]


def truth(n: int) -> tuple[np.ndarray, float, float]:
    """(n, faces, 5, 2) true landmarks per view, and the similarity floor (mean, p95 px)."""
    img = photo(PHOTO)
    faces = YuNetDetector(DetectConfig(max_size=4096)).detect(img)
    motion = handheld_motion(img.shape[:2], n)
    lms = np.array([handheld_points(faces.landmarks.astype(np.float64), m) for m in motion])
    floor = []
    for k in range(len(faces)):
        x0, y0, x1, y1 = faces.xyxy[k]
        gx, gy = np.meshgrid(np.linspace(x0, x1, 12), np.linspace(y0, y1, 12))
        grid = np.stack([gx.ravel(), gy.ravel()], -1)
        for t in range(n - 1):
            g0, g1 = handheld_points(grid, motion[t]), handheld_points(grid, motion[t + 1])
            m, _ = cv2.estimateAffinePartial2D(g0.astype(np.float32), g1.astype(np.float32), method=cv2.LMEDS)
            pred = lms[t, k] @ m[:, :2].T + m[:, 2]
            floor.append(np.linalg.norm(pred - lms[t + 1, k], axis=1).mean())
    return lms, float(np.mean(floor)), float(np.percentile(floor, 95))


def errors(tracks_path: Path, lms: np.ndarray) -> tuple[float, float, float, int]:
    """Landmark error mean, error change mean and p95 (px), and the frames x faces matched."""
    tracks = load_tracks(tracks_path)
    seqs: dict[int, list[tuple[int, np.ndarray]]] = {}
    for t in range(len(lms)):
        f = tracks.at(t)
        if not len(f):
            continue
        centres = f.landmarks.mean(axis=1)
        for k in range(lms.shape[1]):
            d = np.linalg.norm(centres - lms[t, k].mean(axis=0), axis=1)
            j = int(d.argmin())
            if d[j] < 20:  # the same face (faces here are 40+ px apart)
                seqs.setdefault(k, []).append((t, f.landmarks[j] - lms[t, k]))
    err, change = [], []
    for seq in seqs.values():
        err += [float(np.linalg.norm(e, axis=1).mean()) for _, e in seq]
        change += [
            float(np.linalg.norm(e1 - e0, axis=1).mean()) for (t0, e0), (t1, e1) in zip(seq, seq[1:]) if t1 == t0 + 1
        ]
    return float(np.mean(err)), float(np.mean(change)), float(np.percentile(change, 95)), len(err)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150, help="views of the hand-held clip")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    a = ap.parse_args()
    t0 = time.perf_counter()
    lms, floor, floor95 = truth(a.frames)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidanon-placement-") as tmp:
        clip = write_frames(Path(tmp) / "handheld.mp4", handheld_frames(photo(PHOTO), a.frames), fps=25, crf=20)
        for name, track in CONFIGS:
            cfg = replace(PipelineConfig(cover=CoverConfig(mode="blur")), track=track)
            tracks = Path(tmp) / "tracks.json"
            print(f"{name} ...", file=sys.stderr, flush=True)
            anonymize_video(clip, Path(tmp) / "out.mp4", cfg, tracks_path=tracks, overwrite=True)
            rows.append((name, *errors(tracks, lms)))
    body = (
        f"`.venv/bin/python benchmarks/placement.py --frames {a.frames}`, {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}; total {time.perf_counter() - t0:.0f} s. The hand-held clip as "
        "`samples/make_sample.py` makes it (crf 20), its known motion as truth. True landmark motion per "
        f"frame: {np.mean(np.linalg.norm(np.diff(lms, axis=0), axis=-1)):.2f} px; what the best similarity "
        f"of each face box's motion leaves over (the floor of a similarity tracker): mean {floor:.3f} px, "
        f"p95 {floor95:.3f} px.\n\n"
        "| tracking | landmark error, mean px | error change per frame, mean px | p95 px | faces x frames |\n"
        "| --- | --- | --- | --- | --- |\n"
        + "".join(f"| {n} | {e:.2f} | {c:.3f} | {c95:.3f} | {k} |\n" for n, e, c, c95, k in rows)
    )
    print(f"## {SECTION}\n\n{body}")
    if a.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
