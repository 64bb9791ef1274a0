"""Small real videos for the metrics and bench tests, made with PyAV from real face photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vidanon.synth import write_frames

ROOT = Path(__file__).resolve().parents[1]
PHOTO_DIRS = [ROOT / "samples" / "photos", Path("/tmp/npmx/package/demo")]


def find_photos() -> list[Path]:
    """Real multi-person photos: the bundled samples, else face-api's demo photos (MIT)."""
    for d in PHOTO_DIRS:
        photos = sorted(p for p in d.glob("*.jpg") if p.is_file()) if d.is_dir() else []
        if len(photos) >= 2:
            return photos
    return []


def photos_or_skip() -> list[Path]:
    photos = find_photos()
    if not photos:
        pytest.skip("no face photos (samples/photos/*.jpg or /tmp/npmx/package/demo/*.jpg)")
    return photos


def load_rgb(path: Path, width: int | None = None) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    if width is not None:
        h = round(bgr.shape[0] * width / bgr.shape[1])
        bgr = cv2.resize(bgr, (width, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def write_video(
    path: Path, frames, fps: int = 12, crf: int = 12, rotation: int = 0, pts: list[int] | None = None
) -> Path:
    """Encodes upright RGB frames as H.264 (yuv420p) in mp4 with an AAC sine track.

    With `rotation`, frames are stored turned back and the display rotation is
    set, so that players (and the bench) show them upright. `pts` are in 1/fps.
    """
    return write_frames(
        path, list(frames), fps=fps, crf=crf, preset="ultrafast", rotation=rotation, pts=pts, audio=True
    )


def pan_frames(photo: np.ndarray, n: int, size=(320, 240), start=(0, 0), step=(3, 1)) -> list[np.ndarray]:
    """A camera pan over a photo: n crops of `size` moving by `step` pixels per frame."""
    w, h = size
    out = []
    for k in range(n):
        x, y = start[0] + step[0] * k, start[1] + step[1] * k
        out.append(np.ascontiguousarray(photo[y : y + h, x : x + w]))
    return out


def paste_face(
    frame: np.ndarray, box: np.ndarray, donor: np.ndarray, donor_box: np.ndarray, scale: float = 1.25
) -> np.ndarray:
    """`frame` with the donor's face (its box scaled by `scale`) resized into `box` scaled alike."""

    def grow(b, lim_w, lim_h):
        c = (b[:2] + b[2:]) / 2
        half = (b[2:] - b[:2]) * scale / 2
        x1, y1 = np.maximum(np.floor(c - half), 0).astype(int)
        x2, y2 = np.minimum(np.ceil(c + half), [lim_w, lim_h]).astype(int)
        return x1, y1, x2, y2

    out = frame.copy()
    x1, y1, x2, y2 = grow(np.asarray(box, float), frame.shape[1], frame.shape[0])
    a1, b1, a2, b2 = grow(np.asarray(donor_box, float), donor.shape[1], donor.shape[0])
    out[y1:y2, x1:x2] = cv2.resize(donor[b1:b2, a1:a2], (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    return out


def black_boxes(frame: np.ndarray, boxes: np.ndarray, scale: float = 1.4) -> np.ndarray:
    out = frame.copy()
    for b in np.asarray(boxes, float).reshape(-1, 4):
        c = (b[:2] + b[2:]) / 2
        half = (b[2:] - b[:2]) * scale / 2
        p1, p2 = (c - half).astype(int), (c + half).astype(int)
        cv2.rectangle(out, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), (0, 0, 0), -1)
    return out


def noisy_faces(frame: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, sigma: float = 25.0) -> np.ndarray:
    out = frame.astype(np.float32)
    for b in np.asarray(boxes, float).reshape(-1, 4).astype(int):
        x1, y1, x2, y2 = np.maximum(b, 0)
        out[y1:y2, x1:x2] += rng.normal(0, sigma, out[y1:y2, x1:x2].shape)
    return np.clip(out, 0, 255).astype(np.uint8)


CLIP_FRAMES = 12
CLIP_SIZE = (288, 240)


def clip_frames(photos: list[Path]) -> list[np.ndarray]:
    """A short pan over the first photo that keeps exactly one face in view."""
    photo = load_rgb(photos[0], 960)
    return pan_frames(photo, CLIP_FRAMES, size=CLIP_SIZE, start=(170, 110), step=(-4, 1))


def donor_faces(photos: list[Path], detector) -> list[tuple[np.ndarray, np.ndarray]]:
    """(photo, face box) of every face on the other photos: other people to paste in."""
    donors = []
    for p in photos[1:]:
        im = load_rgb(p, 960)
        donors += [(im, b) for b in detector.detect(im).xyxy]
    return donors


def build_clips(folder: Path, photos: list[Path], detector) -> tuple[dict[str, Path], list[np.ndarray]]:
    """The original clip and anonymized variants of it, as mp4 files in `folder`.

    Returns:
        Paths by name (original, black, noise, same_swap, varying_swap) and the
        face boxes of each frame, detected on the frames before encoding.
    """
    frames = clip_frames(photos)
    boxes = [detector.detect(f).xyxy for f in frames]
    assert all(len(b) == 1 for b in boxes), "the test clip should show exactly one face per frame"
    donors = donor_faces(photos, detector)
    assert len(donors) >= 4
    rng = np.random.default_rng(0)
    variants = {
        "original": frames,
        "black": [black_boxes(f, b) for f, b in zip(frames, boxes, strict=True)],
        "noise": [noisy_faces(f, b, rng) for f, b in zip(frames, boxes, strict=True)],
        "same_swap": [paste_face(f, b[0], *donors[0]) for f, b in zip(frames, boxes, strict=True)],
        "varying_swap": [
            paste_face(f, b[0], *donors[k % len(donors)]) for k, (f, b) in enumerate(zip(frames, boxes, strict=True))
        ],
    }
    paths = {name: write_video(folder / f"{name}.mp4", fr) for name, fr in variants.items()}
    return paths, boxes
