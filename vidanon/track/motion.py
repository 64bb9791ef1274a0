"""A face's own image motion between two frames, as a similarity transform.

The detector places a face's landmarks with a few pixels of independent noise
in every frame; the image of the face moves smoothly. Corners inside the face
box are followed from the previous frame to this one with pyramidal
Lucas-Kanade in a window around the face, and a similarity (translation,
rotation, uniform scale) is fitted to them with RANSAC; an estimate that
explains less than half of the points is refused. The tracker moves the previous frame's landmarks by it and lets the
detector correct the result slowly (`FaceTracker`).
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_CORNERS = 32
MIN_POINTS = 8  # fewer followed points or inliers than this: no estimate (a flat or blurred face)
MIN_INLIERS = 0.5  # share of the followed points the similarity must explain (else: an occluder, a turn)
WORK_SIDE = 80.0  # faces larger than this (px) are followed downscaled to it
LK_PARAMS = {
    "winSize": (11, 11),
    "maxLevel": 2,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03),
}


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """An (h, w) uint8 luma image of an (h, w, 3) RGB frame."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _region(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
    x1, y1 = int(min(width, np.ceil(box[2]))), int(min(height, np.ceil(box[3])))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return x0, y0, x1, y1


def face_motion(prev: np.ndarray, cur: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The similarity (2x3, frame pixels) that takes the face in `box` of `prev` to `cur`.

    Args:
        prev, cur: consecutive (h, w) uint8 gray frames.
        box: the face's box (x0, y0, x1, y1) in `prev`.

    Returns:
        None when too few points inside the box could be followed, or no
        similarity explains most of them (a flat or blurred face, an occluder,
        a cut): the caller falls back.
    """
    h, w = prev.shape[:2]
    box = np.asarray(box, np.float64)
    roi = _region(box, w, h)
    if roi is None:
        return None
    x0, y0, x1, y1 = roi
    side = float(max(x1 - x0, y1 - y0))
    # LK on a window around the face, not the whole frame (whose pyramids cost ~2 ms a call at
    # 720p): the face may move by up to half its size (or 24 px) and still be followed; a large
    # face is followed at WORK_SIDE px (sub-pixel there is still a tenth of the detector's noise)
    pad = int(max(24, side / 2))
    wx0, wy0, wx1, wy1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    a, b = prev[wy0:wy1, wx0:wx1], cur[wy0:wy1, wx0:wx1]
    k = min(1.0, WORK_SIDE / side)
    if k < 1.0:  # fx = fy = k: both axes scaled by exactly k, whatever the rounding of the size
        a, b = (cv2.resize(im, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR) for im in (a, b))
    side_k = side * k
    fx0, fy0 = int((x0 - wx0) * k), int((y0 - wy0) * k)
    corners = cv2.goodFeaturesToTrack(
        a[fy0 : fy0 + int(round((y1 - y0) * k)), fx0 : fx0 + int(round((x1 - x0) * k))],
        MAX_CORNERS,
        0.01,
        max(2.0, side_k / 16),
        blockSize=5,
        useHarrisDetector=False,
    )
    if corners is None or len(corners) < MIN_POINTS:
        return None
    p0 = (corners.reshape(-1, 2) + np.array([fx0, fy0], np.float32)).astype(np.float32)
    p1, ok1, _ = cv2.calcOpticalFlowPyrLK(a, b, p0, None, **LK_PARAMS)
    if p1 is None:
        return None
    good = ok1.ravel() == 1
    if good.sum() < MIN_POINTS:
        return None
    m, inliers = cv2.estimateAffinePartial2D(
        p0[good], p1[good], method=cv2.RANSAC, ransacReprojThreshold=max(1.0, 0.015 * side_k), maxIters=200
    )
    n_in = 0 if inliers is None else int(inliers.sum())
    if m is None or n_in < max(MIN_POINTS, MIN_INLIERS * int(good.sum())):
        return None
    # back to frame pixels: window pixel p (pixel centres scaled) is frame pixel d + p / k,
    # d = (wx0, wy0) + (0.5 / k - 0.5); so q = A p + t becomes Q = A P + d - A d + t / k
    m = m.astype(np.float64)
    d = np.array([wx0, wy0], np.float64) + (0.5 / k - 0.5)
    m[:, 2] = d - m[:, :2] @ d + m[:, 2] / k
    return m


def move_face(m: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A box and its (5, 2) landmarks carried by similarity `m`: the landmarks exactly, the
    box by its centre and its sides scaled (an axis-aligned box stays axis-aligned)."""
    lm = landmarks @ m[:, :2].T + m[:, 2]
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    c = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) / 2 * scale
    c2 = m[:, :2] @ c + m[:, 2]
    return np.concatenate([c2 - half, c2 + half]), lm
