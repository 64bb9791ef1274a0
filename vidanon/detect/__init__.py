"""Face detectors behind one protocol, chosen by name."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vidanon.config import DetectConfig
from vidanon.types import FaceDetections


class FaceDetector(Protocol):
    """Finds faces and their 5 landmarks in an RGB uint8 frame."""

    def detect(self, rgb: np.ndarray) -> FaceDetections: ...


def _yunet(cfg: DetectConfig) -> FaceDetector:
    from vidanon.detect.yunet import YuNetDetector

    return YuNetDetector(cfg)


DETECTORS = {"yunet": _yunet, "yunet-opencv": _yunet}


def make_detector(cfg: DetectConfig) -> FaceDetector:
    """Builds the detector named by `cfg.backend`."""
    try:
        factory = DETECTORS[cfg.backend]
    except KeyError:
        raise ValueError(f"unknown detector {cfg.backend!r}; valid names: {', '.join(sorted(DETECTORS))}") from None
    return factory(cfg)
