"""Small synthetic test media built from real photos: a slow pan over a photo
(or a hand-held view of it), an optional occluder, and a sine-wave audio track. Used by the tests, the
bundled sample and the benchmarks, so that all of them make media one way."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

PHOTO_DIR = Path(__file__).resolve().parent.parent / "samples" / "photos"


def photo(name: str = "faceapi-sample1.jpg") -> np.ndarray:
    """A bundled photo as RGB uint8 (see samples/README.md for provenance)."""
    bgr = cv2.imread(str(PHOTO_DIR / name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(PHOTO_DIR / name)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class Occluder:
    """A grey bar that hides the region x1..x2 (fractions of width) over frames start..stop."""

    start: int
    stop: int
    x1: float
    x2: float
    y1: float = 0.0
    y2: float = 1.0


def pan_frame(img: np.ndarray, size: tuple[int, int], t: float, zoom: float = 1.15) -> np.ndarray:
    """The view at time t in [0, 1] of a slow pan/zoom over `img`, resized to size (w, h)."""
    h, w = img.shape[:2]
    out_w, out_h = size
    aspect = out_w / out_h
    cw = min(w, h * aspect) / (1 + (zoom - 1) * t)
    ch = cw / aspect
    cx = w / 2 + (w - cw) / 2 * (t - 0.5) * 0.8
    cy = h / 2
    m = np.array([[out_w / cw, 0, -(cx - cw / 2) * out_w / cw], [0, out_h / ch, -(cy - ch / 2) * out_h / ch]])
    return cv2.warpAffine(img, m, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def handheld_frames(
    img: np.ndarray, n: int, size: tuple[int, int] = (640, 360), seed: int = 0, swing: tuple[int, int] = (60, 75)
) -> list[np.ndarray]:
    """`n` views of `img` as a hand-held camera would film it: a random-walk drift of about a
    pixel per frame, a slow roll (+-2.5 degrees) and zoom (+-6%), a fast swing (6 px per frame)
    over frames `swing`, and a smooth non-rigid warp that breathes over time (faces stretch
    and shear a little, as a turning or talking head does; no similarity explains it).
    `handheld_points` says where any point of `img` lands in each view."""
    out_w, out_h = size
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    frames = []
    for m, a, b in handheld_motion(img.shape[:2], n, size, seed, swing):
        view = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        dx, dy = _handheld_warp(xx, yy, a, b)
        mapx, mapy = (xx + dx).astype(np.float32), (yy + dy).astype(np.float32)
        frames.append(cv2.remap(view, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return frames


def handheld_motion(
    shape: tuple[int, int], n: int, size: tuple[int, int] = (640, 360), seed: int = 0, swing: tuple[int, int] = (60, 75)
) -> list[tuple[np.ndarray, float, float]]:
    """Per view of `handheld_frames` (same arguments, the photo's (h, w) for the photo): the
    camera's affine map (2x3, photo to view pixels) and the amplitudes (a, b) of the warp, under
    which view pixel (x, y) + `_handheld_warp(x, y, a, b)` shows at (x, y)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    out_w, out_h = size
    pos, vel = np.zeros(2), np.zeros(2)
    out = []
    for t in range(n):
        vel = 0.8 * vel + rng.normal(0, 0.6, 2)
        if swing[0] <= t < swing[1]:
            vel = np.array([6.0, 1.5])
        pos += vel
        m = cv2.getRotationMatrix2D(
            (w / 2, h / 2),
            2.5 * np.sin(2 * np.pi * t / 50),
            out_w / (w * 0.8) * (1 + 0.06 * np.sin(2 * np.pi * t / 70)),
        )
        m[:, 2] += np.array([out_w / 2 - w / 2, out_h / 2 - h / 2]) + pos
        out.append((m, 3.0 * np.sin(2 * np.pi * t / 40), 2.0 * np.cos(2 * np.pi * t / 33)))
    return out


def handheld_points(points: np.ndarray, motion: tuple[np.ndarray, float, float]) -> np.ndarray:
    """Where photo points (..., 2) show in the view of one `handheld_motion` entry: the camera
    map, then `_handheld_warp` inverted by fixed-point iteration (it is a contraction: a step
    moves a point by at most 3 * 2 pi / 180 of its error)."""
    m, a, b = motion
    v = np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]
    x, y = v[..., 0].copy(), v[..., 1].copy()
    for _ in range(30):
        dx, dy = _handheld_warp(x, y, a, b)
        x, y = v[..., 0] - dx, v[..., 1] - dy
    return np.stack([x, y], -1)


def _handheld_warp(x: np.ndarray, y: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """The hand-held views' non-rigid warp: the offset to the view pixel that shows at (x, y)."""
    return a * np.sin(2 * np.pi * x / 180.0), b * np.sin(2 * np.pi * y / 150.0 + 1.0)


def write_video(
    path: str | Path,
    scenes: list[tuple[np.ndarray, int]],
    size: tuple[int, int] = (480, 270),
    fps: Fraction | int = 25,
    audio: bool = True,
    occluders: tuple[Occluder, ...] = (),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    pts: list[int] | None = None,
    audio_codec: str = "aac",
    crf: int = 16,
) -> Path:
    """Writes a clip: each scene is (photo, frame count), panned; audio is a 440 Hz sine.

    Args:
        rotation: display rotation to store; frames are stored so that they
            display upright.
        pts: explicit timestamps (in 1/fps_den*... units of the stream time base
            1/(fps*100)) for variable frame rate clips.
    """
    path = Path(path)
    fps = Fraction(fps)
    total = sum(n for _, n in scenes)
    tb = Fraction(1, int(fps * 100)) if fps.denominator == 1 else Fraction(fps.denominator, fps.numerator * 100)
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        k = (rotation // 90) % 4
        sw, sh = (size[1], size[0]) if k % 2 else size
        vs.width, vs.height = sw, sh
        vs.pix_fmt = pix_fmt
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if codec == "libx264":
            vs.codec_context.options = {"crf": str(crf), "preset": "veryfast"}
        if rotation:
            vs.set_display_rotation(rotation)
        if audio:
            a = c.add_stream(audio_codec, rate=48000)
            a.layout = "stereo"
        i = 0
        for img, n in scenes:
            for j in range(n):
                frame = pan_frame(img, size, j / max(1, n - 1))
                for oc in occluders:
                    if oc.start <= i < oc.stop:
                        x1, x2 = int(oc.x1 * size[0]), int(oc.x2 * size[0])
                        y1, y2 = int(oc.y1 * size[1]), int(oc.y2 * size[1])
                        frame[y1:y2, x1:x2] = (90, 90, 90)
                if k:
                    frame = np.ascontiguousarray(np.rot90(frame, -k))
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts = pts[i] if pts is not None else int(round(i / fps / tb))
                vf.time_base = tb
                for p in vs.encode(vf):
                    c.mux(p)
                i += 1
        for p in vs.encode(None):
            c.mux(p)
        if audio:
            _write_sine(c, a, float(total / fps))
    return path


def _write_sine(c: av.container.OutputContainer, a: av.audio.stream.AudioStream, seconds: float) -> None:
    """Encodes `seconds` of a 440 Hz stereo sine into audio stream `a` of container `c`."""
    sr = a.codec_context.sample_rate
    samples = int(sr * seconds)
    wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / sr)).astype(np.float32)
    step = 1024
    for s0 in range(0, samples, step):
        chunk = wave[s0 : s0 + step]
        af = av.AudioFrame.from_ndarray(np.stack([chunk, chunk], axis=1).reshape(1, -1), format="flt", layout="stereo")
        af.sample_rate = sr
        af.pts = s0
        af.time_base = Fraction(1, sr)
        for p in a.encode(af):
            c.mux(p)
    for p in a.encode(None):
        c.mux(p)


def write_frames(
    path: str | Path,
    frames: list[np.ndarray],
    fps: int = 25,
    crf: int = 16,
    preset: str = "veryfast",
    rotation: int = 0,
    pts: list[int] | None = None,
    audio: bool = False,
    pixel_aspect: Fraction | None = None,
) -> Path:
    """Writes upright RGB frames as they are (no pan) as H.264 yuv420p.

    Args:
        rotation: display rotation to store; frames are stored turned back so
            that they display upright.
        pts: timestamps in 1/fps (default 0, 1, 2, ...).
        audio: add a 440 Hz AAC sine as long as the video.
        pixel_aspect: the stored pixels' shape (anamorphic video), if not square.
    """
    path = Path(path)
    k = (rotation // 90) % 4
    tb = Fraction(1, fps)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.height, vs.width = np.rot90(frames[0], -k).shape[:2]
        vs.pix_fmt = "yuv420p"
        vs.time_base = tb
        vs.codec_context.time_base = tb
        vs.codec_context.options = {"crf": str(crf), "preset": preset}
        if rotation:
            vs.set_display_rotation(rotation)
        if pixel_aspect is not None:
            vs.codec_context.sample_aspect_ratio = pixel_aspect
        a = None
        if audio:
            a = c.add_stream("aac", rate=48000)
            a.layout = "stereo"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(f, -k)), format="rgb24")
            vf.pts = i if pts is None else pts[i]
            vf.time_base = tb
            for p in vs.encode(vf):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        if a is not None:
            last = len(frames) if pts is None else max(pts) + 1
            _write_sine(c, a, last / fps)
    return path
