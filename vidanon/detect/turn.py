"""Faces turned in the picture's plane: the detector run on the frame turned by quarter turns.

YuNet finds faces upright or rolled by up to about 30 degrees. On the sample photos turned
in 10-degree steps it found 94% of the faces upright, 62% at 45 degrees, 25-44% at 60 and
6-25% at 90; with the frame also searched turned by 90, 180 and 270 degrees, 88% or more at
every angle of the full circle (mean 93.6% against 44.1% upright only: `benchmarks/turned.py`). A quarter or half turn is a lossless
transpose of the pixels, costs what an upright pass costs, and maps boxes and landmarks
back exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidanon.metrics.tracks import iou_matrix
from vidanon.types import FaceDetections

_CV2 = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def turn(rgb: np.ndarray, angle: int) -> np.ndarray:
    """The frame turned clockwise by `angle` (90, 180 or 270) degrees."""
    return np.ascontiguousarray(cv2.rotate(rgb, _CV2[angle]))


def turned_back(points: np.ndarray, angle: int, width: int, height: int) -> np.ndarray:
    """Points (..., 2) of the frame turned by `turn(frame, angle)`, in the (width x height)
    frame's own pixel coordinates (continuous: a pixel's edges, not its centre)."""
    p = np.asarray(points, np.float32)
    x, y = p[..., 0], p[..., 1]
    if angle == 90:  # turned (x', y') = (height - y, x)
        back = (y, height - x)
    elif angle == 270:  # turned (x', y') = (y, width - x)
        back = (width - y, x)
    elif angle == 180:
        back = (width - x, height - y)
    else:
        raise ValueError(f"a turn must be 90, 180 or 270 degrees, got {angle}")
    return np.stack(back, axis=-1).astype(np.float32)


def detect_turned(detector, rgb: np.ndarray, angle: int) -> FaceDetections:
    """`detector`'s faces in the frame turned by `angle`, mapped back onto the frame: exact
    boxes (a quarter turn keeps a box axis-aligned) and the face's own landmarks."""
    h, w = rgb.shape[:2]
    found = detector.detect(turn(rgb, angle))
    if not len(found):
        return FaceDetections.empty()
    corners = turned_back(found.xyxy.reshape(-1, 2, 2), angle, w, h)
    xyxy = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    return FaceDetections(xyxy, found.score, turned_back(found.landmarks, angle, w, h))


SURE = 0.75
"""Score at which a face that only a turned pass finds is taken for sure: its turn is then searched
on every frame while the face may be held (`FrameAnonymizer._turns`), and in gan mode it gets a
generated face (`GanCoverer._sure`); below it the face is still covered (the fallback filter) and
found again by the turns' schedule. The turned passes' false faces (a wine glass, a torso, an ear)
scored up to 0.72 on the bundled clips; on the bundled photos turned in 10-degree steps, 93.6% of
the faces were found upright or turned (mean over the angles), 87.5% at this score
(`benchmarks/turned.py`)."""

HEAD_REACH = 0.75  # a head's reach from its face box's centre, in face box sides (`merged`)
TURN_BIAS = 0.03
"""Where the upright pass finds a face for sure (SURE) and a turned pass finds it too, the turned
row wins only by this much more score: the half turn found an upright, tilted face in people.mp4
upside down, its eyes where its mouth is, at 0.886-0.892 against the upright 0.882 (SFace aligned
at those landmarks read 0.41-0.44 for a generated face: junk); an upside-down face on the bundled
photos scored 0.047-0.6 more turned than upright."""


def merged(found: FaceDetections, iou: float = 0.3) -> FaceDetections:
    """`found` (the passes' faces, upright first) with one row per face, the best-scored: a
    face is the same as a better-scored one when the boxes overlap (IoU >= `iou`), or when its
    box's centre lies within that face's head (HEAD_REACH of its box from its centre) and is
    under half its area (turned passes took the ear beside an upright face for a face, 0.53-0.56
    on the test clip). A face rolled by 45 degrees is found both upright and turned; an upside-
    down face the upright pass finds (at 0.66-0.81 on a bundled photo) has its eyes where its
    mouth is, and the half turn's row, scored higher, is kept. Rows keep their order."""
    return found[_kept(found, iou)]


def _kept(found: FaceDetections, iou: float, upright: np.ndarray | None = None) -> np.ndarray:
    """Indices of `merged`'s rows, in order; `upright` rows scoring SURE or more count TURN_BIAS
    more (never a weak upright row over a turned face)."""
    keep: list[int] = []
    rank = found.score + (TURN_BIAS * (upright & (found.score >= SURE)) if upright is not None else 0.0)
    for k in np.argsort(-rank, kind="stable"):
        box = found.xyxy[k : k + 1]
        if keep:
            boxes = found.xyxy[keep]
            if iou_matrix(box, boxes).max() >= iou or _part_of_head(box[0], boxes):
                continue
        keep.append(int(k))
    return np.sort(np.array(keep, dtype=np.int64))


def _holds_a_face(xyxy: np.ndarray, score: np.ndarray, turned: np.ndarray) -> np.ndarray:
    """(n,) bool: the turned rows whose box holds the centre of another face of under a
    quarter of its area, or of under half its area that scores higher. A face does not hold
    another face; the turned passes took a torso with arms folded for a face 3.5 times the size
    of the face above it (0.80 on a bundled photo, `benchmarks/stress.py` cut_moving), and gan
    mode painted a face over both; and a head with its shoulders for a face 3.5 times the area
    of the face in it (0.59 around an upright 0.92 on handheld.mp4), whose fallback filter then
    hid that face's generated one for 21 frames."""
    out = np.zeros(len(xyxy), bool)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    area = (xyxy[:, 2:] - xyxy[:, :2]).prod(axis=1)
    for k in np.flatnonzero(turned):
        inside = (centre >= xyxy[k, :2]).all(axis=1) & (centre <= xyxy[k, 2:]).all(axis=1)
        inside[k] = False
        held = (area < area[k] / 4) | ((area < area[k] / 2) & (score > score[k]))
        out[k] = bool((inside & held).any())
    return out


def _part_of_head(box: np.ndarray, faces: np.ndarray) -> bool:
    """Whether `box` lies on the head of one of `faces` (n, 4) and is under half its size."""
    size = (faces[:, 2:] - faces[:, :2]).astype(np.float64)
    centre = (faces[:, :2] + faces[:, 2:]) / 2
    own = (box[2:] - box[:2]).astype(np.float64)
    near = (np.abs((box[:2] + box[2:]) / 2 - centre) <= HEAD_REACH * size).all(axis=1)
    return bool((near & (own.prod() < 0.5 * size.prod(axis=1))).any())


def with_turns(
    detector, rgb: np.ndarray, turns, iou: float = 0.3, found: FaceDetections | None = None, least: float = 0.0
):
    """`found` (by default `detector`'s upright faces in `rgb`) and the faces that each of
    `turns` finds, one row per face (`merged`), and, by turn, the boxes of the faces of its
    own that were kept scoring SURE or more (a turn that found only faces found better
    upright, or only false faces, which scored up to 0.72 on the bundled clips, has none).
    A turn is an angle (the whole frame searched) or (angle, window): only the frame's
    (x0, y0, x1, y1) window is searched. A turn's faces scoring under `least` are left out.
    Where the upright pass is sure of a face a turn finds too, its row wins by TURN_BIAS.
    Without a face from the turns, `found` as it was."""
    dets = detector.detect(rgb) if found is None else found
    parts, source = [dets], [np.zeros(len(dets), np.int64)]
    for turn_ in turns:
        angle, window = turn_ if isinstance(turn_, tuple) else (turn_, None)
        extra = detect_turned(detector, rgb, angle) if window is None else _in_window(detector, rgb, angle, window)
        extra = extra[np.flatnonzero(extra.score >= least)] if least > 0 and len(extra) else extra
        if len(extra):
            parts.append(extra)
            source.append(np.full(len(extra), angle))
    if len(parts) == 1:
        return dets, {}
    every = FaceDetections.concat(parts)
    source = np.concatenate(source)
    keep = _kept(every, iou, source == 0)
    keep = keep[~_holds_a_face(every.xyxy[keep], every.score[keep], source[keep] != 0)]
    source = source[keep]
    sure = (every.score[keep] >= SURE) & (source != 0)
    kept = every[keep]
    return kept, {int(a): kept.xyxy[sure & (source == a)] for a in set(source[sure].tolist())}


def _in_window(detector, rgb: np.ndarray, angle: int, window) -> FaceDetections:
    """`detect_turned` on the frame's (x0, y0, x1, y1) window, in frame coordinates."""
    x0, y0, x1, y1 = (int(v) for v in window)
    found = detect_turned(detector, np.ascontiguousarray(rgb[y0:y1, x0:x1]), angle)
    if not len(found):
        return found
    return found.shifted(x0, y0)


def window_around(boxes: np.ndarray, width: int, height: int, reach: float = 1.0) -> tuple[int, int, int, int] | None:
    """The frame window holding `boxes` (n, 4) each grown by `reach` of its size on every
    side (room for the face to have moved), or None where it would cover half the frame or
    more (searching the whole frame then costs about the same: the detector shrinks a frame
    to its detection size, not a window)."""
    size = (boxes[:, 2:] - boxes[:, :2]).max(axis=1, keepdims=True)
    lo = np.floor((boxes[:, :2] - reach * size).min(axis=0)).astype(int)
    hi = np.ceil((boxes[:, 2:] + reach * size).max(axis=0)).astype(int)
    x0, y0 = max(0, int(lo[0])), max(0, int(lo[1]))
    x1, y1 = min(width, int(hi[0])), min(height, int(hi[1]))
    if x1 - x0 < 16 or y1 - y0 < 16 or (x1 - x0) * (y1 - y0) >= 0.5 * width * height:
        return None
    return x0, y0, x1, y1


def face_down(landmarks: np.ndarray) -> np.ndarray:
    """(2,) float64: the line from between a face's eyes to between its mouth corners (its 5
    landmarks), which runs down the picture on an upright face."""
    lm = np.asarray(landmarks, np.float64)
    return (lm[3] + lm[4]) / 2 - (lm[0] + lm[1]) / 2


def upright_turn(landmarks: np.ndarray) -> int:
    """The turn (0, 90, 180 or 270) that brings a face with these 5 landmarks nearest to
    upright: by the line from between its eyes to between its mouth corners, which runs down
    the picture on an upright face whichever way it looks (on a face in profile the eyes,
    and so the line between them, close up to a point)."""
    down = face_down(landmarks)
    roll = np.degrees(np.arctan2(-down[0], down[1]))  # clockwise in the picture (y runs down)
    return int(-round(roll / 90.0) * 90) % 360
