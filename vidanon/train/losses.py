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
