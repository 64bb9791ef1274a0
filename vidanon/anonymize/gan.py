"""`--mode gan`: every face replaced by a generated one.

Per frame: faces large enough for the generator are aligned into crops (the
same `make_crops` the training used), run through the generator as one batch
with their per-track z, and pasted back through a feathered mask that covers
at least the region the classic filters would cover. Faces smaller than
`min_gan_size`, and any part of a face's filter region that falls outside its
crop, are covered by the fallback filter: privacy fails closed.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from vidanon.anonymize import align, devpaste, ring
from vidanon.anonymize.checkpoint import load_generator
from vidanon.anonymize.donor import DonorFaces
from vidanon.anonymize.filters import apply_filter, region_mask
from vidanon.anonymize.generator import from_uint8
from vidanon.anonymize.latents import latents_for_faces
from vidanon.anonymize.temporal import TemporalBlend
from vidanon.config import CoverConfig, DetectConfig
from vidanon.detect.turn import SURE, detect_turned, upright_turn
from vidanon.errors import ModelLoadError
from vidanon.types import DETECTED, FaceDetections

# A face the detector did not find in this frame (held, predicted, carried) is not given a
# generated face where its crop shows nothing (`GanCoverer._hidden`): the grey levels of the
# crop's face region, blurred by a crop pixel, have a standard deviation below HIDDEN_FLAT
# (a wall, a pole, a dark frame in front of it). It gets the fallback filter there instead,
# which keeps the flat region flat: covered either way, but a face painted on the occluder
# shows. Measured on the bundled samples (twentieth session): the flattest face region YuNet
# found reads 8.3 (1st percentile of people.mp4's faces), people.mp4's grey pole 0.0-0.4. Only
# flat: a face that is there but unlike its last look (turned, spinning) keeps its generated
# face, which hides it better than the filter would.
HIDDEN_FLAT = 2.0


def _cover_extent(xyxy: np.ndarray, mask_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre and half-size, (n, 2) each, of the box holding each face's filter region (the box
    scaled by mask_scale, circumscribed by its ellipse: it holds either shape)."""
    return (xyxy[:, :2] + xyxy[:, 2:]) / 2, (xyxy[:, 2:] - xyxy[:, :2]) * mask_scale / 2 * align.ELLIPSE_FACTOR


def _window(
    faces: FaceDetections, mask_scale: float, rects: list[tuple[int, int, int, int]], width: int, height: int
) -> tuple[int, int, int, int]:
    """A frame rectangle holding every face's filter region (either shape) and every paste rect."""
    c, half = _cover_extent(faces.xyxy, mask_scale)
    half = half + 2
    lo = np.floor((c - half).min(axis=0)).astype(int)
    hi = np.ceil((c + half).max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])
    for rx0, ry0, rx1, ry1 in rects:
        x0, y0, x1, y1 = min(x0, rx0), min(y0, ry0), max(x1, rx1), max(y1, ry1)
    x0, y0 = min(max(0, x0), width - 1), min(max(0, y0), height - 1)  # faces may lie partly or wholly off-frame
    return x0, y0, max(min(width, x1), x0 + 1), max(min(height, y1), y0 + 1)


# SFace cosine at which a generated face counts as too like the original (same-person: 0.363). 0.30
# until 2026-12-07: with the donor's detail over the whole region (`CoverConfig.donor_reach` 3) a
# face of stress.py's flash scene passed at 0.20 and read 0.36 twelve frames on; 0.27 redraws it.
GUARD_COSINE = 0.27
GUARD_REDRAWS = 4  # replacement z the identity guard tries per check
GUARD_RECHECK = 30  # frames after which a track's face is checked again
# a track whose kept face read this or more at its last check is checked again every
# GUARD_WATCH_GAP frames (`_check_due`): between checks a face's reading moves with the pose and
# the light (people.mp4 at seed 5 with the donor's detail over the whole head: a face kept at 0.25
# read 0.31 by `vidanon bench` a frame later and 0.41 at frame 13, 5 leak frames; watched, none)
# (a track no z passed for is filtered, not watched: its checks try every z)
GUARD_WATCH = 0.2
GUARD_WATCH_GAP = 3
# ... and every frame where it read this or more, or where its z is new (shown since GUARD_WATCH_GAP
# frames or fewer): over 1-3 frames people.mp4's watched readings moved 0.02 (sd) and at most
# 0.086 (six seeds; `vidanon bench` counts a leak at 0.363), most in a track's first frames;
# and a z kept as the least alike of several read low by chance (people.mp4, seed 5: 0.24 when
# chosen at frame 0, 0.34-0.37 from frame 1)
GUARD_WATCH_CLOSE = 0.24
OWN_ALIGN_SAME = 0.03  # landmarks this close (share of the face's height) align the same crop for SFace
GUARD_RECHECK_EXIT = 0.1  # a track is also checked again once this much more of its cover left the frame
# ... and once its face's height changed by this factor (either way) since its last check: in a
# fast zoom (stress.py zoom, 13% a frame) a face passed at one scale read 0.36-0.40 at another
GUARD_RECHECK_SCALE = 1.25
GUARD_REAL = 0.7  # YuNet score a new track's generated face should reach (the detection threshold is 0.5)
GUARD_REAL_ORIGINAL = 0.8  # ... where the original scores this or more
# grey noise sigma around a face (`noise_sigma`) from which the guard reads the original through noise draws
GUARD_NOISY = 2.5
# ... and the guard's cosine for such faces (GUARD_COSINE for the others): their readings spread
# more from frame to frame. On noisy stress-like runs (--detect-every 1 and 2) 0.30 left 2 leak
# frames in 23 runs (0.48, 0.44), 0.25 none in 32, at the cost of more faces filtered where no z
# passes (YuNet finds 51% of their faces in the output over 16 runs, 66% at 0.30)
GUARD_NOISY_COSINE = 0.25
GUARD_NOISE_DRAWS = 4  # ... how many (`_noise_draws`)
GUARD_SETTLE = 3  # checks at which a track first seen noisy tries every z (`_settle`)
GUARD_SETTLE_GAP = 2  # ... frames apart
NOISE_WINDOW = 256  # px: the least side of the square `noise_sigma` measures
_LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def _around(xyxy: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """A face's box grown by its own width and height on every side, inside the frame."""
    x0, y0, x1, y1 = np.asarray(xyxy, np.float64)
    bw, bh = x1 - x0, y1 - y0
    return int(max(0, x0 - bw)), int(max(0, y0 - bh)), int(min(width, x1 + bw)), int(min(height, y1 + bh))


def noise_sigma(img: np.ndarray, xyxy: np.ndarray) -> float:
    """The sensor noise's grey sigma around a face: Immerkaer's Laplacian-difference mask (its
    response to white noise of sigma s has sigma 6 s), its absolute response's lower quartile
    (0.319 of that sigma) over a square around the face of three times its size, and at
    least NOISE_WINDOW px: the quartile is set by the window's flattest parts, so hair, skin
    and edges, which a small face's window is mostly made of, count little. The samples and
    photos read 0-0.7, stress.py's clean scenes (photos through x264, dimmed to 0.12 in
    `dark`) 0-2.1, its dim, noisy one (white noise of sigma 12 on a quarter of the light)
    4.3-5.1, and noise of sigma 8 on 0.35 of the light 2.7-4.7."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = np.asarray(xyxy, np.float64)
    half = max(1.5 * max(x1 - x0, y1 - y0), NOISE_WINDOW / 2)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    wx0, wy0, wx1, wy1 = int(max(0, cx - half)), int(max(0, cy - half)), int(min(w, cx + half)), int(min(h, cy + half))
    if wx1 - wx0 < 5 or wy1 - wy0 < 5:
        return 0.0
    window = np.ascontiguousarray(img[wy0:wy1, wx0:wx1], np.float32)
    r = cv2.filter2D(cv2.cvtColor(window, cv2.COLOR_RGB2GRAY), -1, _LAPLACE)[1:-1, 1:-1]
    return float(np.percentile(np.abs(r), 25) / (0.3186 * 6.0))


@dataclass
class _Draws:
    """The identity guard's noise draws (`GanCoverer._noise_draws`): per draw, the noise field
    added to the window around each noisy face (the same field on the original and on the
    candidate, whose pixels outside the generated face are the original's, as in the output),
    the face found again in the noisy original and SFace's embedding of it there."""

    faces: list[int]  # the noisy faces, by index
    # per draw, by face: the noise field and its window, the face found in the noisy original
    # (a one-row detection) and the original's embedding there
    fields: list[dict[int, tuple[tuple[int, int, int, int], np.ndarray]]] = field(default_factory=list)
    at: list[dict[int, FaceDetections]] = field(default_factory=list)
    originals: list[dict[int, np.ndarray]] = field(default_factory=list)

    def apply(self, img: np.ndarray, k: int) -> np.ndarray:
        out = img.copy()
        for (x0, y0, x1, y1), noise in self.fields[k].values():
            out[y0:y1, x0:x1] = np.clip(np.rint(img[y0:y1, x0:x1] + noise), 0, 255).astype(np.uint8)
        return out

    def readings(self, embed, cand: np.ndarray, active: list[int]) -> dict[int, list[float]]:
        """Each active noisy face's cosine in each draw: the original and the candidate with the
        draw's noise, both aligned where the face was found in the noisy original."""
        out = {i: [] for i in active if i in self.faces}
        for k, (at, originals) in enumerate(zip(self.at, self.originals)):
            for i, e in embed(self.apply(cand, k), {i: at[i] for i in out}).items():
                out[i].append(float(np.sum(originals[i] * e)))
        return out


def _rank(
    cos: float, score: float, mean: float | None = None, limit: float = GUARD_COSINE
) -> tuple[bool, float, float]:
    """The identity guard's order of a track's candidate faces, best first: not too like the
    original (SFace cosine under `limit`); then found by YuNet (its score, counted up to
    GUARD_REAL: its shortfall below that); then the least like the original (`mean`, the mean
    cosine over a noisy face's noise draws, where given). Among faces too like the original
    only the cosine counts: a face found by YuNet is no better for that."""
    if cos >= limit:
        return (True, 0.0, cos)
    return (False, max(0.0, GUARD_REAL - score), cos if mean is None else mean)


EYE_MARGIN = 0.1  # share of a face's height by which both eyes must lie inside the frame for a generated face


def eyes_in_frame(faces: FaceDetections, width: int, height: int) -> np.ndarray:
    """(n,) bool: both eye landmarks at least EYE_MARGIN of the face's height inside the frame.

    A face whose eyes are cut off by the frame edge gets the fallback filter: the generator,
    with no eyes to place a face by, paints a nose and mouth where the original's were, which
    SFace took for the same person (people.mp4, the face leaving at the top: cosine 0.38-0.44
    at seeds 1 and 3; its blur 0.30 at most), and YuNet finds no face there either way."""
    eyes = faces.landmarks[:, :2, :].astype(np.float64)
    m = (EYE_MARGIN * (faces.xyxy[:, 3] - faces.xyxy[:, 1]).astype(np.float64))[:, None]
    x, y = eyes[..., 0], eyes[..., 1]
    return ((x >= m) & (x <= width - m) & (y >= m) & (y <= height - m)).all(axis=1)


def _visible(xyxy: np.ndarray, mask_scale: float, width: int, height: int) -> np.ndarray:
    """Share of each face's cover (as `_cover_extent`'s box) inside the frame, (n,)."""
    c, half = _cover_extent(xyxy, mask_scale)
    half = np.maximum(half, 1e-6)
    lo, hi = c - half, c + half
    inside = np.clip(np.minimum(hi, [width, height]) - np.maximum(lo, 0), 0, None).prod(axis=1)
    return inside / (2 * half).prod(axis=1)


def _places(faces: FaceDetections, idx: list[int], **found: dict[int, FaceDetections]) -> dict:
    """(face index, alignment) -> one-row detection, for `GanCoverer._embed`: each face of `idx`
    at its tracked landmarks ("tracked"), and at its detection in each of `found` (by name)."""
    at = {(i, "tracked"): faces[i : i + 1] for i in idx}
    for name, dets in found.items():
        at.update({(i, name): dets[i] for i in idx if i in dets})
    return at


# share of a face's height by which the identity guard also shifts its alignment (`_shifted`)
GUARD_SHIFT = 0.04
# the shifts (right and down positive), each with the reading at which the guard takes it: the
# highest reading so far, unshifted and at the shifts of lower levels. On people.mp4 (six seeds,
# 333 readings of every shift) the shifts up or down gave the highest reading in 3 of 4 and raised
# no reading under 0.1 to 0.23; left or right raised the highest of those by 0.10 at most. Taken
# for every reading, 4 of every 5 embeddings the guard took were at shifted places.
GUARD_SHIFTS = (((0, 1), 0.1), ((0, -1), 0.1), ((1, 0), 0.15), ((-1, 0), 0.15))


def _shifted(faces: FaceDetections, idx: list[int], raw: dict[int, FaceDetections]) -> dict:
    """For the identity guard (`GanCoverer._guard`): each face of `idx` at its detection in
    this frame (`raw`; its tracked place where YuNet found none) shifted by GUARD_SHIFT of its
    height each way of GUARD_SHIFTS, as `_places` takes them (name -> face index -> one-row
    detection). SFace's reading moves with the alignment: on people.mp4's 76-84 px faces,
    landmarks that `vidanon bench`'s full-frame search put 2-6 px from the guard's windowed one
    read a face 0.25 there and 0.36 at bench's (a leak), and shifts of 3 px moved readings by up
    to 0.12. The guard takes the highest reading over the shifts too (fail closed), each where the
    reading so far reaches its level."""
    out: dict[str, dict[int, FaceDetections]] = {}
    for k, ((sx, sy), _) in enumerate(GUARD_SHIFTS):
        out[f"shift{k}"] = {}
        for i in idx:
            d = raw.get(i, faces[i : i + 1])
            step = GUARD_SHIFT * float(d.xyxy[0, 3] - d.xyxy[0, 1])
            out[f"shift{k}"][i] = d.shifted(sx * step, sy * step)
    return out


def _blend(out: np.ndarray, part: tuple) -> None:
    """Blends one `GanCoverer._paste_part` into `out` in place: a per-pixel alpha blend in
    OpenCV, exact where alpha is 0 or 1 (so the hard region gets the face exactly)."""
    (x0, y0, x1, y1), _, rgb, alpha = part
    out[y0:y1, x0:x1] = cv2.blendLinear(rgb, out[y0:y1, x0:x1], alpha, 1 - alpha)


def face_workers(asked: int) -> int:
    """Threads for per-face crop and paste-back work: `asked`, or with 0 a quarter of the cores, at most 4."""
    return asked if asked > 0 else min(4, (os.cpu_count() or 1) // 4)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    except RuntimeError:  # pragma: no cover - a torch build without these probes
        return False


@dataclass
class Prepared:
    """`GanCoverer.prepare`'s result for one frame, what `finish` pastes: the frame and its
    faces, which of them are generated (`big`) or filtered (`small`), and the generated crops."""

    frame: np.ndarray
    faces: FaceDetections
    big: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    small: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    gen: np.ndarray | None = None
    crops: align.Crops | None = None


class GanCoverer:
    """Replaces faces with generated ones.

    Args:
        cfg: cover settings; `checkpoint` (None: the bundled one), `device`,
            `seed`, `z_mode`, `mask_scale`, `fallback` and `min_gan_size` are used.

    Raises:
        ModelLoadError: the checkpoint is missing or does not load, or the
            requested device is unavailable.
    """

    def __init__(self, cfg: CoverConfig) -> None:
        self.cfg = cfg
        try:
            self.device = torch.device(cfg.device)
        except RuntimeError as exc:
            raise ModelLoadError(f"invalid device {cfg.device!r}: {exc}") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("device 'cuda' requested but CUDA is not available")
        if self.device.type == "cpu":
            # decode, detection and encode run on other threads: more torch threads than
            # half the cores oversubscribe the CPU (measured: 2 threads 10x slower than 1 on 2 cores)
            torch.set_num_threads(max(1, min(4, (os.cpu_count() or 2) // 2)))
        self.device_paste = self.device.type == "cuda" if cfg.device_paste is None else cfg.device_paste
        self.net = load_generator(cfg.checkpoint, "cpu")
        self.cpu_bf16 = self.device.type == "cpu" and (
            cfg.precision == "bf16" or (cfg.precision == "auto" and native_bf16())
        )
        self.gcfg = self.net.cfg
        # channels-last on both: oneDNN's convolutions are faster in it on the CPU too
        # (3 faces at 64 px, 1 thread: 18.6 ms contiguous, 15.0 channels-last, 7.7 with bf16)
        self.net = self.net.to(self.device, memory_format=torch.channels_last)
        # a donor generator takes the DCGAN teacher's face for each z (cached per z, so once per track)
        self.donors = None
        if self.gcfg.donor:
            g = self.gcfg
            self.donors = DonorFaces(g.resolution, g.crop_factor, self.device, g.fill_padding, g.donor_face_only)
        # the face's region in every aligned crop (`_hidden`)
        r = self.gcfg.resolution
        self.face_region = align.face_region(align.template(r, self.gcfg.crop_factor), r) > 0
        # crops and paste-back warps of several faces in parallel (OpenCV releases the GIL);
        # only on machines with cores to spare beside decode, detection and encode
        workers = face_workers(cfg.face_workers)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="vidanon-face") if workers > 1 else None
        self.forget_tracks()
        # face regions given the fallback filter instead of a generated face, over all frames (too
        # small, eyes out of the frame, unsure, hidden behind a flat occluder, or no z unlike the person)
        self.filtered_faces = 0
        # seconds spent in each part of `cover` (crops and donors, the network, the identity
        # guard, the temporal blend, the paste-back and the leftover filter), summed over frames;
        # `benchmarks/speed.py` prints them per frame, so a slow cover stage says which part it is
        self.seconds = dict.fromkeys(("crops", "generate", "guard", "blend", "paste"), 0.0)
        self.warnings: list[str] = []
        self.sface = None
        if cfg.identity_guard and cfg.z_mode == "per-track":
            from vidanon.metrics.sface import SFace

            try:
                self.sface = SFace()
            except ModelLoadError as exc:
                self.warnings.append(f"identity guard off ({exc})")
        self.guard_detector = None  # finds the generated face where the guard pasted it (made on first use)

    @torch.inference_mode()
    def generate(self, crops: align.Crops, z: torch.Tensor) -> np.ndarray:
        """Composited generator outputs for a batch of crops, uint8 (n, r, r, 3)."""
        dev = self.device
        img = from_uint8(crops.images, dev)
        mask = torch.from_numpy(crops.masks)[:, None].to(dev)
        heat = torch.from_numpy(crops.heatmaps).to(dev)
        img, mask, heat = (t.contiguous(memory_format=torch.channels_last) for t in (img, mask, heat))
        donor = drawn = own = None
        if self.donors is not None:
            points = crops.points if self.gcfg.donor_warp else None
            drawn = self.donors.crops(z, points)
            grow = self.gcfg.donor_context if self.cfg.donor_context is None else self.cfg.donor_context
            context = grow > 0 and not self.gcfg.donor_face_only
            if context or self.cfg.donor_detail > 0:  # both place by the donor's landmarks
                own = points if points is not None else self.donors.points(z)
            given = drawn
            if context:
                given = np.stack(
                    [
                        align.in_context(drawn[i], own[i], crops.images[i], crops.masks[i], grow)
                        for i in range(len(drawn))
                    ]
                )
            donor = from_uint8(given, dev).contiguous(memory_format=torch.channels_last)
        z = z.to(dev)
        if dev.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                out = self.net(img, mask, heat, z, donor)
        elif self.cpu_bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = self.net(img, mask, heat, z, donor)
        else:
            out = self.net(img, mask, heat, z, donor)
        out = ((out.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        out = out.permute(0, 2, 3, 1).cpu().numpy()
        if drawn is not None and self.cfg.donor_detail > 0:
            shown = self.donors.drawn(z, points)
            for i in range(len(out)):
                gain = align.detail_gain(crops.images[i], crops.points[i], crops.transforms[i])
                if gain > 0:
                    out[i] = align.with_donor_detail(
                        out[i],
                        drawn[i],
                        own[i],
                        crops.masks[i],
                        self.cfg.donor_detail,
                        gain,
                        self.cfg.donor_reach,
                        shown[i],
                    )
        return out

    def _map(self, fn, n: int) -> list:
        """[fn(0), ..., fn(n - 1)], on the face pool when there is one and more than one face."""
        if self.pool is None or n < 2:
            return [fn(i) for i in range(n)]
        return list(self.pool.map(fn, range(n)))

    def _crops(self, frame: np.ndarray, faces: FaceDetections) -> align.Crops:
        g = self.gcfg

        def one(i: int) -> align.Crops:
            return align.make_crops(
                frame,
                faces.xyxy[i : i + 1],
                faces.landmarks[i : i + 1],
                g.resolution,
                g.crop_factor,
                self.cfg.mask_scale,
            )

        if self.pool is None or len(faces) < 2:
            return align.make_crops(
                frame, faces.xyxy, faces.landmarks, g.resolution, g.crop_factor, self.cfg.mask_scale
            )
        return align.Crops.cat(self._map(one, len(faces)))

    def _paste_part(
        self, gen: np.ndarray, crops: align.Crops, i: int, xyxy: np.ndarray, w: int, h: int
    ) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray] | None:
        """Frame rectangle, hard mask, warped face and alpha of face i's paste-back (None: off-frame)."""
        res = self.gcfg.resolution
        m = crops.transforms[i]
        box = np.asarray(xyxy, np.float64)
        rect = align.paste_rect(m, box, self.cfg.mask_scale, res, w, h)
        if rect is None:
            return None
        hard = align.paste_geometry(m, box, self.cfg.mask_scale, res, rect)
        rgb = align.warp_back(gen, m, rect, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE)
        alpha = align.warp_back(align.feather(crops.masks[i], res), m, rect, cv2.INTER_LINEAR)
        return rect, hard, rgb, np.maximum(alpha, hard.astype(np.float32))

    def _guard(
        self,
        frame: np.ndarray,
        faces: FaceDetections,
        crops: align.Crops,
        gen: np.ndarray,
        frame_index: int,
        positions: np.ndarray,
        vis: np.ndarray,
        everyone: FaceDetections,
    ) -> np.ndarray:
        """The identity guard. A generated face, pasted, is compared with the original by SFace:
        each new track's first face, and each track's face again every GUARD_RECHECK frames,
        whenever another GUARD_RECHECK_EXIT of its cover has left the frame (a face cut by the
        frame edge shows SFace little but the generated nose and mouth, where the original's
        were: on people.mp4 such faces reached 0.37-0.44 at some seeds), and at its first
        detection after checks at held or backfilled places only (`_check_due`). The cosine is
        the highest of the original and the generated face aligned at the tracked landmarks, at
        the original's as YuNet finds them in this frame (the smoothed landmarks of a 36 px face
        lay 3-5 px off: SFace read 0.19-0.20 there and 0.36-0.46 at the detection's) and at the
        generated face's own, where YuNet finds it: as `vidanon bench` counts a leak. A face at
        GUARD_COSINE or more draws its track's next z, up to GUARD_REDRAWS times; the best by
        `_rank` is kept and then stays until a check finds it too alike. Privacy before
        consistency: such a track changes its fake identity. Where no z passes, the face gets
        the fallback filter until a later check finds one that does (`unsafe`; fail closed).
        (Drawing every new track's z further from the original, below 0.15, made the faces of
        different seeds more alike: diversity 92-93% against the 95% goal.)
        At a track's first check at a detected face scoring GUARD_REAL_ORIGINAL, its generated
        face must also be one YuNet finds, scoring GUARD_REAL (searched at the pipeline's
        detection scale); a z whose face scores less is redrawn too. Some z give a face YuNet
        misses in most of the track's frames (people.mp4: one track found in 4 of 45 frames at
        seed 2, another 1 of 50 at seed 0, their first faces scoring 0 and 0.58): realism on
        people.mp4 read 79-90% over seeds 0-5, 90% at every seed with the check (`vidanon
        bench`). Only once: later, a new z would change a fake identity the viewer has seen; and
        not where YuNet is unsure of the original (a false face at 0.75 on a chest drew a z
        read 0.27 for one read 0.15 and leaked after encoding).
        Each reading is also taken with the original and the generated face both aligned at
        the face's place shifted by GUARD_SHIFT of its height each way (`_shifted`): SFace's
        reading moves with the alignment more than with the face on some faces (each shift where
        the reading so far reaches its level, GUARD_SHIFTS). A track whose kept face read
        GUARD_WATCH or more is checked every GUARD_WATCH_GAP frames, every frame from
        GUARD_WATCH_CLOSE and while its z is new (`_check_due`),
        and a track whose face a later check finds too alike tries every z and keeps the least
        alike (one change, not one a frame while its readings hover at the limit).
        A face in noisy footage (`noise_sigma` GUARD_NOISY or more) is also read through noise
        draws (`_noise_draws`) and held to GUARD_NOISY_COSINE, and a track first seen so tries
        every z at its first GUARD_SETTLE checks (`_settle`).
        `vis`: each face's share of its cover inside the frame (`_visible`); `everyone`: every face of
        the frame (`ring.mirror` takes no pixel from their regions), `positions` the faces' places
        among them."""
        h, w = frame.shape[:2]
        todo = [i for i in range(len(faces)) if self._check_due(faces, i, frame_index, vis[i])]
        if not todo:
            return gen
        # the original at the tracked landmarks and as YuNet places it in this frame (`vidanon
        # bench`'s alignment), where the tracker's smoothed landmarks lie elsewhere: on a 36 px
        # face 3-5 px off, where SFace read 0.19-0.20 for a face it read 0.36-0.46 at the detection's
        raw = self._apart(self._find(frame, faces, todo), faces)
        shifted = _shifted(faces, todo, raw)
        e_orig = self._embed(frame, _places(faces, todo, raw=raw))  # at shifted places as needed
        draws = self._noise_draws(frame, faces, todo, frame_index)
        gen = gen.copy()
        # realism is judged at a track's first check at a detected face, where its fake identity
        # is chosen, if YuNet is sure of the original there (GUARD_REAL_ORIGINAL)
        judge = {
            i: int(faces.track_id[i]) not in self.judged
            and faces.state[i] == DETECTED
            and faces.score[i] >= GUARD_REAL_ORIGINAL
            for i in todo
        }
        self.judged.update(int(faces.track_id[i]) for i in todo if faces.state[i] == DETECTED)
        # a new track in noisy footage tries every z at its first GUARD_SETTLE checks (those not
        # found too alike yet) and keeps the one least like the original over them (`_settle`)
        explore = {}
        for i in todo:
            t = int(faces.track_id[i])
            if t not in self.checked and i in draws.faces:
                self.settle[t] = {}
            explore[i] = t in self.settle and self.settle_checks.get(t, 0) < GUARD_SETTLE
            if explore[i]:
                self.settle_checks[t] = self.settle_checks.get(t, 0) + 1
        # the z each exploring track tries, in order: the one it shows, then the others that no
        # earlier settling check found too alike
        order = {}
        for i in (i for i in todo if explore[i]):
            t = int(faces.track_id[i])
            now = self.redraws.get(t, 0)
            order[i] = [now] + [r for r in range(GUARD_REDRAWS + 1) if r != now and self._in_running(t, r)]
        worst = (True, 1.0, 2.0)  # above any `_rank`
        best = {i: (worst, gen[i], self.redraws.get(int(faces.track_id[i]), 0), 1.0) for i in todo}
        shown = {i: best[i][2] for i in todo}  # the z each track showed before this check
        active = list(todo)
        # the faces as they will be shown: a track keeping its z shows the new face blended with
        # its running one, which was made for another frame
        idx = np.array(todo)
        view = gen.copy()
        view[idx] = self.blend.preview(gen[idx], crops.masks[idx], faces.track_id[idx], frame_index, crops.points[idx])
        # tracks whose face, found too alike at a later check, changes mid-track: they try every z
        # and keep the least alike, so that the next frames' checks do not change it again
        # (people.mp4 at seed 0: one track changed at frames 39 and 40)
        switching: set[int] = set()
        for attempt in range(GUARD_REDRAWS + 1):
            cand = frame.copy()
            for i in todo:  # every checked face pasted: a neighbour's original must not count
                part = self._paste_part(view[i], crops, i, faces.xyxy[i], w, h)
                if part is not None:
                    _blend(cand, part)
            self._mirror(cand, frame, crops, faces, todo, positions, everyone)  # as it will be shown
            gen_found = self._find(cand, faces, active)
            e_cand = self._embed(cand, _places(faces, active, raw=raw, own=self._apart(gen_found, faces)))
            noisy = draws.readings(self._embed, cand, active)
            # fail closed, as `vidanon bench` counts a leak: the highest cosine of the original
            # and the generated face aligned at the tracked landmarks, at the original's detected
            # ones and at the generated face's own
            reading = {}
            for i in active:
                origs = [e for (j, at), e in e_orig.items() if j == i and at not in shifted]
                views = [e for (j, at), e in e_cand.items() if j == i]
                reading[i] = max(float(np.sum(a * b)) for a in origs for b in views)
            # and both aligned at each shifted place (`_shifted`) where the reading so far reaches
            # the shift's level (GUARD_SHIFTS)
            for level in sorted({lv for _, lv in GUARD_SHIFTS}):
                at = {
                    (i, name): shifted[name][i]
                    for name, (_, lv) in zip(shifted, GUARD_SHIFTS)
                    for i in active
                    if lv == level and reading[i] >= level
                }
                e_orig.update(self._embed(frame, {key: d for key, d in at.items() if key not in e_orig}))
                e_cand.update(self._embed(cand, at))
                for i, name in at:
                    reading[i] = max(reading[i], float(np.sum(e_orig[i, name] * e_cand[i, name])))
            alike = []
            for i in active:
                cos = reading[i]
                # a noisy face: also the highest over the noise draws, and ranked by their mean
                mean = cos
                if noisy.get(i):
                    cos, mean = max(cos, *noisy[i]), float(np.mean(noisy[i]))
                score = float(gen_found[i].score[0]) if i in gen_found else 0.0
                if explore[i]:  # over this track's settling checks so far
                    cos, mean = self._settle(int(faces.track_id[i]), order[i][attempt], cos, mean)
                # a noisy face's readings spread more from frame to frame: a wider margin
                limit = GUARD_NOISY_COSINE if i in draws.faces or explore[i] else GUARD_COSINE
                rank = _rank(cos, score if judge[i] else 1.0, mean, limit)
                if rank < best[i][0]:
                    best[i] = (rank, gen[i].copy(), self.redraws.get(int(faces.track_id[i]), 0), cos)
                if attempt == 0 and not explore[i] and cos >= limit and int(faces.track_id[i]) in self.checked:
                    switching.add(i)  # a track seen before changes its fake person: every z is tried
                if (attempt + 1 < len(order[i])) if explore[i] else (i in switching or cos >= limit or rank[1] > 0.0):
                    alike.append(i)
            if not alike or attempt == GUARD_REDRAWS:
                break
            for i in alike:
                t = int(faces.track_id[i])
                if explore[i]:
                    self.redraws[t] = order[i][attempt + 1]
                    self.tried[t] = max(self.tried.get(t, 0), self.redraws[t])
                    continue
                # the next z never tried for this track (a later check goes on past earlier tries)
                self.redraws[t] = self.tried[t] = max(self.redraws.get(t, 0), self.tried.get(t, 0)) + 1
            idx = np.array(alike)
            z = latents_for_faces(
                self.cfg.seed, faces.track_id[idx], self.gcfg.z_dim, frame_index, False, positions[idx], self.redraws
            )
            gen[idx] = view[idx] = self.generate(crops.take(idx), z)  # another z: shown unblended
            active = alike
        for i in todo:
            t = int(faces.track_id[i])
            _, gen[i], self.redraws[t], cos = best[i]
            if self.redraws[t] != shown[i]:
                # another fake person: shown at once, not faded in from the one too like the original
                self.blend.forget(t)
            if self.redraws[t] != shown[i] or t not in self.checked:
                self.since[t] = frame_index
            height = float(faces.xyxy[i, 3] - faces.xyxy[i, 1])
            self.checked[t] = (frame_index, float(vis[i]), bool(faces.state[i] == DETECTED), height, cos)
            # no z passed: the face is filtered until a check finds one that does (fail closed)
            if best[i][0][0]:
                self.unsafe.add(t)
            else:
                self.unsafe.discard(t)
        return gen

    def _noise_draws(self, frame: np.ndarray, faces: FaceDetections, todo: list[int], frame_index: int) -> _Draws:
        """GUARD_NOISE_DRAWS other frames of a noisy scene, for the faces of `todo` whose noise
        (`noise_sigma`) is GUARD_NOISY or more (`_Draws`). Where the footage is noisy, one
        frame's reading of the original says little about the next one's: stress.py's dim,
        noisy scene read a person 0.74 like himself a frame later and two different people
        0.30-0.43 alike, and a generated face the guard read 0.105 was read 0.04-0.40 over its
        frames by `vidanon bench` (3 leak frames). Each draw adds white noise of the sigma
        measured around the face to the window around it, and finds the face there again with
        YuNet, as `vidanon bench` finds it in each frame: its landmarks move with the noise,
        and that moves SFace's reading more than the noise itself (read at the tracked
        landmarks the draws spread 0.035 around 0.20, re-found 0.05 around 0.24, against
        bench's 0.10 around 0.21). Seeded by (seed, frame): a run gives the same bytes."""
        h, w = frame.shape[:2]
        sigmas = {i: noise_sigma(frame, faces.xyxy[i]) for i in todo}
        noisy = [i for i in todo if sigmas[i] >= GUARD_NOISY]
        draws = _Draws(noisy)
        if not noisy:
            return draws
        rng = np.random.default_rng([self.cfg.seed % 2**64, frame_index])
        for k in range(GUARD_NOISE_DRAWS):
            fields = {}
            for i in noisy:
                x0, y0, x1, y1 = rect = _around(faces.xyxy[i], w, h)
                fields[i] = (rect, rng.normal(0.0, sigmas[i], (y1 - y0, x1 - x0, 3)).astype(np.float32))
            draws.fields.append(fields)
            img = draws.apply(frame, k)
            found = self._find(img, faces, noisy)
            draws.at.append({i: found.get(i, faces[i : i + 1]) for i in noisy})
            draws.originals.append(self._embed(img, draws.at[-1]))
        return draws

    def _settle(self, track_id: int, redraw: int, cos: float, mean: float) -> tuple[float, float]:
        """A noisy new track's reading of one z at one of its settling checks, folded into the
        readings of that z at its earlier ones: (the highest cosine, the mean of the means).
        In noisy footage a frame's readings, noise draws and all, can be unlike the next
        frames': stress-like scenes (dim, noise of sigma 8, x264) read a z 0.09 on average over
        the draws on a track's first frame, an I-frame noisier than the P-frames after it, and
        `vidanon bench` read that z 0.30-0.44 over the next 25 frames. So a track whose first
        check is noisy tries every z at GUARD_SETTLE checks GUARD_SETTLE_GAP frames apart (at
        the later ones only those no check found too alike yet: `_in_running`), and keeps the z
        least like the original on average over them that none of them found too alike. Its
        fake identity may change in these first frames: privacy before consistency."""
        acc = self.settle[track_id].setdefault(redraw, [cos, 0.0, 0])
        acc[0] = max(acc[0], cos)
        acc[1] += mean
        acc[2] += 1
        return acc[0], acc[1] / acc[2]

    def _in_running(self, track_id: int, redraw: int) -> bool:
        """Whether a settling track's z may still be kept: no earlier settling check found it too
        alike (`_settle`). Only those are tried again: a noisy scene's checks cost 5 generator
        runs and some 60 SFace embeddings per track when every z is."""
        acc = self.settle[track_id].get(redraw)
        return acc is None or acc[0] < GUARD_NOISY_COSINE

    def _check_due(self, faces: FaceDetections, i: int, frame_index: int, visible: float) -> bool:
        """Whether the identity guard checks face i of `faces` (its track's) in this frame
        (`_guard`): a new track, GUARD_RECHECK frames after its last check, GUARD_RECHECK_EXIT more
        of it out of the frame, its height changed GUARD_RECHECK_SCALE times, its first
        detection after checks at places only held or backfilled (where the original may show no
        face: stress.py flash was checked on a blurred frame before its face flashed in, and read
        0.41 there), or GUARD_WATCH_GAP frames after a check whose kept face read GUARD_WATCH
        or more (every frame where it read GUARD_WATCH_CLOSE or more or its z is new)."""
        track_id = int(faces.track_id[i])
        if track_id < 0:
            return False
        last = self.checked.get(track_id)
        height = max(float(faces.xyxy[i, 3] - faces.xyxy[i, 1]), 1e-6)
        close = last is not None and (
            last[4] >= GUARD_WATCH_CLOSE or frame_index - self.since.get(track_id, frame_index) <= GUARD_WATCH_GAP
        )
        return (
            last is None
            or frame_index - last[0] >= GUARD_RECHECK
            or last[1] - visible >= GUARD_RECHECK_EXIT
            or max(height / max(last[3], 1e-6), last[3] / height) >= GUARD_RECHECK_SCALE
            or (not last[2] and faces.state[i] == DETECTED)
            or (
                last[4] >= GUARD_WATCH
                and track_id not in self.unsafe
                and frame_index - last[0] >= (1 if close else GUARD_WATCH_GAP)
            )
            or (
                track_id in self.settle
                and self.settle_checks.get(track_id, 0) < GUARD_SETTLE
                and frame_index - last[0] >= GUARD_SETTLE_GAP
            )
        )

    def _held(
        self, faces: FaceDetections, crops: align.Crops, frame_index: int, vis: np.ndarray
    ) -> dict[int, np.ndarray]:
        """Faces (by position) that show their running face this frame instead of a new one
        (`CoverConfig.regenerate_every`): generated fewer than N frames ago, pose steady, no
        guard check due, and wholly inside the frame. A face the frame edge cuts is generated
        every frame: held between the guard's checks, such a face read 0.45 by SFace two
        frames after its check (people.mp4, seed 4, leaving at the top), as its generated
        nose and mouth stayed where the original's had been while less and less else showed."""
        every = self.cfg.regenerate_every
        if every <= 1 or self.cfg.z_mode != "per-track":
            return {}
        held = {}
        for i, t in enumerate(int(t) for t in faces.track_id):
            if t < 0 or frame_index - self.generated.get(t, -every) >= every or vis[i] < 1 - 1e-6:
                continue
            if self.sface is not None and self._check_due(faces, i, frame_index, vis[i]):
                continue
            face = self.blend.running(t, frame_index, crops.points[i], crops.images[i], crops.masks[i])
            if face is not None:
                held[i] = face
        return held

    def _find(self, img: np.ndarray, faces: FaceDetections, active: list[int]) -> dict[int, FaceDetections]:
        """The face YuNet finds in `img` at each of `faces` (by index; the detection overlapping
        the face's box most, IoU >= 0.3; left out where none), searched in a window around the box
        at the scale the pipeline's detector sees the frame (`DetectConfig.max_size`), as
        `vidanon bench` does: YuNet finds a face at full size that it misses shrunk."""
        from vidanon.detect.yunet import YuNetDetector
        from vidanon.metrics.tracks import iou_matrix

        if self.guard_detector is None:
            self.guard_detector = YuNetDetector(DetectConfig())
        h, w = img.shape[:2]
        scale = min(1.0, self.guard_detector.cfg.max_size / max(h, w))
        out = {}
        for i in active:
            wx0, wy0, wx1, wy1 = _around(faces.xyxy[i], w, h)
            if (wx1 - wx0) * scale < 16 or (wy1 - wy0) * scale < 16:
                continue
            window = np.ascontiguousarray(img[wy0:wy1, wx0:wx1])
            if scale < 1.0:
                size = (max(1, round((wx1 - wx0) * scale)), max(1, round((wy1 - wy0) * scale)))
                window = cv2.resize(window, size, interpolation=cv2.INTER_AREA)
            angle = upright_turn(faces.landmarks[i])  # a face rolled past 45 degrees is searched turned
            found = detect_turned(self.guard_detector, window, angle) if angle else self.guard_detector.detect(window)
            if not len(found):
                continue
            if scale < 1.0:
                found = found.scaled(1.0 / scale)
            found = found.shifted(wx0, wy0)
            iou = iou_matrix(faces.xyxy[i : i + 1], found.xyxy)[0]
            k = int(np.argmax(iou))
            if iou[k] >= 0.3:
                out[i] = found[k : k + 1]
        return out

    def _embed(self, img: np.ndarray, at: dict) -> dict:
        """SFace embeddings of `img` aligned at each detection of `at`, by the same keys: one call,
        so the frame is converted for SFace once."""
        if not at:
            return {}
        return dict(zip(at, self.sface.embed(img, FaceDetections.concat(list(at.values())))))

    def _apart(self, found: dict[int, FaceDetections], faces: FaceDetections) -> dict[int, FaceDetections]:
        """The detections of `found` whose landmarks are not about where `faces`' are (SFace
        would see the same aligned crop: its embedding, 16 ms on 2 cores, is not taken twice)."""
        out = {}
        for i, det in found.items():
            size = float(faces.xyxy[i, 3] - faces.xyxy[i, 1])
            if np.abs(det.landmarks[0] - faces.landmarks[i]).max() > OWN_ALIGN_SAME * size:
                out[i] = det
        return out

    def _mirror(
        self,
        out: np.ndarray,
        frame: np.ndarray,
        crops: align.Crops,
        faces: FaceDetections,
        idx,
        positions: np.ndarray,
        everyone: FaceDetections,
    ) -> None:
        """The outer band (`CoverConfig.ring`) of the generated region of each face of `idx`,
        pasted in `out`, blended into `frame`'s surroundings mirrored inward (`ring.mirror`; by
        the face's size, `ring.strength`), in place; `positions`: the faces' places among
        `everyone`, every face of the frame (no pixel is taken from their regions)."""
        if self.cfg.ring <= 0:
            return
        regions = _cover_extent(everyone.xyxy.astype(np.float64), self.cfg.mask_scale)
        h, w = frame.shape[:2]
        res = self.gcfg.resolution
        for i in idx:
            m, box = crops.transforms[i], np.asarray(faces.xyxy[i], np.float64)
            share = ring.strength(float(box[3] - box[1]))
            rect = align.paste_rect(m, box, self.cfg.mask_scale, res, w, h)
            if rect is not None and share > 0:
                ellipse = align.grown_ellipse(m, box, self.cfg.mask_scale)
                pos = int(positions[i])
                ring.mirror(out, frame, ellipse, faces.landmarks[i], rect, regions, pos, self.cfg.ring, share)

    def _paste_host(
        self, out: np.ndarray, gen: np.ndarray, crops: align.Crops, xyxy: np.ndarray
    ) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        """Pastes generated faces into `out` in place with OpenCV, in face order;
        (rect, hard mask) per pasted face (`devpaste.paste` on the device)."""
        h, w = out.shape[:2]
        parts = [p for p in self._map(lambda i: self._paste_part(gen[i], crops, i, xyxy[i], w, h), len(gen)) if p]
        for part in parts:
            _blend(out, part)
        for k, ((x0, y0, x1, y1), hard, rgb, _) in enumerate(parts):
            # A feathered edge of one face must never bring back original pixels
            # inside another face's replaced region: re-assert the hard region of
            # every paste that another paste overlaps (elsewhere the blend already
            # wrote rgb exactly, as alpha is 1 there).
            if any(align.rects_overlap((x0, y0, x1, y1), p[0]) for j, p in enumerate(parts) if j != k):
                view = out[y0:y1, x0:x1]
                # OpenCV writes into the view (20x faster than np.copyto with where=);
                # should it ever hand back a new array instead, copy with numpy
                if not np.shares_memory(cv2.copyTo(rgb, hard.view(np.uint8), view), out):
                    np.copyto(view, rgb, where=hard[..., None])
        return [(p[0], p[1]) for p in parts]

    def forget_tracks(self) -> None:
        """Drops everything kept per track: the next faces are new people to the temporal blend
        and the identity guard (`benchmarks/gan_quality.py` covers each photo, and each seed, anew)."""
        # per-frame z is DeepPrivacy's behaviour, kept unblended for comparison
        self.blend = TemporalBlend(self.cfg.temporal_blend if self.cfg.z_mode == "per-track" else 1.0)
        # identity guard (CoverConfig.identity_guard): per track, how many z were redrawn, and which were checked
        self.redraws: dict[int, int] = {}
        self.tried: dict[int, int] = {}  # per track, the highest redraw count tried
        # track -> (frame of its last check, cover share in view, whether detected there, the
        # face's height there, the reading of the face it kept)
        self.checked: dict[int, tuple[int, float, bool, float, float]] = {}
        self.judged: set[int] = set()  # tracks whose realism was judged (`_guard`)
        self.since: dict[int, int] = {}  # track -> frame from which it shows its z
        self.unsafe: set[int] = set()  # tracks whose last check found no z unlike the person: filtered
        # noisy new tracks: their readings per z (redraw -> [highest, sum of means, checks]) and
        # how many settling checks they had (`_settle`)
        self.settle: dict[int, dict[int, list]] = {}
        self.settle_checks: dict[int, int] = {}
        self.generated: dict[int, int] = {}  # track -> frame its face was last generated (regenerate_every)
        self.best_score: dict[int, float] = {}  # track -> its best detection score (`_sure`)

    def cover(self, frame: np.ndarray, faces: FaceDetections, frame_index: int) -> np.ndarray:
        """A new frame with every face of `faces` replaced or, if too small, filtered.

        Args:
            frame: (h, w, 3) uint8 RGB; not modified.
            faces: faces to cover (any state), with track ids.
            frame_index: used for per-frame z and for untracked faces.
        """
        return self.finish(self.prepare(frame, faces, frame_index))

    def _sure(self, faces: FaceDetections) -> np.ndarray:
        """(n,) bool: faces sure enough to be faces for a generated one. A face rolled past 45
        degrees (by its landmarks: only a turned pass of the detector, `vidanon.detect.turn`,
        finds one) whose track never scored SURE gets the fallback filter: the turned
        passes also took a wine glass for a face (0.72 on people.mp4), and a face painted there
        shows. Covered either way."""
        for t, score, state in zip(faces.track_id, faces.score, faces.state):
            if t >= 0 and state == DETECTED:
                self.best_score[int(t)] = max(float(score), self.best_score.get(int(t), 0.0))
        best = np.array(
            [self.best_score.get(int(t), 0.0) if t >= 0 else float(sc) for t, sc in zip(faces.track_id, faces.score)]
        )
        rolled = np.array([upright_turn(lm) != 0 for lm in faces.landmarks], bool)
        return ~rolled | (best >= SURE)

    def _hidden(self, faces: FaceDetections, crops: align.Crops) -> np.ndarray:
        """(n,) bool: faces not detected in this frame whose crop shows nothing there (its face
        region flat, HIDDEN_FLAT)."""
        r = self.gcfg.resolution
        hidden = np.zeros(len(faces), bool)
        for i in np.flatnonzero(faces.state != DETECTED):
            grey = cv2.cvtColor(crops.images[i], cv2.COLOR_RGB2GRAY).astype(np.float32)
            hidden[i] = cv2.GaussianBlur(grey, (0, 0), r / 64)[self.face_region].std() < HIDDEN_FLAT
        return hidden

    def prepare(self, frame: np.ndarray, faces: FaceDetections, frame_index: int) -> Prepared:
        """The stateful half of `cover`, in frame order: crops, the generator, the identity
        guard and the temporal blend. `finish` (stateless, any thread) pastes the result, so
        the video pipeline runs the two halves of consecutive frames at the same time."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"cover expects an (h, w, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
        if len(faces) == 0:
            return Prepared(frame, faces)
        h, w = frame.shape[:2]
        sides = (faces.xyxy[:, 2:] - faces.xyxy[:, :2]).min(axis=1)
        generated = (sides >= self.cfg.min_gan_size) & eyes_in_frame(faces, w, h) & self._sure(faces)
        visible = _visible(faces.xyxy.astype(np.float64), self.cfg.mask_scale, w, h)
        if self.unsafe:  # filtered until the guard's next check of the track (`_guard`)
            generated &= np.array(
                [
                    int(t) not in self.unsafe or self._check_due(faces, i, frame_index, v)
                    for i, (t, v) in enumerate(zip(faces.track_id, visible))
                ],
                bool,
            )
        p = Prepared(frame, faces, np.flatnonzero(generated), np.flatnonzero(~generated))
        if len(p.big):
            secs, t0 = self.seconds, time.perf_counter()
            gfaces = faces[p.big]
            crops = self._crops(frame, gfaces)
            hidden = self._hidden(gfaces, crops)
            if hidden.any():  # the fallback filter instead (HIDDEN_FLAT)
                p.small = np.sort(np.concatenate([p.small, p.big[hidden]]))
                p.big, gfaces = p.big[~hidden], gfaces[~hidden]
                crops = crops.take(np.flatnonzero(~hidden))
        if len(p.big):
            per_frame = self.cfg.z_mode == "per-frame"
            z = latents_for_faces(
                self.cfg.seed, gfaces.track_id, self.gcfg.z_dim, frame_index, per_frame, p.big, self.redraws
            )
            vis = visible[p.big]
            held = self._held(gfaces, crops, frame_index, vis)
            t1 = time.perf_counter()
            if held:
                new = np.array([i for i in range(len(gfaces)) if i not in held], np.int64)
                gen = np.empty((len(gfaces), *crops.images.shape[1:]), np.uint8)
                for i, face in held.items():
                    gen[i] = face
                if len(new):
                    gen[new] = self.generate(crops.take(new), z[new])
            else:
                new = np.arange(len(gfaces))
                gen = self.generate(crops, z)
            for t in gfaces.track_id[new]:
                self.generated[int(t)] = frame_index
            t2 = time.perf_counter()
            if self.sface is not None:
                gen = self._guard(frame, gfaces, crops, gen, frame_index, p.big, vis, faces)
                bad = np.array([int(t) in self.unsafe for t in gfaces.track_id], bool)
                if bad.any():
                    p.small = np.sort(np.concatenate([p.small, p.big[bad]]))
                    p.big, gen, crops, gfaces = p.big[~bad], gen[~bad], crops.take(np.flatnonzero(~bad)), gfaces[~bad]
            t3 = time.perf_counter()
            if len(p.big):
                p.gen = self.blend(gen, crops.masks, gfaces.track_id, frame_index, crops.points)
                p.crops = crops
            secs["crops"] += t1 - t0
            secs["generate"] += t2 - t1
            secs["guard"] += t3 - t2
            secs["blend"] += time.perf_counter() - t3
        self.filtered_faces += len(p.small)
        return p

    def finish(self, p: Prepared) -> np.ndarray:
        """The frame of `prepare`'s result: generated faces pasted back, whatever of a face's
        region no paste covers and every face too small for the generator filtered."""
        frame, faces = p.frame, p.faces
        out = frame.copy()
        if len(faces) == 0:
            return out
        h, w = frame.shape[:2]
        if len(p.big):
            t4 = time.perf_counter()
            gfaces, gen, crops = faces[p.big], p.gen, p.crops
            if self.device_paste:
                pastes = devpaste.paste(out, gen, crops, gfaces.xyxy, self.cfg.mask_scale, self.device)
            else:
                pastes = self._paste_host(out, gen, crops, gfaces.xyxy)
            self._mirror(out, frame, crops, gfaces, range(len(gfaces)), p.big, faces)
            # Whatever of the filter region no hard paste covers gets the fallback filter,
            # checked inside the window that holds every region and paste, not the whole frame.
            wx0, wy0, wx1, wy1 = _window(gfaces, self.cfg.mask_scale, [rect for rect, _ in pastes], w, h)
            ww, wh = wx1 - wx0, wy1 - wy0
            covered = np.zeros((wh, ww), bool)
            for (x0, y0, x1, y1), hard in pastes:
                covered[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] |= hard
            o = (wx0, wy0)
            region = region_mask((wh, ww), gfaces, replace(self.cfg, shape="ellipse"), o) > 0
            if self.cfg.shape != "ellipse":  # the configured shape too (a box reaches the corners)
                region |= region_mask((wh, ww), gfaces, self.cfg, o) > 0
            leftover = region & ~covered
            if leftover.any():
                # a box circumscribing the ellipse: the filter reaches every leftover pixel
                wide = replace(self.cfg, shape="box", mask_scale=min(4.0, self.cfg.mask_scale * align.ELLIPSE_FACTOR))
                filtered = apply_filter(frame, gfaces, wide, mode=self.cfg.fallback)
                view = out[wy0:wy1, wx0:wx1]
                view[leftover] = filtered[wy0:wy1, wx0:wx1][leftover]
            self.seconds["paste"] += time.perf_counter() - t4
        if len(p.small):
            sfaces = faces[p.small]
            filtered = apply_filter(frame, sfaces, self.cfg, mode=self.cfg.fallback)
            m = region_mask((h, w), sfaces, self.cfg) > 0
            out[m] = filtered[m]
        return out
