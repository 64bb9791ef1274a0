"""Whether a face was left as it was: the fine detail of an original face's box, kept in another frame."""

from __future__ import annotations

import cv2
import numpy as np

from vidanon.types import DETECTED, FaceDetections

BARE = 0.7
"""`unchanged` at or above which a face counts as left uncovered. A bare dim, noisy face read 0.90
after re-encoding (exact copies read 1.0); covered faces on the stress scenes at most 0.30 blurred,
0.47 generated, 0.26 pixelated, 0.18 solid."""


def unchanged(original: np.ndarray, output: np.ndarray, box: np.ndarray, middle: float = 0.7) -> float:
    """How much of a face's fine detail the output kept: the correlation of the two frames'
    high-pass (grey minus its Gaussian blur, sigma 2 px) over the middle `middle` of the box.
    About 1 for a face left as it was (0.90 for a dim, noisy one after re-encoding), low for
    any cover, which removes the face's detail or paints other detail. 0 for a box under 4 px."""
    h, w = original.shape[:2]
    c, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) * middle / 2
    x0, y0 = (max(0, int(v)) for v in c - half)
    x1, y1 = min(w, int(c[0] + half[0]) + 1), min(h, int(c[1] + half[1]) + 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    # the blur reaches past the middle: take a margin of the frame around it, then crop
    m = 6
    X0, Y0, X1, Y1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    detail = []
    for img in (original, output):
        grey = cv2.cvtColor(np.ascontiguousarray(img[Y0:Y1, X0:X1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        hp = (grey - cv2.GaussianBlur(grey, (0, 0), 2.0))[y0 - Y0 : y1 - Y0, x0 - X0 : x1 - X0]
        detail.append(hp - hp.mean())
    a, b = detail
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 1e-6 else 0.0


def left_bare(original: np.ndarray, output: np.ndarray, faces: FaceDetections, threshold: float = BARE) -> np.ndarray:
    """(n,) bool: the detected faces (state DETECTED: a predicted place may hold no face) that
    `output` left as they were in `original` (`unchanged` >= `threshold`)."""
    bare = np.zeros(len(faces), bool)
    for k in np.flatnonzero(faces.state == DETECTED):
        bare[k] = unchanged(original, output, faces.xyxy[k]) >= threshold
    return bare
