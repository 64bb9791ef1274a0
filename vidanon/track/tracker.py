"""Face tracker on top of norfair: the only module that imports norfair.

`FaceTracker.update(dets, frame_index)` returns every face to cover in that
frame, with a persistent `track_id`:

- every detection, whatever its track's state (a new track is covered from its
  first frame: tracks start with no initialization delay);
- every track that the detector missed for at most `hold_frames` frames, at its
  predicted position, grown a little per missed frame (state PREDICTED). Given
  the frames, such a face is also carried by its own image motion from where it
  was placed in the previous frame, for as long as that motion can be followed:
  its landmarks go there, and its box grows to hold the carried face as well
  (`carried` has the carried boxes of the last update).

Boxes and landmarks are smoothed per track. Given the frame, a face detected
in consecutive frames is carried by its own image motion (`track.motion`: the
previous frame's box and landmarks moved by the similarity its pixels moved
by) and pulled towards the detection by `motion_gain` of the gap: the detector
is the slow correction, the image the fast one. Otherwise (no frame, a face
whose motion cannot be followed, the first frame after a gap) a One-Euro
filter smooths the detections. Either way, when the detected landmarks run away
from the result (fast motion, a turn), it snaps to the detection; when only the
detected box runs out of the result's, the One-Euro result snaps and the
motion-carried one grows its box to hold the detection, keeping its landmarks:
the covered region never lags behind the face. A detection that reads its
track's face upside down (a turned pass's misreading) gives the track its box
but not its landmarks, unless it is surer than the track's reading
(FLIP_MARGIN).
"""

from __future__ import annotations

import numpy as np
from norfair import Detection, Tracker

from vidanon.config import TrackConfig
from vidanon.detect.turn import face_down
from vidanon.metrics.tracks import iou_matrix
from vidanon.track.motion import face_motion, move_face, to_gray
from vidanon.track.smooth import OneEuro
from vidanon.types import DETECTED, PREDICTED, FaceDetections, box_union

WEAK_IOU = 0.3
"""A detection scoring under the detector's threshold continues a track whose place it overlaps by
this IoU or more (`FaceTracker.update`'s `weak`); elsewhere it is dropped."""

LANDMARK_SNAP = 0.1
"""A smoothed landmark further than this share of the face's size from its detection snaps
to it (the detector's own noise stays under 0.075 on the samples: p99 0.066)."""

MOTION_MAX_GAP = 2
"""Image motion carries a face from its last detection at most this many frames back (1: the
previous frame; 2 also covers --detect-every 2 and a single missed frame)."""

CUT_HOLD_FRAMES = 2
"""After a scene cut, tracks not seen again are held this many more frames at most."""

FLIP_MARGIN = 0.03
FLIP_DECAY = 0.02
"""A detection that reads a track's face upside down (its line from eyes to mouth more than 90
degrees from the track's) keeps the track's landmarks, moved to its box, unless it scores
FLIP_MARGIN more than the track's reading: the score of the last detection that agreed with
the track, less FLIP_DECAY for each detection since that read the face the other way. A face
does not turn over between two detections; a turned pass does read one upside down: on a face
lying on its side (`benchmarks/stress.py` lying, --detect-every 2) the 270-degree turn found at
0.69, eyes where the mouth is, the face that the 90-degree turn had found at 0.92 two frames
before; on a face spinning by 12 degrees a frame (stress spinning) the upright pass read one
at 0.87-0.90 at 150 degrees from its true roll for three frames in a row, its track's own
reading 0.93. The decay lets a track that began with such a reading turn to the right one
(a few frames of readings 0.05 below it)."""


class _TrackState:
    def __init__(self, cfg: TrackConfig) -> None:
        self.filter = OneEuro(cfg.min_cutoff, cfg.beta)
        self.missed = 0  # counts towards hold_frames (a scene cut jumps it near the end)
        self.unseen = 0  # frames since the last detection: how far the held box grows
        self.last_box: np.ndarray | None = None
        # (5, 2) as output at the last detection: what image motion moves, and where a
        # prediction puts the landmarks (at the same place relative to its box)
        self.last_lm: np.ndarray | None = None
        # (frame index, box, landmarks) where the face was last placed, by a detection or by
        # image motion while undetected: what image motion carries on (None: not followed)
        self.carry: tuple[int, np.ndarray, np.ndarray] | None = None
        self.sure = 0.0  # score of the last detection whose landmarks the track took (FLIP_MARGIN)


def _contains(outer: np.ndarray, inner: np.ndarray, slack: float) -> bool:
    w, h = outer[2] - outer[0], outer[3] - outer[1]
    pad = np.array([-w, -h, w, h]) * slack
    o = outer + pad
    return bool(inner[0] >= o[0] and inner[1] >= o[1] and inner[2] <= o[2] and inner[3] <= o[3])


class FaceTracker:
    """Assigns persistent ids and holds missed faces (fail closed)."""

    def __init__(self, cfg: TrackConfig | None = None) -> None:
        self.cfg = cfg or TrackConfig()
        # norfair counts a track's hits up and its misses down and drops it below zero; a new
        # track starts at `period` and each hit adds 2 * period (at most hit_counter_max). With
        # period 1 a track seen once was dropped after 2 misses, whatever hold_frames said (and
        # with --detect-every 3 every detection began a new track). With period = the cap, any
        # hit refills the counter: norfair keeps a track hold_frames + 1 frames after its last
        # detection, and the hold below decides what is covered.
        self._period = max(self.cfg.hold_frames, 1) + 1
        self._tracker = Tracker(
            distance_function="iou",
            distance_threshold=self.cfg.distance_threshold,
            hit_counter_max=self._period,
            initialization_delay=0,
        )
        self._states: dict[int, _TrackState] = {}
        self.new_ids: list[int] = []
        # grey frames of the last MOTION_MAX_GAP frames since the last cut, by frame index: motion
        # is followed from a face's last detection, which with --detect-every 2 is 2 frames back
        self._grays: dict[int, np.ndarray] = {}
        self.motion_steps = 0  # detections placed by image motion (the rest by the One-Euro filter)
        self.flips_kept = 0  # detections read upside down whose landmarks were not taken (FLIP_MARGIN)
        # the last update's undetected tracks placed by image motion: track id -> the carried box
        self.carried: dict[int, np.ndarray] = {}

    def update(
        self,
        dets: FaceDetections,
        frame_index: int,
        scene_cut: bool = False,
        frame: np.ndarray | None = None,
        weak: float = 0.0,
    ) -> FaceDetections:
        """Matches `dets` to tracks and adds held predictions.

        Args:
            dets: this frame's detections.
            frame_index: for callers' bookkeeping.
            scene_cut: the picture changed completely since the last frame: tracks
                not detected in this frame are held for at most CUT_HOLD_FRAMES more
                frames (their places belong to the previous shot, and covering them
                would paint over the new one; a short hold still covers a flash).
            frame: this frame, (h, w, 3) uint8 RGB, for motion stabilization
                (`TrackConfig.motion`); without it, or for a face whose motion
                cannot be followed, the One-Euro filter alone smooths.
            weak: detections scoring under this only continue a track: each is kept
                where it overlaps a track's place (IoU >= WEAK_IOU), else dropped. A
                face the detector sees near its threshold (dim, noisy, blurred) scores
                above and below it from frame to frame; its track, held only from its
                last sure detection, ran out while the face was still there (a dim
                face bare at a frame `--detect-every 2` skipped: `benchmarks/stress.py`
                dim_noisy). Such detections start no track, so they add no false faces
                of their own.
        """
        if weak > 0 and len(dets):
            dets = dets[self._continuing(dets, weak)]
        gray = to_gray(frame) if frame is not None and self.cfg.smoothing and self.cfg.motion is not False else None
        if scene_cut or gray is None:
            self._grays.clear()
        grays = self._grays
        if gray is not None:
            grays[frame_index] = gray
            for old in [k for k in grays if k < frame_index - MOTION_MAX_GAP]:
                del grays[old]
        norfair_dets = [
            Detection(points=dets.xyxy[i].reshape(2, 2).astype(np.float64), data=i) for i in range(len(dets))
        ]
        self._tracker.update(norfair_dets, period=self._period)
        matched: dict[int, int] = {}  # det index -> track id
        predicted: list[tuple[int, np.ndarray]] = []
        current = {id(d) for d in norfair_dets}
        alive = set()
        for obj in self._tracker.tracked_objects:
            tid = obj.id if obj.id is not None else None
            if tid is None:
                continue
            alive.add(tid)
            if id(obj.last_detection) in current:
                matched[obj.last_detection.data] = tid
            else:
                predicted.append((tid, obj.estimate.reshape(4)))
        self.new_ids = [t for t in matched.values() if t not in self._states]
        for tid in list(self._states):
            if tid not in alive:
                del self._states[tid]

        n = len(dets)
        xyxy = dets.xyxy.copy()
        lms = dets.landmarks.copy()
        tids = np.full(n, -1, np.int64)
        for i in range(n):
            tid = matched.get(i)
            if tid is None:  # cannot happen with initialization_delay=0; keep covering anyway
                continue
            tids[i] = tid
            st = self._states.setdefault(tid, _TrackState(self.cfg))
            st.missed = st.unseen = 0
            raw_box = dets.xyxy[i].astype(np.float64)
            lms[i] = self._oriented(st, raw_box, dets.landmarks[i], float(dets.score[i]))
            if self.cfg.smoothing:
                vec = np.concatenate([raw_box, lms[i].reshape(-1)])
                size = float(max(raw_box[2] - raw_box[0], raw_box[3] - raw_box[1], 1.0))
                moved = _follow(st, grays, gray, frame_index, MOTION_MAX_GAP)
                carried = moved is not None
                if carried:
                    # where last frame's face moved with the image, pulled slowly towards the detection
                    pred = np.concatenate([moved[0], moved[1].reshape(-1)])
                    sm = st.filter.reset(pred + self.cfg.motion_gain * (vec - pred))
                    self.motion_steps += 1
                else:
                    sm = st.filter(vec, scale=size)
                if np.abs(sm[4:] - vec[4:]).max() > LANDMARK_SNAP * size:
                    sm = st.filter.reset(vec)  # the face turned or changed: follow the detection
                elif not _contains(sm[:4], raw_box, 0.06):
                    if not carried:
                        sm = st.filter.reset(vec)  # the filter lags behind: snap, never expose the face edge
                    else:
                        # the detected box runs out of the motion-carried one (the detector's box
                        # alone grew or jumped): the box grows to hold it, so the covered region
                        # never lags behind the face, and the landmarks, which agree with the
                        # detection, stay where the image motion put them. Snapping them to the
                        # detection too moved the face by 4.7 px a time on the hand-held clip
                        # (benchmarks/placement.py: error change p95 1.05 -> 0.63 px).
                        sm = st.filter.reset(np.concatenate([box_union(sm[:4], raw_box), sm[4:]]))
                xyxy[i] = sm[:4]
                lms[i] = sm[4:].reshape(5, 2)
            st.last_box = xyxy[i].astype(np.float64)
            st.last_lm = lms[i].astype(np.float64)
            st.carry = (frame_index, st.last_box, st.last_lm)

        self.carried = {}
        p_xyxy, p_lm, p_tid = [], [], []
        for tid, est in predicted:
            st = self._states.get(tid)
            if st is None or st.last_box is None:
                continue
            st.missed += 1
            st.unseen += 1
            if scene_cut:  # hold a little longer (a flash is not a cut), not the full hold
                st.missed = max(st.missed, self.cfg.hold_frames - CUT_HOLD_FRAMES + 1)
            if st.missed > self.cfg.hold_frames:
                continue
            box = np.array([min(est[0], est[2]), min(est[1], est[3]), max(est[0], est[2]), max(est[1], est[3])])
            # the prediction may drift: keep it at least as large as the last seen face, then grow it
            c = (box[:2] + box[2:]) / 2
            half = np.maximum((box[2:] - box[:2]) / 2, (st.last_box[2:] - st.last_box[:2]) / 2)
            half *= 1.0 + self.cfg.hold_growth * st.unseen
            box = np.concatenate([c - half, c + half])
            rel = (st.last_lm - st.last_box[:2]) / np.maximum(st.last_box[2:] - st.last_box[:2], 1.0)
            lm = box[:2] + rel * (box[2:] - box[:2])
            # from the previous frame only; when it cannot be followed, nothing is carried on and
            # the next detection within MOTION_MAX_GAP of the last placement still starts from it
            carried = _follow(st, grays, gray, frame_index, 1)
            if carried is not None:
                st.carry = (frame_index, *carried)
                # followed by its own image motion: the landmarks go there, and the box also holds
                # the carried face's (the cover only grows)
                cbox, lm = carried
                box = box_union(box, cbox)
                self.carried[tid] = cbox
            p_xyxy.append(box)
            p_lm.append(lm)
            p_tid.append(tid)
            st.filter.reset(np.concatenate([box, p_lm[-1].reshape(-1)]))

        out = FaceDetections(xyxy, dets.score, lms, tids, np.full(n, DETECTED, np.int8))
        if p_tid:
            pred = FaceDetections(
                np.array(p_xyxy, np.float32),
                np.zeros(len(p_tid), np.float32),
                np.array(p_lm, np.float32),
                np.array(p_tid, np.int64),
                np.full(len(p_tid), PREDICTED, np.int8),
            )
            out = FaceDetections.concat([out, pred])
        return out

    def _oriented(self, st: _TrackState, box: np.ndarray, lm: np.ndarray, score: float) -> np.ndarray:
        """The landmarks a detection gives its track: its own, or where it reads the face upside
        down against the track, less sure than the track's reading (FLIP_MARGIN), the track's
        landmarks moved from where it was last placed to the detection's box."""
        place = st.carry[1:] if st.carry is not None else (st.last_box, st.last_lm)
        if place[1] is None or not _flipped(place[1], lm) or score > st.sure + FLIP_MARGIN:
            st.sure = score
            return lm
        st.sure -= FLIP_DECAY
        self.flips_kept += 1
        old_box, old_lm = place
        rel = (old_lm - old_box[:2]) / np.maximum(old_box[2:] - old_box[:2], 1.0)
        return (box[:2] + rel * (box[2:] - box[:2])).astype(lm.dtype)

    def _continuing(self, dets: FaceDetections, weak: float) -> np.ndarray:
        """Indices of `dets` that score `weak` or more, or overlap a live track's place."""
        low = dets.score < weak
        places = [o.estimate.reshape(4) for o in self._tracker.tracked_objects if o.id is not None]
        if not low.any() or not places:
            return np.flatnonzero(~low)
        near = iou_matrix(dets.xyxy, np.array(places, np.float32)).max(axis=1) >= WEAK_IOU
        return np.flatnonzero(~low | near)


def _flipped(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two faces' (5, 2) landmarks run from eyes to mouth more than 90 degrees apart."""
    return float(np.dot(face_down(a), face_down(b))) < 0


def _follow(
    st: _TrackState, grays: dict[int, np.ndarray], gray: np.ndarray | None, frame_index: int, max_gap: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """A face's (box, landmarks) in this frame, moved by its image motion from where it was last
    placed (`_TrackState.carry`) at most `max_gap` frames back; None without this frame or that
    one, or when the motion cannot be followed (an occluder, the face gone)."""
    c = st.carry
    if gray is None or c is None or not 0 < frame_index - c[0] <= max_gap or c[0] not in grays:
        return None
    m = face_motion(grays[c[0]], gray, c[1])
    return None if m is None else move_face(m, c[1], c[2])
