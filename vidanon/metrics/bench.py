"""`vidanon bench`: privacy, leaks, realism and temporal consistency of an anonymized video.

Measures any pair of videos (ours or another tool's): the original and its
anonymized version are decoded in lockstep, frame by frame, and never held in
memory; frames are turned upright by their display rotation, like the
pipeline's tracks. Face positions come from a tracks file or are recomputed on
the original (YuNet + a greedy IoU tracker whose tracks end at scene cuts). Every replaced face is embedded with
SFace aligned at the ORIGINAL face's landmarks, so it is compared at the same
place even when the detector no longer finds it. Privacy, realism and identity
count the faces that the original shows (state "detected" in a tracks file);
leaks are looked for at every tracked position, predicted ones included.

Figures (see `BenchReport`):

- privacy: cosine between each original face and its replacement;
- leak: frames where the detector finds a face in the output at an original
  face's position (IoU) and that face matches the original identity, or where a
  face the original shows is left as it was (`bare`: the detector may no longer
  find a dim face in the re-encoded output, yet there it is);
- realism: share of original faces that the detector still finds in the output;
- identity: per track, cosine between replaced faces 1, 5 and 30 frames apart;
- flicker: flow-compensated change inside the face regions, output vs original.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

from vidanon.config import DetectConfig
from vidanon.detect import make_detector
from vidanon.detect.turn import SURE, with_turns
from vidanon.errors import CodecError, InputError
from vidanon.io.decode import main_video, park_decoder
from vidanon.metrics.detail import BARE, left_bare
from vidanon.metrics.flicker import FlickerMeter, FlickerSample
from vidanon.metrics.plot import write_plot
from vidanon.metrics.sface import SAME_IDENTITY_THRESHOLD, SFace, cosine
from vidanon.metrics.tracks import GreedyIouTracker, TracksFile, iou_matrix, load_tracks, with_untracked
from vidanon.types import DETECTED, FaceDetections

__all__ = ["BenchConfig", "BenchReport", "run_bench", "write_plot"]


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one bench run.

    Attributes:
        same_identity: SFace cosine at or above which two faces are one person.
        iou_threshold: IoU at or above which an output detection sits at an
            original face's position.
        lags: frame distances of the identity-consistency pairs.
        flow_max_side: optical flow is computed on frames downscaled to this.
        region_scale: flicker is measured inside face boxes scaled by this.
        cut_threshold: frame pairs whose whole original frame changes more than
            this (mean abs difference after flow warping, 0-255) are scene
            cuts and are left out of the flicker figure.
        detect: detector settings (for recomputed tracks and output detections).
        bare: a face the original shows counts as a leak where the fine detail
            of the middle of its box (`vidanon.metrics.detail.unchanged`)
            correlates with the original's by this or more: left uncovered.
    """

    same_identity: float = SAME_IDENTITY_THRESHOLD
    iou_threshold: float = 0.4
    lags: tuple[int, ...] = (1, 5, 30)
    flow_max_side: int = 320
    region_scale: float = 1.3
    cut_threshold: float = 20.0
    detect: DetectConfig = field(default_factory=DetectConfig)
    bare: float = BARE

    def __post_init__(self) -> None:
        if not -1.0 <= self.same_identity <= 1.0:
            raise ValueError(f"same_identity must be in [-1, 1], got {self.same_identity}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if not self.lags or min(self.lags) < 1:
            raise ValueError(f"lags must be positive frame distances, got {self.lags}")
        if not 0.0 < self.bare <= 1.0:
            raise ValueError(f"bare must be in (0, 1], got {self.bare}")
        if self.cut_threshold <= 0:
            raise ValueError(f"cut_threshold must be positive, got {self.cut_threshold}")


@dataclass
class PrivacyStats:
    """SFace cosine between each original face and its replacement (None without faces).

    Counts faces detected in the original (state "detected" in a tracks file).
    """

    faces: int = 0
    mean: float | None = None
    max: float | None = None
    share_at_or_above: float | None = None
    threshold: float = SAME_IDENTITY_THRESHOLD


@dataclass
class LeakStats:
    """Frames that show a face at an original position with the original identity."""

    frames: list[int] = field(default_factory=list)
    faces: int = 0
    face_frames: int = 0

    @property
    def count(self) -> int:
        return len(self.frames)


@dataclass
class RealismStats:
    """Share of original faces (detected in the original) that the detector still finds in the output."""

    faces: int = 0
    detected: int = 0
    share: float | None = None


@dataclass
class LagStats:
    """Identity cosine over pairs of one track's replaced faces `lag` frames apart."""

    pairs: int = 0
    mean: float | None = None
    p5: float | None = None


@dataclass
class TrackIdentity:
    """Identity consistency of one track."""

    frames: int = 0
    first: int = 0
    last: int = 0
    lags: dict[int, LagStats] = field(default_factory=dict)


@dataclass
class FlickerStats:
    """Mean flow-compensated change inside face regions per frame pair (0-255).

    `cuts` frame pairs with faces were left out as scene cuts. The `_lowpass`
    figures are the same with both frames blurred by one flow pixel first
    (`metrics.flicker`): sharper content alone raises the plain ratio.
    """

    pairs: int = 0
    output: float | None = None
    original: float | None = None
    ratio: float | None = None
    cuts: int = 0
    output_lowpass: float | None = None
    original_lowpass: float | None = None
    ratio_lowpass: float | None = None


@dataclass
class BenchReport:
    """Everything `run_bench` measured. `to_dict()` gives the JSON form."""

    original: str
    anonymized: str
    width: int
    height: int
    frames: int
    tracks_source: str  # "file" or "recomputed"
    faces: int  # face positions compared, any state; privacy/realism/identity count detected ones
    privacy: PrivacyStats
    leak: LeakStats
    realism: RealismStats
    identity: dict[int, LagStats]
    tracks: dict[int, TrackIdentity]
    flicker: FlickerStats
    seconds: float
    warnings: list[str] = field(default_factory=list)
    identity_series: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    flicker_series: list[FlickerSample] = field(default_factory=list)

    def to_dict(self, series: bool = True) -> dict:
        """JSON-ready dict; `series=False` leaves out the per-frame series."""
        out = {
            "original": self.original,
            "anonymized": self.anonymized,
            "video": {"width": self.width, "height": self.height, "frames": self.frames},
            "tracks_source": self.tracks_source,
            "faces": self.faces,
            "privacy": asdict(self.privacy),
            "leak": {**asdict(self.leak), "count": self.leak.count},
            "realism": asdict(self.realism),
            "identity": {
                "lags": {str(k): asdict(v) for k, v in self.identity.items()},
                "tracks": {
                    str(t): {
                        "frames": ti.frames,
                        "first": ti.first,
                        "last": ti.last,
                        "lags": {str(k): asdict(v) for k, v in ti.lags.items()},
                    }
                    for t, ti in self.tracks.items()
                },
            },
            "flicker": asdict(self.flicker),
            "seconds": self.seconds,
            "warnings": list(self.warnings),
        }
        if series:
            out["series"] = {
                "identity_lag1": {str(t): [[f, c] for f, c in s] for t, s in self.identity_series.items()},
                "flicker": [[s.index, s.output, s.original] for s in self.flicker_series],
                "flicker_lowpass": [[s.index, s.output_lowpass, s.original_lowpass] for s in self.flicker_series],
            }
        return out


def run_bench(
    original: Path,
    anonymized: Path,
    tracks: Path | None = None,
    max_frames: int | None = None,
    *,
    cfg: BenchConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> BenchReport:
    """Measures an anonymized video against its original.

    Args:
        original: the original video.
        anonymized: the anonymized video (same size and frame count).
        tracks: tracks file written by `vidanon anonymize --tracks`; None
            recomputes tracks on the original.
        max_frames: compare only the first frames.
        cfg: thresholds and settings.
        progress: called with the number of frames done, after each frame.

    Returns:
        The report. Frame-count mismatches are listed in `report.warnings`
        and the common prefix is compared.

    Raises:
        InputError: a video is missing, unreadable or has no video stream; the
            sizes differ; the tracks file is bad or does not fit the video.
        CodecError: decoding failed mid-stream.
    """
    cfg = cfg or BenchConfig()
    original, anonymized = Path(original), Path(anonymized)
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be at least 1, got {max_frames}")
    started = time.perf_counter()
    track_file = load_tracks(tracks) if tracks is not None else None

    detector = make_detector(cfg.detect)

    def find(img: np.ndarray, least: float = 0.0) -> FaceDetections:
        """Faces upright and at every turn of the frame (a rolled face is measured too). In the
        original, a turn's faces count only where they score `least` = SURE: the turns' false
        faces (a wine glass, 0.72) would count as leaks wherever `vidanon anonymize`, searching
        each turn every `turn_period` frames, did not cover them. In the output every face found counts
        (fail closed: a bare rolled face at an original face's place is a leak)."""
        return with_turns(detector, img, cfg.detect.turns, cfg.detect.nms_threshold, least=least)[0]

    sface = SFace()
    tracker = GreedyIouTracker() if track_file is None else None
    acc = _Accumulator(cfg)
    flicker = FlickerMeter(cfg.flow_max_side, cfg.region_scale, cfg.cut_threshold)
    warnings: list[str] = []

    width = height = 0
    untracked: list[tuple[int, int]] = []  # (frame, faces the tracks file lacks there)
    drift = _DriftCheck()
    with _Video(original) as vo, _Video(anonymized) as va:
        frames_o, frames_a = vo.frames(), va.frames()
        n = 0
        while max_frames is None or n < max_frames:
            img_o, img_a = next(frames_o, None), next(frames_a, None)
            if img_o is None or img_a is None:
                if img_o is not None or img_a is not None:
                    warnings.append(_count_warning(vo, va, n, longer=vo if img_o is not None else va))
                break
            if img_o.shape != img_a.shape:
                at = f" at frame {n}" if n else ""
                raise InputError(
                    f"videos differ in size{at}: {original} is {img_o.shape[1]}x{img_o.shape[0]}, "
                    f"{anonymized} is {img_a.shape[1]}x{img_a.shape[0]}"
                )
            note = drift.check(n, vo.last_time, va.last_time)
            if note:
                warnings.append(note)
            if n == 0:
                height, width = img_o.shape[:2]
                _check_tracks_size(track_file, tracks, width, height)
            if track_file is not None:
                # fail closed: a face the detector finds in the original that the tracks file
                # lacks (a file of another clip, cut short, or edited) is measured too
                faces, extra = with_untracked(track_file.at(n), find(img_o, SURE))
                if extra:
                    untracked.append((n, extra))
            else:
                faces = find(img_o, SURE)
            sample = flicker.update(n, img_o, img_a, faces.xyxy)
            if sample is not None:
                acc.flicker.append(sample)
            if tracker is not None:
                if flicker.last_cut:
                    tracker.reset()  # a new scene: no track continues across the cut
                faces = tracker.update(faces)
            if len(faces):
                acc.add(n, img_o, img_a, faces, find(img_a), sface)
            n += 1
            if progress is not None:
                progress(n)
    if n == 0:
        raise InputError(f"no frames could be compared: {original} or {anonymized} has no decodable frame")
    if track_file is not None and track_file.frames and track_file.frames != n and max_frames is None:
        warnings.append(f"tracks file declares {track_file.frames} frames, compared {n}")
    if track_file is not None and track_file.faces and max(track_file.faces) >= n and max_frames is None:
        warnings.append(f"tracks file lists frames up to {max(track_file.faces)}; the video has {n}")
    if untracked:
        warnings.append(
            f"the tracks file lacks {sum(k for _, k in untracked)} face(s) that the detector finds in the "
            f"original ({len(untracked)} frame(s), {untracked[0][0]}-{untracked[-1][0]}); they were measured too"
        )
    return acc.report(
        original=str(original),
        anonymized=str(anonymized),
        width=width,
        height=height,
        frames=n,
        tracks_source="file" if track_file is not None else "recomputed",
        seconds=time.perf_counter() - started,
        warnings=warnings,
        cuts=flicker.cuts,
    )


class _Accumulator:
    """Running figures; per-track state is bounded by the longest lag."""

    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        self.max_lag = max(cfg.lags)
        self.privacy: list[float] = []
        self.leak_frames: list[int] = []
        self.leak_faces = 0
        self.faces = 0
        self.face_frames = 0
        self.detected = 0
        self.ring: dict[int, deque[tuple[int, np.ndarray]]] = {}
        self.last_seen: dict[int, int] = {}
        self.pairs: dict[int, dict[int, list[float]]] = {}
        self.span: dict[int, list[int]] = {}  # track -> [frames, first, last]
        self.series: dict[int, list[tuple[int, float]]] = {}
        self.flicker: list[FlickerSample] = []

    def add(
        self,
        index: int,
        img_o: np.ndarray,
        img_a: np.ndarray,
        faces: FaceDetections,
        out_dets: FaceDetections,
        sface: SFace,
    ) -> None:
        cfg = self.cfg
        self.face_frames += 1
        self.faces += len(faces)
        # Privacy, realism and identity count only faces that the original shows (detected
        # there); a predicted or backfilled position may hold an occluder or nothing, which
        # "matches" itself. Leaks are checked at every position: fail closed.
        seen = faces.state == DETECTED
        emb_o = sface.embed(img_o, faces)
        emb_a = sface.embed(img_a, faces)  # replaced faces, aligned at the original landmarks
        priv = np.atleast_1d(cosine(emb_o, emb_a))
        self.privacy.extend(float(c) for c in priv[seen])

        # leaked: a face found in the output at an original face's place that SFace takes for the
        # person, or a face the original shows left as it was (found or not)
        leaked = left_bare(img_o, img_a, faces, cfg.bare)
        if len(out_dets):
            iou = iou_matrix(faces.xyxy, out_dets.xyxy)
            best = iou.argmax(axis=1)
            found = iou[np.arange(len(faces)), best] >= cfg.iou_threshold
            self.detected += int(found[seen].sum())
            if found.any():
                # the detected face, aligned at its own landmarks; fail closed: the higher cosine counts
                emb_d = sface.embed(img_a, out_dets[best[found]])
                sim = np.maximum(priv[found], np.atleast_1d(cosine(emb_o[found], emb_d)))
                leaked[np.flatnonzero(found)[sim >= cfg.same_identity]] = True
        leaked = int(leaked.sum())
        if leaked:
            self.leak_frames.append(index)
            self.leak_faces += leaked

        for tid, emb, ok in zip(faces.track_id.tolist(), emb_a, seen.tolist(), strict=True):
            if tid < 0 or not ok:
                continue
            ring = self.ring.setdefault(tid, deque())
            while ring and ring[0][0] < index - self.max_lag:
                ring.popleft()
            past = {f: e for f, e in ring}
            per_lag = self.pairs.setdefault(tid, {lag: [] for lag in cfg.lags})
            for lag in cfg.lags:
                if index - lag in past:
                    c = float(cosine(emb, past[index - lag]))
                    per_lag[lag].append(c)
                    if lag == 1:
                        self.series.setdefault(tid, []).append((index, c))
            ring.append((index, emb))
            span = self.span.setdefault(tid, [0, index, index])
            span[0] += 1
            span[2] = index
            self.last_seen[tid] = index
        # forget the rings of tracks that ended: memory stays bounded on long videos
        for tid in [t for t, f in self.last_seen.items() if f < index - self.max_lag]:
            del self.ring[tid], self.last_seen[tid]

    def report(self, cuts: int = 0, **kw) -> BenchReport:
        cfg = self.cfg
        p = np.asarray(self.privacy, np.float64)
        privacy = PrivacyStats(faces=len(p), threshold=cfg.same_identity)
        if len(p):
            privacy.mean = float(p.mean())
            privacy.max = float(p.max())
            privacy.share_at_or_above = float((p >= cfg.same_identity).mean())
        realism = RealismStats(faces=len(p), detected=self.detected, share=self.detected / len(p) if len(p) else None)
        leak = LeakStats(frames=self.leak_frames, faces=self.leak_faces, face_frames=self.face_frames)
        tracks = {
            tid: TrackIdentity(
                frames=span[0],
                first=span[1],
                last=span[2],
                lags={lag: _lag_stats(v) for lag, v in self.pairs[tid].items()},
            )
            for tid, span in sorted(self.span.items())
        }
        identity = {lag: _lag_stats([c for t in self.pairs.values() for c in t[lag]]) for lag in cfg.lags}
        fl = FlickerStats(pairs=len(self.flicker), cuts=cuts)
        if self.flicker:
            fl.output = float(np.mean([s.output for s in self.flicker]))
            fl.original = float(np.mean([s.original for s in self.flicker]))
            fl.ratio = _ratio(fl.output, fl.original)
            low = [s for s in self.flicker if s.output_lowpass is not None and s.original_lowpass is not None]
            if low:
                fl.output_lowpass = float(np.mean([s.output_lowpass for s in low]))
                fl.original_lowpass = float(np.mean([s.original_lowpass for s in low]))
                fl.ratio_lowpass = _ratio(fl.output_lowpass, fl.original_lowpass)
        return BenchReport(
            faces=self.faces,
            privacy=privacy,
            leak=leak,
            realism=realism,
            identity=identity,
            tracks=tracks,
            flicker=fl,
            identity_series=self.series,
            flicker_series=self.flicker,
            **kw,
        )


def _ratio(output: float, original: float) -> float | None:
    """output / original; 1 when both are 0 (nothing moved), None when only the original is 0."""
    if original > 1e-9:
        return output / original
    return 1.0 if output <= 1e-9 else None


def _lag_stats(values: list[float]) -> LagStats:
    if not values:
        return LagStats()
    v = np.asarray(values, np.float64)
    return LagStats(pairs=len(v), mean=float(v.mean()), p5=float(np.percentile(v, 5)))


class _DriftCheck:
    """Warns once when the two videos' timestamps drift apart (dropped or duplicated frames).

    The tolerance is half the original's first frame interval.
    """

    def __init__(self) -> None:
        self.start: tuple[float, float] | None = None
        self.tolerance: float | None = None
        self.warned = False

    def check(self, n: int, t_o: float | None, t_a: float | None) -> str | None:
        if self.warned or t_o is None or t_a is None:
            return None
        if self.start is None:
            self.start = (t_o, t_a)
            return None
        d_o, d_a = t_o - self.start[0], t_a - self.start[1]
        if self.tolerance is None:
            self.tolerance = max(0.002, 0.5 * d_o)
        if abs(d_o - d_a) <= self.tolerance:
            return None
        self.warned = True
        return (
            f"timestamps drift apart at frame {n} (original {d_o:.3f} s, anonymized {d_a:.3f} s after the "
            "first frame): frames may have been dropped or duplicated; frames are compared by index"
        )


def _check_tracks_size(track_file: TracksFile | None, path: Path | None, width: int, height: int) -> None:
    if track_file is None or track_file.width is None or track_file.height is None:
        return
    if (track_file.width, track_file.height) != (width, height):
        raise InputError(
            f"tracks file {path} is for {track_file.width}x{track_file.height} frames, the video is {width}x{height}"
        )


def _count_warning(vo: _Video, va: _Video, n: int, longer: _Video) -> str:
    declared = [f"{v.path} declares {v.declared_frames}" for v in (vo, va) if v.declared_frames]
    note = f" ({', '.join(declared)})" if declared else ""
    return f"frame counts differ: {longer.path} has more than {n} frames{note}; compared the first {n}"


class _Video:
    """One video stream, decoded to upright RGB frames (display rotation applied, as the pipeline does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise InputError(f"video not found: {path}")
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"cannot open {path} as media: {exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{path} has no video stream")
        self._stream = main_video(self._container)  # the stream `vidanon anonymize` anonymizes
        self._stream.thread_type = "AUTO"
        self.declared_frames = int(self._stream.frames or 0)
        self.last_time: float | None = None  # seconds, of the frame last yielded

    def frames(self) -> Iterator[np.ndarray]:
        try:
            for frame in self._container.decode(self._stream):
                self.last_time = frame.time
                rgb = frame.to_ndarray(format="rgb24")
                k = _quarter_turns(frame)
                yield np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb
        except av.FFmpegError as exc:
            raise CodecError(f"decoding {self.path} failed: {exc}") from exc

    def __enter__(self) -> _Video:
        return self

    def __exit__(self, *exc) -> None:
        park_decoder(self._stream)
        self._container.close()


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that display the frame upright (its display matrix)."""
    try:
        rot = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return int(round(rot / 90.0)) % 4
