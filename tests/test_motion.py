"""Motion stabilization: faces carried from frame to frame by their own image motion
(`vidanon.track.motion`), the detector correcting slowly (`FaceTracker`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import decode_rgb
from vidanon.config import TrackConfig
from vidanon.synth import photo, write_frames
from vidanon.track.motion import face_motion, move_face, to_gray
from vidanon.track.tracker import LANDMARK_SNAP, FaceTracker
from vidanon.types import DETECTED, PREDICTED, FaceDetections

SIZE = (480, 270)


def _view(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(img, m, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float], centre=(240.0, 135.0)) -> np.ndarray:
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    m[:, 2] += shift
    return m


def _then(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 transform `b` after `a`."""
    return (np.vstack([b, [0, 0, 1]]) @ np.vstack([a, [0, 0, 1]]))[:2]


@pytest.fixture(scope="module")
def still(detector):
    """A 480x270 view of a real photo and the faces YuNet finds in it."""
    frame = cv2.resize(photo("faceapi-sample1.jpg"), SIZE, interpolation=cv2.INTER_AREA)
    faces = detector.detect(frame)
    assert len(faces) >= 3
    return frame, faces


def test_face_motion_recovers_a_known_similarity(still):
    frame, faces = still
    truth = _similarity(1.5, 1.03, (2.3, -1.7))
    moved = _view(frame, truth)
    prev, cur = to_gray(frame), to_gray(moved)
    for i in range(len(faces)):
        m = face_motion(prev, cur, faces.xyxy[i])
        assert m is not None
        lm = faces.landmarks[i].astype(np.float64)
        err = np.abs(move_face(m, faces.xyxy[i].astype(np.float64), lm)[1] - (lm @ truth[:, :2].T + truth[:, 2]))
        assert err.max() < 0.35, err  # sub-pixel: the detector's own noise is ~2% of the face (1-2 px here)


def test_face_motion_gives_up_on_a_flat_or_tiny_region(still):
    frame, faces = still
    flat = np.full(frame.shape[:2], 128, np.uint8)
    assert face_motion(flat, flat, faces.xyxy[0]) is None
    gray = to_gray(frame)
    assert face_motion(gray, gray, np.array([10, 10, 14, 14])) is None  # too small to follow
    assert face_motion(gray, gray, np.array([-90, -90, -10, -10])) is None  # off the frame


def test_move_face_carries_landmarks_exactly_and_keeps_the_box_upright():
    m = _similarity(30.0, 2.0, (5.0, -3.0), centre=(0.0, 0.0))
    box = np.array([10.0, 20.0, 50.0, 80.0])
    lm = np.array([[20, 40], [40, 40], [30, 55], [22, 65], [38, 65]], np.float64)
    box2, lm2 = move_face(m, box, lm)
    assert lm2 == pytest.approx(lm @ m[:, :2].T + m[:, 2])
    c = m[:, :2] @ np.array([30.0, 50.0]) + m[:, 2]
    assert box2 == pytest.approx([c[0] - 40, c[1] - 60, c[0] + 40, c[1] + 60])


def _handheld_clip(tmp_path, n: int = 30):
    """A real encoded clip of a photo under a slow hand-held drift (sub-pixel to 1.5 px per
    frame, a little rotation and zoom) with a fast swing at frames 20-22; and the true
    frame-to-frame transforms."""
    img = cv2.resize(photo("faceapi-sample1.jpg"), SIZE, interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(3)
    frames, steps = [], []
    m = np.eye(3)[:2]
    for t in range(n):
        step = _similarity(rng.normal(0, 0.15), 1 + rng.normal(0, 0.002), tuple(rng.normal(0, 0.7, 2)))
        if 20 <= t < 23:
            step = _similarity(0.0, 1.0, (14.0, 3.0))
        if t:
            m = _then(m, step)
            steps.append(step)
        frames.append(_view(img, m))
    path = write_frames(tmp_path / "handheld.mp4", frames, fps=25, crf=18, audio=True)
    return decode_rgb(path), steps


def _track(frames, detector, cfg: TrackConfig, with_frames: bool = True):
    tr = FaceTracker(cfg)
    raws, outs = [], []
    for k, rgb in enumerate(frames):
        dets = detector.detect(rgb)
        raws.append(dets)
        outs.append(tr.update(dets, k, frame=rgb if with_frames else None))
    return tr, raws, outs


def _jitter(outs: list[FaceDetections], steps: list[np.ndarray], frames=range(1, 20)) -> float:
    """RMS (px) of each track's landmark step minus the true image step, over `frames`."""
    res = []
    for t in frames:
        prev = {int(i): k for k, i in enumerate(outs[t - 1].track_id)}
        for k, tid in enumerate(outs[t].track_id):
            j = prev.get(int(tid))
            if j is None:
                continue
            lm0 = outs[t - 1].landmarks[j].astype(np.float64)
            truth = lm0 @ steps[t - 1][:, :2].T + steps[t - 1][:, 2]
            res.append(outs[t].landmarks[k] - truth)
    assert len(res) > 40
    return float(np.sqrt(np.mean(np.square(res))))


@pytest.fixture(scope="module")
def handheld(tmp_path_factory, detector):
    frames, steps = _handheld_clip(tmp_path_factory.mktemp("motion"))
    runs = {
        "motion": _track(frames, detector, TrackConfig()),
        "one-euro": _track(frames, detector, TrackConfig(motion=False)),
        "raw": _track(frames, detector, TrackConfig(smoothing=False)),
    }
    return frames, steps, runs


def test_motion_makes_the_landmarks_move_with_the_image(handheld):
    """The point of the whole thing: a tracked face's landmarks step with the image, not with
    the detector's noise, far closer than the One-Euro filter (which lags and jitters)."""
    _, steps, runs = handheld
    jitter = {name: _jitter(outs, steps) for name, (_, _, outs) in runs.items()}
    assert runs["motion"][0].motion_steps > 40
    assert runs["one-euro"][0].motion_steps == 0
    assert jitter["motion"] < 0.6 * jitter["one-euro"], jitter
    assert jitter["motion"] < 0.35 * jitter["raw"], jitter


def test_motion_never_lets_the_box_fall_behind_the_detection(handheld):
    """Fail closed: in every frame, also through the fast swing, each detected face's box
    lies inside its output box grown by the 6% snap slack (a box that runs out grows to hold it),
    and no landmark strays further than LANDMARK_SNAP of the face's size from its detection."""
    _, _, runs = handheld
    _, raws, outs = runs["motion"]
    for raw, out in zip(raws, outs):
        assert len(out) >= len(raw)
        for i in range(len(raw)):
            o = out.xyxy[i].astype(np.float64)
            pad = np.array([-1, -1, 1, 1]) * np.tile(o[2:] - o[:2], 2) * 0.06 + np.array([-1e-3, -1e-3, 1e-3, 1e-3])
            r = raw.xyxy[i]
            assert np.all(r[:2] >= (o + pad)[:2]) and np.all(r[2:] <= (o + pad)[2:])
            # and the landmarks (where the generated face goes) stay on the detected ones
            size = float(max(r[2] - r[0], r[3] - r[1]))
            assert np.abs(out.landmarks[i] - raw.landmarks[i]).max() <= LANDMARK_SNAP * size + 1e-3
    # the swing (14 px per frame) is followed within the frame it happens in
    for t in (21, 22):
        shift = outs[t].xyxy[: len(raws[t]), 0] - outs[t - 1].xyxy[: len(raws[t]), 0]
        assert np.median(shift) > 10


def test_a_detected_box_that_jumps_alone_grows_the_box_and_keeps_the_landmarks(handheld, detector):
    """When only the detector's box jumps (here: a fifth wider and taller) while its landmarks
    agree with the image motion, the output box grows to hold it (fail closed) and the
    landmarks, where the generated face goes, do not move with it (they used to snap to the
    detection's, moving the face: placement.py's largest steps)."""
    frames, _, _ = handheld

    def run(jump_at: int) -> tuple[FaceDetections, FaceDetections]:
        tr = FaceTracker(TrackConfig())
        for k in range(6):
            dets = detector.detect(frames[k])
            if k == jump_at:
                b = dets.xyxy.astype(np.float64)
                b[:, 2:] += 0.2 * (b[:, 2:] - b[:, :2])
                dets = FaceDetections(b.astype(np.float32), dets.score, dets.landmarks, dets.track_id, dets.state)
            out = tr.update(dets, k, frame=frames[k])
        return dets, out

    _, steady = run(-1)
    dets, out = run(5)
    n = len(dets)
    assert n >= 2
    for i in range(n):
        o, r = out.xyxy[i].astype(np.float64), dets.xyxy[i].astype(np.float64)
        assert np.all(o[:2] <= r[:2] + 1e-3) and np.all(o[2:] >= r[2:] - 1e-3)
    assert np.abs(out.landmarks[:n] - steady.landmarks[:n]).max() < 1e-3
    assert np.abs(steady.landmarks[:n] - dets.landmarks).max() > 0.1  # a snap would have shown


def test_an_undetected_face_is_carried_by_its_image_motion(handheld, detector):
    """A face the detector misses for two frames is placed by its own image motion from where
    it was last placed (its landmarks step with the image, as a detected face's do), and its box
    holds the tracker's prediction too; without the frames it falls back to the prediction."""
    frames, steps, _ = handheld
    tr = FaceTracker(TrackConfig())
    outs = []
    for k in range(12):
        dets = detector.detect(frames[k]) if k < 10 else FaceDetections.empty()
        outs.append(tr.update(dets, k, frame=frames[k]))
    n = len(outs[9])
    assert n >= 2 and len(outs[10]) == len(outs[11]) == n
    assert set(tr.carried) == set(int(t) for t in outs[11].track_id)
    for k in (10, 11):
        assert (outs[k].state == PREDICTED).all()
        truth = outs[k - 1].landmarks.astype(np.float64) @ steps[k - 1][:, :2].T + steps[k - 1][:, 2]
        assert np.sqrt(np.mean(np.square(outs[k].landmarks - truth))) < 0.5
    blind = FaceTracker(TrackConfig())
    for k in range(11):
        out = blind.update(detector.detect(frames[k]) if k < 10 else FaceDetections.empty(), k)
    assert blind.carried == {} and (out.state == PREDICTED).all()


def test_no_motion_step_across_a_cut_or_without_frames(handheld, detector):
    frames, _, _ = handheld
    tr = FaceTracker(TrackConfig())
    for k in range(3):
        tr.update(detector.detect(frames[k]), k, frame=frames[k])
    before = tr.motion_steps
    assert before > 0
    tr.update(detector.detect(frames[3]), 3, scene_cut=True, frame=frames[3])
    assert tr.motion_steps == before  # nothing to follow across a cut
    tr.update(detector.detect(frames[4]), 4, frame=frames[4])
    assert tr.motion_steps > before  # and it resumes after it
    tr2, _, _ = _track(frames[:4], detector, TrackConfig(), with_frames=False)
    assert tr2.motion_steps == 0


@pytest.mark.parametrize("gain", [0.0, -0.1, 1.5])
def test_motion_gain_is_checked(gain):
    with pytest.raises(ValueError, match="motion_gain"):
        TrackConfig(motion_gain=gain)


def test_handheld_frames_move_like_a_camera_and_repeat_by_seed():
    from vidanon.synth import handheld_frames

    img = photo("faceapi-sample3.jpg")
    a = handheld_frames(img, 4, (160, 90), seed=1, swing=(2, 3))
    assert len(a) == 4 and all(f.shape == (90, 160, 3) and f.dtype == np.uint8 for f in a)
    assert all(np.abs(x.astype(int) - y).mean() > 1 for x, y in zip(a, a[1:]))  # every frame moves
    assert all(np.array_equal(x, y) for x, y in zip(a, handheld_frames(img, 4, (160, 90), seed=1, swing=(2, 3))))
    assert not np.array_equal(a[1], handheld_frames(img, 2, (160, 90), seed=2, swing=(2, 3))[1])


def test_face_motion_refuses_pixels_that_move_incoherently():
    """Noise that changes completely between frames: LK follows something, but no similarity
    explains most of it, so there is no estimate (the tracker then falls back to One-Euro)."""
    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.integers(0, 256, (270, 480), dtype=np.uint8), (0, 0), 1.5)
    b = cv2.GaussianBlur(rng.integers(0, 256, (270, 480), dtype=np.uint8), (0, 0), 1.5)
    assert face_motion(a, a, np.array([200, 100, 280, 190])) is not None  # textured: followed when still
    assert face_motion(a, b, np.array([200, 100, 280, 190])) is None


def test_the_pipeline_turns_motion_on_for_gan_mode_and_feeds_it_frames(handheld, detector):
    from vidanon.config import CoverConfig, PipelineConfig
    from vidanon.pipeline import FrameAnonymizer

    assert PipelineConfig(cover=CoverConfig(mode="gan")).track.motion is True
    assert PipelineConfig(cover=CoverConfig(mode="blur")).track.motion is False
    assert PipelineConfig(cover=CoverConfig(mode="blur"), track=TrackConfig(motion=True)).track.motion is True
    assert PipelineConfig(cover=CoverConfig(mode="gan"), track=TrackConfig(motion=False)).track.motion is False
    frames, _, _ = handheld
    for motion, expect in ((True, True), (False, False)):
        fa = FrameAnonymizer(PipelineConfig(track=TrackConfig(motion=motion)), detector=detector)
        for k in range(4):
            fa.locate(frames[k], k)
        assert (fa.tracker.motion_steps > 0) == expect


@pytest.mark.parametrize(
    "args, field, expect",
    [
        ([], "motion", False),
        (["--mode", "gan"], "motion", True),
        (["--motion"], "motion", True),
        (["--mode", "gan", "--no-motion"], "motion", False),
        (["--mode", "gan"], "motion_gain", TrackConfig().motion_gain),
        (["--mode", "gan", "--motion-gain", "0.2"], "motion_gain", 0.2),
    ],
)
def test_cli_tracking_options_reach_the_tracker_config(monkeypatch, tmp_path, args, field, expect):
    from typer.testing import CliRunner

    import vidanon.pipeline
    from vidanon.cli import app
    from vidanon.errors import InputError

    seen = {}

    def capture(src, dst, cfg, **kwargs):  # the pipeline's stand-in: this test is about option parsing
        seen["cfg"] = cfg
        raise InputError("stop here")

    monkeypatch.setattr(vidanon.pipeline, "anonymize_path", capture)
    res = CliRunner().invoke(app, ["anonymize", "in.mp4", str(tmp_path / "out.mp4"), "-q", *args])
    assert res.exit_code == 2 and getattr(seen["cfg"].track, field) == expect


def _step_error(outs: list[FaceDetections], steps: list[np.ndarray], gap: int, frames) -> float:
    """RMS (px) of each detected face's landmark step over `gap` frames minus the true image step."""
    res = []
    for t in frames:
        prev = {int(i): k for k, i in enumerate(outs[t - gap].track_id) if outs[t - gap].state[k] == DETECTED}
        for k, tid in enumerate(outs[t].track_id):
            j = prev.get(int(tid))
            if j is None or outs[t].state[k] != DETECTED:
                continue
            truth = outs[t - gap].landmarks[j].astype(np.float64)
            for s in steps[t - gap : t]:
                truth = truth @ s[:, :2].T + s[:, 2]
            res.append(outs[t].landmarks[k] - truth)
    assert len(res) > 15
    return float(np.sqrt(np.mean(np.square(res))))


def test_motion_follows_a_face_detected_every_other_frame(handheld, detector):
    """--detect-every 2: a face is carried by image motion from its detection two frames back
    (MOTION_MAX_GAP), so the detected frames step with the image as closely as when every frame
    is detected; before, motion needed consecutive detections and every 2 fell back to One-Euro."""
    frames, steps, _ = handheld
    runs = {}
    for name, cfg in (("motion", TrackConfig()), ("one-euro", TrackConfig(motion=False))):
        tr = FaceTracker(cfg)
        outs = []
        for k, rgb in enumerate(frames):
            dets = detector.detect(rgb) if k % 2 == 0 else FaceDetections.empty()
            outs.append(tr.update(dets, k, frame=rgb))
        runs[name] = (tr, outs)
    assert runs["motion"][0].motion_steps > 20 and runs["one-euro"][0].motion_steps == 0
    err = {name: _step_error(outs, steps, 2, range(2, 20, 2)) for name, (_, outs) in runs.items()}
    assert err["motion"] < 0.6 * err["one-euro"], err


def test_handheld_points_say_where_photo_points_show():
    """The hand-held clip's known motion (the truth of benchmarks/placement.py): marks drawn
    on the photo show in the rendered views where `handheld_points` puts them, to a fraction
    of a pixel, while the camera drifts, rolls, zooms, swings and warps them by tens of pixels."""
    from vidanon.synth import handheld_frames, handheld_motion, handheld_points

    img = np.full((480, 640, 3), 90, np.uint8)
    marks = np.array([[250.0, 190.0], [390.0, 215.0], [320.0, 300.0], [280.0, 260.0]])  # inside every view
    for x, y in marks:
        cv2.circle(img, (int(x), int(y)), 6, (255, 0, 0), -1)  # centred on the pixel centre (x, y)
    n = 75
    frames, motion = handheld_frames(img, n), handheld_motion(img.shape[:2], n)
    for t in (0, 30, 74):
        red = (frames[t][..., 0].astype(int) - frames[t][..., 1]).clip(0)
        for p in handheld_points(marks, motion[t]):
            x0, y0 = int(p[0]) - 12, int(p[1]) - 12
            win = red[max(0, y0) : y0 + 25, max(0, x0) : x0 + 25].astype(float)
            yy, xx = np.mgrid[max(0, y0) : y0 + 25, max(0, x0) : x0 + 25]
            c = np.array([(xx * win).sum(), (yy * win).sum()]) / win.sum()
            assert np.linalg.norm(c - p) < 0.5, (t, c, p)
    assert np.linalg.norm(handheld_points(marks, motion[74]) - handheld_points(marks, motion[0]), axis=1).min() > 20
