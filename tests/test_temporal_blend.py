"""Temporal blending of generated faces: per track, consecutive frames only, generated pixels only."""

from __future__ import annotations

import numpy as np
import pytest

from vidanon.anonymize.temporal import TemporalBlend


def _batch(value: float, n: int = 1, r: int = 8) -> np.ndarray:
    return np.full((n, r, r, 3), value, np.uint8)


def _mask(n: int = 1, r: int = 8) -> np.ndarray:
    m = np.zeros((n, r, r), np.float32)
    m[:, 2:6, 2:6] = 1.0
    return m


def test_blends_consecutive_frames_inside_the_mask_only():
    blend = TemporalBlend(weight=0.5, max_change=255)
    ids = np.array([3])
    blend(_batch(100), _mask(), ids, 10)
    out = blend(_batch(140), _mask(), ids, 11)
    assert out[0, 3, 3, 0] == 120  # inside: halfway
    assert out[0, 0, 0, 0] == 140  # outside the mask: the new pixels, untouched


@pytest.mark.parametrize(
    "second_ids, second_frame, expected",
    [([3], 12, 140), ([4], 11, 140), ([-1], 11, 140)],
    ids=["gap-resets", "other-track", "untracked"],
)
def test_no_blend_across_gaps_tracks_or_untracked(second_ids, second_frame, expected):
    blend = TemporalBlend(weight=0.5, max_change=255)
    blend(_batch(100), _mask(), np.array([3]), 10)
    out = blend(_batch(140), _mask(), np.array(second_ids), second_frame)
    assert out[0, 3, 3, 0] == expected


def test_large_change_resets():
    blend = TemporalBlend(weight=0.5, max_change=20)
    blend(_batch(100), _mask(), np.array([1]), 0)
    assert blend(_batch(200), _mask(), np.array([1]), 1)[0, 3, 3, 0] == 200


def test_weight_one_is_off_and_bad_weight_rejected():
    blend = TemporalBlend(weight=1.0)
    blend(_batch(100), _mask(), np.array([1]), 0)
    assert blend(_batch(140), _mask(), np.array([1]), 1)[0, 3, 3, 0] == 140
    with pytest.raises(ValueError, match="weight"):
        TemporalBlend(weight=0.0)


def test_the_weight_follows_the_pose():
    """A low weight holds a still face steady; as the crop's landmarks move away from those the
    running face was made for (a head turning), the new face is taken faster, whole at 3 px."""
    from vidanon.anonymize.temporal import FOLLOW_FROM, FOLLOW_FULL

    pts = np.tile(np.array([[20.0, 20.0]], np.float32), (1, 5, 1))
    for moved, expected in ((0.3, 104), ((FOLLOW_FROM + FOLLOW_FULL) / 2, 122), (FOLLOW_FULL, 140), (6.0, 140)):
        blend = TemporalBlend(weight=0.1, max_change=255)
        blend(_batch(100), _mask(), np.array([2]), 0, pts)
        out = blend(_batch(140), _mask(), np.array([2]), 1, pts + np.float32([moved, 0]))
        assert abs(int(out[0, 3, 3, 0]) - expected) <= 1, (moved, out[0, 3, 3, 0])
    # without landmarks: the plain weight
    blend = TemporalBlend(weight=0.1, max_change=255)
    blend(_batch(100), _mask(), np.array([2]), 0)
    assert blend(_batch(140), _mask(), np.array([2]), 1)[0, 3, 3, 0] == 104


def test_forget_shows_the_next_face_as_it_comes():
    blend = TemporalBlend(weight=0.1, max_change=255)
    blend(_batch(100), _mask(), np.array([5]), 0)
    blend.forget(5)
    assert blend(_batch(140), _mask(), np.array([5]), 1)[0, 3, 3, 0] == 140


def test_running_face_only_while_the_pose_holds():
    pts = np.tile(np.array([[20.0, 20.0]], np.float32), (1, 5, 1))
    blend = TemporalBlend(weight=0.5, max_change=255)
    blend(_batch(100), _mask(), np.array([4]), 0, pts)
    crop, m = _batch(110)[0], _mask()[0]
    assert blend.running(4, 1, pts[0], crop, m)[3, 3, 0] == 100
    assert blend.running(4, 1, pts[0] + 2.0, crop, m) is None  # the pose moved
    assert blend.running(4, 1, pts[0], _batch(160)[0], m) is None  # the surroundings changed (a cut)
    assert blend.running(4, 2, pts[0], crop, m) is None  # not from the frame before
    assert blend.running(7, 1, pts[0], crop, m) is None  # another track
    assert TemporalBlend(weight=1.0).running(4, 1, pts[0], crop, m) is None


def test_preview_is_the_blend_without_moving_on():
    blend = TemporalBlend(weight=0.5, max_change=255)
    ids = np.array([3])
    blend(_batch(100), _mask(), ids, 10)
    seen = blend.preview(_batch(140), _mask(), ids, 11)
    assert seen[0, 3, 3, 0] == 120
    assert blend.preview(_batch(140), _mask(), ids, 11)[0, 3, 3, 0] == 120  # the running face did not move
    assert (blend(_batch(140), _mask(), ids, 11) == seen).all()
    assert blend.preview(_batch(200), _mask(), ids, 13)[0, 3, 3, 0] == 200  # after a gap: the new face
