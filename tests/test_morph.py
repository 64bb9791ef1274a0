"""Shaping donor and training crops: the landmark warp (pose-matched donors, at inference and
in training swaps) and the smooth fill of crop padding."""

from __future__ import annotations

from importlib.util import find_spec

import cv2
import numpy as np
import pytest
import torch

from vidanon.anonymize import morph
from vidanon.anonymize.generator import GeneratorConfig
from vidanon.config import DetectConfig

needs_teacher = pytest.mark.skipif(find_spec("gan_face_generate") is None, reason="gan-face-generate is not installed")

SRC = np.array([[20, 25], [44, 25], [32, 36], [22, 46], [42, 46]], np.float64)


def _dots(points: np.ndarray, r: int = 64) -> np.ndarray:
    img = np.zeros((r, r, 3), np.uint8)
    for x, y in points:
        cv2.circle(img, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
    return img


def _centres(img: np.ndarray) -> np.ndarray:
    n, labels, stats, cents = cv2.connectedComponentsWithStats((img[..., 0] > 80).astype(np.uint8))
    return cents[1:]


def _match_error(found: np.ndarray, want: np.ndarray) -> float:
    """Mean distance from each wanted point to the nearest found one."""
    d = np.sqrt(((want[:, None, :] - found[None, :, :]) ** 2).sum(-1))
    return float(d.min(1).mean())


def test_warp_moves_the_landmarks_and_keeps_the_border():
    # a head turned to its left: everything shifts, the nose more than the eyes
    dst = SRC + np.array([-5.0, 1.0])
    dst[2] += [-3.0, 0.0]
    out = morph.landmark_warp(_dots(SRC), SRC, dst)
    found = _centres(out)
    assert len(found) == 5 and _match_error(found, dst) < 0.6
    assert _match_error(_centres(_dots(SRC)), dst) > 4  # they did move
    # the crop border stays where it is
    map_x, map_y = morph.tps_map(dst, SRC, 64)
    xs, ys = np.meshgrid(np.arange(64), np.arange(64))
    moved = np.hypot(map_x - xs, map_y - ys)
    edge = np.concatenate([moved[0], moved[-1], moved[:, 0], moved[:, -1]])
    assert edge.max() < 0.5 and moved.max() > 4
    # no displacement: the image as it is
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(morph.landmark_warp(img, SRC, SRC), img)


def test_a_folding_or_huge_warp_is_weakened():
    r = 64
    # the eyes and mouth corners swapped: a full warp folds the face over itself
    crossed = SRC[[1, 0, 2, 4, 3]]
    full = morph.tps_map(crossed, SRC, r)
    everywhere = np.ones((r, r), bool)
    assert morph._min_jacobian(*full, everywhere) < 0
    maps = morph.warp_maps(SRC, crossed, r)
    # what is used instead does not fold where the face is (or the donor is left as it is)
    if maps is not None:
        inner = np.zeros((r, r), bool)
        inner[15:55, 10:55] = True
        assert morph._min_jacobian(*maps, inner) >= morph.MIN_JACOBIAN
    assert len(_centres(morph.landmark_warp(_dots(SRC), SRC, crossed))) <= 5
    # a landmark sent far off moves by at most MAX_SHIFT of the side
    far = SRC.copy()
    far[2] += [40.0, 0.0]
    moved = _centres(morph.landmark_warp(_dots(SRC), SRC, far))
    nose = moved[np.argmin(np.abs(moved[:, 1] - 36))]
    assert nose[0] - 32 <= morph.MAX_SHIFT * r + 1 and nose[0] - 32 > 5


@pytest.mark.parametrize("field", ["donor_warp", "donor_face_only"])
def test_config_needs_a_donor_for_the_donor_options(field):
    with pytest.raises(ValueError, match="donor"):
        GeneratorConfig(**{field: True})
    d = GeneratorConfig(donor=True).to_dict()
    del d[field]  # files written before the field: off (no warp, whole donors)
    assert GeneratorConfig.from_dict(d) == GeneratorConfig(donor=True)


def _landmarks_on(crops: np.ndarray) -> list[np.ndarray | None]:
    """YuNet's landmarks on 64 px crops (found on 4x upscales), in crop pixels."""
    from vidanon.detect.yunet import YuNetDetector

    det = YuNetDetector(DetectConfig(score_threshold=0.5))
    out = []
    for crop in crops:
        found = det.detect(cv2.resize(crop, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))
        out.append(found.landmarks[int(np.argmax(found.score))] / 4 if len(found) else None)
    return out


def _error(found: list[np.ndarray | None], want: np.ndarray) -> float:
    errs = [np.sqrt(((f - w) ** 2).sum(1)).mean() for f, w in zip(found, want) if f is not None]
    assert len(errs) >= len(want) - 1
    return float(np.mean(errs))


@needs_teacher
def test_donors_are_warped_onto_the_crops_landmarks():
    from vidanon.anonymize.donor import DonorFaces

    bank = DonorFaces(64, 1.75)
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(5))
    plain = bank.crops(z)
    own = np.stack([bank._lookup(z[i : i + 1])[0][1] for i in range(4)])
    # warped onto their own landmarks, donors are unchanged
    assert np.array_equal(bank.crops(z, own), plain)
    # heads turned and tilted: landmarks of a face looking left and down, and one looking right
    turn = np.array([[-4.0, 1.0], [-6.0, 2.0], [-7.0, 3.0], [-4.0, 3.0], [-6.0, 4.0]])
    want = own + np.stack([turn, -turn, turn * [1, 0], -turn * [1, 0]])
    warped = bank.crops(z, want)
    assert bank.misses == 4  # the cache holds the unwarped donors
    assert _error(_landmarks_on(warped), want) < 0.6 * _error(_landmarks_on(plain), want)


@needs_teacher
def test_swapped_faces_are_warped_onto_the_crops_landmarks():
    from vidanon.train.data import TeacherFaces, make_batch

    faces = TeacherFaces(seed=3).sample(6)
    rng = np.random.default_rng
    plain = make_batch(faces, 64, 1.75, rng(0), swap_prob=1.0, jitter=0.0)
    warped = make_batch(faces, 64, 1.75, rng(0), swap_prob=1.0, jitter=0.0, donor_warp=True)
    # same augmentation and donors: the crops' own parts and the z are those of the plain swap
    assert torch.equal(plain.z, warped.z) and torch.equal(plain.mask, warped.mask)
    assert torch.equal(plain.heat, warped.heat)
    outside = (plain.mask == 0).expand_as(plain.image)
    assert torch.equal(plain.image[outside], warped.image[outside])
    # each crop's landmarks: its heatmaps' peaks; a donor is another crop of the batch, found by z
    flat = plain.heat.flatten(2).argmax(2).numpy()
    points = np.stack([flat % 64, flat // 64], -1).astype(np.float64)
    unswapped = make_batch(faces, 64, 1.75, rng(0), jitter=0.0)
    to_u8 = lambda t: ((t.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)  # noqa: E731
    moved = 0
    for i in range(6):
        j = int(torch.argmin((unswapped.z - warped.z[i]).abs().sum(1)))
        assert j != i and torch.equal(plain.donor[i], unswapped.image[j])
        # the donor input is donor j moved from its landmarks onto crop i's
        # (peaks are whole pixels: compared where the landmarks differ by 2 px or more)
        if np.sqrt(((points[j] - points[i]) ** 2).sum(1)).max() < 2:
            continue
        want = morph.landmark_warp(to_u8(unswapped.image[j : j + 1])[0], points[j], points[i]).astype(float)
        got, before = to_u8(warped.donor[i : i + 1])[0].astype(float), to_u8(plain.donor[i : i + 1])[0].astype(float)
        assert np.abs(got - want).mean() < 0.5 * np.abs(before - want).mean()
        moved += 1
    assert moved >= 3  # teacher faces differ in landmarks by 2 px (median of pairs), 4.5 px (90%)
    # the target holds the warped donor: its inner face is closer to it than to the unwarped one
    core = (torch.nn.functional.avg_pool2d(plain.mask, 9, 1, 4) > 0.99).expand_as(plain.image)
    assert (warped.image - warped.donor).abs()[core].mean() < (warped.image - plain.donor).abs()[core].mean()


def _padded_crop():
    """A crop of a textured image reaching past its top-left corner: padded there by repetition."""
    from vidanon.anonymize import align

    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3)).astype(np.uint8)
    img = cv2.GaussianBlur(noise, (0, 0), 1.5)
    m = np.array([[0.4, 0.0, 20.0], [0.0, 0.4, 22.0]])  # frame -> crop; the frame's (0, 0) at crop (20, 22)
    crop = align.warp_crop(img, m, 64)
    valid = align.warp_crop(np.full(img.shape[:2], 255, np.uint8), m, 64, cv2.BORDER_CONSTANT) / 255.0
    return crop, valid.astype(np.float32)


def test_fill_padding_keeps_real_pixels_and_smooths_the_padding():
    from vidanon.anonymize import align

    crop, valid = _padded_crop()
    assert 0.2 < (valid < 1).mean() < 0.6
    out = align.fill_padding(crop, valid)
    assert out.dtype == np.uint8 and out.shape == crop.shape
    assert np.array_equal(out[valid >= 1], crop[valid >= 1])
    pad = valid <= 0

    # repeated edge pixels are streaks: strong gradients across them; the fill is smooth
    def roughness(im):
        f = im.astype(float)
        g = np.abs(np.diff(f, axis=0))[:, :-1] + np.abs(np.diff(f, axis=1))[:-1, :]
        return g.sum(-1)[pad[:-1, :-1] & pad[1:, 1:]].mean()

    assert roughness(out) < 0.5 * roughness(crop)
    # and its colours come from the real pixels nearby
    lo, hi = crop[valid >= 1].min(0), crop[valid >= 1].max(0)
    assert (out[pad] >= lo).all() and (out[pad] <= hi).all()
    # a crop without padding is returned as it is
    assert np.array_equal(align.fill_padding(crop, np.ones_like(valid)), crop)


@needs_teacher
def test_donor_and_training_padding_filled_only_when_asked():
    from vidanon.anonymize.donor import DonorFaces
    from vidanon.train.data import TeacherFaces, make_batch

    z = torch.randn(3, 100, generator=torch.Generator().manual_seed(7))
    plain, filled = DonorFaces(64, 1.75).crops(z), DonorFaces(64, 1.75, fill_padding=True).crops(z)
    same = (plain == filled).all(-1)
    # the teacher's faces fill their draws: a large part of every donor crop is padding
    assert 0.1 < (~same).mean() < 0.7 and same[:, 28:36, 28:36].all()  # the face itself is kept

    faces = TeacherFaces(seed=3).sample(4)
    a = make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=1.0)
    b = make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=1.0, fill_padding=True)
    assert torch.equal(a.valid, b.valid) and torch.equal(a.z, b.z)
    real = (a.valid >= 1).expand_as(a.image)
    pad = (a.valid <= 0).expand_as(a.image)
    # swapped faces are colour-matched over their region, which may reach into the padding
    outside = real & (a.mask == 0).expand_as(a.image)
    assert torch.equal(a.image[outside], b.image[outside])
    assert (a.image[pad] - b.image[pad]).abs().mean() > 0.05


def test_filled_padding_is_a_weak_target():
    from vidanon.train.losses import FILL_WEIGHT, target_weight

    mask = torch.ones(1, 1, 4, 4)
    valid = torch.zeros(1, 1, 4, 4)
    valid[..., :2] = 1
    assert torch.equal(target_weight(mask, valid, False), valid)
    w = target_weight(mask, valid, True)
    assert torch.equal(w[..., :2], valid[..., :2]) and torch.allclose(w[..., 2:], torch.full((1, 1, 4, 2), FILL_WEIGHT))
    assert 0 < FILL_WEIGHT < 1


def test_face_region_holds_the_face_and_turns_with_it():
    from vidanon.anonymize import align

    region = align.face_region(SRC, 64)
    assert region.dtype == np.float32 and set(np.unique(region)) == {0.0, 1.0}
    for x, y in SRC:
        assert region[int(round(y)), int(round(x))] == 1  # the landmarks are on the face
    # the forehead to the chin, cheek to cheek (eyes 24 px apart, 21 px above the mouth),
    # none of the crop's top rows, corners or sides
    ys, xs = np.nonzero(region)
    assert 8 <= ys.min() < 16 and ys.max() <= 62 and 6 <= xs.min() < 12 and 52 < xs.max() <= 58
    assert region[:8].sum() == 0 and region.mean() < 0.55
    assert ys.max() - SRC[3:, 1].mean() > 8  # the chin, below the mouth
    # a head rolled by 30 degrees: the region rolls with its landmarks
    m = cv2.getRotationMatrix2D((32, 36), 30, 1.0)
    rolled = SRC @ m[:, :2].T + m[:, 2]
    turned = align.face_region(rolled, 64)
    back = cv2.warpAffine(region, m, (64, 64), flags=cv2.INTER_NEAREST)
    assert (turned != back).mean() < 0.01


@needs_teacher
def test_face_only_donors_show_no_hair_or_background():
    """With `donor_face_only` a donor is its face alone, at inference and in training, and a
    training swap changes the crop's face region only, not the ring of hair and background
    that the box's ellipse takes from the donor."""
    from vidanon.anonymize import align
    from vidanon.anonymize.donor import DonorFaces
    from vidanon.train.data import TeacherFaces, make_batch

    z = torch.randn(3, 100, generator=torch.Generator().manual_seed(7))
    whole, bank = DonorFaces(64, 1.75), DonorFaces(64, 1.75, face_only=True)
    only = bank.crops(z)
    for i in range(3):
        region = align.face_region(bank._lookup(z[i : i + 1])[0][1], 64) > 0
        far = cv2.dilate(region.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
        assert (np.abs(only[i][far].astype(int) - 128) <= 1).all()  # hair and background: mid-grey
        inner = cv2.erode(region.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        assert np.abs(only[i][inner].astype(int) - whole.crops(z[i : i + 1])[0][inner]).max() <= 2

    faces = TeacherFaces(seed=3).sample(6)
    a = make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=1.0)
    b = make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=1.0, donor_face_only=True)
    assert torch.equal(a.z, b.z) and torch.equal(a.mask, b.mask) and torch.equal(a.natural, b.natural)
    grey = (b.donor.abs() < 0.01).all(1)  # mid-grey is 0 in [-1, 1]
    assert 0.5 < grey.float().mean() < 0.95
    # each swap changed less of its crop than a whole-ellipse swap, inside what that one changed
    changed_a = (a.image != a.natural).any(1)
    changed_b = (b.image != b.natural).any(1)
    for i in range(6):
        assert changed_b[i].sum() < 0.8 * changed_a[i].sum()
        assert (changed_b[i] & ~changed_a[i]).float().mean() < 0.01
