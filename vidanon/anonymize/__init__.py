"""Face covering: classic filters and the generator, behind one protocol."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vidanon.config import CoverConfig
from vidanon.types import FaceDetections


class Coverer(Protocol):
    """Covers every face in `faces` (tracked, smoothed) in an RGB uint8 frame.

    Must cover every face it is given, whatever its state or size, and return
    a new array of the same shape.
    """

    def cover(self, frame: np.ndarray, faces: FaceDetections, frame_index: int) -> np.ndarray: ...


class FilterCoverer:
    """blur / pixelate / solid."""

    def __init__(self, cfg: CoverConfig) -> None:
        self.cfg = cfg

    def cover(self, frame: np.ndarray, faces: FaceDetections, frame_index: int) -> np.ndarray:
        from vidanon.anonymize.filters import apply_filter

        return apply_filter(frame, faces, self.cfg)


def make_coverer(cfg: CoverConfig) -> Coverer:
    """The coverer for `cfg.mode`."""
    if cfg.mode == "gan":
        from vidanon.anonymize.gan import GanCoverer

        return GanCoverer(cfg)
    return FilterCoverer(cfg)
