"""Face tracks for `vidanon bench`: read from a tracks file, or recomputed on the original.

The recomputed tracks come from a plain greedy IoU tracker kept here on
purpose: the benchmark must measure any pair of videos without depending on
the pipeline's own tracker, whose behaviour is one of the things measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidanon.errors import InputError
from vidanon.types import STATE_NAMES, FaceDetections

TRACKS_VERSION = 1
_STATES = {name: code for code, name in STATE_NAMES.items()}


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) intersection over union of boxes `a` (n, 4) and `b` (m, 4), xyxy."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending IoU, each row and column used once, IoU >= threshold."""
    pairs = []
    if iou.size == 0:
        return pairs
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_r, used_c = set(), set()
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


def with_untracked(listed: FaceDetections, found: FaceDetections) -> tuple[FaceDetections, int]:
    """`listed` with every face of `found` that no listed face overlaps (IoU < 0.3) added as
    detected and untracked, and how many were added (fail closed: a face a detector finds
    that the list lacks is covered or measured too)."""
    if len(listed) and len(found):
        found = found[iou_matrix(found.xyxy, listed.xyxy).max(axis=1) < 0.3]
    if not len(found):
        return listed, 0
    extra = FaceDetections(found.xyxy, found.score, found.landmarks)  # track -1, detected
    return (FaceDetections.concat([listed, extra]) if len(listed) else extra), len(found)


class GreedyIouTracker:
    """Associates detections frame to frame by IoU with each track's last box.

    Args:
        iou_threshold: minimum IoU for a detection to continue a track.
        max_age: frames a track may go unmatched before it is dropped.
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 15) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self._ids: list[int] = []
        self._boxes = np.zeros((0, 4), np.float32)
        self._ages: list[int] = []
        self._next_id = 0

    def reset(self) -> None:
        """Ends every track (after a scene cut); ids keep counting up."""
        self._ids, self._ages = [], []
        self._boxes = np.zeros((0, 4), np.float32)

    def update(self, dets: FaceDetections) -> FaceDetections:
        """`dets` with `track_id` filled in (new ids for unmatched detections)."""
        pairs = greedy_match(iou_matrix(self._boxes, dets.xyxy), self.iou_threshold)
        ids = np.full(len(dets), -1, np.int64)
        for t, d in pairs:
            ids[d] = self._ids[t]
            self._boxes[t] = dets.xyxy[d]
            self._ages[t] = -1
        self._ages = [a + 1 for a in self._ages]
        keep = [i for i, a in enumerate(self._ages) if a <= self.max_age]
        self._ids = [self._ids[i] for i in keep]
        self._ages = [self._ages[i] for i in keep]
        self._boxes = self._boxes[keep]
        new = np.nonzero(ids < 0)[0]
        for d in new:
            ids[d] = self._next_id
            self._next_id += 1
        if len(new):
            self._ids += [int(ids[d]) for d in new]
            self._ages += [0] * len(new)
            self._boxes = np.concatenate([self._boxes, dets.xyxy[new]])
        return FaceDetections(dets.xyxy, dets.score, dets.landmarks, ids, dets.state)


@dataclass(frozen=True)
class TracksFile:
    """A tracks file (`vidanon anonymize --tracks`), faces grouped by frame index.

    Attributes:
        width, height: frame size the coordinates refer to (None if not given).
        frames: frame count the writer declared (None if not given).
        faces: frame index -> faces of that frame, track ids filled in.
    """

    width: int | None
    height: int | None
    frames: int | None
    faces: dict[int, FaceDetections]

    def at(self, index: int) -> FaceDetections:
        """Faces of frame `index` (empty when the file lists none)."""
        return self.faces.get(index) or FaceDetections.empty()


def load_tracks(path: Path) -> TracksFile:
    """Reads and checks a tracks file.

    Raises:
        InputError: the file is missing, not JSON, of another version, or malformed.
    """
    path = Path(path)
    try:
        with path.open("r", encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"tracks file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"tracks file {path} is not readable JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise InputError(f"tracks file {path} has no 'frames' list")
    if doc.get("version") != TRACKS_VERSION:
        raise InputError(
            f"tracks file {path} has version {doc.get('version')!r}; this bench reads version {TRACKS_VERSION}"
        )
    video = doc.get("video") or {}
    if not isinstance(video, dict):
        raise InputError(f"tracks file {path}: 'video' must be an object")
    faces: dict[int, FaceDetections] = {}
    for k, frame in enumerate(doc["frames"]):
        try:
            index = int(frame["index"])
            if index < 0:
                raise ValueError(f"negative frame index {index}")
            faces[index] = _frame_faces(frame.get("faces") or [])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"tracks file {path}: frame entry {k} is malformed: {exc}") from exc
    declared = _opt_int(video.get("frames"))
    if declared is None:
        declared = _opt_int(doc.get("frame_count"))  # written at the end by a streaming writer
    return TracksFile(_opt_int(video.get("width")), _opt_int(video.get("height")), declared, faces)


MAX_COORD = 1e5  # pixels: no video is that large; a coordinate beyond is a broken file


def _coordinates(values: list, shape: tuple[int, ...], what: str) -> np.ndarray:
    """float32 pixel coordinates of a tracks file, refused (ValueError) where not finite or absurd."""
    arr = np.array(values, np.float64).reshape(shape)
    if not np.isfinite(arr).all() or np.abs(arr).max() > MAX_COORD:
        raise ValueError(f"{what} is not finite or lies beyond {MAX_COORD:g} pixels")
    return arr.astype(np.float32)


def _frame_faces(items: list) -> FaceDetections:
    if not items:
        return FaceDetections.empty()
    xyxy = _coordinates([f["xyxy"] for f in items], (-1, 4), "a face box")
    canon = FaceDetections(xyxy).landmarks  # canonical positions for faces written without landmarks
    landmarks = _coordinates(
        [canon[i] if f.get("landmarks") is None else f["landmarks"] for i, f in enumerate(items)],
        (-1, 5, 2),
        "a landmark",
    )
    score = np.array([float(f.get("score", 1.0)) for f in items], np.float32)
    track_id = np.array([int(f.get("track_id", -1)) for f in items], np.int64)
    state = np.array([_STATES.get(f.get("state", "detected"), 0) for f in items], np.int8)
    return FaceDetections(xyxy, score, landmarks, track_id, state)


def _opt_int(v) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None
