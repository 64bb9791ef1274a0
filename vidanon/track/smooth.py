"""One-Euro filter (Casiez et al. 2012): smooths jitter when still, follows fast motion."""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: float) -> float:
    # time step of one frame
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau)


class OneEuro:
    """Filters a vector signal sampled once per frame.

    Args:
        min_cutoff: cutoff (cycles per frame) when the signal is still; lower is smoother.
        beta: how fast the cutoff rises with speed (per pixel of motion per frame).
        scale: values are divided by this before the speed term, so one filter
            behaves the same on small and large faces.
        d_cutoff: cutoff for the speed estimate.
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 0.3) -> None:
        if min_cutoff <= 0 or beta < 0 or d_cutoff <= 0:
            raise ValueError(f"invalid One-Euro parameters: min_cutoff={min_cutoff}, beta={beta}, d_cutoff={d_cutoff}")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def reset(self, x: np.ndarray) -> np.ndarray:
        self.x = np.asarray(x, np.float64).copy()
        self.dx = np.zeros_like(self.x)
        return self.x.copy()

    def __call__(self, x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None:
            return self.reset(x)
        dx = x - self.x
        a_d = _alpha(self.d_cutoff)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        speed = np.abs(self.dx) / max(scale, 1e-6) * 100.0  # in % of face size per frame
        cutoff = self.min_cutoff + self.beta * speed
        a = 1.0 / (1.0 + 1.0 / (2 * np.pi * cutoff))
        self.x = a * x + (1 - a) * self.x
        return self.x.copy()
