"""Temporal blending of generated faces, per track, in the aligned crop space.

The crop is aligned from the track's smoothed landmarks, so the same pixel of
the crop shows the same part of the face from frame to frame, and the previous
frame's generated face needs no flow warp: it is already registered. Blending
the new face with the previous one (an exponential moving average inside the
generated region) removes most of the frame-to-frame shimmer the generator adds
when the crop moves by a pixel. Only generated pixels are blended, never the
input: no original face pixel can come back through it.
"""

from __future__ import annotations

import numpy as np


class TemporalBlend:
    """Per-track EMA of the generator's output.

    Args:
        weight: weight of the new frame, in (0, 1]; 1 turns blending off.
        max_change: mean absolute difference (0-255) inside the mask between the
            new face and the running one above which the running face is reset
            (a large pose change: follow it at once instead of ghosting).
    """

    def __init__(self, weight: float = 0.5, max_change: float = 40.0) -> None:
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.max_change = max_change
        self._state: dict[int, tuple[int, np.ndarray]] = {}

    def __call__(self, gen: np.ndarray, masks: np.ndarray, track_ids: np.ndarray, frame_index: int) -> np.ndarray:
        """Blends a batch of generated crops (n, r, r, 3) uint8 with each track's previous one.

        Args:
            gen: composited generator outputs.
            masks: (n, r, r) float32 in [0, 1], 1 where generated.
            track_ids: (n,) ids; untracked faces (-1) are never blended.
            frame_index: frames must be consecutive for a track to blend.

        Returns:
            A new (n, r, r, 3) uint8 array.
        """
        if self.weight >= 1.0:
            return gen
        out = gen.copy()
        seen: dict[int, tuple[int, np.ndarray]] = {}
        for i, tid in enumerate(int(t) for t in track_ids):
            new = gen[i].astype(np.float32)
            prev = self._state.get(tid)
            m = masks[i][..., None]
            if tid >= 0 and prev is not None and prev[0] == frame_index - 1 and prev[1].shape == new.shape:
                inside = m[..., 0] > 0.5
                change = float(np.abs(new - prev[1])[inside].mean()) if inside.any() else 0.0
                if change <= self.max_change:
                    blended = self.weight * new + (1 - self.weight) * prev[1]
                    new = m * blended + (1 - m) * new
                    out[i] = np.clip(new + 0.5, 0, 255).astype(np.uint8)
            if tid >= 0:
                seen[tid] = (frame_index, new)
        # tracks not in this frame are forgotten: a gap resets their running face
        self._state = seen
        return out
