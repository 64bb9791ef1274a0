"""Unit tests of the measuring parts: SFace helpers, flicker, tracks, accumulator, plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _media import load_rgb, photos_or_skip  # noqa: E402

from vidanon.errors import InputError, OutputError  # noqa: E402
from vidanon.metrics.bench import BenchConfig, _Accumulator  # noqa: E402
from vidanon.metrics.flicker import FlickerMeter, backward_flow, box_mask, warp  # noqa: E402
from vidanon.metrics.plot import render_plot, write_plot  # noqa: E402
from vidanon.metrics.sface import SFace, cosine, cosine_matrix, normalize, yunet_rows  # noqa: E402
from vidanon.metrics.tracks import GreedyIouTracker, greedy_match, iou_matrix, load_tracks  # noqa: E402
from vidanon.types import PREDICTED, FaceDetections  # noqa: E402

# ---------------------------------------------------------------- SFace


@pytest.fixture(scope="module")
def people():
    """Two photos with their YuNet faces."""
    from vidanon.detect.yunet import YuNetDetector

    det = YuNetDetector()
    out = []
    for p in photos_or_skip()[:2]:
        im = load_rgb(p, 960)
        out.append((im, det.detect(im)))
    return out


@pytest.fixture(scope="module")
def sface():
    return SFace()


def test_yunet_rows_layout():
    faces = FaceDetections(np.array([[10, 20, 50, 80]], np.float32), np.array([0.8], np.float32))
    row = yunet_rows(faces)[0]
    assert row.shape == (15,)
    np.testing.assert_allclose(row[:4], [10, 20, 40, 60])
    np.testing.assert_allclose(row[4:14], faces.landmarks.reshape(-1))
    assert row[14] == pytest.approx(0.8)
    assert yunet_rows(FaceDetections.empty()).shape == (0, 15)


def test_embed_identities(people, sface):
    im, faces = people[0]
    assert len(faces) >= 2
    emb = sface.embed(im, faces)
    assert emb.shape == (len(faces), 128) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # the same faces at another scale are the same people; different people are not
    small = cv2.resize(im, (im.shape[1] * 2 // 3, im.shape[0] * 2 // 3), interpolation=cv2.INTER_AREA)
    emb_small = sface.embed(small, faces.scaled(2 / 3))
    sims = cosine_matrix(emb, emb_small)
    assert np.all(np.diag(sims) > 0.6)
    off = sims[~np.eye(len(faces), dtype=bool)]
    assert np.all(off < 0.363)
    assert sface.embed(im, FaceDetections.empty()).shape == (0, 128)
    assert sface.align(im, faces[0])[0].shape == (112, 112, 3)
    with pytest.raises(ValueError, match="uint8"):
        sface.embed(im.astype(np.float32), faces)


def test_cosine_matches_opencv(people, sface):
    from vidanon.detect.yunet import SFACE_FILE, packaged_model

    im, faces = people[0]
    net = cv2.FaceRecognizerSF.create(str(packaged_model(SFACE_FILE)), "")
    bgr = np.ascontiguousarray(im[:, :, ::-1])
    rows = yunet_rows(faces)
    f0, f1 = (net.feature(net.alignCrop(bgr, rows[k])) for k in (0, 1))
    emb = sface.embed(im, faces[[0, 1]])
    assert cosine(emb[0], emb[1]) == pytest.approx(net.match(f0, f1, cv2.FaceRecognizerSF_FR_COSINE), abs=1e-4)


def test_cosine_helpers():
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    b = np.array([[3.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(cosine(a, b), [1.0, 0.0], atol=1e-6)
    assert isinstance(cosine(a[0], b[0]), float)
    np.testing.assert_allclose(cosine_matrix(a, b), [[1.0, 0.8], [0.6, 0.0]], atol=1e-6)
    np.testing.assert_allclose(normalize(np.zeros((1, 4))), 0.0)


# ---------------------------------------------------------------- flicker


def _texture(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)


def test_flow_and_warp_follow_a_shift():
    big = _texture(140, 200)
    prev, cur = big[10:130, 20:180], big[10:130, 17:177]  # content moved 3 px right
    g = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)  # noqa: E731
    flow = backward_flow(g(cur), g(prev), max_side=80)
    assert flow.shape == (120, 160, 2)
    inner = flow[30:90, 40:120]
    assert np.median(inner[..., 0]) == pytest.approx(-3.0, abs=0.5)  # cur(x) = prev(x - 3)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.5)
    roi = (40, 30, 120, 90)
    warped = warp(prev, flow, roi)
    plain = np.abs(cur[30:90, 40:120].astype(int) - prev[30:90, 40:120]).mean()
    assert np.abs(cur[30:90, 40:120].astype(int) - warped).mean() < plain / 3
    with pytest.raises(ValueError):
        backward_flow(g(cur), g(prev)[:-1])


def test_box_mask_clips():
    m = box_mask((10, 10), np.array([[-5, -5, 4, 4], [8, 8, 20, 20]]), scale=1.0)
    assert m[:4, :4].all() and m[8:, 8:].all() and m.sum() == 16 + 4


def test_flicker_meter():
    big = _texture(140, 220, seed=1)
    frames = [big[10:130, 40 - 3 * k : 200 - 3 * k].copy() for k in range(5)]
    boxes = np.array([[40, 30, 100, 90]], np.float32)
    rng = np.random.default_rng(0)
    same, noisy = FlickerMeter(flow_max_side=160), FlickerMeter(flow_max_side=160)
    for k, f in enumerate(frames):
        noise = np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8)
        a, b = same.update(k, f, f, boxes), noisy.update(k, f, noise, boxes)
        if k == 0:
            assert a is None and b is None
            continue
        assert a.output == a.original and a.pixels > 60 * 60  # the box grown by region_scale
        assert b.output > 3 * b.original
    # a scene cut: left out and counted
    other = _texture(120, 160, seed=7)
    assert same.update(5, other, other, boxes) is None and same.cuts == 1 and same.last_cut
    assert same.update(6, other, other, boxes).output == 0.0 and not same.last_cut
    # no faces, or a gap in the frame indices: nothing to compare
    assert same.update(7, frames[0], frames[0], np.zeros((0, 4))) is None
    assert same.update(9, frames[1], frames[1], boxes) is None
    with pytest.raises(ValueError):
        FlickerMeter(region_scale=0.5)


def test_lowpass_flicker_discounts_sharpness_not_change():
    """A sharpened copy of a panning video changes nothing over time, yet the plain figure rises
    with its gradients (the flow is off by a fraction of a pixel); the low-pass figure rises much
    less. Change that a viewer sees (a slowly varying tint per frame) still shows in both."""
    big = _texture(160, 260, seed=1)

    def frame(k):  # panned 1.7 px per frame: sub-pixel, so the flow is not exact
        m = np.float32([[1, 0, -1.7 * k], [0, 1, 0]])
        return cv2.warpAffine(big, m, (260, 160), flags=cv2.INTER_CUBIC)[20:140, 40:200]

    def sharpen(a):
        return np.clip(a.astype(np.float32) * 2 - cv2.GaussianBlur(a, (0, 0), 1.5), 0, 255).astype(np.uint8)

    boxes = np.array([[40, 30, 100, 90]], np.float32)
    rng = np.random.default_rng(0)
    sharp, tinted = FlickerMeter(flow_max_side=80), FlickerMeter(flow_max_side=80)
    for k in range(6):
        f = frame(k)
        blotch = cv2.GaussianBlur(rng.normal(0, 20, f.shape), (0, 0), 3)
        a = sharp.update(k, f, sharpen(f), boxes)
        b = tinted.update(k, f, np.clip(f + blotch, 0, 255).astype(np.uint8), boxes)
        if k == 0:
            continue
        plain, low = a.output / a.original, a.output_lowpass / a.original_lowpass
        assert plain > 1.5 and low < 0.85 * plain
        assert b.output / b.original > 2.5 and b.output_lowpass / b.original_lowpass > 3.0


# ---------------------------------------------------------------- tracks


def test_iou_and_greedy_match():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    b = np.array([[0, 0, 10, 5], [100, 100, 110, 110], [21, 21, 31, 31]], np.float32)
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    assert iou[0, 0] == pytest.approx(0.5) and iou[0, 1] == 0
    assert greedy_match(iou, 0.3) == [(1, 2), (0, 0)]
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_greedy_tracker_keeps_ids():
    tr = GreedyIouTracker(iou_threshold=0.3, max_age=1)
    box = lambda x: np.array([[x, 0, x + 20, 20]], np.float32)  # noqa: E731
    ids = [tr.update(FaceDetections(box(2 * k))).track_id[0] for k in range(4)]
    assert ids == [0, 0, 0, 0]
    two = tr.update(FaceDetections(np.concatenate([box(8), box(100)])))
    assert two.track_id.tolist() == [0, 1]
    tr.update(FaceDetections.empty())
    tr.update(FaceDetections.empty())  # older than max_age: dropped
    assert tr.update(FaceDetections(box(8))).track_id.tolist() == [2]
    tr.reset()  # a scene cut: the same place is a new track
    assert tr.update(FaceDetections(box(8))).track_id.tolist() == [3]


def test_load_tracks(tmp_path):
    doc = {
        "version": 1,
        "video": {"width": 64, "height": 48, "time_base": "1/12800", "frames": 3},
        "frames": [
            {
                "index": 0,
                "pts": 0,
                "faces": [
                    {
                        "track_id": 3,
                        "xyxy": [1, 2, 11, 12],
                        "landmarks": [[3, 4]] * 5,
                        "score": 0.9,
                        "state": "detected",
                    },
                    {"track_id": 4, "xyxy": [20, 2, 30, 12], "score": 0.0, "state": "predicted"},
                ],
            },
            {"index": 2, "pts": 512, "faces": []},
        ],
    }
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    t = load_tracks(path)
    assert (t.width, t.height, t.frames) == (64, 48, 3)
    f0 = t.at(0)
    assert f0.track_id.tolist() == [3, 4] and f0.state.tolist() == [0, PREDICTED]
    np.testing.assert_allclose(f0.landmarks[0], [[3, 4]] * 5)
    assert np.all((f0.landmarks[1] > [20, 2]) & (f0.landmarks[1] < [30, 12]))  # canonical positions
    assert len(t.at(1)) == 0 and len(t.at(2)) == 0


@pytest.mark.parametrize(
    "text, match",
    [
        (None, "not found"),
        ("{not json", "not readable JSON"),
        (json.dumps({"version": 1}), "no 'frames' list"),
        (json.dumps({"version": 2, "frames": []}), "version 2"),
        (json.dumps({"version": 1, "frames": [{"faces": []}]}), "frame entry 0"),
        (json.dumps({"version": 1, "frames": [{"index": 0, "faces": [{"xyxy": [1, 2, 3]}]}]}), "frame entry 0"),
        (
            json.dumps(
                {"version": 1, "frames": [{"index": 0, "faces": [{"xyxy": [0, 0, 4, 4], "landmarks": [[1, 2]]}]}]}
            ),
            "frame entry 0",
        ),
    ],
)
def test_load_tracks_rejects(tmp_path, text, match):
    path = tmp_path / "t.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_tracks(path)


# ---------------------------------------------------------------- accumulator and plot


class _FakeSFace:
    """Embeds a face as a fixed vector chosen by the frame's first pixel (the 'identity')."""

    def embed(self, rgb, faces):
        v = np.zeros((len(faces), 128), np.float32)
        v[:, int(rgb[0, 0, 0]) % 128] = 1.0
        return v


def _frame(identity: int) -> np.ndarray:
    f = np.zeros((8, 8, 3), np.uint8)
    f[0, 0, 0] = identity
    return f


def test_accumulator_lags_and_bounded_memory():
    acc = _Accumulator(BenchConfig(lags=(1, 5, 30)))
    face = FaceDetections(np.array([[0, 0, 4, 4]], np.float32), track_id=np.array([1]))
    for i in range(40):  # track 1: one identity for 40 frames
        acc.add(i, _frame(9), _frame(9 if i % 2 else 10), face, FaceDetections.empty(), _FakeSFace())
        assert len(acc.ring[1]) <= 31
    other = FaceDetections(np.array([[0, 0, 4, 4]], np.float32), track_id=np.array([2]))
    for i in range(40, 75):
        acc.add(i, _frame(5), _frame(5), other, FaceDetections.empty(), _FakeSFace())
    # a predicted position (e.g. behind an occluder): leak-checked, but no privacy/identity figure
    hidden = FaceDetections(np.array([[0, 0, 4, 4]], np.float32), track_id=np.array([2]), state=np.array([PREDICTED]))
    acc.add(75, _frame(5), _frame(5), hidden, FaceDetections.empty(), _FakeSFace())
    assert 1 not in acc.ring  # ended tracks are forgotten
    r = acc.report(original="a", anonymized="b", width=8, height=8, frames=76, tracks_source="file", seconds=0.0)
    assert r.faces == 76 and r.leak.face_frames == 76
    t1 = r.tracks[1]
    assert (t1.frames, t1.first, t1.last) == (40, 0, 39)
    assert t1.lags[1].pairs == 39 and t1.lags[1].mean == 0.0  # alternating identities
    assert t1.lags[30].pairs == 10 and t1.lags[30].mean == 1.0  # even lag: same identity
    assert r.tracks[2].lags[30].pairs == 5 and r.tracks[2].lags[1].mean == 1.0
    assert r.privacy.faces == 75 and r.privacy.share_at_or_above == pytest.approx(55 / 75)
    # nothing detected in the output, but every face the original shows kept its detail (one pixel,
    # at most a level brighter): left bare, a leak (the predicted position at frame 75 is not one)
    assert r.realism.share == 0.0 and r.leak.count == 75 and 75 not in r.leak.frames
    assert r.identity[1].pairs == 39 + 34
    assert r.flicker.ratio is None and r.flicker.pairs == 0
    img = render_plot(r)  # the plot copes with no flicker series
    assert img.shape == (760, 1200, 3)


def test_plot(tmp_path):
    from vidanon.metrics.flicker import FlickerSample

    acc = _Accumulator(BenchConfig())
    face = FaceDetections(np.array([[0, 0, 4, 4]], np.float32), track_id=np.array([0]))
    for i in range(12):
        acc.add(i, _frame(1), _frame(1 + i % 3), face, FaceDetections.empty(), _FakeSFace())
    acc.flicker = [FlickerSample(i, 5.0 + i, 1.0, 100) for i in range(1, 12)]
    r = acc.report(
        original="a.mp4", anonymized="b.mp4", width=8, height=8, frames=12, tracks_source="file", seconds=0.0
    )
    img = render_plot(r)
    assert (img != 255).any(axis=2).mean() > 0.01  # something was drawn
    write_plot(r, tmp_path / "p.png")
    assert cv2.imread(str(tmp_path / "p.png")).shape == img.shape
    with pytest.raises(OutputError):
        write_plot(r, tmp_path / "missing" / "p.png")


def test_bench_config_validates():
    with pytest.raises(ValueError, match="lags"):
        BenchConfig(lags=(0, 1))
    with pytest.raises(ValueError, match="iou_threshold"):
        BenchConfig(iou_threshold=0.0)
