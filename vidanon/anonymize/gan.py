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
from dataclasses import replace

import cv2
import numpy as np
import torch

from vidanon.anonymize import align
from vidanon.anonymize.checkpoint import load_generator
from vidanon.anonymize.filters import apply_filter, region_mask
from vidanon.anonymize.latents import latents_for_faces
from vidanon.anonymize.temporal import TemporalBlend
from vidanon.config import CoverConfig
from vidanon.errors import ModelLoadError
from vidanon.types import FaceDetections


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
        self.net = load_generator(cfg.checkpoint, "cpu")
        # per-frame z is DeepPrivacy's behaviour, kept unblended for comparison
        self.blend = TemporalBlend(cfg.temporal_blend if cfg.z_mode == "per-track" else 1.0)
        self.gcfg = self.net.cfg
        if self.device.type == "cuda":
            self.net = self.net.to(self.device, memory_format=torch.channels_last)
        else:
            self.net = self.net.to(self.device)

    @torch.inference_mode()
    def generate(self, crops: align.Crops, z: torch.Tensor) -> np.ndarray:
        """Composited generator outputs for a batch of crops, uint8 (n, r, r, 3)."""
        dev = self.device
        img = torch.from_numpy(crops.images).to(dev).permute(0, 3, 1, 2).float() / 127.5 - 1
        mask = torch.from_numpy(crops.masks)[:, None].to(dev)
        heat = torch.from_numpy(crops.heatmaps).to(dev)
        z = z.to(dev)
        if dev.type == "cuda":
            img, mask, heat = (t.contiguous(memory_format=torch.channels_last) for t in (img, mask, heat))
            with torch.autocast("cuda", dtype=torch.float16):
                out = self.net(img, mask, heat, z)
        else:
            out = self.net(img, mask, heat, z)
        out = ((out.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return out.permute(0, 2, 3, 1).cpu().numpy()

    def cover(self, frame: np.ndarray, faces: FaceDetections, frame_index: int) -> np.ndarray:
        """A new frame with every face of `faces` replaced or, if too small, filtered.

        Args:
            frame: (h, w, 3) uint8 RGB; not modified.
            faces: faces to cover (any state), with track ids.
            frame_index: used for per-frame z and for untracked faces.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"cover expects an (h, w, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
        out = frame.copy()
        if len(faces) == 0:
            return out
        h, w = frame.shape[:2]
        sides = (faces.xyxy[:, 2:] - faces.xyxy[:, :2]).min(axis=1)
        big = np.flatnonzero(sides >= self.cfg.min_gan_size)
        small = np.flatnonzero(sides < self.cfg.min_gan_size)
        if len(big):
            gfaces = faces[big]
            res = self.gcfg.resolution
            crops = align.make_crops(
                frame, gfaces.xyxy, gfaces.landmarks, res, self.gcfg.crop_factor, self.cfg.mask_scale
            )
            z = latents_for_faces(
                self.cfg.seed, gfaces.track_id, self.gcfg.z_dim, frame_index, self.cfg.z_mode == "per-frame", big
            )
            gen = self.generate(crops, z)
            gen = self.blend(gen, crops.masks, gfaces.track_id, frame_index)
            pastes = []
            for i in range(len(gfaces)):
                m = crops.transforms[i]
                rect = align.footprint(m, res, w, h)
                if rect is None:
                    continue
                x0, y0, x1, y1 = rect
                hard = align.paste_geometry(m, gfaces.xyxy[i].astype(np.float64), self.cfg.mask_scale, res, rect)
                rgb = align.warp_back(gen[i], m, rect, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE)
                alpha = align.warp_back(align.feather(crops.masks[i], res), m, rect, cv2.INTER_LINEAR)
                alpha = np.maximum(alpha, hard.astype(np.float32))[..., None]
                region = out[y0:y1, x0:x1].astype(np.float32)
                out[y0:y1, x0:x1] = np.clip(region * (1 - alpha) + rgb.astype(np.float32) * alpha + 0.5, 0, 255).astype(
                    np.uint8
                )
                pastes.append((rect, hard, rgb))
            # A feathered edge of one face must never bring back original pixels
            # inside another face's replaced region: re-assert every hard region.
            covered = np.zeros((h, w), bool)
            for (x0, y0, x1, y1), hard, rgb in pastes:
                out[y0:y1, x0:x1][hard] = rgb[hard]
                covered[y0:y1, x0:x1] |= hard
            ellipse = replace(self.cfg, shape="ellipse")
            region = (region_mask((h, w), gfaces, ellipse) > 0) | (region_mask((h, w), gfaces, self.cfg) > 0)
            leftover = region & ~covered
            if leftover.any():
                # a box circumscribing the ellipse: the filter reaches every leftover pixel
                wide = replace(self.cfg, shape="box", mask_scale=min(4.0, self.cfg.mask_scale * align.ELLIPSE_FACTOR))
                filtered = apply_filter(frame, gfaces, wide, mode=self.cfg.fallback)
                out[leftover] = filtered[leftover]
        if len(small):
            sfaces = faces[small]
            filtered = apply_filter(frame, sfaces, self.cfg, mode=self.cfg.fallback)
            m = region_mask((h, w), sfaces, self.cfg) > 0
            out[m] = filtered[m]
        return out
