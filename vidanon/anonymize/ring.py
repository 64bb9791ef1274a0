"""The outer band of each generated region, filled from its surroundings mirrored inward.

The generator replaces the face box's ellipse grown 1.5x, and of what lies there
around the face (hair, ears, background, the neck) it sees nothing: it paints
a soft guess, and where that fog meets the person's real hair its edge reads as
a disc pasted on the head. Here the outer `band` of each region (that share of
its radius) is blended, from nothing at the band's inner edge to all at the
region's edge, into the frame's own pixels mirrored across the region's edge: a
pixel at 0.9 of the radius takes the pixel at 1.1 along the same ray. At the
edge the two meet, so no edge is left; the feathered paste-back beyond the edge,
which carried the fog outwards, gives way to the frame itself.

Privacy: every pixel brought in lies outside every face's region (this face's
region lies inside its ellipse and the mirror takes from outside it; a mirrored
pixel that falls inside another face's region, or off the frame, is not used:
the generated one stays), so no pixel of a real face is shown. The band never
reaches the generated face (the face's landmark ellipse, grown FACE_GROW, keeps
the generator's pixels), the crop an identity check reads (SFace's, grown: the
person's own hair there made fake faces read more like the person), nor another
face's region. So it works above the head, below the chin and at the region's
sides and corners beyond the face.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidanon.anonymize import align

# The generated face's own pixels: inside its landmark ellipse grown this much (`align.face_distance`)
# none of the mirror, beyond FACE_GROW + FACE_SOFT all of it (a smooth step between).
FACE_GROW = 1.25
FACE_SOFT = 0.15
# What an identity check sees of the face, which the mirror never enters: SFace's 112 px crop
# (OpenCV's FaceRecognizerSF.alignCrop maps the 5 landmarks onto this template by a similarity),
# grown by SFACE_MARGIN of its side (the landmarks YuNet finds on the output differ a little),
# the mirror in full SFACE_SOFT of its side beyond. With the landmark ellipse alone the mirror
# brought the person's own hair and ears into that crop: stress.py found 2 leak frames in 96 runs
# (occluded, zoom: SFace 0.37 where the generated face read 0.34-0.36 without the ring).
SFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
SFACE_SIDE = 112.0
SFACE_MARGIN = 0.05
SFACE_SOFT = 0.05
# A face's region, for the mirror's sources and targets: its filter region's ellipse
# (`gan._cover_extent`) grown by this factor and EXCLUDE_PX pixels (its generated region
# and the feather around it lie within).
EXCLUDE_GROW = 1.1
EXCLUDE_PX = 3.0
# Where a source is unusable the weight falls to 0 over a Gaussian of this share of the region's
# mean semi-axis (at least 1.5 px), so the fog and the mirror meet without a step.
SOURCE_SOFT = 0.04
# The mirror's fine detail, finer than a Gaussian of this share of the region's mean semi-axis,
# is blended in DETAIL_LEAD times as fast as the mirror itself (colour and light).
DETAIL_SIGMA = 0.03
DETAIL_LEAD = 2.5
# The geometry is worked out every k = (least semi-axis / COARSE) pixels (`mirror`).
COARSE = 24.0
# Faces whose box is under SMALL pixels high get none of the mirror, from FULL on all of it
# (`strength`): on a 15-19 px face (stress.py small) the changed surroundings moved where YuNet
# found the generated face enough for SFace, aligned there, to read 0.41 where it read 0.22
# without the ring; and on a face that small the disc it hides is a few pixels.
SMALL = 32.0
FULL = 48.0


def strength(height: float) -> float:
    """The share of the mirror a face `height` pixels high gets: 0 under SMALL, 1 from FULL."""
    return float(np.clip((height - SMALL) / (FULL - SMALL), 0.0, 1.0))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _low(img: np.ndarray, valid: np.ndarray | None, sigma: float) -> np.ndarray:
    """`img` (h, w, 3) float32 blurred by a Gaussian of sigma pixels over its `valid` (h, w)
    pixels only (None: all), so that no other pixel is spread into it. A wide blur runs at a
    lower scale (area-averaged down by up to sigma / 1.5, blurred there, resized back)."""
    h, w = img.shape[:2]
    k = max(1, int(sigma / 1.5))

    def down(a: np.ndarray) -> np.ndarray:
        if k == 1:
            return a
        return cv2.resize(a, (max(1, round(w / k)), max(1, round(h / k))), interpolation=cv2.INTER_AREA)

    if valid is None:
        low = cv2.GaussianBlur(down(img), (0, 0), sigma / k)
    else:
        v = valid.astype(np.float32)
        num = cv2.GaussianBlur(down(img * v[..., None]), (0, 0), sigma / k)
        low = num / np.maximum(cv2.GaussianBlur(down(v), (0, 0), sigma / k), 1e-6)[..., None]
    return low if k == 1 else cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)


def _outside(xs: np.ndarray, ys: np.ndarray, centres: np.ndarray, halves: np.ndarray, more: float) -> np.ndarray | None:
    """bool, the shape of xs: outside every ellipse (centres, semi-axes (k, 2)) grown by
    EXCLUDE_GROW, EXCLUDE_PX and `more` pixels; None where no ellipse reaches the points' bounding box."""
    lo = np.array([xs.min(), ys.min()])
    hi = np.array([xs.max(), ys.max()])
    ok = None
    for c, h in zip(centres, halves * EXCLUDE_GROW + EXCLUDE_PX + more):
        if ((c + h) < lo).any() or ((c - h) > hi).any():
            continue
        out = ~align.inside_ellipse(xs, ys, c.astype(np.float32), h)  # (float32, as the grid)
        ok = out if ok is None else ok & out
    return ok


def _beyond_identity_crop(landmarks: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """float32 (len(ys), len(xs)): 0 inside the face's identity crop (SFACE_TEMPLATE's square,
    grown by SFACE_MARGIN), rising to 1 SFACE_SOFT of its side beyond; 0 everywhere for
    landmarks too degenerate to place it (no mirror: the generated pixels stay)."""
    try:
        m = align.similarity(np.asarray(landmarks, np.float64), SFACE_TEMPLATE).astype(np.float32)
    except ValueError:
        return np.zeros((len(ys), len(xs)), np.float32)
    u = m[0, 0] * xs[None, :] + (m[0, 1] * ys[:, None] + m[0, 2])
    v = m[1, 0] * xs[None, :] + (m[1, 1] * ys[:, None] + m[1, 2])
    side = np.float32(SFACE_SIDE)
    out = np.maximum(np.maximum(-u, u - side), np.maximum(-v, v - side)) / side
    return _smoothstep((out - np.float32(SFACE_MARGIN)) / np.float32(SFACE_SOFT))


def _up(a: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """A coarse grid's values (samples k pixels apart, `_grid`) resampled to every pixel of `shape`."""
    if k == 1:
        return a
    big = cv2.resize(a, (a.shape[1] * k, a.shape[0] * k), interpolation=cv2.INTER_LINEAR)
    return big[: shape[0], : shape[1]]


def _grid(start: int, n: int, k: int) -> np.ndarray:
    """Sample positions k pixels apart whose linear resize by k (`_up`) lands on pixels start..start+n-1."""
    if k == 1:
        return np.arange(start, start + n, dtype=np.float32)
    return (start + (np.arange(n // k + 2) + 0.5) * k - 0.5).astype(np.float32)


def mirror(
    out: np.ndarray,
    frame: np.ndarray,
    ellipse: tuple[np.ndarray, np.ndarray],
    landmarks: np.ndarray,
    rect: tuple[int, int, int, int],
    regions: tuple[np.ndarray, np.ndarray],
    own: int,
    band: float,
    share: float = 1.0,
) -> None:
    """Blends the mirrored surroundings into one face's band of `out`, in place.

    Args:
        out: (h, w, 3) uint8, the frame with the generated face pasted.
        frame: (h, w, 3) uint8, the frame before any paste (the mirror's source).
        ellipse: centre (2,) and semi-axes (2,), frame pixels, of the region the
            generator replaced (`align.grown_ellipse`).
        landmarks: (5, 2) the face's landmarks in the frame.
        rect: the frame rectangle (x0, y0, x1, y1) its paste-back could change.
        regions: centres and semi-axes (k, 2) of every face's filter region in the
            frame (`gan._cover_extent`), this face's at index `own`.
        own: this face's index in `regions`.
        band: the outer share of the ellipse's radius that takes the mirror, (0, 1).
        share: the mirror's weight at most, (0, 1] (`strength`).
    """
    x0, y0, x1, y1 = rect
    shape = (y1 - y0, x1 - x0)
    h, w = frame.shape[:2]
    c, axes = ellipse
    ax, ay = max(float(axes[0]), 1e-6), max(float(axes[1]), 1e-6)
    # the geometry is smooth: worked out every k pixels on a large face and resampled; the
    # sources' exclusion (and the frame's edge) grows by 3 k pixels so that every source between
    # samples that all pass lies outside it too (the samples' sources lie under 2.4 k apart; and
    # between two sources outside this face's ellipse one dips inside it by under 0.002 of its radius)
    k = max(1, int(min(ax, ay) / COARSE))
    xs, ys = _grid(x0, shape[1], k), _grid(y0, shape[0], k)
    dx, dy = xs[None, :] - np.float32(c[0]), ys[:, None] - np.float32(c[1])
    rho = np.sqrt((dx / np.float32(ax)) ** 2 + (dy / np.float32(ay)) ** 2)
    # inside the ellipse a pixel at radius rho takes the one at 2 - rho on its ray (inside the band
    # that at its inner edge's mirror, 1 + band: near, for the blur below); outside, itself
    inner = np.float32(1 - band)
    f = np.where(rho < 1, (2 - np.maximum(rho, inner)) / np.maximum(rho, np.float32(1e-6)), np.float32(1))
    sx = np.float32(c[0]) + dx * f
    sy = np.float32(c[1]) + dy * f
    centres, halves = regions
    others = [i for i in range(len(centres)) if i != own]
    more = 0.0 if k == 1 else 3.0 * k
    # (the centre, rho 0, has no ray: it would take itself)
    ok = (sx >= more) & (sx <= w - 1 - more) & (sy >= more) & (sy <= h - 1 - more) & (rho > 1e-3)
    # no other face's pixels (this face's lie inside its ellipse, and the sources outside), nor onto one
    gx, gy = np.broadcast_to(xs[None, :], rho.shape), np.broadcast_to(ys[:, None], rho.shape)
    for away in (
        _outside(sx, sy, centres[others], halves[others], more),
        _outside(gx, gy, centres[others], halves[others], k - 1.0),
    ):
        if away is not None:
            ok &= away
    if not ok.any():
        return
    face = align.face_distance(landmarks, xs, ys).astype(np.float32)
    weight = _smoothstep((rho - inner) / np.float32(band)) * _smoothstep((face - FACE_GROW) / FACE_SOFT)
    weight *= _beyond_identity_crop(landmarks, xs, ys) * np.float32(share)
    whole = bool(ok.all())
    usable = ok.astype(np.float32)
    if not whole:  # the weight falls to 0 smoothly towards unusable sources
        usable *= cv2.GaussianBlur(usable, (0, 0), max(1.5, SOURCE_SOFT * (ax + ay) / 2) / k)
    # a pixel is usable only where every sample around it is (resampled, below 1 elsewhere), and
    # takes the mirror only where every sample around it does (the band's inside and the face stay)
    fine_ok = _up(ok.astype(np.float32), k, shape) >= 1 if k > 1 else ok
    weight = weight * usable
    weight = _up(weight, k, shape) * (fine_ok & (_up((weight > 0).astype(np.float32), k, shape) >= 1))
    if not (weight > 0).any():
        return
    # resampled as displacements, so that the identity outside the ellipse stays exact
    mx = _up(sx - xs[None, :], k, shape) + np.arange(x0, x1, dtype=np.float32)[None, :]
    my = _up(sy - ys[:, None], k, shape) + np.arange(y0, y1, dtype=np.float32)[:, None]
    src = cv2.remap(frame, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    # the mirror's fine detail (its difference from its own blur over usable sources only, so no
    # other pixel is spread into it) comes in DETAIL_LEAD times as fast as the mirror itself: one
    # blend of both was a flat mix of fog and texture (gan_quality edge_detail below the fog's).
    # out + (src - out) weight + (src - low) (min(1, DETAIL_LEAD weight) - weight) is one linear
    # blend of out and src + (src - low) boost, boost = min(1 / weight, DETAIL_LEAD) - 1
    sigma = max(1.0, DETAIL_SIGMA * (ax + ay) / 2)
    low = _low(src, None if whole else fine_ok, sigma)
    boost = np.minimum(1 / np.maximum(weight, 1e-6), DETAIL_LEAD) - 1
    detail = src - low
    detail *= boost[..., None]
    src += detail
    np.clip(src, 0, 255, out=src)
    boosted = np.rint(src, out=src).astype(np.uint8)
    view = out[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = cv2.blendLinear(boosted, view, weight, 1 - weight)
