"""Discriminator and losses for the inpainting GAN.

- Adversarial: hinge loss; a patch discriminator conditioned on the mask and
  the landmark heatmaps (so it can judge pose as well as texture), stabilised
  by a lazy R1 penalty on reals (spectral normalisation is an option).
- Reconstruction ("perceptual-ish"): L1 inside the mask on an image pyramid
  (full, 1/2, 1/4 resolution) plus L1 on image gradients. Applied to the output
  made with the teacher's own z, which fixes the target; with faces that have
  no z, only the coarsest level is used (colour and lighting, not identity).
- Diversity (mode seeking): two different z on the same crop must differ by at
  least `margin` (mean absolute difference inside the mask); a hinge, so it
  stops pushing once outputs are apart, instead of MSGAN's unbounded ratio.
  With `centred`, each output's mean colour inside the mask is subtracted
  first, so a global tone shift does not count as a different face: the
  first checkpoint met the plain margin mostly with skin tone, and SFace
  still saw one person.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from vidanon.anonymize.generator import IN_CHANNELS


class Discriminator(nn.Module):
    """Patch discriminator on (image, mask, heatmaps).

    Args:
        resolution: crop side.
        base_channels: channels of the first layer; doubled per level, capped at max_channels.
        max_channels: cap.
        spectral: spectrally normalise every convolution. Off by default: on
            these small masked crops an SN discriminator stayed at chance for
            1000 CPU steps (see vidanon/weights/README.md); the default is a
            variance-preserving init with the R1 penalty instead.
        downsample: judge the inputs average-pooled by this factor (1: as
            they are). The synthetic teacher's faces carry DCGAN texture; a
            discriminator that sees full resolution learns that texture and
            teaches the generator high-frequency noise (vidanon/weights/README.md).
    """

    def __init__(
        self,
        resolution: int,
        base_channels: int = 32,
        max_channels: int = 128,
        spectral: bool = False,
        downsample: int = 1,
    ) -> None:
        super().__init__()
        if downsample < 1 or resolution % downsample:
            raise ValueError(f"downsample must be >= 1 and divide the resolution {resolution}, got {downsample}")
        self.resolution = resolution
        self.downsample = downsample
        levels = 0
        r = resolution // downsample
        while r > 8:
            r //= 2
            levels += 1
        ch = [min(max_channels, base_channels * 2**i) for i in range(levels + 1)]
        convs = [nn.Conv2d(IN_CHANNELS, ch[0], 3, padding=1)]
        convs += [nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1) for i in range(levels)]
        convs += [nn.Conv2d(ch[-1], 1, 3, padding=1)]
        layers: list[nn.Module] = []
        for i, conv in enumerate(convs):
            if spectral:
                conv = spectral_norm(conv)
            else:
                nn.init.kaiming_normal_(conv.weight, a=0.2)
                nn.init.zeros_(conv.bias)
            layers.append(conv)
            if i < len(convs) - 1:
                layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
        """Patch logits (b, 1, 8, 8), or smaller with downsample."""
        x = torch.cat([image, mask, heat], dim=1)
        if self.downsample > 1:
            x = F.avg_pool2d(x, self.downsample)
        return self.net(x)


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the generator."""
    return -fake_logits.mean()


def r1_penalty(d: Discriminator, image: torch.Tensor, mask: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """R1: squared gradient norm of D at real images (computed in float32)."""
    image = image.detach().float().requires_grad_(True)
    with torch.autocast(device_type=image.device.type, enabled=False):
        logits = d(image, mask.float(), heat.float())
    (grad,) = torch.autograd.grad(logits.sum(), image, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def _masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((a - b).abs() * mask).sum() / (mask.sum() * a.shape[1] + 1e-6)


def reconstruction(
    fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor, coarse_only: bool = False
) -> torch.Tensor:
    """Pyramid + gradient L1 inside the mask.

    Args:
        fake, real: (b, 3, r, r) in [-1, 1].
        mask: (b, 1, r, r).
        coarse_only: only the 1/4-resolution level (for faces without a teacher z).
    """
    if coarse_only:
        return _masked_l1(F.avg_pool2d(fake, 4), F.avg_pool2d(real, 4), F.avg_pool2d(mask, 4))
    loss = fake.new_zeros(())
    f, r, m = fake, real, mask
    for _ in range(3):
        loss = loss + _masked_l1(f, r, m)
        f, r, m = F.avg_pool2d(f, 2), F.avg_pool2d(r, 2), F.avg_pool2d(m, 2)
    dxf, dxr = fake[..., :, 1:] - fake[..., :, :-1], real[..., :, 1:] - real[..., :, :-1]
    dyf, dyr = fake[..., 1:, :] - fake[..., :-1, :], real[..., 1:, :] - real[..., :-1, :]
    loss = loss + _masked_l1(dxf, dxr, mask[..., :, 1:]) + _masked_l1(dyf, dyr, mask[..., 1:, :])
    return loss


def diversity(
    a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, margin: float, centred: bool = False
) -> torch.Tensor:
    """Hinge that pushes outputs for two different z apart (mean abs difference in the mask).

    centred: compare after removing each output's mean colour in the mask (structure, not tone).
    """
    if centred:
        area = mask.sum((2, 3), keepdim=True) + 1e-6
        a = a - (a * mask).sum((2, 3), keepdim=True) / area
        b = b - (b * mask).sum((2, 3), keepdim=True) / area
    dist = ((a - b).abs() * mask).flatten(1).sum(1) / (mask.flatten(1).sum(1) * a.shape[1] + 1e-6)
    return F.relu(margin - dist).mean()


FILL_WEIGHT = 0.3  # reconstruction weight of filled padding (`align.fill_padding`) against real pixels


def target_weight(mask: torch.Tensor, valid: torch.Tensor, fill_padding: bool) -> torch.Tensor:
    """Per-pixel weight of the reconstruction target: the mask where the crop is real
    and, when the padding was filled smoothly, `FILL_WEIGHT` of it there (a weak
    target: it teaches a smooth continuation where the training faces have no
    pixels, instead of leaving the generator free to draw anything there)."""
    if not fill_padding:
        return mask * valid
    return mask * (valid + FILL_WEIGHT * (1 - valid))


def random_similarity(
    b: int, generator: torch.Generator, shift: float = 2 / 32, scale: float = 0.04, degrees: float = 3.0
) -> torch.Tensor:
    """(b, 2, 3) random similarity transforms in `F.affine_grid`'s normalised coordinates:
    shift up to `shift` (2/32 is 2 px of a 64 px crop), scale by up to `scale` either way,
    rotate by up to `degrees`. The size of a detection's frame-to-frame jitter after smoothing."""

    def uniform(lim: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) * 2 - 1) * lim

    s = 1 + uniform(scale)
    a = uniform(degrees) * torch.pi / 180
    cos, sin = s * torch.cos(a), s * torch.sin(a)
    t = torch.stack([uniform(shift), uniform(shift)], 1)
    return torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)


def invert_affine(theta: torch.Tensor) -> torch.Tensor:
    """Inverse of (b, 2, 3) affine transforms."""
    lin = torch.linalg.inv(theta[:, :, :2])
    return torch.cat([lin, -lin @ theta[:, :, 2:]], 2)


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resamples x (b, c, r, r) so that output pixel p shows input pixel theta @ p (bilinear, edge
    pixels repeated outside)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def equivariance(out: torch.Tensor, moved_out: torch.Tensor, theta: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Shift equivariance of the generated face: `moved_out` was generated from the inputs moved
    by `warp(., theta)` (the crop, its mask and heatmaps, as when the detection jitters between
    frames, the donor and z unchanged); moved back, it should show what `out` shows.

    Args:
        out: (b, 3, r, r) output for the unmoved inputs; the anchor (not differentiated).
        moved_out: (b, 3, r, r) output for the moved inputs.
        theta: (b, 2, 3) the move.
        weight: (b, 1, r, r) where to compare (generated in both, in the unmoved frame).
    """
    back = warp(moved_out, invert_affine(theta))
    return _masked_l1(back, out.detach(), weight)


def hold(out: torch.Tensor, jittered_out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Stability of the generated face against its context: `jittered_out` was generated from the
    same crop with only its pixels moved a little and noised (the mask, heatmaps, donor and z
    unchanged), as a tracked face's crop changes from frame to frame while the smoothed landmarks
    that place it hold still; it should show what `out` shows.

    Args:
        out: (b, 3, r, r) output for the crop as it is; the anchor (not differentiated).
        jittered_out: (b, 3, r, r) output for the jittered crop.
        weight: (b, 1, r, r) where to compare (the generated region).
    """
    return _masked_l1(jittered_out, out.detach(), weight)
