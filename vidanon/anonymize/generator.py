"""The face generator: a U-Net inpainter with z injected at every decoder scale.

Input: the aligned crop with the face region zeroed, the mask, and 5 landmark
heatmaps (9 channels). z goes through a small mapping network to a style
vector w, which (a) seeds the 4x4 bottleneck with a learned spatial map and
(b) scales and shifts the features of every decoder convolution (FiLM), so a
new z changes the face at all scales and cannot be ignored by the decoder.
The output is composited: pixels outside the mask come from the input.

With `donor` (the bundled generator's setting), the input also holds a donor
face under the mask: the DCGAN teacher's face for z, aligned into the same
crop template (`vidanon.anonymize.donor`). The identity then comes from a face
generator trained for it, and this network's job is the part that depends on
the context: pose, skin tone, lighting and the seam.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = 9  # masked RGB 3 + mask 1 + heatmaps 5 (what the discriminator sees too)
DONOR_CHANNELS = 3  # the donor face under the mask, RGB
RESOLUTIONS = (64, 128, 256)


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture and crop framing of a generator; embedded in every checkpoint.

    Attributes:
        resolution: crop side in pixels, 64, 128 or 256.
        z_dim: size of z.
        w_dim: size of the style vector the mapping network makes from z.
        base_channels: channels at full resolution; doubled per level down.
        max_channels: cap on channels per level.
        crop_factor: crop side / face box height; part of the framing the
            generator was trained with, so it lives here.
        donor: the generator also takes a donor face (the teacher's face for z,
            aligned into the crop); checkpoints written before this field
            existed have none.
        donor_warp: the donor face is warped so its landmarks land on the
            crop's (`vidanon.anonymize.morph`), in training and at inference;
            off in checkpoints written before this field existed.
        fill_padding: crops that reach past their source image (the teacher's
            faces fill their draws) have that padding filled smoothly
            (`align.fill_padding`) instead of streaked by repeated edge
            pixels: training crops and, at inference, donor faces. Off in
            older checkpoints.
        donor_face_only: the donor is given as its face alone (`align.face_only`:
            hair and background mid-grey), and a training swap blends in that
            face region only, so the generator never sees, and never learns to
            copy, the donor's hair and background (the oval "sticker" edge and
            colour crescents). Off in older checkpoints.
        donor_context: the donor is given within its face region grown by this
            factor about its landmarks, and around that a smooth fill of the
            crop's own context (`align.in_context`), in training and at
            inference: its hair and background, which a generator trained on
            donors as drawn copies into the ring around the face, never reach
            the network. 0 (off, and in older checkpoints) or 1-4.
    """

    resolution: int = 64
    z_dim: int = 100
    w_dim: int = 128
    base_channels: int = 24
    max_channels: int = 96
    crop_factor: float = 1.75
    donor: bool = False
    donor_warp: bool = False
    fill_padding: bool = False
    donor_face_only: bool = False
    donor_context: float = 0.0

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if self.z_dim < 1 or self.w_dim < 1:
            raise ValueError(f"z_dim and w_dim must be positive, got {self.z_dim}, {self.w_dim}")
        if not 4 <= self.base_channels <= self.max_channels <= 1024:
            raise ValueError(
                f"need 4 <= base_channels <= max_channels <= 1024, got {self.base_channels}, {self.max_channels}"
            )
        if not 1.2 <= self.crop_factor <= 3.0:
            raise ValueError(f"crop_factor must be in [1.2, 3], got {self.crop_factor}")
        if (self.donor_warp or self.donor_face_only) and not self.donor:
            raise ValueError("donor_warp and donor_face_only need a donor generator")
        if self.donor_context and not (1.0 <= self.donor_context <= 4.0):
            raise ValueError(f"donor_context must be 0 or in [1, 4], got {self.donor_context}")
        if self.donor_context and (not self.donor or self.donor_face_only):
            raise ValueError("donor_context needs a donor generator whose donors are not face-only")

    @property
    def levels(self) -> int:
        """Number of 2x downsamplings from the crop to the 4x4 bottleneck."""
        return int(math.log2(self.resolution // 4))

    @property
    def in_channels(self) -> int:
        return IN_CHANNELS + (DONOR_CHANNELS if self.donor else 0)

    def channels(self) -> list[int]:
        """Channels per level, full resolution first, bottleneck last."""
        return [min(self.max_channels, self.base_channels * 2**i) for i in range(self.levels + 1)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        """Strict: unknown or missing keys raise ValueError ("donor", "donor_warp",
        "fill_padding", "donor_face_only" and "donor_context" may be missing: older files)."""
        names = {f.name for f in fields(cls)}
        older = {
            "donor": False,
            "donor_warp": False,
            "fill_padding": False,
            "donor_face_only": False,
            "donor_context": 0.0,
        }
        d = {**older, **d}
        if set(d) != names:
            raise ValueError(f"generator config keys {sorted(d)} do not match {sorted(names)}")
        return cls(**d)


class FiLMConv(nn.Module):
    """3x3 conv whose output is scaled and shifted per channel by the style w."""

    def __init__(self, cin: int, cout: int, w_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(w_dim, 2 * cout)
        # small, not zero: z modulates every scale from the first step on
        nn.init.normal_(self.affine.weight, std=0.5 / math.sqrt(w_dim))
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        gamma, beta = self.affine(w)[:, :, None, None].chunk(2, dim=1)
        return F.leaky_relu(h * (1 + gamma) + beta, 0.2)


class Generator(nn.Module):
    """U-Net inpainting generator.

    Args:
        cfg: architecture; see GeneratorConfig.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels()
        self.mapping = nn.Sequential(
            nn.Linear(cfg.z_dim, cfg.w_dim), nn.LeakyReLU(0.2), nn.Linear(cfg.w_dim, cfg.w_dim), nn.LeakyReLU(0.2)
        )
        self.stem = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1) for i in range(cfg.levels))
        self.z_map_channels = min(32, ch[-1])
        self.z_map = nn.Linear(cfg.w_dim, self.z_map_channels * 16)
        self.bottleneck = FiLMConv(ch[-1] + self.z_map_channels, ch[-1], cfg.w_dim)
        self.up1 = nn.ModuleList()
        self.up2 = nn.ModuleList()
        for i in reversed(range(cfg.levels)):
            self.up1.append(FiLMConv(ch[i + 1] + ch[i], ch[i], cfg.w_dim))
            self.up2.append(FiLMConv(ch[i], ch[i], cfg.w_dim))
        self.to_rgb = nn.Conv2d(ch[0], 3, 1)

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        heat: torch.Tensor,
        z: torch.Tensor,
        donor: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Composited output in [-1, 1].

        Args:
            image: (b, 3, r, r) crop in [-1, 1]; masked pixels are ignored.
            mask: (b, 1, r, r), 1 where the face is to be generated.
            heat: (b, 5, r, r) landmark heatmaps.
            z: (b, z_dim) latents.
            donor: (b, 3, r, r) donor faces in [-1, 1], aligned into the crop;
                required when the config has `donor`, refused otherwise. Only
                the part under the mask is used.

        Returns:
            (b, 3, r, r): the input outside the mask, generated inside it.
        """
        if (donor is not None) != self.cfg.donor:
            raise ValueError(f"this generator {'needs' if self.cfg.donor else 'takes no'} donor faces")
        known = image * (1 - mask)
        parts = [known, mask, heat] + ([donor * mask] if donor is not None else [])
        x = torch.cat(parts, dim=1)
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        w = self.mapping(z)
        h = F.leaky_relu(self.stem(x), 0.2)
        skips = [h]
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
            skips.append(h)
        zmap = self.z_map(w).view(-1, self.z_map_channels, 4, 4).to(h.dtype)
        h = self.bottleneck(torch.cat([h, zmap], dim=1), w)
        for j, (c1, c2) in enumerate(zip(self.up1, self.up2)):
            skip = skips[-2 - j]
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = c2(c1(torch.cat([h, skip], dim=1), w), w)
        out = torch.tanh(self.to_rgb(h))
        return known + out * mask


def from_uint8(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, r, r, 3) uint8 RGB crops -> (n, 3, r, r) float in [-1, 1], the generator's
    image range (moved to `device` while still uint8: a quarter of the bytes)."""
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


def widen_for_donor(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of a generator without donor input, for the same config with one.

    The stem gains zero weights for the donor channels, so the widened network
    starts out computing exactly what the original did, and learns to use the
    donor from there (how the bundled generator was converted).
    """
    w = state["stem.weight"]
    if w.shape[1] != IN_CHANNELS:
        raise ValueError(f"stem takes {w.shape[1]} channels, expected {IN_CHANNELS} (already widened?)")
    out = dict(state)
    out["stem.weight"] = torch.cat([w, w.new_zeros(w.shape[0], DONOR_CHANNELS, *w.shape[2:])], dim=1)
    return out
