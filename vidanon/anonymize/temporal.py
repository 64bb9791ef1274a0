"""Temporal blending of generated faces, per track, in the aligned crop space.

The crop is aligned from the track's smoothed landmarks, so the same pixel of
the crop shows the same part of the face from frame to frame, and the previous
frame's generated face needs no flow warp: it is already registered. Blending
the new face with the running one (an exponential moving average inside the
generated region) removes the shimmer the generator adds as its context pixels
and mask move a little from frame to frame. Only generated pixels are blended,
never the input: no original face pixel can come back through it.

A low weight holds the face steady but would lag behind a head that turns: the
generated features would ghost between the old pose and the new. So the weight
follows the pose: the running face keeps the landmarks (in crop pixels) it was
made for, and as the crop's landmarks move away from them, from FOLLOW_FROM
pixels on, the weight rises to 1 at FOLLOW_FULL pixels (the new face at once).
"""

from __future__ import annotations

import numpy as np

# Landmark distance (crop pixels, the largest of the 5) between the crop and the running
# face from which the blend follows the new face faster, and at which it takes it whole.
# On the bundled samples (still photos moved by hand-held motion, no pose change) the
# crops' landmarks stay within about half a pixel of the running face's; a head turning
# by 30 degrees moves the nose by about 3 pixels against the eyes in a 64-pixel crop.
FOLLOW_FROM = 0.75
FOLLOW_FULL = 3.0
# Mean change (0-255) of a crop's surroundings (outside the mask) from the running face's
# above which a held face is not shown (`TemporalBlend.running`).
MAX_CONTEXT_CHANGE = 20.0


def _moved(points: np.ndarray, running: np.ndarray) -> float:
    """How far the pose moved: the largest distance of the 5 landmarks (crop pixels)."""
    return float(np.linalg.norm(points - running, axis=-1).max())


class TemporalBlend:
    """Per-track EMA of the generator's output.

    Args:
        weight: weight of the new frame while the pose holds, in (0, 1]; 1 turns
            blending off.
        max_change: mean absolute difference (0-255) inside the mask between the
            new face and the running one above which the running face is reset
            (a large change: follow it at once instead of ghosting).
    """

    def __init__(self, weight: float = 0.1, max_change: float = 40.0) -> None:
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.max_change = max_change
        self._state: dict[int, tuple[int, np.ndarray, np.ndarray | None]] = {}

    def running(
        self, track_id: int, frame_index: int, points: np.ndarray, image: np.ndarray, mask: np.ndarray
    ) -> np.ndarray | None:
        """The track's running face (r, r, 3) uint8, to show in frame `frame_index` instead of a
        new one: None unless blending is on, the track has one from the frame before, the crop's
        landmarks `points` (5, 2) stay within FOLLOW_FROM pixels of its own (the pose holds), and
        the crop `image` (r, r, 3) uint8 outside its `mask` (r, r) differs from the running face's
        surroundings by at most MAX_CONTEXT_CHANGE levels on average (a face held through an
        occluder would otherwise come back with the occluder around it, as on people.mp4)."""
        prev = self._state.get(int(track_id))
        if self.weight >= 1.0 or track_id < 0 or prev is None or prev[0] != frame_index - 1 or prev[2] is None:
            return None
        if _moved(points, prev[2]) > FOLLOW_FROM:
            return None
        around = mask < 0.5
        if around.any() and float(np.abs(image.astype(np.float32) - prev[1])[around].mean()) > MAX_CONTEXT_CHANGE:
            return None
        return np.clip(prev[1] + 0.5, 0, 255).astype(np.uint8)

    def forget(self, track_id: int) -> None:
        """Drops a track's running face: its next face is shown as it comes (another z)."""
        self._state.pop(int(track_id), None)

    def _weight(self, points: np.ndarray | None, running: np.ndarray | None) -> float:
        """The new face's weight: `weight`, rising to 1 as the pose moves away from the running face's."""
        if points is None or running is None:
            return self.weight
        follow = min(1.0, max(0.0, (_moved(points, running) - FOLLOW_FROM) / (FOLLOW_FULL - FOLLOW_FROM)))
        return self.weight + (1.0 - self.weight) * follow

    def __call__(
        self,
        gen: np.ndarray,
        masks: np.ndarray,
        track_ids: np.ndarray,
        frame_index: int,
        points: np.ndarray | None = None,
    ) -> np.ndarray:
        """Blends a batch of generated crops (n, r, r, 3) uint8 with each track's running one.

        Args:
            gen: composited generator outputs.
            masks: (n, r, r) float32 in [0, 1], 1 where generated.
            track_ids: (n,) ids; untracked faces (-1) are never blended.
            frame_index: frames must be consecutive for a track to blend.
            points: (n, 5, 2) the crops' landmarks in crop pixels (`Crops.points`);
                without them the weight does not follow the pose.

        Returns:
            A new (n, r, r, 3) uint8 array.
        """
        out, seen = self._mix(gen, masks, track_ids, frame_index, points)
        if seen is not None:
            # tracks not in this frame are forgotten: a gap resets their running face
            self._state = seen
        return out

    def preview(self, *args, **kwargs) -> np.ndarray:
        """What `__call__` would return for the same arguments, the running faces left as they
        are (the identity guard checks the face as it will be shown)."""
        return self._mix(*args, **kwargs)[0]

    def _mix(self, gen, masks, track_ids, frame_index, points=None):
        if self.weight >= 1.0:
            return gen, None
        out = gen.copy()
        seen: dict[int, tuple[int, np.ndarray, np.ndarray | None]] = {}
        for i, tid in enumerate(int(t) for t in track_ids):
            new = gen[i].astype(np.float32)
            pts = None if points is None else points[i].astype(np.float32)
            prev = self._state.get(tid)
            m = masks[i][..., None]
            if tid >= 0 and prev is not None and prev[0] == frame_index - 1 and prev[1].shape == new.shape:
                inside = m[..., 0] > 0.5
                change = float(np.abs(new - prev[1])[inside].mean()) if inside.any() else 0.0
                if change <= self.max_change:
                    w = self._weight(pts, prev[2])
                    blended = w * new + (1 - w) * prev[1]
                    new = m * blended + (1 - m) * new
                    out[i] = np.clip(new + 0.5, 0, 255).astype(np.uint8)
                    if pts is not None and prev[2] is not None:
                        pts = w * pts + (1 - w) * prev[2]
            if tid >= 0:
                seen[tid] = (frame_index, new, pts)
        return out, seen
