"""Donor faces: the DCGAN teacher's face for a latent, aligned into a generator crop.

A donor generator (`GeneratorConfig.donor`) takes, next to the masked crop,
the teacher's face for the same z, aligned to the crop template by its own
landmarks, exactly as training aligns the donor faces it swaps in
(`vidanon.train.data.make_batch`). The identity then comes from the teacher,
which was trained to draw many different people, and a fixed z (one per
track) gives a fixed donor, so one track keeps one fake person.

A z whose draw holds no detectable face is redrawn: the next candidate comes
from a generator seeded by a hash of z and the attempt number, so the donor
still depends on z alone.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import torch

from vidanon.anonymize import align, morph
from vidanon.anonymize.dcgan import find_face, load_teacher, to_uint8
from vidanon.config import DetectConfig

MAX_TRIES = 8
CACHE_SIZE = 2048  # donor crops kept (one per track in per-track mode)


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
        # latent -> (aligned crop, its landmarks in crop pixels)
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self.misses = 0

    def _crop(self, image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        crops = align.make_crops(
            image, box[None], landmarks[None], self.resolution, self.crop_factor, 1.0, with_valid=self.fill_padding
        )
        crop = align.fill_padding(crops.images[0], crops.valid[0]) if self.fill_padding else crops.images[0]
        if self.face_only:
            crop = align.face_only(crop, crops.points[0])
        return crop, crops.points[0]

    @torch.inference_mode()
    def _make(self, zs: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        draws = to_uint8(self.teacher(zs.to(self.device)))
        out = []
        for z, image in zip(zs, draws):
            hit = find_face(self.detector, image)
            attempt = 0
            while hit is None and attempt < MAX_TRIES:
                attempt += 1
                image = to_uint8(self.teacher(_redraw(z, attempt)[None].to(self.device)))[0]
                hit = find_face(self.detector, image)
            if hit is None:  # no face in any redraw: frame the whole draw as a face
                box = np.array([0.0, 0.0, image.shape[1], image.shape[0]])
                hit = (box, align.box_landmarks(box[None])[0])
            out.append(self._crop(image, *hit))
        return out

    def crops(self, z: torch.Tensor, points: np.ndarray | None = None) -> np.ndarray:
        """(n, r, r, 3) uint8 donor crops for latents z of shape (n, z_dim).

        With `points` (n, 5, 2), the landmarks of the crops the donors are for
        (`align.Crops.points`), each donor is warped so that its landmarks
        land on them (`morph.landmark_warp`; the generator's `donor_warp`).
        """
        found = self._lookup(z)
        if not found:
            return np.zeros((0, self.resolution, self.resolution, 3), np.uint8)
        if points is None:
            return np.stack([crop for crop, _ in found])
        return np.stack([morph.landmark_warp(crop, own, p) for (crop, own), p in zip(found, points)])

    def points(self, z: torch.Tensor) -> np.ndarray:
        """(n, 5, 2) landmarks of the donor crops for latents z, in crop pixels (as drawn,
        before any warp)."""
        found = self._lookup(z)
        return np.stack([own for _, own in found]) if found else np.zeros((0, 5, 2), np.float32)

    def _lookup(self, z: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """(crop, landmarks) per row of z, made or from the cache."""
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
