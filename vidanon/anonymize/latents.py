"""Latent vectors z, derived only from (run seed, track id[, frame]).

A fake identity must not depend on global RNG state, on the order faces are
processed, or on which other faces share the frame. Each z is drawn from its own
`torch.Generator`, seeded by mixing the integers through NumPy's `SeedSequence`
(a proper hash: nearby seeds and track ids give unrelated streams).
"""

from __future__ import annotations

import numpy as np
import torch

# Domain tags keep the streams of tracked faces, untracked faces and per-frame
# draws apart even when their integers coincide.
_TRACK, _UNTRACKED, _FRAME = 1, 2, 3


def _seed(*ints: int) -> int:
    words = []
    for v in ints:
        v = int(v)
        # SeedSequence takes non-negative integers; fold the sign into a tag word
        words += [v & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF, 1 if v < 0 else 0]
    state = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1] & 0x7FFFFFFF) << 32)


def latent(
    seed: int,
    track_id: int,
    dim: int,
    frame_index: int | None = None,
    face_index: int = 0,
    redraw: int = 0,
) -> torch.Tensor:
    """One z of shape (dim,), float32, standard normal.

    Args:
        seed: the run seed.
        track_id: the face's track id; -1 (untracked) gets a z of its own per
            frame and face index, since it has no identity to keep.
        dim: size of z.
        frame_index: given for per-frame z (DeepPrivacy behaviour); None for
            one z per track.
        face_index: position in the frame, used only for untracked faces.
        redraw: for one z per track: the track's n-th replacement z (the identity
            guard draws another when a face came out like the original person);
            0 is the track's first z.

    Returns:
        A CPU tensor; the same arguments always give the same values.
    """
    if track_id < 0:
        key = _seed(_UNTRACKED, seed, frame_index if frame_index is not None else -1, face_index)
    elif frame_index is None:
        key = _seed(_TRACK, seed, track_id) if redraw == 0 else _seed(_TRACK, seed, track_id, redraw)
    else:
        key = _seed(_FRAME, seed, track_id, frame_index)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(key)
    return torch.randn(dim, generator=gen)


def latents_for_faces(
    seed: int,
    track_ids: np.ndarray,
    dim: int,
    frame_index: int,
    per_frame: bool,
    face_indices: np.ndarray | None = None,
    redraws: dict[int, int] | None = None,
) -> torch.Tensor:
    """z for every face of a frame, (n, dim).

    Args:
        seed: the run seed.
        track_ids: (n,) track ids (-1 for untracked faces).
        dim: size of z.
        frame_index: the frame's index.
        per_frame: draw a new z each frame (still deterministic).
        face_indices: (n,) positions of the faces in the frame (for untracked
            faces); default 0..n-1.
        redraws: track id -> redraw count (`latent`'s `redraw`), for one z per track.
    """
    tids = np.asarray(track_ids).tolist()
    pos = list(range(len(tids))) if face_indices is None else np.asarray(face_indices).tolist()
    rows = [
        latent(
            seed,
            int(t),
            dim,
            frame_index if (per_frame or t < 0) else None,
            face_index=int(i),
            redraw=(redraws or {}).get(int(t), 0),
        )
        for i, t in zip(pos, tids)
    ]
    if not rows:
        return torch.zeros((0, dim))
    return torch.stack(rows)
