"""Classic cover filters (blur, pixelate, solid) and the face-region masks they use.

They are the default modes, and the fallback wherever the generator cannot
help (tiny faces, a failing stage). Every one of them destroys identity inside
the region: the blur kernel scales with the face, so a large face is never
only softened.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidanon.config import CoverConfig
from vidanon.types import FaceDetections

# An ellipse inscribed in the scaled box would cut the box corners, where cheeks
# and chin are; the ellipse circumscribes it instead (its axes are the box's x this).
ELLIPSE_FACTOR = 1.15


def region_boxes(xyxy: np.ndarray, scale: float, width: int, height: int) -> np.ndarray:
    """Face boxes scaled about their centres by `scale`, as int (n, 4), clipped to the frame."""
    c = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) * scale / 2
    out = np.concatenate([np.floor(c - half), np.ceil(c + half)], axis=1)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out.astype(np.int64)


def region_mask(
    shape_hw: tuple[int, int], faces: FaceDetections, cfg: CoverConfig, origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """uint8 mask (255 inside) of all covered regions of a frame.

    With `origin` (x0, y0), the mask covers only the window of shape `shape_hw`
    whose top-left frame pixel is the origin. Geometry is rounded in frame
    coordinates, then shifted, so the result is exactly that window of the
    full-frame mask as long as the window holds every region whole, or cuts it
    only where the frame does (OpenCV rasterises a shape cut by the image
    border slightly differently).
    """
    h, w = shape_hw
    ox, oy = int(origin[0]), int(origin[1])
    mask = np.zeros((h, w), np.uint8)
    c = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    half = (faces.xyxy[:, 2:] - faces.xyxy[:, :2]) * cfg.mask_scale / 2
    for (cx, cy), (hx, hy) in zip(c, half):
        if cfg.shape == "ellipse":
            axes = (int(np.ceil(hx * ELLIPSE_FACTOR)), int(np.ceil(hy * ELLIPSE_FACTOR)))
            cv2.ellipse(mask, (int(round(cx)) - ox, int(round(cy)) - oy), axes, 0, 0, 360, 255, -1)
        else:
            x1, y1, x2, y2 = (
                int(np.floor(cx - hx)) - ox,
                int(np.floor(cy - hy)) - oy,
                int(np.ceil(cx + hx)) - ox,
                int(np.ceil(cy + hy)) - oy,
            )
            cv2.rectangle(mask, (x1, y1), (x2, y2), 255, -1)
    return mask


# Strength, relative to the face: tuned on the bundled photos at several scales until
# YuNet no longer finds any covered face (benchmarks/filter_strength.py).
BLUR_FACE_PX = 10  # the face is shrunk to this many pixels before a sigma-4 blur
PIXELATE_BLOCKS = 3  # blocks across a face


def _filtered(patch: np.ndarray, mode: str, face_size: float) -> np.ndarray:
    if mode == "solid":
        return np.zeros_like(patch)
    if mode == "pixelate":
        blocks = PIXELATE_BLOCKS
        h, w = patch.shape[:2]
        bs = max(2, int(round(face_size / blocks)))
        small = cv2.resize(patch, (max(1, w // bs), max(1, h // bs)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    # blur: downscale then a strong Gaussian, so the cost does not grow with face size
    h, w = patch.shape[:2]
    f = max(1.0, face_size / BLUR_FACE_PX)
    small = cv2.resize(patch, (max(1, int(w / f)), max(1, int(h / f))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=4.0, borderType=cv2.BORDER_REPLICATE)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=4.0, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def apply_filter(frame: np.ndarray, faces: FaceDetections, cfg: CoverConfig, mode: str | None = None) -> np.ndarray:
    """Covers every face of `faces` in `frame` (RGB uint8) with a classic filter.

    Args:
        frame: (h, w, 3) uint8; not modified.
        faces: regions to cover.
        cfg: shape and scale of the region.
        mode: blur, pixelate or solid; default `cfg.mode` (or `cfg.fallback` for gan).

    Returns:
        A new frame.
    """
    mode = mode or (cfg.mode if cfg.mode != "gan" else cfg.fallback)
    out = frame.copy()
    if len(faces) == 0:
        return out
    h, w = frame.shape[:2]
    # each face: filter a patch around it (from the input, so overlapping faces do not
    # filter twice) and write it under the face's own mask, drawn in patch coordinates
    boxes = region_boxes(faces.xyxy, cfg.mask_scale * 1.2, w, h)
    sizes = (faces.xyxy[:, 2:] - faces.xyxy[:, :2]).max(axis=1)
    for i, ((x1, y1, x2, y2), size) in enumerate(zip(boxes, sizes)):
        if x2 <= x1 or y2 <= y1:
            continue
        face = faces[i]
        local = FaceDetections(face.xyxy - np.array([x1, y1, x1, y1], np.float32))
        m = region_mask((y2 - y1, x2 - x1), local, cfg)
        cv2.copyTo(_filtered(frame[y1:y2, x1:x2], mode, float(size)), m, out[y1:y2, x1:x2])
    return out


def cover_whole_frame(frame: np.ndarray, mode: str) -> np.ndarray:
    """The last resort when a stage failed and no region is known: cover everything."""
    if mode == "solid":
        return np.zeros_like(frame)
    size = max(frame.shape[:2]) / 4
    return _filtered(frame, mode, float(size))
