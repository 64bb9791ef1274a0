"""Donor faces: the DCGAN teacher's face for a latent, aligned into a generator crop.

A donor generator (`GeneratorConfig.donor`) takes, next to the masked crop,
the teacher's face for the same z, aligned to the crop template by its own
landmarks, exactly as training aligns the donor faces it swaps in
(`vidanon.train.data.make_batch`). The identity then comes from the teacher,
which was trained to draw many different people, and a fixed z (one per
track) gives a fixed donor, so one track keeps one fake person.

A z whose draw holds no detectable face, or a face half lost in hair or shadow
(`lopsided`), is redrawn: the next candidate comes from a generator seeded by a
hash of z and the attempt number, so the donor still depends on z alone. A face
drawn too dark to show its features is brightened (`lit`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import cv2
import numpy as np
import torch

from vidanon.anonymize import align, morph
from vidanon.anonymize.dcgan import find_face, load_teacher, to_uint8
from vidanon.config import DetectConfig

MAX_TRIES = 8
CACHE_SIZE = 2048  # donor crops kept (one per track in per-track mode)
# `lit`: a donor whose face shows its features at less than LIFT_VISIBLE grey levels (`visibility`;
# the teacher's draws: median 13.9, 10th percentile 9.3, underexposed ones 2-6) is brightened by
# the gain that brings it there, at most LIFT_MAX. The generator takes a face's light from the
# context, not from its donor (lightness correlation 0.67 with the original's, -0.35 with the
# donor's), and drew such donors as faceless blobs of the context's tone ("ghost faces"); lifted,
# they give faces with eyes and a mouth. A dark-skinned donor stays in the pool, lit.
LIFT_VISIBLE = 10.0
LIFT_MAX = 4.0


def visibility(crop: np.ndarray, points: np.ndarray) -> float:
    """How visible a face's features are: the RMS of its grey band between Gaussians of 0.7 and
    3 px (of a 64 px crop) over its face region (`align.band_rms`)."""
    return align.band_rms(crop, points, 0.7, 3.0)


# A draw whose face is much darker on one side of its eyes-to-mouth axis than on the other
# (`lopsided`: the difference of the two halves' mean grey over their mean, in its face region)
# is redrawn like one without a face: half of it is hair, a wall or a hard shadow, and the
# generator, which copies the donor's layout, painted half a face (people.mp4 at seed 1: a track
# whose donor read 0.98). The teacher's draws: median 0.18, 90th percentile 0.58, 95th 0.73.
LOPSIDED = 0.7


def lopsided(crop: np.ndarray, points: np.ndarray) -> float:
    """How much darker one half of a face crop's face region (`align.face_region` of its
    landmarks) is than the other, split along its eyes-to-mouth axis: |a - b| / mean(a, b) of
    the halves' mean grey. A ratio: the same at any exposure."""
    r = crop.shape[0]
    region = align.face_region(points, r)
    g = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    top, bottom = (points[0] + points[1]) / 2, (points[3] + points[4]) / 2
    axis = bottom - top
    normal = np.array([axis[1], -axis[0]]) / max(float(np.linalg.norm(axis)), 1e-6)
    yy, xx = np.mgrid[:r, :r]
    side = ((xx - top[0]) * normal[0] + (yy - top[1]) * normal[1]) > 0
    a, b = (float((g * region * s).sum()) / max(float((region * s).sum()), 1.0) for s in (side, ~side))
    return abs(a - b) / max((a + b) / 2, 1.0)


def lift(crop: np.ndarray, points: np.ndarray) -> float:
    """The gain that brings a donor's features to LIFT_VISIBLE (`visibility`), at most LIFT_MAX;
    1 where they reach it."""
    seen = visibility(crop, points)
    return 1.0 if seen >= LIFT_VISIBLE else min(LIFT_VISIBLE / max(seen, 1e-3), LIFT_MAX)


def lit(crop: np.ndarray, points: np.ndarray, gain: float | None = None) -> np.ndarray:
    """The donor crop brightened by `gain` (default: its `lift`), one gain on every channel:
    its colours kept; as it is at 1."""
    gain = lift(crop, points) if gain is None else gain
    if gain == 1.0:
        return crop
    return np.clip(crop.astype(np.float32) * gain, 0, 255).round().astype(np.uint8)


def _redraw(z: torch.Tensor, attempt: int) -> torch.Tensor:
    """A deterministic replacement latent for z's `attempt`-th redraw."""
    digest = hashlib.blake2b(z.float().cpu().numpy().tobytes() + attempt.to_bytes(2, "little"), digest_size=8)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int.from_bytes(digest.digest(), "little") & 0x7FFF_FFFF_FFFF_FFFF)
    return torch.randn(z.shape, generator=gen)


class DonorFaces:
    """Aligned donor crops for latents, cached by latent.

    Args:
        resolution, crop_factor: the generator's crop framing.
        device: where the teacher runs.
        fill_padding: fill the crop's padding past the draw smoothly
            (`align.fill_padding`; the generator's `fill_padding`).
        face_only: give the face alone, its hair and background mid-grey
            (`align.face_only`; the generator's `donor_face_only`).
    """

    def __init__(
        self,
        resolution: int,
        crop_factor: float,
        device: torch.device | str = "cpu",
        fill_padding: bool = False,
        face_only: bool = False,
    ) -> None:
        from vidanon.detect.yunet import YuNetDetector

        self.resolution = resolution
        self.crop_factor = crop_factor
        self.fill_padding = fill_padding
        self.face_only = face_only
        self.device = torch.device(device)
        self.teacher = load_teacher(self.device)
        self.detector = YuNetDetector(DetectConfig(score_threshold=0.6))
        # latent -> (aligned crop, its landmarks in crop pixels, where it shows the draw)
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self.misses = 0

    def _aligned(self, image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> align.Crops:
        return align.make_crops(
            image, box[None], landmarks[None], self.resolution, self.crop_factor, 1.0, with_valid=True
        )

    def _crop(self, crops: align.Crops) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the gain read on the draw as aligned: a filled padding does not change it
        points = crops.points[0]
        gain = lift(crops.images[0], points)
        crop = align.fill_padding(crops.images[0], crops.valid[0]) if self.fill_padding else crops.images[0]
        crop = lit(crop, points, gain)
        if self.face_only:
            crop = align.face_only(crop, points)
        return crop, points, crops.valid[0].astype(np.float32)

    def _usable(self, image: np.ndarray) -> align.Crops | None:
        """The draw's face aligned, or None where YuNet finds none or it is `lopsided`."""
        hit = find_face(self.detector, image)
        if hit is None:
            return None
        crops = self._aligned(image, *hit)
        return None if lopsided(crops.images[0], crops.points[0]) > LOPSIDED else crops

    @torch.inference_mode()
    def _make(self, zs: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        draws = to_uint8(self.teacher(zs.to(self.device)))
        out = []
        for z, image in zip(zs, draws):
            crops = self._usable(image)
            attempt = 0
            while crops is None and attempt < MAX_TRIES:
                attempt += 1
                image = to_uint8(self.teacher(_redraw(z, attempt)[None].to(self.device)))[0]
                crops = self._usable(image)
            if crops is None:  # no usable face in any redraw: frame the last draw whole as a face
                box = np.array([0.0, 0.0, image.shape[1], image.shape[0]])
                crops = self._aligned(image, box, align.box_landmarks(box[None])[0])
            out.append(self._crop(crops))
        return out

    def crops(self, z: torch.Tensor, points: np.ndarray | None = None) -> np.ndarray:
        """(n, r, r, 3) uint8 donor crops for latents z of shape (n, z_dim).

        With `points` (n, 5, 2), the landmarks of the crops the donors are for
        (`align.Crops.points`), each donor is warped so that its landmarks
        land on them (`morph.landmark_warp`; the generator's `donor_warp`).
        """
        return self._stack(z, points, 0)

    def drawn(self, z: torch.Tensor, points: np.ndarray | None = None) -> np.ndarray:
        """(n, r, r) float32: where each donor crop of `crops` shows the teacher's draw (1)
        rather than the padding past its edge (0: below the chin and at the sides, where the
        edge pixels are repeated, or filled, and say nothing of the donor)."""
        return self._stack(z, points, 2)

    def _stack(self, z: torch.Tensor, points: np.ndarray | None, part: int) -> np.ndarray:
        found = self._lookup(z)
        if not found:
            shape = (0, self.resolution, self.resolution) + ((3,) if part == 0 else ())
            return np.zeros(shape, np.uint8 if part == 0 else np.float32)
        if points is None:
            return np.stack([f[part] for f in found])
        return np.stack([morph.landmark_warp(f[part], f[1], p) for f, p in zip(found, points)])

    def points(self, z: torch.Tensor) -> np.ndarray:
        """(n, 5, 2) landmarks of the donor crops for latents z, in crop pixels (as drawn,
        before any warp)."""
        found = self._lookup(z)
        return np.stack([f[1] for f in found]) if found else np.zeros((0, 5, 2), np.float32)

    def _lookup(self, z: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(crop, landmarks, drawn share) per row of z, made or from the cache."""
        z = z.detach().float().cpu()
        keys = [row.numpy().tobytes() for row in z]
        with self._lock:
            found = {k: self._cache[k] for k in keys if k in self._cache}
            for k in found:
                self._cache.move_to_end(k)
        todo: dict[bytes, int] = {}  # latent -> its first row; duplicates within one call are made once
        for i, k in enumerate(keys):
            if k not in found:
                todo.setdefault(k, i)
        if todo:
            made = self._make(z[list(todo.values())])
            with self._lock:
                self.misses += len(made)
                for k, crop in zip(todo, made):
                    found[k] = crop
                    self._cache[k] = crop
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return [found[k] for k in keys]
