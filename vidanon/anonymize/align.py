"""Face crops for the generator: alignment, masks, landmark heatmaps, paste-back.

Training and inference both go through `make_crops`, so the framing the
generator learned is the framing it gets.

The crop is a similarity transform (rotation, uniform scale, translation)
estimated from the 5 landmarks to a canonical template. The masked region is
the frame-space ellipse that the classic filters would cover (the face box
scaled by `mask_scale`, circumscribed), mapped into the crop, plus a margin: the
generator replaces everything the blur would have covered. What of that ellipse
falls outside the crop is reported by `uncovered_mask` and covered by the
caller with the fallback filter, so privacy fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidanon.anonymize.filters import ELLIPSE_FACTOR  # the filters' circumscription, shared

# Canonical landmarks relative to the face box (x by box width, y by box
# height), YuNet order: right eye, left eye, nose, right and left mouth corner.
# Symmetrised means of YuNet on real photos and on the DCGAN teacher's faces.
TEMPLATE_IN_BOX = np.array([[0.29, 0.395], [0.71, 0.395], [0.50, 0.60], [0.31, 0.755], [0.69, 0.755]], np.float64)
BOX_ASPECT = 1.32  # YuNet box height / width, measured on the same faces
# Filters are horizontally mirrored with the landmarks swapped in this order.
FLIP_ORDER = [1, 0, 2, 4, 3]
MARGIN = 2.5  # pixels by which the generated region exceeds the filter ellipse


def template(resolution: int, crop_factor: float) -> np.ndarray:
    """The 5 canonical landmarks in crop pixels, (5, 2).

    The face box is centred in the crop, its height `resolution / crop_factor`.
    """
    h = resolution / crop_factor
    w = h / BOX_ASPECT
    tl = np.array([resolution / 2 - w / 2, resolution / 2 - h / 2])
    return tl + TEMPLATE_IN_BOX * np.array([w, h])


def box_landmarks(xyxy: np.ndarray) -> np.ndarray:
    """Template landmarks placed in a box, (n, 5, 2): used when landmarks are implausible."""
    wh = (xyxy[:, 2:] - xyxy[:, :2])[:, None, :]
    return xyxy[:, None, :2] + TEMPLATE_IN_BOX[None] * wh


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama, no reflection) mapping src to dst, (2, 3)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var = (s0**2).sum() / len(src)
    if var < 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1
    rot = u @ d @ vt
    scale = np.trace(np.diag(sig) @ d) / var
    a = scale * rot
    t = mu_d - a @ mu_s
    return np.concatenate([a, t[:, None]], axis=1)


def _scale_of(m: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))


def face_transform(xyxy: np.ndarray, landmarks: np.ndarray, resolution: int, crop_factor: float) -> np.ndarray:
    """Frame -> crop similarity for one face, (2, 3).

    Any roll: a face lying on its side or upside down (found by a turned pass, its box
    turned back into the frame) is aligned by its landmarks like an upright one. Landmarks
    that disagree with the box (a scale off by more than 1.6x against the box's side along
    the face's length, or a centre outside the box) are replaced by the template placed in
    the box: a predicted or backfilled face keeps a sane crop. (Until 2026-11-27 a roll over
    60 degrees also fell back to the template, so a face lying on its side got an upright
    face painted across it.)
    """
    dst = template(resolution, crop_factor)
    try:
        m = similarity(landmarks, dst)
        s = _scale_of(m)
        angle = np.arctan2(m[1, 0], m[0, 0])
        along = 3 if abs(np.cos(angle)) >= abs(np.sin(angle)) else 2  # the box's side along the face
        want = (resolution / crop_factor) / max(float(xyxy[along] - xyxy[along - 2]), 1e-3)
        c = landmarks.mean(0)
        inside = xyxy[0] <= c[0] <= xyxy[2] and xyxy[1] <= c[1] <= xyxy[3]
        if 1 / 1.6 <= s / want <= 1.6 and inside:
            return m
    except (ValueError, np.linalg.LinAlgError):
        pass
    return similarity(box_landmarks(xyxy[None])[0], dst)


def apply_transform(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (..., 2) mapped by the affine (2, 3)."""
    return pts @ m[:, :2].T + m[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of an affine (2, 3)."""
    return cv2.invertAffineTransform(m.astype(np.float64))


def warp_crop(image: np.ndarray, m: np.ndarray, resolution: int, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """The crop of `image` under frame->crop transform `m`, (res, res, C), same dtype.

    Large faces are first reduced with INTER_AREA (no aliasing); borders replicate by default.
    """
    s = _scale_of(m)
    h, w = image.shape[:2]
    if s < 0.75:
        inv = invert(m)
        corners = apply_transform(
            inv, np.array([[0, 0], [resolution, 0], [0, resolution], [resolution, resolution]], float)
        )
        x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, w - 1))
        y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, h - 1))
        x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 3, x0 + 1, w))
        y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 3, y0 + 1, h))
        sub = image[y0:y1, x0:x1]
        f = s
        sw, sh = max(1, int(round((x1 - x0) * f))), max(1, int(round((y1 - y0) * f)))
        fx, fy = sw / (x1 - x0), sh / (y1 - y0)
        sub = cv2.resize(sub, (sw, sh), interpolation=cv2.INTER_AREA)
        # p = p_sub / f + off  ->  m' = m @ [[1/fx, 0, x0], [0, 1/fy, y0]]
        a = m[:, :2] @ np.diag([1 / fx, 1 / fy])
        t = m[:, :2] @ np.array([x0, y0], float) + m[:, 2]
        m2 = np.concatenate([a, t[:, None]], axis=1)
        return cv2.warpAffine(sub, m2, (resolution, resolution), flags=cv2.INTER_LINEAR, borderMode=border)
    return cv2.warpAffine(image, m, (resolution, resolution), flags=cv2.INTER_LINEAR, borderMode=border)


def ellipse_params(xyxy: np.ndarray, mask_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre (2,) and semi-axes (2,) of the filter ellipse of a face box, frame pixels."""
    c = (xyxy[:2] + xyxy[2:]) / 2
    half = (xyxy[2:] - xyxy[:2]) * mask_scale / 2
    return c.astype(np.float64), (half * ELLIPSE_FACTOR).astype(np.float64)


# The skin of a face, from its 5 landmarks (eye centre e, mouth centre m, eye distance w):
# an ellipse centred at e + FACE_CENTRE (m - e), semi-axes FACE_HALF_WIDTH w across and
# FACE_HALF_HEIGHT |m - e| along the face. On TEMPLATE_IN_BOX that is x 0.06-0.94 and
# y 0.13-1.03 of the box: cheeks to chin, below the hairline, none of the background
# beside the temples that the box's own ellipse holds.
FACE_CENTRE = 0.51
FACE_HALF_WIDTH = 1.05
FACE_HALF_HEIGHT = 1.25


def face_distance(points: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys), len(xs)), float32 for float32 xs and ys, else float64: where each pixel of the
    grid xs x ys lies against the face's skin ellipse by its 5 landmarks (same pixels as
    `points`): below 1 inside, 1 on its edge, g on the edge of that ellipse scaled by g about
    its centre (`face_region`'s `grow`)."""
    p = np.asarray(points, np.float64)
    eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    down = mouth - eyes
    d = max(float(np.hypot(*down)), 1e-6)
    w = max(float(np.hypot(*(p[1] - p[0]))), 1e-6)
    down = down / d
    c = eyes + FACE_CENTRE * d * down
    xs, ys = np.asarray(xs), np.asarray(ys)
    dt = np.float32 if xs.dtype == np.float32 and ys.dtype == np.float32 else np.float64
    dx, dy = (xs.astype(dt) - dt(c[0]))[None, :], (ys.astype(dt) - dt(c[1]))[:, None]
    along = dx * dt(down[0]) + dy * dt(down[1])
    across = dx * dt(down[1]) - dy * dt(down[0])
    return np.sqrt((across / dt(FACE_HALF_WIDTH * w)) ** 2 + (along / dt(FACE_HALF_HEIGHT * d)) ** 2)


def face_region(points: np.ndarray, resolution: int, grow: float = 1.0) -> np.ndarray:
    """float32 (res, res): 1 on the face's skin by its 5 landmarks in crop pixels, else 0;
    with `grow`, that ellipse scaled about its centre."""
    r = np.arange(resolution, dtype=np.float64)
    return (face_distance(points, r, r) <= grow).astype(np.float32)


def face_alpha(points: np.ndarray, resolution: int, grow: float = 1.0) -> np.ndarray:
    """`face_region`, feathered by a Gaussian of resolution / 40 (a training swap's feather)."""
    return cv2.GaussianBlur(face_region(points, resolution, grow), (0, 0), sigmaX=resolution / 40)


def in_context(donor: np.ndarray, points: np.ndarray, crop: np.ndarray, mask: np.ndarray, grow: float) -> np.ndarray:
    """A donor crop (r, r, 3) uint8 whose surroundings, outside its face region grown by
    `grow` about its landmarks (`face_alpha`), are a smooth fill of the crop's own context
    into the region the generator replaces (`fill_padding` of the crop with `mask` (r, r),
    1 where replaced, as padding): only pixels the generator sees anyway, never the face
    it replaces. A new array."""
    fill = fill_padding(crop, 1.0 - mask).astype(np.float32)
    alpha = face_alpha(points, donor.shape[0], grow)[..., None]
    return np.clip(donor * alpha + fill * (1 - alpha), 0, 255).round().astype(np.uint8)


# `with_donor_detail`: the donor's face is taken down to this feature size (the Gaussian's
# sigma, in pixels of a 64 px crop), the generator's output below it; the face region is
# grown by DETAIL_GROW about the donor's landmarks so that the jaw and brow come along.
DETAIL_GROW = 1.1
# Rec. 601 luma: the same change on R, G and B moves it alone, the colour stays
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# `detail_gain`: a face gets the donor's detail in full where its original is in focus and at
# least as large in the frame as in the crop, none where it is blurred or small (ramps between):
# - focus, the original's finest band against its coarse one (`focus`): the photos, both samples
#   and stress.py's scenes read 0.49-0.84 at the median and 0.26-0.64 at the 5th percentile
#   (people.mp4's soft crops the lowest), stress.py's blur_drop under its blur 0.16-0.17. A sharp
#   face on a blurred one is out of place, and SFace, aligned where YuNet finds that sharper face,
#   read one 0.36-0.37 like the person (0.04 at the original's landmarks);
# - size, the face's height in the frame against its height in the crop: a smaller face is
#   scaled down at paste, its detail with it, and a 14 px face given it read 0.39 (stress.py small).
FOCUS_BLURRED, FOCUS_SHARP = 0.20, 0.35
DETAIL_SMALL, DETAIL_FULL = 0.75, 1.1  # face height in the frame / in the crop


def band_rms(crop: np.ndarray, points: np.ndarray, fine: float, coarse: float) -> float:
    """The RMS over a face crop's face region (`face_alpha` of its landmarks `points`, crop
    pixels) of its grey band between Gaussians of `fine` (0: the crop itself) and `coarse`
    pixels of a 64 px crop (scaled with the crop's side)."""
    r = crop.shape[0]
    a = face_alpha(points, r)
    g = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lo = g if fine <= 0 else cv2.GaussianBlur(g, (0, 0), fine * r / 64)
    band = lo - cv2.GaussianBlur(g, (0, 0), coarse * r / 64)
    return float(np.sqrt((a * band**2).sum() / max(float(a.sum()), 1e-6)))


def focus(crop: np.ndarray, points: np.ndarray) -> float:
    """How sharp a face crop (r, r, 3) uint8 is: over its face region, the RMS of its finest
    grey band (below a Gaussian of 0.8 px of a 64 px crop) over that of a coarse one
    (1.6-3.2 px; `band_rms`). Not a property of the person: a scale-free ratio that blur
    lowers (a Gaussian of 4 frame px on a 45 px face reads 0.17, the same face sharp 0.56)."""
    return band_rms(crop, points, 0.0, 0.8) / max(band_rms(crop, points, 1.6, 3.2), 1e-3)


def detail_gain(crop: np.ndarray, points: np.ndarray, transform: np.ndarray) -> float:
    """How much of its donor's detail (`with_donor_detail`) a face gets, 0-1: the lower of
    its `focus` ramp (FOCUS_BLURRED -> FOCUS_SHARP) and its size ramp (its height in the
    frame over its height in the crop, DETAIL_SMALL -> DETAIL_FULL; at a 64 px crop 27 -> 40 px).
    `crop`: the face's own crop, read for its sharpness alone; `transform`: frame -> crop
    (`Crops.transforms`)."""
    size = 1.0 / _scale_of(transform)  # frame pixels per crop pixel: the face's height ratio
    by_size = np.clip((size - DETAIL_SMALL) / (DETAIL_FULL - DETAIL_SMALL), 0.0, 1.0)
    if by_size == 0.0:
        return 0.0
    by_focus = np.clip((focus(crop, points) - FOCUS_BLURRED) / (FOCUS_SHARP - FOCUS_BLURRED), 0.0, 1.0)
    return float(min(by_size, by_focus))


def with_donor_detail(
    out: np.ndarray,
    donor: np.ndarray,
    points: np.ndarray,
    mask: np.ndarray,
    sigma: float,
    gain: float = 1.0,
    reach: float = DETAIL_GROW,
    drawn: np.ndarray | None = None,
) -> np.ndarray:
    """A generated crop (r, r, 3) uint8 with its detail taken from the donor it was drawn
    from: inside the donor's face region (`face_alpha` of its landmarks `points`, grown by
    `reach`: DETAIL_GROW, the face; 3, the whole replaced region, the donor's hair and
    background with it) and the replaced region (`mask`, 1 where replaced), the bands of
    the luma finer than a Gaussian of `sigma` (64 px crop pixels, scaled with the
    resolution) come from the donor; the coarser ones (light, shading) and every band of
    the colour stay the generator's. The generator draws the donor's face and hair where
    the donor has them, but soft and at low contrast; the donor's own detail is sharp, and
    taken as luma alone it brings no colour of its own (not its green wall into the hair),
    so the face keeps the light and tone of its context. `drawn` (r, r; `DonorFaces.drawn`,
    1 where the donor crop shows the teacher's draw, 0 on its padding) keeps the padding's
    repeated edge pixels (streaks below the chin) out. `gain` (0-1, `detail_gain`) scales
    the detail taken. Pixels outside the mask are returned as they are. A new array."""
    r = out.shape[0]
    s = sigma * r / 64
    alpha = face_alpha(points, r, reach) * mask * gain
    if drawn is not None:
        alpha = alpha * cv2.GaussianBlur(drawn.astype(np.float32), (0, 0), s / 4)
    alpha = alpha[..., None]
    o = out.astype(np.float32)
    yo, yd = o @ LUMA, donor.astype(np.float32) @ LUMA
    dy = cv2.GaussianBlur(yo, (0, 0), s) + yd - cv2.GaussianBlur(yd, (0, 0), s) - yo
    return np.clip(o + alpha * dy[..., None], 0, 255).round().astype(np.uint8)


def face_only(crop: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A donor crop with everything but its face (`face_alpha`) turned mid-grey, so that a
    generator can take the face from it and nothing of its hair or background."""
    alpha = face_alpha(points, crop.shape[0])[..., None]
    return np.clip(crop * alpha + 127.5 * (1 - alpha), 0, 255).round().astype(np.uint8)


def grown_ellipse(m: np.ndarray, xyxy: np.ndarray, mask_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre and semi-axes (frame pixels) of the region the generator replaces: the filter
    ellipse grown by MARGIN crop pixels (and at least MARGIN frame pixels) under frame->crop `m`."""
    c, axes = ellipse_params(np.asarray(xyxy, np.float64), mask_scale)
    return c, axes + max(MARGIN / _scale_of(m), MARGIN)


def inside_ellipse(px: np.ndarray, py: np.ndarray, c: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """bool: whether the points (px, py) lie in the axis-aligned ellipse of centre c and semi-axes `axes`."""
    ax = max(float(axes[0]), 1e-6)
    ay = max(float(axes[1]), 1e-6)
    return ((px - c[0]) / ax) ** 2 + ((py - c[1]) / ay) ** 2 <= 1.0


def _affine_grid(m: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixel grid (ys x xs) mapped by the affine m, as two (len(ys), len(xs)) arrays.

    Built from outer sums of the row and column terms, which costs a fraction
    of mapping every (x, y) pair through a matrix product.
    """
    xs = np.asarray(xs, np.float64)[None, :]
    ys = np.asarray(ys, np.float64)[:, None]
    gx = m[0, 0] * xs + (m[0, 1] * ys + m[0, 2])
    gy = m[1, 0] * xs + (m[1, 1] * ys + m[1, 2])
    return gx, gy


def crop_mask(m: np.ndarray, xyxy: np.ndarray, mask_scale: float, resolution: int) -> np.ndarray:
    """float32 (res, res), 1 where the generator replaces pixels.

    The filter ellipse of the box mapped into the crop, grown by a margin of
    MARGIN crop pixels (and at least MARGIN frame pixels) so that it contains
    the filter's rasterised ellipse even after interpolation at paste-back.
    """
    c, axes = grown_ellipse(m, xyxy, mask_scale)
    r = np.arange(resolution)
    px, py = _affine_grid(invert(m), r, r)
    return inside_ellipse(px, py, c, axes).astype(np.float32)


def heatmaps(points_crop: np.ndarray, resolution: int) -> np.ndarray:
    """Gaussian heatmaps of the 5 landmarks in crop pixels, float32 (5, res, res)."""
    sigma = resolution / 32.0
    r = np.arange(resolution, dtype=np.float32)
    pts = np.asarray(points_crop, np.float32)
    # a 2-D Gaussian is the outer product of two 1-D ones
    gx = np.exp(-((r[None, :] - pts[:, 0, None]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((r[None, :] - pts[:, 1, None]) ** 2) / (2 * sigma**2))
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


@dataclass
class Crops:
    """Generator inputs for n faces.

    Attributes:
        images: (n, res, res, 3) uint8 RGB crops (unmasked; mask before use).
        masks: (n, res, res) float32, 1 where generated.
        heatmaps: (n, 5, res, res) float32 landmark heatmaps.
        transforms: (n, 2, 3) frame -> crop similarities.
        points: (n, 5, 2) float32, the landmarks in crop pixels (the heatmaps' centres).
        valid: (n, res, res) float32, 1 where the crop pixel lies inside the
            image (not border padding); only made when asked for.
    """

    images: np.ndarray
    masks: np.ndarray
    heatmaps: np.ndarray
    transforms: np.ndarray
    points: np.ndarray
    valid: np.ndarray | None = None

    def take(self, idx) -> Crops:
        """The crops at `idx` (an index array or slice)."""
        return Crops(
            self.images[idx],
            self.masks[idx],
            self.heatmaps[idx],
            self.transforms[idx],
            self.points[idx],
            None if self.valid is None else self.valid[idx],
        )

    @staticmethod
    def cat(parts: list[Crops]) -> Crops:
        """One Crops from several (valid only when every part has it)."""
        valid = [c.valid for c in parts]
        return Crops(
            *(
                np.concatenate([getattr(c, k) for c in parts])
                for k in ("images", "masks", "heatmaps", "transforms", "points")
            ),
            valid=np.concatenate(valid) if all(v is not None for v in valid) else None,
        )


def make_crops(
    image: np.ndarray,
    xyxy: np.ndarray,
    landmarks: np.ndarray,
    resolution: int,
    crop_factor: float,
    mask_scale: float | np.ndarray,
    with_valid: bool = False,
) -> Crops:
    """Aligned crops, masks and heatmaps of every face in `image`.

    Args:
        image: (h, w, 3) uint8 RGB.
        xyxy: (n, 4) face boxes.
        landmarks: (n, 5, 2) landmarks (YuNet order).
        resolution: crop side.
        crop_factor: box height / crop side ratio of the template.
        mask_scale: filter scale of the masked ellipse, one value or (n,).
        with_valid: also return where the crop lies inside the image (training
            uses it to ignore border padding in its losses).
    """
    n = len(xyxy)
    scales = np.broadcast_to(np.asarray(mask_scale, np.float64), (n,))
    imgs = np.zeros((n, resolution, resolution, 3), np.uint8)
    masks = np.zeros((n, resolution, resolution), np.float32)
    heats = np.zeros((n, 5, resolution, resolution), np.float32)
    ms = np.zeros((n, 2, 3), np.float64)
    pts = np.zeros((n, 5, 2), np.float32)
    valid = np.zeros((n, resolution, resolution), np.float32) if with_valid else None
    ones = np.full(image.shape[:2], 255, np.uint8) if with_valid else None
    for i in range(n):
        box = np.asarray(xyxy[i], np.float64)
        lm = np.asarray(landmarks[i], np.float64)
        m = face_transform(box, lm, resolution, crop_factor)
        ms[i] = m
        imgs[i] = warp_crop(image, m, resolution)
        masks[i] = crop_mask(m, box, float(scales[i]), resolution)
        pts[i] = apply_transform(m, lm)
        heats[i] = heatmaps(pts[i], resolution)
        if valid is not None:
            valid[i] = warp_crop(ones, m, resolution, cv2.BORDER_CONSTANT) >= 255
    return Crops(imgs, masks, heats, ms, pts, valid)


def fill_padding(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """`image` (r, r, 3) uint8 with its padding (where `valid` (r, r) is below 1) replaced
    by a smooth continuation of the valid pixels.

    A crop reaching past its source image is padded by repeating the edge
    pixels, which draws streaks; the DCGAN teacher's faces fill their 64 px
    draws, so their crops are padded below the chin and at the sides. Here each
    padded pixel takes the valid pixels' mean around it (normalised Gaussian
    convolution), at the finest of three scales that reaches valid pixels;
    partly valid pixels mix in proportion.
    """
    v = np.clip(valid.astype(np.float32), 0.0, 1.0)
    if (v >= 1.0).all():
        return image.copy()
    img = image.astype(np.float32)
    r = image.shape[0]
    est = np.zeros_like(img)
    todo = np.ones(v.shape, bool)
    for sigma in (r / 20, r / 8, r / 3):
        num = cv2.GaussianBlur(img * v[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(v, (0, 0), sigma)
        ok = todo & (den > 0.05)
        est[ok] = num[ok] / den[ok, None]
        todo &= ~ok
    if todo.any():  # no valid pixel within reach at all: their mean
        est[todo] = (img * v[..., None]).sum((0, 1)) / max(float(v.sum()), 1e-6)
    out = img * v[..., None] + est * (1 - v[..., None])
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _feather_radius(resolution: int) -> int:
    return max(1, int(round(resolution / 32)))


def feather(mask: np.ndarray, resolution: int) -> np.ndarray:
    """Paste-back alpha in crop space: 1 on the mask, falling to 0 just outside it.

    It reaches at most 4 * `_feather_radius` crop pixels beyond the mask (a
    dilation by r, then a Gaussian of sigma r / 1.5, whose kernel ends at 4 sigma).
    """
    r = _feather_radius(resolution)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    grown = cv2.dilate(mask, k)
    soft = cv2.GaussianBlur(grown, (0, 0), sigmaX=r / 1.5)
    return np.maximum(soft, mask)


def footprint(m: np.ndarray, resolution: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The frame rectangle (x0, y0, x1, y1) that the crop covers, clipped; None if empty."""
    inv = invert(m)
    corners = apply_transform(
        inv, np.array([[0, 0], [resolution, 0], [0, resolution], [resolution, resolution]], float)
    )
    x0 = int(max(0, np.floor(corners[:, 0].min()) - 1))
    y0 = int(max(0, np.floor(corners[:, 1].min()) - 1))
    x1 = int(min(width, np.ceil(corners[:, 0].max()) + 2))
    y1 = int(min(height, np.ceil(corners[:, 1].max()) + 2))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def paste_rect(
    m: np.ndarray, xyxy: np.ndarray, mask_scale: float, resolution: int, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The frame rectangle (x0, y0, x1, y1) a paste-back can change, clipped; None if empty.

    The crop's footprint cut down to the grown filter ellipse plus the feather's
    reach: outside it the paste-back alpha is 0 and the hard mask empty, so the
    warps need not fill it (the footprint is about twice its area).
    """
    rect = footprint(m, resolution, width, height)
    if rect is None:
        return None
    c, axes = grown_ellipse(m, xyxy, mask_scale)
    # the grown ellipse (crop_mask), the feather's reach in crop pixels, one pixel of interpolation
    reach = axes + (4 * _feather_radius(resolution) + 2) / _scale_of(m) + 2
    x0 = max(rect[0], int(np.floor(c[0] - reach[0])))
    y0 = max(rect[1], int(np.floor(c[1] - reach[1])))
    x1 = min(rect[2], int(np.ceil(c[0] + reach[0])) + 1)
    y1 = min(rect[3], int(np.ceil(c[1] + reach[1])) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def rects_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two frame rectangles (x0, y0, x1, y1) share a pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def paste_geometry(
    m: np.ndarray, xyxy: np.ndarray, mask_scale: float, resolution: int, rect: tuple[int, int, int, int]
) -> np.ndarray:
    """Hard paste mask in frame pixels of `rect`, bool (h, w).

    A frame pixel is replaced outright when it lies in the (grown) filter ellipse
    and its crop coordinates fall inside the crop.
    """
    x0, y0, x1, y1 = rect
    c, axes = grown_ellipse(m, xyxy, mask_scale)
    xs, ys = np.arange(x0, x1), np.arange(y0, y1)
    qx, qy = _affine_grid(m, xs, ys)
    in_crop = (qx >= 0) & (qx <= resolution - 1) & (qy >= 0) & (qy <= resolution - 1)
    return in_crop & inside_ellipse(xs[None, :], ys[:, None], c, axes)


def warp_back(
    crop: np.ndarray,
    m: np.ndarray,
    rect: tuple[int, int, int, int],
    interpolation: int,
    border: int = cv2.BORDER_CONSTANT,
) -> np.ndarray:
    """A crop-space array resampled onto frame rectangle `rect` (zero outside the crop by default).

    A cubic upscale by more than 1.5x is done as a separable cubic resize to
    about the frame's scale, then a linear warp at about 1:1 (a cubic
    warpAffine costs ~25 times a cubic resize of the same output).
    """
    x0, y0, x1, y1 = rect
    k = 1.0 / _scale_of(m)  # frame pixels per crop pixel
    if interpolation == cv2.INTER_CUBIC and k > 1.5:
        side = crop.shape[0]
        big = int(np.ceil(side * k))
        crop = cv2.resize(crop, (big, big), interpolation=cv2.INTER_CUBIC)
        f = big / side
        # resize maps crop pixel u to (u + 0.5) * f - 0.5
        m = np.concatenate([m[:, :2] * f, (m[:, 2:] + 0.5) * f - 0.5], axis=1)
        interpolation = cv2.INTER_LINEAR
    a = m[:, :2]
    t = a @ np.array([x0, y0], float) + m[:, 2]
    shifted = np.concatenate([a, t[:, None]], axis=1)
    return cv2.warpAffine(
        crop, shifted, (x1 - x0, y1 - y0), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=border
    )
