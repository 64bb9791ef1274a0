"""The only module that wires the stages together.

decode thread -> [bounded queue] -> detect, track, look-ahead (calling thread)
-> [bounded queue] -> cover thread -> [bounded queue] -> encode thread.
The tracker and the look-ahead buffer stay on the calling thread; the cover
stage takes frames in order on its own thread; order and pts are preserved.

Privacy fails closed: a frame is never written unless every face region known
for it was covered, and a frame whose detection failed is covered over its
tracked regions, or whole.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidanon.anonymize import make_coverer
from vidanon.anonymize.filters import apply_filter, cover_whole_frame
from vidanon.config import PipelineConfig
from vidanon.detect import make_detector
from vidanon.detect.turn import upright_turn, window_around, with_turns
from vidanon.errors import InputError, OutputError, StrictModeError, VidanonError
from vidanon.io.decode import Demuxer, PacketItem, VideoItem, check_readable
from vidanon.io.encode import VideoWriter
from vidanon.io.icc import read_icc, with_icc
from vidanon.io.paths import check_side_output, check_writable
from vidanon.metrics.detail import left_bare
from vidanon.metrics.tracks import iou_matrix, with_untracked
from vidanon.track import FaceTracker
from vidanon.types import BACKFILLED, DETECTED, PREDICTED, STATE_NAMES, FaceDetections, FrameMeta, box_union

log = logging.getLogger("vidanon")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".avif"}
ALPHA_SUFFIXES = {".png", ".webp", ".tif", ".tiff", ".avif"}  # image formats with transparency
# phones' HEIF photos, which this OpenCV cannot read: refused by name (as a video, PyAV would
# take one of their tiles or the thumbnail for the picture)
HEIF_SUFFIXES = {".heic", ".heif", ".hif"}
HEIF_ADVICE = "OpenCV here has no HEIF decoder; convert to JPEG or PNG first (keeping the colour profile)"
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}

ProgressFn = Callable[[int, int], None]


@dataclass
class RunSummary:
    """What one run did; also written by `--json-summary`."""

    input: str
    output: str
    frames_read: int = 0
    frames_written: int = 0
    faces_covered: int = 0
    faces_detected: int = 0
    faces_predicted: int = 0
    faces_backfilled: int = 0
    tracks: int = 0
    frames_with_fallback: int = 0
    # gan mode: face regions given the fallback filter instead of a generated face (too small,
    # eyes out of the frame, hidden, or no fake face the identity guard found unlike the person)
    faces_filtered: int = 0
    frames_interlaced: int = 0  # frames whose two fields were also searched one by one
    stage_errors: int = 0
    corrupt_packets: int = 0
    streams_copied: list[str] = field(default_factory=list)
    streams_reencoded: list[str] = field(default_factory=list)
    streams_dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- paths
def check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuses an output that would overwrite the input, lands in a missing folder, or exists."""
    if not src.is_dir():
        check_readable(src)
    if dst.resolve() == src.resolve() or _same_file(src, dst):
        raise OutputError(f"{dst}: output is the input file; choose another output path")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not src.is_dir():
        if not parent.is_dir():
            raise OutputError(f"{dst}: output directory {parent} does not exist")
        if dst.is_dir():
            raise OutputError(f"{dst}: is a directory, expected an output file path")
        if dst.exists() and not dst.is_file():
            raise OutputError(f"{dst}: exists and is not a regular file; refusing to replace it")
        if dst.exists() and not overwrite:
            raise OutputError(f"{dst}: already exists (use --overwrite to replace it)")
        check_writable(dst, parent)


def _reached_end(stream, last_pts: int | None, rate) -> bool:
    """Whether decoding reached the end of the video stream's timeline (within half a frame
    past the last one): then fewer frames than the container declares are not damage (an
    mp4 edit list trims frames its count includes; AVI counts its empty drop-frame entries)."""
    if last_pts is None or not stream.duration or not rate:
        return False
    step = 1 / (rate * stream.time_base)
    return last_pts + 1.5 * step >= (stream.start_time or 0) + stream.duration


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _temp_path(dst: Path) -> Path:
    return dst.with_name(f".{dst.stem}.vidanon-{os.getpid()}-{threading.get_ident() % 10000}{dst.suffix}")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        log.warning("could not remove temporary file %s", path)


CHANGE_DETECT = 15.0
"""Mean grey-level change (64x36 thumbnails) from the previous frame above which a frame that
--detect-every 2 skips is detected all the same. Consecutive frames of the hand-held sample
change by 14.2 at most (p50 3.9), of people.mp4 by 2.3 at p90 (32-58 at its cut and bar); a
face shown on odd frames only changed them by 31, one flashing into a frame by 18."""


TURN_LAG = 7
"""Frames after which a turn that found a face is searched on every frame (`FrameAnonymizer._turns`);
more than the frames detection may run ahead on the pool (at most TURN_LAG - 1)."""


# ---------------------------------------------------------------- frame stage
INTERLACED_KEPT = 1024  # frames back that `FrameAnonymizer.note_interlaced` remembers (searches reach far fewer)


def field_view(rgb: np.ndarray, field: int) -> np.ndarray:
    """One field of an interlaced frame (0: the top one, the even rows), stretched back to
    the frame's height: the picture one instant showed, in frame coordinates."""
    h, w = rgb.shape[:2]
    return cv2.resize(np.ascontiguousarray(rgb[field::2]), (w, h), interpolation=cv2.INTER_LINEAR)


class FrameAnonymizer:
    """Detect -> track -> cover for one stream of frames, with stage failures contained."""

    def __init__(self, cfg: PipelineConfig, detector=None, coverer=None) -> None:
        self.cfg = cfg
        self.detector = detector or make_detector(cfg.detect.detector_settings())
        self.tracker = FaceTracker(cfg.tracking())
        self.coverer = coverer or make_coverer(cfg.cover)
        self.track_ids: set[int] = set()
        self.seconds = {"detect": 0.0, "track": 0.0, "cover": 0.0}
        # Detection of the next frames on a pool, one detector per thread (detectors keep
        # per-call state); a detector handed in stays on the calling thread.
        workers = 1 if detector is not None else cfg.detect.worker_count()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="vidanon-detect") if workers > 1 else None
        self.depth = min(2 * workers, TURN_LAG - 1)  # frames in flight on the pool
        self._local = threading.local()
        self._lock = threading.Lock()
        self._spare = [self.detector]
        self._turn_found: dict[int, dict[int, np.ndarray]] = {}  # turn -> {frame: its sure faces' boxes}
        self._hold = cfg.tracking().hold_frames
        self._interlaced: set[int] = set()  # frames the decoder says are interlaced (`note_interlaced`)

    def note_interlaced(self, index: int) -> None:
        """Frame `index` holds two fields, taken half a frame apart: each is searched on its
        own too (`_searched`). Call before the frame is detected."""
        with self._lock:
            self._interlaced.add(index)
            if len(self._interlaced) > 4 * INTERLACED_KEPT:
                self._interlaced = {i for i in self._interlaced if i > index - INTERLACED_KEPT}

    def _thread_detector(self):
        d = getattr(self._local, "detector", None)
        if d is None:
            with self._lock:
                d = self._spare.pop() if self._spare else None
            self._local.detector = d = d or make_detector(self.cfg.detect.detector_settings())
        return d

    def detect(
        self, rgb: np.ndarray, index: int, force: bool = False, every_turn: bool = False, weak: bool = True
    ) -> tuple[FaceDetections, bool]:
        """Detections in one frame, and whether detection failed. Safe on any thread. A frame
        that `--detect-every` skips gets none, unless `force` (`must_detect`). A detected
        frame is also searched turned (`_turns`; every turn when `force` or `every_turn`).
        `weak`: with the upright pass's faces under the threshold, for the tracker (`_searched`)."""
        if not force and index % self.cfg.detect.every:
            return FaceDetections.empty(), False  # skipped: the tracker predicts (and covers) every face
        turns = self._turns(index, force or every_turn or index == 0, rgb.shape[1], rgb.shape[0])
        dets, hits, failed = self._searched(rgb, index, turns, weak=weak)
        self._found_turned(index, hits)
        return dets, failed

    def _turns(self, index: int, every_turn: bool, width: int, height: int) -> list:
        """The turns of the frame searched at `index`: the schedule's (`DetectConfig.turns_at`),
        the whole frame; and each turn that found a sure face from TURN_LAG to the hold's
        length of frames before, in a window around where it found them (`window_around`;
        the whole frame where that is half the frame or more): a face rolled out of the
        upright pass's reach is then searched every frame, not only every `turn_period`
        frames, at a fraction of a pass's cost. The lag is the most frames detection runs
        ahead on the pool (`depth`), so the turns of a frame do not depend on which frames
        finished first: the same detections on any number of threads."""
        planned = self.cfg.detect.turns_at(index, every_turn)
        turns: list = []
        for a in self.cfg.detect.turns:
            if a in planned:
                turns.append(a)
                continue
            with self._lock:
                boxes = [
                    b for i, b in self._turn_found.get(a, {}).items() if index - self._hold <= i <= index - TURN_LAG
                ]
            if boxes:
                window = window_around(np.concatenate(boxes), width, height)
                turns.append(a if window is None else (a, window))
        return turns

    def _found_turned(self, index: int, hits: dict[int, np.ndarray]) -> None:
        with self._lock:
            for angle, boxes in hits.items():
                at = self._turn_found.setdefault(angle, {})
                at[index] = boxes
                for i in [i for i in at if i < index - self._hold - 2 * TURN_LAG]:
                    del at[i]

    def detect_last(self, buffer: deque[_Pending], since: int, growth: float) -> None:
        """Searches the video's last buffered frame once more, at every turn, and upright too
        when the schedule skipped it: no later detection bridges it (`_bridge_skipped`), nor
        finds a face there that entered after the last pass of its turn. On a skipped frame a
        tracked place that a face found overlaps (IoU >= 0.3) grows to hold it. Every other
        face found is covered there, untracked, and in the buffered frames before it back to
        the last cut (`since`): found there by `search_back`, and grown by `growth` per frame
        back as backfill is. A failed detection covers the frame by the fallback. A face only
        in such frames was left bare."""
        entry = buffer[-1]
        if entry.meta.index % self.cfg.detect.every:
            dets, failed = self.detect(entry.rgb, entry.meta.index, force=True, weak=False)  # no tracker here
        else:
            dets, _, failed = self._searched(entry.rgb, entry.meta.index, self.cfg.detect.turns, upright=False)
        if failed:
            entry.failed = True
            return
        if len(dets) and len(entry.faces) and entry.meta.index % self.cfg.detect.every:
            iou = iou_matrix(dets.xyxy, entry.faces.xyxy)
            for k in np.flatnonzero(iou.max(axis=1) >= 0.3):
                j = int(iou[k].argmax())
                entry.faces.xyxy[j] = box_union(entry.faces.xyxy[j], dets.xyxy[k])
        listed = len(entry.faces)
        entry.faces, _ = with_untracked(entry.faces, dets)
        new = entry.faces[np.arange(listed, len(entry.faces))]
        earlier = deque(list(buffer)[:-1])
        self.search_back(earlier, new, since)
        _backfill(earlier, new, growth, since)

    def search_back(self, buffer: deque[_Pending], first: FaceDetections, since: int) -> None:
        """Faces found for the first time in the frame after the buffered ones (`first`: a new
        track's detection, or the last frame's new faces): those rolled past 45 degrees (by
        their landmarks, `upright_turn`) were found by a turned pass, which runs only every
        `turn_period` frames, so the face may have been in the frames before, and elsewhere
        (entering fast, the backfill's box at the first detection's place missed it on a test
        clip). The buffered frames are searched at those turns, newest first, back to the cut
        (`since`) and at most `turn_period` frames, until one shows no face there; each face
        found is covered where it is (untracked). An upright face new in a frame the schedule
        skipped (the last) is searched back upright the same way."""
        if not len(first) or not buffer:
            return
        turns = {upright_turn(lm) for lm in first.landmarks}
        upright = 0 in turns and self.cfg.detect.every > 1
        turns = [a for a in self.cfg.detect.turns if a in turns]
        if not turns and not upright:
            return
        reach = max(self.cfg.detect.turn_period(), self.cfg.detect.every)
        for back, entry in enumerate(reversed(buffer)):
            if back >= reach or entry.meta.index < since:
                break
            found, _, failed = self._searched(entry.rgb, entry.meta.index, turns, upright)
            if failed:
                entry.failed = True
                continue
            if not len(found):
                break
            entry.faces, _ = with_untracked(entry.faces, found)

    def _searched(
        self, rgb: np.ndarray, index: int, turns, upright: bool = True, weak: bool = False
    ) -> tuple[FaceDetections, dict[int, np.ndarray], bool]:
        """The faces found at `turns` of the frame (and upright), one row per face, the sure
        faces' boxes by turn (`with_turns`), and whether detection failed; with `weak`, also the
        upright pass's faces under the score threshold that no face found overlaps, for the
        tracker to continue tracks with (`DetectConfig.weak_threshold`). An interlaced frame
        (`note_interlaced`) is searched upright in each of its fields too. Safe on any thread."""
        t0 = time.perf_counter()
        dets, hits, failed = FaceDetections.empty(), {}, False
        threshold = self.cfg.detect.score_threshold
        with self._lock:
            interlaced = index in self._interlaced
        try:
            detector = self.detector if self.pool is None else self._thread_detector()
            base = detector.detect(rgb) if upright else FaceDetections.empty()
            sure = base.score >= threshold
            dets, hits = with_turns(
                detector, rgb, turns, self.cfg.detect.nms_threshold, base[np.flatnonzero(sure)], least=threshold
            )
            unsure = [base[np.flatnonzero(~sure)]]
            if interlaced and upright:
                # A face moving across an interlaced frame is combed, its two fields apart by
                # half a frame's motion, and the detector misses it (a pan of 24 px a field: 0 of
                # 5 faces found, 5 of 5 in either field). Each field, stretched back to the frame's
                # height, is searched upright as well; a sure face found there that no sure face
                # of the frame overlaps is added (`with_untracked`), its unsure ones with the frame's.
                for field in (0, 1):
                    found = detector.detect(field_view(rgb, field))
                    dets, _ = with_untracked(dets, found[np.flatnonzero(found.score >= threshold)])
                    unsure.append(found[np.flatnonzero(found.score < threshold)])
            if weak:
                for part in unsure:
                    dets, _ = with_untracked(dets, part)
        except Exception as exc:  # noqa: BLE001 - any stage failure is contained and covered
            log.debug("detector failed on frame %d: %s", index, exc)
            dets, hits, failed = FaceDetections.empty(), {}, True
        with self._lock:
            self.seconds["detect"] += time.perf_counter() - t0
        return dets, hits, failed

    def must_detect(self, index: int, change: float) -> bool:
        """Whether a frame that `--detect-every` would skip must be detected all the same: the
        picture changed since the previous frame by more than CHANGE_DETECT (`change`,
        `CutDetector.change`), so what the last detection found may not hold for it (a face
        shown only on skipped frames stayed bare)."""
        every = self.cfg.detect.every
        return every > 1 and index % every != 0 and change > CHANGE_DETECT

    def detect_ahead(self, rgb: np.ndarray, index: int, force: bool = False, every_turn: bool = False) -> Future | None:
        """`detect` started on the pool (None without one: `locate` then detects)."""
        return None if self.pool is None else self.pool.submit(self.detect, rgb, index, force, every_turn)

    def locate(
        self,
        rgb: np.ndarray,
        index: int,
        scene_cut: bool = False,
        detected: tuple[FaceDetections, bool] | None = None,
        force: bool = False,
        every_turn: bool = False,
    ) -> tuple[FaceDetections, bool]:
        """Faces to cover in this frame, and whether detection failed.

        `detected`: this frame's `detect` result when it was made ahead; frames
        must come in order. On a `scene_cut`, tracks of the previous shot are
        held only briefly, unless detection failed (then the full hold applies:
        fail closed). A cut or `every_turn` (a frame that changed as much) is searched
        at every turn of the frame (`detect`).
        """
        dets, failed = detected if detected is not None else self.detect(rgb, index, force, scene_cut or every_turn)
        t1 = time.perf_counter()
        faces = self.tracker.update(
            dets, index, scene_cut=scene_cut and not failed, frame=rgb, weak=self.cfg.detect.score_threshold
        )
        self.track_ids.update(int(t) for t in faces.track_id if t >= 0)
        self.seconds["track"] += time.perf_counter() - t1
        return faces, failed

    def cover(self, rgb: np.ndarray, faces: FaceDetections, index: int, failed: bool) -> tuple[np.ndarray, bool]:
        """The anonymized frame, and whether a fallback was used."""
        return self.cover_end(self.cover_begin(rgb, faces, index, failed))

    def cover_begin(self, rgb: np.ndarray, faces: FaceDetections, index: int, failed: bool) -> CoverJob:
        """The half of `cover` that must see the frames in order (a gan coverer's generator,
        identity guard and temporal blend; all of a filter). `cover_end` finishes the job,
        on another thread if the caller likes, so consecutive frames overlap."""
        t0 = time.perf_counter()
        try:
            return self._begin(rgb, faces, index, failed)
        finally:
            self.seconds["cover"] += time.perf_counter() - t0

    def cover_end(self, job: CoverJob) -> tuple[np.ndarray, bool]:
        """The anonymized frame of `cover_begin`'s job, and whether a fallback was used. A
        failure here still covers every face, with the fallback filter."""
        if job.prepared is None:
            return job.done
        t0 = time.perf_counter()
        try:
            return self._cover_bare(job.rgb, self.coverer.finish(job.prepared), job.faces)
        except Exception as exc:  # noqa: BLE001
            log.debug("paste failed on frame %d: %s", job.index, exc)
            return self._fallback(job.rgb, job.faces), True
        finally:
            self.seconds["paste"] = self.seconds.get("paste", 0.0) + time.perf_counter() - t0

    def _cover_bare(self, rgb: np.ndarray, out: np.ndarray, faces: FaceDetections) -> tuple[np.ndarray, bool]:
        """The covered frame `out` of `rgb`, and whether the fallback was needed: a detected face
        whose middle kept the original's fine detail (`left_bare`; every cover read 0.47 or
        less) was not reached by its cover, and gets the fallback filter on top. Fail closed
        against a coverer that leaves a face as it was (an empty mask, a paste off its place)."""
        bare = left_bare(rgb, out, faces)
        if not bare.any():
            return out, False
        log.debug("frame: %d face(s) left bare by the cover; fallback filter", int(bare.sum()))
        return apply_filter(out, faces[np.flatnonzero(bare)], self.cfg.cover, self.cfg.cover.fallback), True

    def _fallback(self, rgb: np.ndarray, faces: FaceDetections) -> np.ndarray:
        mode = self.cfg.cover.fallback
        try:
            return apply_filter(rgb, faces, self.cfg.cover, mode)
        except Exception:  # noqa: BLE001
            return cover_whole_frame(rgb, mode)

    def _begin(self, rgb: np.ndarray, faces: FaceDetections, index: int, failed: bool) -> CoverJob:
        mode = self.cfg.cover.fallback
        if failed:
            if len(faces):
                return CoverJob(index, done=(apply_filter(rgb, faces, self.cfg.cover, mode), True))
            return CoverJob(index, done=(cover_whole_frame(rgb, mode), True))
        if not len(faces):
            return CoverJob(index, done=(rgb, False))
        faces = faces[paint_order(faces)]
        try:
            prepare = getattr(self.coverer, "prepare", None)
            if prepare is not None:
                return CoverJob(index, prepared=prepare(rgb, faces, index), rgb=rgb, faces=faces)
            return CoverJob(index, done=self._cover_bare(rgb, self.coverer.cover(rgb, faces, index), faces))
        except Exception as exc:  # noqa: BLE001
            log.debug("cover failed on frame %d: %s", index, exc)
            return CoverJob(index, done=(self._fallback(rgb, faces), True))


def paint_order(faces: FaceDetections) -> np.ndarray:
    """The order faces are covered in, each over the ones before: the largest region first and
    the smallest on top, then held and back-filled regions before detected faces. Where one
    face's region holds another, the inner face keeps its own cover: on `benchmarks/stress.py`
    occluded, a turned pass took an arm for a face (0.77) and its generated face, 200 px and
    lying, painted over the face of the woman beside it in the frames where both were held
    (held faces went in track order), a blurred copy of her face that SFace read as her (0.48)."""
    area = np.prod(np.maximum(faces.xyxy[:, 2:] - faces.xyxy[:, :2], 0), axis=1)
    return np.lexsort((-faces.state.astype(np.int64), -area.round(1)))


@dataclass
class CoverJob:
    """A frame between `FrameAnonymizer.cover_begin` and `cover_end`: either done (the
    frame and whether a fallback was used) or a coverer's `prepare` result still to paste,
    with the frame and its faces for the fallback filter should the paste fail."""

    index: int
    done: tuple[np.ndarray, bool] | None = None
    prepared: object | None = None
    rgb: np.ndarray | None = None
    faces: FaceDetections | None = None


class CutDetector:
    """Flags hard scene cuts: the picture (64x36 grey thumbnails, mean abs difference
    above `pixel_threshold`), its colours (8x8x8 histogram, total variation above
    `hist_threshold`) and its structure (the thumbnails' correlation below
    `structure_threshold`) all change at once.

    Measured on the bundled sample and test clips: a cut scores (58, 0.55, 0.26), a grey
    bar over half the frame (32, 0.55, 0.43), a fast pan of 40 px per frame (>45, 0.16).
    A jump in exposure (a light switched on, the camera's auto exposure) changes pixels and
    colours as a cut does, (69, >0.4), but keeps the structure (0.96); flagged as a cut, it
    cut the hold of faces it had pushed below the detector's threshold to 2 frames, and
    they went bare for 8 (fail closed: it is not a cut).
    """

    def __init__(
        self, pixel_threshold: float = 45.0, hist_threshold: float = 0.4, structure_threshold: float = 0.6
    ) -> None:
        self.pixel_threshold = pixel_threshold
        self.hist_threshold = hist_threshold
        self.structure_threshold = structure_threshold
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self.change = 0.0  # the last frame's mean grey-level change from the one before (0 for the first)

    def __call__(self, rgb: np.ndarray) -> bool:
        import cv2

        small = cv2.resize(rgb, (64, 36), interpolation=cv2.INTER_AREA)
        thumb = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.int16)
        hist = cv2.calcHist([small], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256]).ravel()
        hist /= max(float(hist.sum()), 1.0)
        prev, self._prev = self._prev, (thumb, hist)
        if prev is None:
            self.change = 0.0
            return False
        self.change = float(np.abs(thumb - prev[0]).mean())
        if not (self.change > self.pixel_threshold and float(np.abs(hist - prev[1]).sum()) / 2 > self.hist_threshold):
            return False
        a, b = thumb.astype(np.float64).ravel(), prev[0].astype(np.float64).ravel()
        a, b = a - a.mean(), b - b.mean()
        scale = float(np.sqrt((a * a).sum() * (b * b).sum()))
        return scale == 0.0 or float((a * b).sum()) / scale < self.structure_threshold


@dataclass
class _Pending:
    rgb: np.ndarray
    meta: FrameMeta
    faces: FaceDetections
    failed: bool
    carried: dict[int, np.ndarray] = field(default_factory=dict)  # `FaceTracker.carried`


def _new_detected(faces: FaceDetections, new_ids: list[int]) -> FaceDetections:
    """The rows of tracks new in this frame that this frame's detection found."""
    if not new_ids or not len(faces):
        return FaceDetections.empty()
    return faces[np.flatnonzero(np.isin(faces.track_id, new_ids) & (faces.state == DETECTED))]


def _backfill(buffer, first: FaceDetections, growth: float, since: int = 0) -> None:
    """Covers faces found in the frame after the last buffered one (`first`: new tracks'
    first detections, `_new_detected`, or the last frame's new faces) in the buffered frames
    before, back to frame `since` (the last scene cut: a face does not cross a cut), grown by
    `growth` per frame back: a tracked face only where the frame has no place for its track,
    an untracked one (id -1) always."""
    if not len(first):
        return
    for back, entry in enumerate(reversed(buffer), start=1):
        if entry.meta.index < since:
            break
        grown = _grown(first, 1 + growth * back)
        present = set(int(t) for t in entry.faces.track_id if t >= 0)
        keep = [i for i, t in enumerate(grown.track_id) if int(t) not in present]
        if keep:
            entry.faces = FaceDetections.concat([entry.faces, grown[np.array(keep)]])


def _grown(faces: FaceDetections, factor: float) -> FaceDetections:
    """`faces` scaled by `factor` about their box centres (box and landmarks), as BACKFILLED
    rows: a face's place in a buffered frame before this frame's detection of it."""
    c = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    half = (faces.xyxy[:, 2:] - faces.xyxy[:, :2]) / 2 * factor
    return FaceDetections(
        np.concatenate([c - half, c + half], 1),
        np.zeros(len(faces), np.float32),
        c[:, None, :] + (faces.landmarks - c[:, None, :]) * factor,
        faces.track_id,
        np.full(len(faces), BACKFILLED, np.int8),
    )


def _bridge_skipped(
    buffer: deque[_Pending], faces: FaceDetections, index: int, every: int, last_cut: int = 0, growth: float = 0.0
) -> None:
    """Detecting every `every`-th frame: a track that this frame (`index`) detects, and the
    last detection frame detected too, is placed in the skipped frames between by
    interpolating the two detections instead of by the tracker's forward prediction, which
    the new detection then corrects with a jump (the generated face jumped with it, and a
    held box grows: the covers pulsed). Across a scene cut in the gap nothing is
    interpolated: skipped frames from the cut on take this frame's detection, those before
    it keep the prediction. The frames are still in the lookahead buffer.

    A track that the last detection frame did not detect (held through an occlusion, or
    missed) had only the tracker's prediction in the skipped frames, which can lag the face
    by many pixels: its skipped frames get the box that holds both the prediction and this
    frame's detection, so the face is covered wherever between the two it was (on a test
    clip a face that came back from behind a bar was 15% outside its cover otherwise), and
    across a cut in the gap too.

    A track with no place at all in a skipped frame (found again after its hold ran out:
    a face back at an old face's place after a shot without it, on a skipped frame, was
    left bare there) gets this frame's detection, grown by `growth` per frame back as the
    lookahead's backfill grows it, in the skipped frames from the last cut on.

    No margin is added to interpolated boxes: on the samples the worst lay 99.98% inside
    its cover (the cover ellipse is 1.84 times the box), the worst detected one 99.96%."""
    if every < 2 or index % every or not len(faces) or len(buffer) < every:
        return
    span = list(buffer)[-every:]  # frames index - every .. index - 1
    if span[0].meta.index != index - every:
        return
    cut = last_cut if index - every < last_cut <= index else None
    first = span[0].faces
    for k in np.flatnonzero((faces.state == DETECTED) & (faces.track_id >= 0)):
        tid = faces.track_id[k]
        rows = [np.flatnonzero((e.faces.track_id == tid) & (e.faces.state == PREDICTED)) for e in span[1:]]
        placed = [bool((e.faces.track_id == tid).any()) for e in span[1:]]
        if not all(placed):
            for m, e in enumerate(span[1:], start=1):
                if not placed[m - 1] and (cut is None or e.meta.index >= cut):
                    row = _grown(faces[k : k + 1], 1 + growth * (every - m))
                    e.faces = FaceDetections.concat([e.faces, row]) if len(e.faces) else row
            continue
        if any(len(r) != 1 for r in rows):
            continue
        b1, l1 = faces.xyxy[k], faces.landmarks[k]
        at = np.flatnonzero((first.track_id == tid) & (first.state == DETECTED))
        if len(at) != 1:  # held, not detected: cover the prediction and the detection both
            for e, r in zip(span[1:], rows):
                e.faces.xyxy[r[0]] = box_union(e.faces.xyxy[r[0]], b1)
            continue
        b0, l0 = first.xyxy[at[0]], first.landmarks[at[0]]
        for m, (e, r) in enumerate(zip(span[1:], rows), start=1):
            if cut is not None:
                if e.meta.index >= cut:  # the new shot: where this frame found the face
                    e.faces.xyxy[r[0]], e.faces.landmarks[r[0]] = b1, l1
                continue
            a = m / every
            box = (1 - a) * b0 + a * b1
            c = e.carried.get(int(tid))
            if c is not None:
                # image motion placed the face there: its landmarks stay (on the hand-held clip
                # they moved with the image where the interpolation cut corners), and the box
                # holds both the carried and the interpolated one, neither grown as a held box
                # is (the generated face's mask pulsed with the growth every other frame:
                # people.mp4 low-pass 1.56x at --detect-every 2)
                e.faces.xyxy[r[0]] = box_union(c, box)
                continue
            e.faces.xyxy[r[0]] = box
            e.faces.landmarks[r[0]] = (1 - a) * l0 + a * l1


# ---------------------------------------------------------------- tracks file
class TracksWriter:
    """Streams the per-frame face list to a JSON file."""

    def __init__(self, path: Path, info) -> None:
        self.path = path
        self.tmp = _temp_path(path)
        self.fh = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in finish/abort
        head = {
            "version": 1,
            "video": {
                "width": info.width,
                "height": info.height,
                "time_base": str(info.time_base),
                "rotation": info.rotation,
            },
        }
        self.fh.write(json.dumps(head)[:-1] + ', "frames": [\n')
        self.first = True

    def write(self, meta: FrameMeta, faces: FaceDetections) -> None:
        rec = {
            "index": meta.index,
            "pts": meta.pts,
            "faces": [
                {
                    "track_id": int(faces.track_id[i]),
                    "xyxy": [round(float(v), 2) for v in faces.xyxy[i]],
                    "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in faces.landmarks[i]],
                    "score": round(float(faces.score[i]), 4),
                    "state": STATE_NAMES[int(faces.state[i])],
                }
                for i in range(len(faces))
            ],
        }
        self.fh.write(("" if self.first else ",\n") + json.dumps(rec))
        self.first = False

    def finish(self, frames: int) -> None:
        self.fh.write(f'\n], "frame_count": {frames}}}\n')
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.fh.close()
        _remove(self.tmp)


# ---------------------------------------------------------------- damage
class _FFmpegErrors:
    """Counts FFmpeg's error messages during a run: damaged input is often concealed
    by the decoder, which only says so in its log."""

    def __enter__(self) -> _FFmpegErrors:
        import av.logging

        self._old = av.logging.get_level()
        if self._old is None or self._old < av.logging.ERROR:
            av.logging.set_level(av.logging.ERROR)
        self._cap = av.logging.Capture(local=False)
        self.logs = self._cap.__enter__()
        return self

    def count(self, names: set[str]) -> int:
        import av.logging

        return sum(1 for level, name, _ in self.logs if level <= av.logging.ERROR and name in names)

    def __exit__(self, *exc) -> None:
        import av.logging

        self._cap.__exit__(*exc)
        av.logging.set_level(self._old)


# ---------------------------------------------------------------- threads
_DONE = object()


class _Worker(threading.Thread):
    """Runs `fn`, keeping its exception for the main thread."""

    def __init__(self, fn, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            self.error = exc


def _put(q: queue.Queue, item, stop: threading.Event, consumer: threading.Thread | None = None) -> bool:
    """Blocks until `item` is queued; False if the run stopped or the consumer died."""
    while not stop.is_set() and (consumer is None or consumer.is_alive() or not consumer.ident):
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event, worker: _Worker):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set() or (not worker.is_alive() and q.empty()):
                return _DONE


# ---------------------------------------------------------------- video
def anonymize_video(
    src: str | Path,
    dst: str | Path,
    cfg: PipelineConfig | None = None,
    *,
    tracks_path: str | Path | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    frame_anonymizer: FrameAnonymizer | None = None,
) -> RunSummary:
    """Anonymizes every face of a video into `dst`.

    The output is written to a temporary file beside `dst` and renamed only on
    success; on any error or interrupt the temporary file is removed.

    Raises:
        InputError, OutputError, CodecError, ModelLoadError, StrictModeError.
    """
    cfg = cfg or PipelineConfig()
    src, dst = Path(src), Path(dst)
    check_paths(src, dst, overwrite)
    if tracks_path is not None:
        check_side_output(Path(tracks_path), "--tracks")
    t0 = time.perf_counter()
    summary = RunSummary(input=str(src), output=str(dst))
    fa = frame_anonymizer or FrameAnonymizer(cfg)
    tmp = _temp_path(dst)
    tracks = None
    stop = threading.Event()
    with _FFmpegErrors() as ff_errors, Demuxer(src) as dm:
        info = dm.info
        writer = VideoWriter(tmp, _FORMATS.get(dst.suffix.lower()), dm, cfg.encode, name=dst)
        dec_q: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        enc_q: queue.Queue = queue.Queue(maxsize=cfg.queue_size)

        busy = {"decode": 0.0, "encode": 0.0}

        def decode() -> None:
            items = dm.items()
            while True:
                t0 = time.perf_counter()
                item = next(items, _DONE)
                busy["decode"] += time.perf_counter() - t0
                if not _put(dec_q, item, stop) or item is _DONE:
                    return

        def encode() -> None:
            while True:
                item = _get(enc_q, stop, main)
                if item is _DONE:
                    return
                t0 = time.perf_counter()
                if isinstance(item, PacketItem):
                    writer.write_packet(item)
                else:
                    writer.write_frame(*item)
                busy["encode"] += time.perf_counter() - t0

        main = threading.current_thread()
        cov_q: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        pst_q: queue.Queue = queue.Queue(maxsize=cfg.queue_size)

        def relay(q: queue.Queue, upstream: threading.Thread, handle, send) -> Callable[[], None]:
            """A stage's loop: each item of `q` to `handle`, in order; the end on to `send`."""

            def loop() -> None:
                while (item := _get(q, stop, upstream)) is not _DONE:
                    handle(item)
                send(_DONE)

            return loop

        def paste_back(item) -> None:
            out, fallback = fa.cover_end(item[0])
            summary.frames_with_fallback += int(fallback)
            _forward((out, item[1]))
            summary.frames_written += 1

        buffer: deque[_Pending] = deque()
        is_cut = CutDetector()
        last_cut = 0
        lookahead = cfg.tracking().lookahead  # at least the gap between detections

        def emit(entry: _Pending) -> None:
            job = fa.cover_begin(entry.rgb, entry.faces, entry.meta.index, entry.failed)
            summary.stage_errors += int(entry.failed)
            summary.faces_covered += len(entry.faces)
            st = entry.faces.state
            summary.faces_detected += int((st == 0).sum())
            summary.faces_predicted += int((st == 1).sum())
            summary.faces_backfilled += int((st == BACKFILLED).sum())
            if tracks is not None:
                tracks.write(entry.meta, entry.faces)
            _to_paste((job, entry.meta))

        def _push(q: queue.Queue, worker: _Worker, item) -> None:
            """`item` onto the queue that `worker` takes from; its failure is raised here."""
            if not _put(q, item, stop, worker) or worker.error is not None:
                raise _stage_error(worker)

        def _send(entry) -> None:
            _push(cov_q, cov_t, entry)

        def _to_paste(item) -> None:
            _push(pst_q, pst_t, item)

        def _forward(item) -> None:
            _push(enc_q, enc_t, item)

        dec_t = _Worker(decode, "vidanon-decode")
        # covering (the generator in gan mode) overlaps the next frames' detection, and the
        # paste-back of gan mode the next frame's generator; both keep the frame order
        cov_t = _Worker(relay(cov_q, main, emit, _to_paste), "vidanon-cover")
        pst_t = _Worker(relay(pst_q, cov_t, paste_back, _forward), "vidanon-paste")
        enc_t = _Worker(encode, "vidanon-encode")

        def frames():
            """Decoded frames in order, each with its detections when they were made
            ahead on the detector pool (else None); other packets go straight on."""
            ahead: deque = deque()
            while True:
                item = _get(dec_q, stop, dec_t)
                if item is _DONE:
                    break
                if isinstance(item, PacketItem):
                    _forward(item)
                    continue
                assert isinstance(item, VideoItem)
                if item.meta.extra.get("interlaced"):
                    fa.note_interlaced(item.meta.index)
                    summary.frames_interlaced += 1
                cut = is_cut(item.rgb)
                force = fa.must_detect(item.meta.index, is_cut.change)
                # a cut, or a picture that changed as much, may show faces that no turn's schedule
                # has searched yet: every turn then (a face flashing into one frame turned was bare)
                every_turn = cut or is_cut.change > CHANGE_DETECT
                job = fa.detect_ahead(item.rgb, item.meta.index, force, every_turn)
                if job is None:
                    yield item, None, force, cut, every_turn
                    continue
                ahead.append((item, job, force, cut, every_turn))
                while len(ahead) > fa.depth:
                    done, job, *flags = ahead.popleft()
                    yield done, job.result(), *flags
            while ahead:
                done, job, *flags = ahead.popleft()
                yield done, job.result(), *flags

        try:
            if tracks_path is not None:
                tracks = TracksWriter(Path(tracks_path), info)
            dec_t.start()
            cov_t.start()
            pst_t.start()
            enc_t.start()
            total = info.frames
            last_pts = None  # the latest decoded frame's pts
            for item, detected, force, cut, every_turn in frames():
                summary.frames_read += 1
                if item.meta.pts is not None:
                    last_pts = item.meta.pts if last_pts is None else max(last_pts, item.meta.pts)
                if cut:
                    last_cut = item.meta.index
                faces, failed = fa.locate(
                    item.rgb, item.meta.index, scene_cut=cut, detected=detected, force=force, every_turn=every_turn
                )
                _bridge_skipped(buffer, faces, item.meta.index, cfg.detect.every, last_cut, cfg.track.hold_growth)
                new = _new_detected(faces, fa.tracker.new_ids)
                _backfill(buffer, new, cfg.track.hold_growth, last_cut)
                fa.search_back(buffer, new, last_cut)
                buffer.append(_Pending(item.rgb, item.meta, faces, failed, dict(fa.tracker.carried)))
                while len(buffer) > lookahead:
                    _send(buffer.popleft())
                if progress is not None:
                    progress(summary.frames_read, total)
                for t in (cov_t, pst_t, enc_t):
                    if t.error is not None:
                        raise _stage_error(t)
            if dec_t.error is not None:
                raise _stage_error(dec_t)
            if buffer and (buffer[-1].meta.index % cfg.detect.every or cfg.detect.turns):
                fa.detect_last(buffer, last_cut, cfg.track.hold_growth)  # no later detection bridges it
            while buffer:
                _send(buffer.popleft())
            _send(_DONE)
            for t in (cov_t, pst_t, enc_t):
                while t.is_alive() and t.error is None:
                    t.join(timeout=0.1)
                if t.error is not None:
                    raise _stage_error(t)
            writer.finish()
            expected = dm.info.frames
            missing = max(0, expected - summary.frames_read) if expected else 0
            if missing and _reached_end(dm.video, last_pts, info.average_rate):
                missing = 0
            summary.corrupt_packets = (
                dm.stats.corrupt_packets + dm.stats.demux_errors + ff_errors.count(dm.source_names) + missing
            )
            if summary.corrupt_packets:
                summary.warnings.append(
                    f"input is damaged: {summary.corrupt_packets} decode error(s); the {summary.frames_read} "
                    "frame(s) that decoded were anonymized"
                )
                if cfg.strict:
                    raise StrictModeError(
                        f"{src}: input is damaged ({summary.corrupt_packets} decode error(s)); no output written (--strict)"
                    )
            if summary.frames_written == 0:
                raise InputError(f"{src}: no frame could be decoded")
            os.replace(tmp, dst)
            if tracks is not None:
                tracks.finish(summary.frames_written)
                tracks = None
        except BaseException:
            stop.set()
            for t in (dec_t, cov_t, pst_t, enc_t):
                if t.is_alive():
                    t.join(timeout=2.0)
            writer.abort()
            _remove(tmp)
            if tracks is not None:
                tracks.abort()
            raise
        finally:
            stop.set()
    st = writer.stats
    summary.streams_copied = st.streams_copied
    summary.streams_reencoded = st.streams_reencoded
    summary.streams_dropped = st.streams_dropped
    summary.warnings = writer.warnings + list(getattr(fa.coverer, "warnings", [])) + summary.warnings
    if dm.stats.resized:
        w, h = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
        summary.warnings.append(
            f"the frame size changes mid-stream: {dm.stats.resized} frame(s) are not {w}x{h} and were scaled to it"
        )
    if st.pts_fixed:
        summary.warnings.append(f"{st.pts_fixed} frame(s) had missing or out-of-order timestamps; renumbered")
    summary.tracks = len(fa.track_ids)
    summary.faces_filtered = int(getattr(fa.coverer, "filtered_faces", 0))
    summary.seconds = time.perf_counter() - t0
    summary.stage_seconds = {**busy, **fa.seconds, **cover_parts(fa.coverer)}
    return summary


def cover_parts(coverer: object) -> dict[str, float]:
    """The cover stage's own breakdown (`GanCoverer.seconds`: crops, generate, guard, blend,
    paste), as "cover.<part>" seconds; empty for coverers that keep none (the filters)."""
    return {f"cover.{k}": v for k, v in getattr(coverer, "seconds", {}).items()}


def _stage_error(worker: _Worker) -> BaseException:
    err = worker.error
    if err is None:
        return VidanonError(f"{worker.name} stopped unexpectedly")
    if isinstance(err, VidanonError):
        return err
    if isinstance(err, OSError):
        return OutputError(f"writing failed: {err}")
    return VidanonError(f"{worker.name} failed: {type(err).__name__}: {err}")


# ---------------------------------------------------------------- images
def anonymize_image(
    src: str | Path,
    dst: str | Path,
    cfg: PipelineConfig | None = None,
    *,
    overwrite: bool = False,
    frame_anonymizer: FrameAnonymizer | None = None,
) -> RunSummary:
    """Anonymizes one photo. EXIF orientation is applied; no metadata is written."""
    import cv2

    cfg = cfg or PipelineConfig()
    src, dst = Path(src), Path(dst)
    check_paths(src, dst, overwrite)
    if dst.suffix.lower() not in IMAGE_SUFFIXES:
        raise OutputError(f"{dst}: an image input needs an image output ({', '.join(sorted(IMAGE_SUFFIXES))})")
    t0 = time.perf_counter()
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its reasons run to lines
    try:
        bgr = cv2.imread(str(src), cv2.IMREAD_COLOR)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if bgr is None:
        raise InputError(f"{src}: not a readable image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    fa = frame_anonymizer or FrameAnonymizer(cfg)
    faces, failed = fa.locate(rgb, 0)
    filtered = getattr(fa.coverer, "filtered_faces", 0)  # a folder's photos share the coverer
    out, fallback = fa.cover(rgb, faces, 0, failed)
    filtered = getattr(fa.coverer, "filtered_faces", 0) - filtered
    out_bgr = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    warnings = []
    alpha = _alpha_of(src, bgr.shape[:2])
    if alpha is not None:
        if dst.suffix.lower() in ALPHA_SUFFIXES:
            out_bgr = np.dstack([out_bgr, alpha])
        else:
            warnings.append(f"{dst}: a {dst.suffix} image has no transparency; the alpha channel of {src} was dropped")
    tmp = _temp_path(dst)
    try:
        try:
            ok, encoded = cv2.imencode(dst.suffix, out_bgr)
        except cv2.error:
            ok = False
        if not ok:
            raise OutputError(f"{dst}: could not write the image")
        # the colour profile says how to read the pixels (Display P3 from phones): kept
        tmp.write_bytes(with_icc(encoded.tobytes(), read_icc(src)))
        os.replace(tmp, dst)
    except BaseException:
        _remove(tmp)
        raise
    return RunSummary(
        input=str(src),
        output=str(dst),
        frames_read=1,
        frames_written=1,
        faces_covered=len(faces),
        faces_detected=len(faces),
        tracks=len(faces),
        frames_with_fallback=int(fallback),
        faces_filtered=int(filtered),
        stage_errors=int(failed),
        warnings=warnings,
        seconds=time.perf_counter() - t0,
    )


def _alpha_of(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The 8-bit alpha channel of an image with one, where it is as large as the picture read
    (an EXIF turn, which the unchanged read does not apply, leaves it out), else None."""
    import cv2

    if path.suffix.lower() not in ALPHA_SUFFIXES:
        return None
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3 or raw.shape[2] != 4 or raw.shape[:2] != shape:
        return None
    alpha = raw[..., 3]
    return (alpha >> 8).astype(np.uint8) if alpha.dtype == np.uint16 else alpha.astype(np.uint8)


def anonymize_directory(
    src: str | Path,
    dst: str | Path,
    cfg: PipelineConfig | None = None,
    *,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> RunSummary:
    """Anonymizes every image in a folder and its subfolders into another folder (created if
    missing), each at the same relative path. Files that are not images are left out, with a
    warning that counts them; an output that exists is refused before any work (without
    `overwrite`), so a run never stops half-way through the folder."""
    cfg = cfg or PipelineConfig()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise InputError(f"{src}: not a directory")
    if dst.resolve() == src.resolve():
        raise OutputError(f"{dst}: output folder is the input folder; choose another")
    if dst.exists() and not dst.is_dir():
        raise OutputError(f"{dst}: exists and is not a directory")
    inside = dst.resolve()
    found = [
        p for p in sorted(src.rglob("*")) if p.is_file() and not p.resolve().is_relative_to(inside)
    ]  # an output folder inside the input folder is not read back
    files = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(f"{src}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if not dst.parent.is_dir():
        raise OutputError(f"{dst}: parent directory {dst.parent} does not exist")
    targets = [dst / f.relative_to(src) for f in files]
    if not overwrite:
        taken = [t for t in targets if t.exists()]
        if taken:
            more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
            raise OutputError(f"{taken[0]}{more}: already exist(s) (use --overwrite to replace them); nothing written")
    dst.mkdir(exist_ok=True)
    check_writable(dst, dst)
    t0 = time.perf_counter()
    total = RunSummary(input=str(src), output=str(dst))
    heif = [p for p in found if p.suffix.lower() in HEIF_SUFFIXES]
    if heif:
        total.warnings.append(
            f"{len(heif)} HEIF photo(s) were left out, e.g. {heif[0].relative_to(src)}: {HEIF_ADVICE}"
        )
    others = [p for p in found if p.suffix.lower() not in IMAGE_SUFFIXES | HEIF_SUFFIXES]
    if others:
        total.warnings.append(
            f"{len(others)} file(s) that are not images ({', '.join(sorted(IMAGE_SUFFIXES))}) were left out, "
            f"e.g. {others[0].relative_to(src)} (give a video its own run)"
        )
    fa = FrameAnonymizer(cfg)
    for i, (f, target) in enumerate(zip(files, targets)):
        fa.tracker = FaceTracker(cfg.tracking())  # photos are unrelated: no tracking across them
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            s = anonymize_image(f, target, cfg, overwrite=overwrite, frame_anonymizer=fa)
        except InputError as exc:
            total.warnings.append(str(exc))
            continue
        total.frames_read += 1
        total.frames_written += 1
        total.faces_covered += s.faces_covered
        total.faces_detected += s.faces_detected
        total.tracks += s.tracks
        total.frames_with_fallback += s.frames_with_fallback
        total.faces_filtered += s.faces_filtered
        total.stage_errors += s.stage_errors
        total.warnings += s.warnings
        if progress is not None:
            progress(i + 1, len(files))
    total.seconds = time.perf_counter() - t0
    return total


def anonymize_path(src: str | Path, dst: str | Path, cfg: PipelineConfig | None = None, **kwargs) -> RunSummary:
    """Dispatches on the input: a folder of images, an image, or a video."""
    src = Path(src)
    if src.suffix.lower() in HEIF_SUFFIXES and not src.is_dir():
        check_readable(src)
        raise InputError(f"{src}: a HEIF photo cannot be read: {HEIF_ADVICE}")
    if src.is_dir() or src.suffix.lower() in IMAGE_SUFFIXES:
        tracks = kwargs.pop("tracks_path", None)
        if src.is_dir():
            summary = anonymize_directory(
                src, dst, cfg, overwrite=kwargs.get("overwrite", False), progress=kwargs.get("progress")
            )
        else:
            summary = anonymize_image(src, dst, cfg, overwrite=kwargs.get("overwrite", False))
        if tracks is not None:
            summary.warnings.append(f"--tracks is for videos; no tracks file written for {src}")
        if cfg is not None and cfg.encode.keep_metadata:
            summary.warnings.append("--keep-metadata is for videos; photos are written without metadata")
        return summary
    return anonymize_video(src, dst, cfg, **kwargs)
