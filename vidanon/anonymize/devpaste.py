"""Paste-back on the generator's device (`--device cuda`).

The host paste-back (`GanCoverer._paste_part` and `_blend`) resamples each
generated face onto its frame rectangle with OpenCV and blends it there; at
1080p with four faces that is about half of gan mode's cover time on 16
cores, while the generator itself takes a few milliseconds on a GPU. Here the
same geometry runs in torch on the device: the rectangle holding every paste is
uploaded once, each face is resampled with `grid_sample` (bicubic for the face,
bilinear for its feathered alpha) and blended in face order, hard regions of
overlapping pastes are re-asserted, and the rectangle comes back once.

Which pixels are replaced outright (the hard mask: inside the grown filter
ellipse and inside the crop) is computed here too and returned, so the
caller's leftover check (what of a face's filter region no paste replaced gets
the fallback filter) checks exactly what was painted: privacy fails closed as
on the host.

The rectangles are `align.paste_rect`'s, the crop coordinates of a frame pixel
are those of `align.paste_geometry` (pixel centres at integers, as OpenCV),
so the result matches the host paste to within interpolation rounding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vidanon.anonymize import align

Rect = tuple[int, int, int, int]


@torch.inference_mode()
def paste(
    out: np.ndarray,
    gen: np.ndarray,
    crops: align.Crops,
    xyxy: np.ndarray,
    mask_scale: float,
    device: torch.device,
) -> list[tuple[Rect, np.ndarray]]:
    """Pastes generated faces into `out` (h, w, 3) uint8 in place, in face order.

    Args:
        gen: (n, r, r, 3) uint8 generated crops.
        crops: the crops they were generated from (transforms and masks).
        xyxy: (n, 4) the faces' boxes.
        mask_scale: the filter scale the masks were made with.
        device: where to resample and blend.

    Returns:
        (rect, hard) per pasted face (faces off the frame are skipped): the
        frame rectangle and the bool (h, w) mask of the pixels it replaced outright.
    """
    h, w = out.shape[:2]
    res = gen.shape[1]
    rects: list[tuple[int, Rect]] = []
    for i in range(len(gen)):
        rect = align.paste_rect(crops.transforms[i], np.asarray(xyxy[i], np.float64), mask_scale, res, w, h)
        if rect is not None:
            rects.append((i, rect))
    if not rects:
        return []
    wx0, wy0 = min(r[0] for _, r in rects), min(r[1] for _, r in rects)
    wx1, wy1 = max(r[2] for _, r in rects), max(r[3] for _, r in rects)
    win = torch.from_numpy(np.ascontiguousarray(out[wy0:wy1, wx0:wx1])).to(device).permute(2, 0, 1).float()
    faces = torch.from_numpy(gen).to(device).permute(0, 3, 1, 2).float()
    alphas = np.stack([align.feather(crops.masks[i], res) for i, _ in rects])
    alphas_t = torch.from_numpy(alphas).to(device)[:, None]
    parts = []
    for k, (i, (x0, y0, x1, y1)) in enumerate(rects):
        m = crops.transforms[i]
        xs = torch.arange(x0, x1, device=device, dtype=torch.float64)
        ys = torch.arange(y0, y1, device=device, dtype=torch.float64)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        u = m[0, 0] * gx + m[0, 1] * gy + m[0, 2]  # crop coordinates of each frame pixel
        v = m[1, 0] * gx + m[1, 1] * gy + m[1, 2]
        grid = torch.stack([2 * u / (res - 1) - 1, 2 * v / (res - 1) - 1], -1)[None].float()
        rgb = F.grid_sample(faces[i : i + 1], grid, mode="bicubic", padding_mode="border", align_corners=True)[0]
        rgb = rgb.clamp(0, 255).round()
        alpha = F.grid_sample(alphas_t[k : k + 1], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        # the hard mask, as align.paste_geometry: inside the grown ellipse and inside the crop
        c, axes = align.grown_ellipse(m, xyxy[i], mask_scale)
        ax, ay = max(float(axes[0]), 1e-6), max(float(axes[1]), 1e-6)
        in_crop = (u >= 0) & (u <= res - 1) & (v >= 0) & (v <= res - 1)
        hard = in_crop & (((gx - c[0]) / ax) ** 2 + ((gy - c[1]) / ay) ** 2 <= 1.0)
        alpha = torch.maximum(alpha, hard[None].float())
        view = win[:, y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
        view.copy_(rgb * alpha + view * (1 - alpha))
        parts.append(((x0, y0, x1, y1), hard, rgb))
    # a feathered edge of one face must never bring back original pixels inside
    # another face's replaced region: re-assert the hard regions of overlapping pastes
    for k, (rect, hard, rgb) in enumerate(parts):
        if any(align.rects_overlap(rect, p[0]) for j, p in enumerate(parts) if j != k):
            view = win[:, rect[1] - wy0 : rect[3] - wy0, rect[0] - wx0 : rect[2] - wx0]
            view.copy_(torch.where(hard[None], rgb, view))
    out[wy0:wy1, wx0:wx1] = win.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return [(rect, hard.cpu().numpy()) for rect, hard, _ in parts]
