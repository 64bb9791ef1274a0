"""Flicker: flow-compensated frame-to-frame change inside the face regions.

Between consecutive frames t-1 and t, dense optical flow is computed on the
ORIGINAL video (Farneback on grayscale, on a downscaled copy for speed) and
used to warp frame t-1 of a video onto frame t. The mean absolute difference
between frame t and the warped frame t-1, inside the face regions of frame t,
is what moved in a way that the scene's motion does not explain. Computed on
the anonymized video it is the flicker of the replacement; computed on the
original (same flow, same regions) it is the natural floor from lighting,
noise, compression and flow errors. Their ratio is the figure to compare.

That ratio also rises with sharpness alone: the flow is estimated on a
downscaled copy and is off by a fraction of a pixel, and a warp that is off
by a fraction of a pixel leaves a difference proportional to the image's
gradients. (Measured on `samples/people.mp4`, nothing replaced: the original
re-encoded reads 1.00, the same frames sharpened by an unsharp mask 1.44, and
blurred by a Gaussian of 1 px 0.78.) So each pair is also measured low-pass:
both frames blurred by a Gaussian of one flow pixel (the frame side over the
flow's side) before the difference, which leaves out the detail finer than
the flow can place, and the change that remains is what a viewer sees as
flicker: another face, colour, or shape. Both ratios are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def downscale(gray: np.ndarray, max_side: int) -> np.ndarray:
    """`gray` shrunk so that its longer side is at most `max_side` (unchanged if already smaller)."""
    h, w = gray.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return gray
    return cv2.resize(gray, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)


def farneback(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Backward Farneback flow between two same-size uint8 grayscale frames: cur(p) ~ prev(p + flow(p))."""
    return cv2.calcOpticalFlowFarneback(cur, prev, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def upscale_flow(flow: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """A flow computed on a downscaled frame, resized and rescaled to (h, w) pixels."""
    h, w = shape_hw
    if flow.shape[:2] == (h, w):
        return flow.astype(np.float32)
    sx, sy = w / flow.shape[1], h / flow.shape[0]
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= sx
    out[..., 1] *= sy
    return out.astype(np.float32)


def backward_flow(gray_cur: np.ndarray, gray_prev: np.ndarray, max_side: int = 320) -> np.ndarray:
    """Dense flow that maps each pixel of the current frame to its place in the previous one.

    Args:
        gray_cur: (h, w) uint8 current frame.
        gray_prev: (h, w) uint8 previous frame.
        max_side: the flow is computed on copies whose longer side is at most
            this, then scaled back to (h, w).

    Returns:
        (h, w, 2) float32 flow in full-resolution pixels: cur(y, x) ~ prev(y + fy, x + fx).
    """
    if gray_cur.shape != gray_prev.shape or gray_cur.ndim != 2:
        raise ValueError(f"expected two (h, w) frames of one size, got {gray_cur.shape} and {gray_prev.shape}")
    flow = farneback(downscale(gray_cur, max_side), downscale(gray_prev, max_side))
    return upscale_flow(flow, gray_cur.shape)


def warp(img: np.ndarray, flow: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """`img` (the previous frame) resampled onto the current frame along `flow`.

    Args:
        img: (h, w[, c]) previous frame.
        flow: (h, w, 2) backward flow, see `backward_flow`.
        roi: x1, y1, x2, y2: only this part of the current frame is produced.

    Returns:
        The warped frame, or its `roi` part.
    """
    h, w = flow.shape[:2]
    x1, y1, x2, y2 = roi if roi is not None else (0, 0, w, h)
    gx, gy = np.meshgrid(np.arange(x1, x2, dtype=np.float32), np.arange(y1, y2, dtype=np.float32))
    f = flow[y1:y2, x1:x2]
    return cv2.remap(img, gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def box_mask(shape_hw: tuple[int, int], xyxy: np.ndarray, scale: float = 1.3) -> np.ndarray:
    """bool (h, w) mask of the boxes scaled by `scale` about their centres, clipped to the frame."""
    h, w = shape_hw
    mask = np.zeros((h, w), bool)
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    c = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) * scale / 2
    for (cx, cy), (hx, hy) in zip(c, half, strict=True):
        x1, y1 = max(0, int(np.floor(cx - hx))), max(0, int(np.floor(cy - hy)))
        x2, y2 = min(w, int(np.ceil(cx + hx))), min(h, int(np.ceil(cy + hy)))
        if x2 > x1 and y2 > y1:
            mask[y1:y2, x1:x2] = True
    return mask


@dataclass(frozen=True)
class FlickerSample:
    """Flicker of one consecutive frame pair (mean abs difference, 0-255 scale)."""

    index: int  # the later frame of the pair
    output: float
    original: float
    pixels: int
    output_lowpass: float | None = None  # both frames blurred by one flow pixel first
    original_lowpass: float | None = None


class FlickerMeter:
    """Streams frame pairs; keeps only the previous frame of each video.

    Pairs across a scene cut (or anything else the flow cannot explain over the
    whole original frame, such as an occluder appearing) are skipped and
    counted in `cuts`: there, change is content, not flicker. The flow is
    computed for every pair, with or without faces, so that cuts are always seen.

    Args:
        flow_max_side: longer side of the frames the flow is computed on.
        region_scale: face boxes are scaled by this to cover the pasted region's edges.
        cut_threshold: mean abs difference (0-255) of the whole flow-warped
            original frame above which a pair counts as a cut.
    """

    def __init__(self, flow_max_side: int = 320, region_scale: float = 1.3, cut_threshold: float = 20.0) -> None:
        if flow_max_side < 16:
            raise ValueError(f"flow_max_side must be at least 16, got {flow_max_side}")
        if not 1.0 <= region_scale <= 4.0:
            raise ValueError(f"region_scale must be in [1, 4], got {region_scale}")
        if cut_threshold <= 0:
            raise ValueError(f"cut_threshold must be positive, got {cut_threshold}")
        self.flow_max_side = flow_max_side
        self.region_scale = region_scale
        self.cut_threshold = cut_threshold
        self.cuts = 0  # scene cuts seen (pairs left out)
        self.last_cut = False  # whether the latest update was a cut
        self._prev: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    def update(self, index: int, original: np.ndarray, output: np.ndarray, xyxy: np.ndarray) -> FlickerSample | None:
        """Adds frame `index` of both videos; returns the pair (index-1, index), if it has faces.

        Args:
            index: frame index; a gap since the last call starts over.
            original: (h, w, 3) uint8 original frame.
            output: (h, w, 3) uint8 anonymized frame, same size.
            xyxy: (n, 4) face boxes of this frame (original positions).
        """
        if original.shape != output.shape:
            raise ValueError(f"frames differ in size: {original.shape} vs {output.shape}")
        small = downscale(cv2.cvtColor(original, cv2.COLOR_RGB2GRAY), self.flow_max_side)
        prev, self._prev = self._prev, (index, small, original, output)
        self.last_cut = False
        if prev is None or prev[0] != index - 1 or prev[2].shape != original.shape:
            return None
        flow_small = farneback(small, prev[1])
        scene = float(np.abs(small.astype(np.int16) - warp(prev[1], flow_small).astype(np.int16)).mean())
        if scene > self.cut_threshold:
            self.cuts += 1
            self.last_cut = True
            return None
        xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        mask = box_mask(original.shape[:2], xyxy, self.region_scale)
        ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        if not len(ys):
            return None
        flow = upscale_flow(flow_small, original.shape[:2])
        x1, y1, x2, y2 = int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1
        mask = mask[y1:y2, x1:x2]
        sigma = max(original.shape[:2]) / max(small.shape[:2])  # one flow pixel
        vals, low = [], []
        for cur, before in ((output, prev[3]), (original, prev[2])):
            warped = warp(before, flow, (x1, y1, x2, y2)).astype(np.float32)
            now = cur[y1:y2, x1:x2].astype(np.float32)
            vals.append(float(np.abs(now - warped)[mask].mean()))
            blurred = [cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for a in (now, warped)]
            low.append(float(np.abs(blurred[0] - blurred[1])[mask].mean()))
        return FlickerSample(index, vals[0], vals[1], int(mask.sum()), low[0], low[1])
