"""Frame-level data types shared by every stage.

`FaceDetections` holds all faces of one frame, one array per field, and checks
shapes on construction so that a bad array fails where it is made, not three
stages later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

DETECTED = 0
PREDICTED = 1
BACKFILLED = 2
STATE_NAMES = {DETECTED: "detected", PREDICTED: "predicted", BACKFILLED: "backfilled"}


def _as(arr: np.ndarray | None, shape: tuple, dtype, name: str, n: int | None) -> np.ndarray:
    if arr is None:
        arr = np.zeros((n or 0, *shape[1:]), dtype=dtype)
    arr = np.asarray(arr, dtype=dtype)
    want = tuple(n if s == -1 else s for s in shape)
    if arr.ndim != len(shape) or any(w is not None and w != a for w, a in zip(want, arr.shape)):
        pretty = "(" + ", ".join("n" if s == -1 else str(s) for s in shape) + ")"
        raise ValueError(f"FaceDetections.{name} must have shape {pretty}, got {arr.shape}")
    return arr


@dataclass(frozen=True)
class FaceDetections:
    """All faces of one frame.

    Attributes:
        xyxy: (n, 4) float32 boxes in pixels, x1 y1 x2 y2.
        score: (n,) float32 detector confidence (0 for predicted faces).
        landmarks: (n, 5, 2) float32: right eye, left eye, nose, right and left
            mouth corner, in pixels (YuNet order).
        track_id: (n,) int64, -1 before tracking.
        state: (n,) int8, DETECTED, PREDICTED or BACKFILLED.
    """

    xyxy: np.ndarray
    score: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    track_id: np.ndarray | None = None
    state: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = _as(self.xyxy, (-1, 4), np.float32, "xyxy", None)
        n = xyxy.shape[0]
        object.__setattr__(self, "xyxy", xyxy)
        score = self.score if self.score is not None else np.ones(n, np.float32)
        object.__setattr__(self, "score", _as(score, (-1,), np.float32, "score", n))
        lm = self.landmarks if self.landmarks is not None else _default_landmarks(xyxy)
        object.__setattr__(self, "landmarks", _as(lm, (-1, 5, 2), np.float32, "landmarks", n))
        tid = self.track_id if self.track_id is not None else np.full(n, -1, np.int64)
        object.__setattr__(self, "track_id", _as(tid, (-1,), np.int64, "track_id", n))
        st = self.state if self.state is not None else np.zeros(n, np.int8)
        object.__setattr__(self, "state", _as(st, (-1,), np.int8, "state", n))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def empty(cls) -> FaceDetections:
        return cls(np.zeros((0, 4), np.float32))

    def __getitem__(self, idx) -> FaceDetections:
        idx = np.atleast_1d(np.arange(len(self))[idx])
        return FaceDetections(self.xyxy[idx], self.score[idx], self.landmarks[idx], self.track_id[idx], self.state[idx])

    @classmethod
    def concat(cls, parts: list[FaceDetections]) -> FaceDetections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
            np.concatenate([p.track_id for p in parts]),
            np.concatenate([p.state for p in parts]),
        )

    def scaled(self, factor: float) -> FaceDetections:
        """Coordinates multiplied by `factor` (to map between detection and frame scale)."""
        return FaceDetections(self.xyxy * factor, self.score, self.landmarks * factor, self.track_id, self.state)

    def shifted(self, dx: float, dy: float) -> FaceDetections:
        """Boxes and landmarks moved by (dx, dy) pixels (a window's detections into the frame)."""
        off = np.array([dx, dy], np.float32)
        return FaceDetections(self.xyxy + np.tile(off, 2), self.score, self.landmarks + off, self.track_id, self.state)


def box_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest box (x0, y0, x1, y1) holding boxes `a` and `b`."""
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:4], b[2:4])])


def _default_landmarks(xyxy: np.ndarray) -> np.ndarray:
    """Landmarks placed at canonical positions inside each box, for faces that have none."""
    canon = np.array([[0.31, 0.40], [0.69, 0.40], [0.50, 0.58], [0.35, 0.76], [0.65, 0.76]], np.float32)
    wh = (xyxy[:, 2:] - xyxy[:, :2])[:, None, :]
    return xyxy[:, None, :2] + canon[None] * wh


@dataclass(frozen=True)
class VideoInfo:
    """What the decoder learned about the input before the first frame."""

    width: int
    height: int
    time_base: Fraction
    average_rate: Fraction | None
    frames: int  # 0 when the container does not say
    rotation: int  # degrees counter-clockwise to display upright, one of 0, 90, 180, 270
    pix_fmt: str
    codec: str
    # the input's display matrix (FFmpeg's 9 int32s) where it also mirrors the picture, else None
    mirror_matrix: tuple[int, ...] | None = None
    # the shape of a stored pixel (width / height) where it is not square: anamorphic video
    # (DV and broadcast 16:9 in 720x576, HDV's 1440x1080) is shown wider than it is stored
    pixel_aspect: Fraction | None = None
    # how the input's YUV maps to colour, as FFmpeg numbers them: matrix (AVColorSpace), range
    # (AVColorRange), primaries and transfer; 2, 0, 2, 2 = unspecified (BT.601 matrix, limited range)
    color: tuple[int, int, int, int] = (2, 0, 2, 2)
    # FFmpeg's AVFieldOrder of an interlaced input (2 top field first, 3 bottom first, 4 / 5
    # coded the other way), else 0
    field_order: int = 0


@dataclass(frozen=True)
class FrameMeta:
    """Per-frame timing, carried from decode to encode untouched."""

    index: int
    pts: int | None
    time_base: Fraction
    extra: dict = field(default_factory=dict)
