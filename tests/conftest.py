"""Shared fixtures: real small videos made with PyAV from the bundled photos, with audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidanon.config import DetectConfig
from vidanon.detect.yunet import YuNetDetector
from vidanon.synth import Occluder, photo, write_video


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def people_clip(media) -> Path:
    """36 frames, 480x270, two scenes (4 then 5 people), a bar hiding the left 60 % on frames 8-12, AAC audio."""
    return write_video(
        media / "people.mp4",
        [(photo("faceapi-sample1.jpg"), 20), (photo("faceapi-sample5.jpg"), 16)],
        size=(480, 270),
        occluders=(Occluder(8, 13, 0.0, 0.6),),
    )


@pytest.fixture(scope="session")
def detector() -> YuNetDetector:
    return YuNetDetector(DetectConfig())


def decode_rgb(path: Path) -> list[np.ndarray]:
    """All frames of a small test clip, as displayed (rotation applied)."""
    from vidanon.io.decode import iter_frames

    return [f for f, _ in iter_frames(path)]


def video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return sorted(p.pts for p in c.demux(c.streams.video[0]) if p.size)


def video_times(path: Path) -> list[Fraction]:
    """Presentation times of the video packets in seconds, whatever the container's time base."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(p.pts * s.time_base for p in c.demux(s) if p.size)


def stream_packets(path: Path, kind: str, index: int = 0) -> list[bytes]:
    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[index]
        return [bytes(p) for p in c.demux(s) if p.size]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n,4) and (m,4) boxes (the bench's own measure)."""
    from vidanon.metrics.tracks import iou_matrix

    return iou_matrix(a, b)


def sparse_reference(detector, original: list[np.ndarray], every: int) -> list[np.ndarray]:
    """The input's face boxes (n, 4) per frame that `--detect-every N` is bound to cover.

    A frame the detector looks at: every box it finds there. A skipped frame: the boxes
    that it would find there and also finds at the same place (IoU above 0.3) in the
    looked-at frame before or after, which the hold and the lookahead reach. A box found
    only in skipped frames is the documented recall cost of skipping; on the test clips
    those are background patches that YuNet scores around its threshold.
    """
    found = [detector.detect(f).xyxy for f in original]
    ref = []
    for i, boxes in enumerate(found):
        if i % every == 0 or not len(boxes):
            ref.append(boxes)
            continue
        j = i - i % every
        near = [found[k] for k in (j, j + every) if k < len(found) and len(found[k])]
        keep = np.zeros(len(boxes), bool)
        for other in near:
            keep |= (iou(boxes, other) > 0.3).any(axis=1)
        ref.append(boxes[keep])
    return ref


def leaked_faces(
    detector, original: list[np.ndarray], output: list[np.ndarray], reference: list[np.ndarray] | None = None
) -> list[tuple[int, int]]:
    """(frame, n) for each output frame where a face is detected where the input had one
    (where `reference` has one, when given: see `sparse_reference`)."""
    leaks = []
    for i, (a, b) in enumerate(zip(original, output)):
        da, db = detector.detect(a).xyxy if reference is None else reference[i], detector.detect(b).xyxy
        if len(da) and len(db):
            n = int((iou(da, db) > 0.3).any(axis=1).sum())
            if n:
                leaks.append((i, n))
    return leaks


def identity_leaks(detector, original: list[np.ndarray], output: list[np.ndarray]) -> list[tuple[int, float]]:
    """(frame, cosine) where a face found in the output at an input face's place is still
    that person by SFace (cosine at or above 0.363): a recognisable face, not a face-shaped blob."""
    from vidanon.metrics.sface import SAME_IDENTITY_THRESHOLD, SFace, cosine

    sface = SFace()
    leaks = []
    for i, (a, b) in enumerate(zip(original, output)):
        da, db = detector.detect(a), detector.detect(b)
        if not (len(da) and len(db)):
            continue
        hit = (iou(da.xyxy, db.xyxy) > 0.3).any(axis=1)
        if hit.any():
            faces = da[np.flatnonzero(hit)]
            sims = cosine(sface.embed(a, faces), sface.embed(b, faces))
            leaks += [(i, float(c)) for c in np.atleast_1d(sims) if c >= SAME_IDENTITY_THRESHOLD]
    return leaks


__all__ = [
    "Fraction",
    "decode_rgb",
    "video_pts",
    "video_times",
    "stream_packets",
    "iou",
    "leaked_faces",
    "identity_leaks",
]
