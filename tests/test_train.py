"""Training: data, losses, a tiny resumable run, the command."""

from __future__ import annotations

from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidanon.anonymize.checkpoint import load_generator, read_checkpoint
from vidanon.anonymize.generator import GeneratorConfig
from vidanon.errors import InputError, ModelLoadError
from vidanon.train.loop import TrainConfig, train
from vidanon.train.losses import (
    Discriminator,
    diversity,
    equivariance,
    invert_affine,
    random_similarity,
    reconstruction,
    warp,
)

TINY = GeneratorConfig(base_channels=8, max_channels=16, w_dim=32)
needs_teacher = pytest.mark.skipif(
    find_spec("gan_face_generate") is None,
    reason="gan-face-generate is not installed (pip install --no-deps gan-face-generate)",
)


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(out=str(out), steps=2, batch_size=2, threads=1, d_channels=8, log_every=1, save_every_s=1e9)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize(
    "kw, error",
    [
        ({}, None),
        ({"data": "web"}, ValueError),
        ({"data": "folder"}, ValueError),
        ({"steps": 0, "minutes": 0}, ValueError),
        ({"batch_size": 1}, ValueError),
        ({"ema_decay": 1.0}, ValueError),
        ({"r1_every": 0}, ValueError),
        ({"r1_gamma": -1.0}, ValueError),
        ({"data_producers": 0}, ValueError),
        ({"data_processes": -1}, ValueError),
        ({"max_reuse": 0}, ValueError),
        ({"swap_prob": 1.5}, ValueError),
        ({"swap_scale": 0.3}, ValueError),
        ({"relight_prob": -0.1}, ValueError),
        ({"lr_d": 0.0}, ValueError),
    ],
)
def test_train_config_validation(tmp_path, kw, error):
    if error is None:
        _cfg(tmp_path / "c.pt", **kw)
    else:
        with pytest.raises(error):
            _cfg(tmp_path / "c.pt", **kw)


def test_losses():
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    m = torch.ones(2, 1, 16, 16)
    assert float(reconstruction(a, a, m)) == 0
    assert float(reconstruction(a, -a, m)) > 0
    assert float(diversity(a, a, m, 0.25)) == pytest.approx(0.25)
    assert float(diversity(a, a + 1, m, 0.25)) == 0
    # centred: a tone shift alone is no difference, a change of structure is
    assert float(diversity(a, a + 1, m, 0.25, centred=True)) == pytest.approx(0.25)
    assert float(diversity(a, -a, m, 0.25, centred=True)) < 0.25
    d = Discriminator(64, 8)
    assert d(torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 64, 64), torch.zeros(2, 5, 64, 64)).shape == (2, 1, 8, 8)
    # pooled 2x, the discriminator cannot see a pixel checkerboard (DCGAN texture), only structure
    d2 = Discriminator(64, 8, downsample=2)
    x, m, h = torch.rand(2, 3, 64, 64), torch.ones(2, 1, 64, 64), torch.rand(2, 5, 64, 64)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checker = ((yy + xx) % 2 * 2 - 1).float() * 0.1
    assert d2(x, m, h).shape == (2, 1, 8, 8)
    assert torch.allclose(d2(x + checker, m, h), d2(x, m, h), atol=1e-5)
    assert not torch.allclose(d(x + checker, m, h), d(x, m, h), atol=1e-5)
    with pytest.raises(ValueError):
        Discriminator(64, 8, downsample=3)


def test_equivariance_term():
    """The shift-equivariance term is ~0 for an output that moved with its inputs and large for one
    that stayed put; the transforms are small similarities that invert exactly."""
    g = torch.Generator().manual_seed(0)
    theta = random_similarity(4, g)
    lin = theta[:, :, :2]
    scale = torch.linalg.det(lin).sqrt()
    assert bool((scale - 1).abs().le(0.04 + 1e-6).all()) and bool(theta[:, :, 2].abs().le(2 / 32 + 1e-6).all())
    assert torch.allclose(lin @ lin.transpose(1, 2), scale[:, None, None] ** 2 * torch.eye(2), atol=1e-6)
    eye = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(4, 2, 3)
    both = invert_affine(theta)
    assert torch.allclose(both[:, :, :2] @ lin, torch.eye(2).expand(4, 2, 2), atol=1e-6)
    # a smooth face-like image: a blob with structure (not a constant, which any move leaves unchanged)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    img = torch.stack([torch.exp(-((xx - 0.1) ** 2 + yy**2) * 8), torch.sin(4 * xx), torch.cos(3 * yy)])
    out = img.expand(4, 3, 64, 64).contiguous()
    w = torch.zeros(4, 1, 64, 64)
    w[..., 16:48, 16:48] = 1  # inside, away from the border the move brings in
    moved = warp(out, theta)
    assert float(warp(out, eye)[..., 2:-2, 2:-2].sub(out[..., 2:-2, 2:-2]).abs().max()) < 1e-5
    followed = float(equivariance(out, moved, theta, w))
    stayed = float(equivariance(out, out, theta, w))
    assert followed < 0.01 and stayed > 5 * followed and stayed > 0.02


@needs_teacher
def test_teacher_faces_have_landmarks():
    from vidanon.train.data import TeacherFaces, make_batch

    src = TeacherFaces(seed=1)
    faces = src.sample(4)
    assert len(faces) == 4 and all(f.z is not None and f.landmarks.shape == (5, 2) for f in faces)
    b = make_batch(faces, 64, 1.75, np.random.default_rng(0))
    assert b.image.shape == (4, 3, 64, 64) and b.mask.shape == (4, 1, 64, 64) and b.heat.shape == (4, 5, 64, 64)
    assert b.z.shape == (4, 100)
    assert 0.1 < float(b.mask.mean()) < 0.9
    # a teacher face fills its draw: part of its crop is border padding, which the losses ignore
    assert b.valid.shape == (4, 1, 64, 64) and 0.2 < float(b.valid.mean()) < 0.95


def _centred(v: torch.Tensor) -> torch.Tensor:
    v = v.flatten()
    return (v - v.mean()) / (v.std() + 1e-6)


@needs_teacher
def test_face_swaps_take_the_donor_face_and_z():
    """A swapped crop keeps its own context, shows a colour-matched donor face
    inside its mask, and carries the donor's z."""
    from vidanon.train.data import Batch, TeacherFaces, make_batch

    faces = TeacherFaces(seed=3).sample(6)
    plain = make_batch(faces, 64, 1.75, np.random.default_rng(0))
    swapped = make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=1.0)
    # same augmentation draws, so the crops, masks and heatmaps are the same
    assert torch.equal(plain.mask, swapped.mask) and torch.equal(plain.heat, swapped.heat)
    outside = (plain.mask == 0).expand_as(plain.image)
    assert torch.equal(plain.image[outside], swapped.image[outside])
    zs = plain.z.numpy()
    for i in range(6):
        # every swapped crop took another face's z ...
        j = int(np.argmin(np.abs(zs - swapped.z[i].numpy()).sum(1)))
        assert j != i and torch.equal(swapped.z[i], plain.z[j])
        # the donor input is that face as it is, aligned (the target holds it colour-matched)
        assert torch.equal(swapped.donor[i], plain.image[j])
        # ... and that face's features: the inner face correlates with the donor's
        # (after removing tone, which follows the context) more than with its own
        inner = (plain.mask[i, 0] > 0) & (swapped.valid[i, 0] > 0)
        core = torch.nn.functional.avg_pool2d(plain.mask[i : i + 1], 9, 1, 4)[0, 0] > 0.99
        sel = inner & core
        mine, donor, own = (_centred(t[:, sel]) for t in (swapped.image[i], plain.image[j], plain.image[i]))
        to_donor, to_self = float((mine * donor).mean()), float((mine * own).mean())
        assert to_donor > to_self and to_donor > 0.5
    # no swaps asked: the batch is the plain one
    again = make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=0.0)
    assert torch.equal(again.image, plain.image) and torch.equal(again.z, plain.z)
    assert torch.equal(plain.donor, plain.image)  # unswapped, a crop is its own donor
    # the natural crops (what a `d_reals="natural"` discriminator sees) are the crops before the swaps
    assert plain.natural is None and plain.reals()[0] is plain.image
    assert torch.equal(swapped.natural, plain.image) and torch.equal(swapped.natural_valid, plain.valid)
    assert not torch.equal(swapped.image, plain.image)
    both = Batch.cat([plain, swapped])
    assert torch.equal(both.natural, torch.cat([plain.image, plain.image]))


@needs_teacher
def test_relit_crops_show_the_context_light_and_keep_their_donor():
    """--relight shows a crop, target and context together, under another light, and leaves
    its donor as drawn: the generator must fit the donor to the context's light."""
    from vidanon.train.data import TeacherFaces, make_batch, relight, relight_params

    faces = TeacherFaces(seed=3).sample(6)
    plain = make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=1.0)
    lit = make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=1.0, relight_prob=1.0)
    assert torch.equal(lit.donor, plain.donor) and torch.equal(lit.z, plain.z)
    assert torch.equal(lit.mask, plain.mask) and torch.equal(lit.valid, plain.valid)
    for i in range(6):
        a, b = plain.image[i], lit.image[i]
        # another light: the mean colour moved, the picture is the same (structure correlates)
        assert float((a.mean((1, 2)) - b.mean((1, 2))).abs().max()) > 0.02
        assert float((_centred(a.mean(0)) * _centred(b.mean(0))).mean()) > 0.7
    # the natural crops got the same light as the swapped ones (same draw per crop)
    outside = (plain.mask == 0).expand_as(plain.image)
    assert torch.equal(lit.natural[outside], lit.image[outside])
    # a neutral light changes nothing; a side light brightens one side and darkens the other
    img = faces[0].image[:64, :64].copy()
    assert np.abs(relight(img, (1.0, 1.0, 0.0, 0.0, np.ones(3, np.float32), 1.0)).astype(int) - img).max() <= 1
    grey = np.full((64, 64, 3), 100, np.uint8)
    side = relight(grey, (1.0, 1.0, 0.0, 0.4, np.ones(3, np.float32), 1.0))
    assert side[:, :8].mean() < 80 < 120 < side[:, -8:].mean()
    drawn = [relight_params(np.random.default_rng(s)) for s in range(50)]
    assert len({round(p[5], 6) for p in drawn}) == 50  # every crop its own light


@needs_teacher
@pytest.mark.parametrize("warp", [False, True])
def test_donors_in_context_show_their_crops_surroundings(warp):
    """`donor_context`: every donor of a batch, swapped in or a crop's own, is shown within its
    face region grown by the factor, around it a smooth fill of the crop's context as the
    generator sees it (`align.in_context`), whatever the face under the mask; the crops,
    targets and z are those of the batch without it."""
    from vidanon.anonymize import align
    from vidanon.train.data import TeacherFaces, make_batch

    faces = TeacherFaces(seed=3).sample(6)
    kw = {"swap_prob": 0.5, "donor_warp": warp, "relight_prob": 0.5}
    plain = make_batch(faces, 64, 1.75, np.random.default_rng(0), **kw)
    ctx = make_batch(faces, 64, 1.75, np.random.default_rng(0), donor_context=1.5, **kw)
    assert torch.equal(plain.image, ctx.image) and torch.equal(plain.z, ctx.z) and torch.equal(plain.mask, ctx.mask)
    image = ((plain.image.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)
    drawn = ((plain.donor.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)
    shown = ((ctx.donor.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)
    masks = plain.mask[:, 0].numpy()
    changed = []
    for i in range(6):
        fill = align.fill_padding(image[i], 1.0 - masks[i])
        changed.append((np.abs(shown[i].astype(int) - drawn[i]).max(axis=2) > 3).mean())
        # every pixel a blend of the donor as drawn and the fill of the crop's own context
        lo, hi = np.minimum(drawn[i], fill).astype(int), np.maximum(drawn[i], fill).astype(int)
        assert ((shown[i] >= lo - 2) & (shown[i] <= hi + 2)).all()
        # the middle of the donor, its face, is the donor's
        assert np.abs(shown[i, 26:38, 26:38].astype(int) - drawn[i, 26:38, 26:38]).mean() < 2
    assert max(changed) > 0.15  # a swapped-in donor's hair and background went (its own crop's, hardly)


@needs_teacher
def test_natural_reals_reach_the_discriminator(tmp_path):
    """With d_reals="natural" the discriminator's reals are the unswapped crops (no swap seams,
    a face that belongs to its context), and its fakes are masked by the same valid map."""
    from vidanon.train.data import TeacherFaces, make_batch
    from vidanon.train.loop import Trainer

    faces = TeacherFaces(seed=3).sample(4)
    batch = make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=1.0)
    for reals, want in (("natural", batch.natural * batch.natural_valid), ("targets", batch.image * batch.valid)):
        trainer = Trainer(_cfg(tmp_path / f"{reals}.pt", d_reals=reals, swap_prob=1.0), replace(TINY, donor=True))
        trainer.batches.close()
        trainer._next_batch = lambda: batch
        seen: list[torch.Tensor] = []
        trainer.D.register_forward_pre_hook(lambda _, args, seen=seen: seen.append(args[0].detach().clone()))
        trainer.train_step()
        assert torch.equal(seen[0], want)  # the first call judges the reals
        valid = batch.natural_valid if reals == "natural" else batch.valid
        assert bool((seen[1][torch.cat([valid, valid]).expand_as(seen[1]) == 0] == 0).all())
    with pytest.raises(ValueError):
        _cfg(tmp_path / "x.pt", d_reals="swaps")


@needs_teacher
def test_temporal_terms_train_the_generator(tmp_path):
    """With w_equiv / w_hold the step generates the moved (jittered) crops too, and each term's
    gradient reaches the generator (it is not a constant)."""
    from vidanon.train.loop import Trainer

    cfg = _cfg(tmp_path / "e.pt", w_equiv=1.0, w_hold=1.0, swap_prob=1.0, batch_size=3)
    trainer = Trainer(cfg, replace(TINY, donor=True))
    try:
        batch = trainer._next_batch()
        trainer._next_batch = lambda: batch
        parts = trainer.train_step()
        assert parts["eq"] > 0 and parts["hold"] > 0
        for term in (trainer._equivariance, trainer._hold):
            out = trainer.G(batch.image, batch.mask, batch.heat, batch.z, batch.donor)
            trainer.G.zero_grad()
            term(batch, out, batch.z).backward()
            assert float(sum(p.grad.abs().sum() for p in trainer.G.parameters() if p.grad is not None)) > 0
    finally:
        trainer.batches.close()
    plain = Trainer(_cfg(tmp_path / "p.pt", swap_prob=1.0), replace(TINY, donor=True))
    plain.batches.close()
    plain._next_batch = lambda: batch
    assert not {"eq", "hold"} & set(plain.train_step())
    for bad in ({"w_equiv": -1.0}, {"w_hold": -0.5}):
        with pytest.raises(ValueError):
            _cfg(tmp_path / "x.pt", **bad)


@needs_teacher
def test_swap_scale_sizes_the_swapped_region():
    """A smaller --swap-scale changes fewer pixels, all inside the region a larger one changes,
    and keeps the same donors and z."""
    from vidanon.train.data import TeacherFaces, make_batch

    faces = TeacherFaces(seed=4).sample(6)
    plain = make_batch(faces, 64, 1.75, np.random.default_rng(0))
    batches = {
        sc: make_batch(faces, 64, 1.75, np.random.default_rng(0), swap_prob=1.0, swap_scale=sc) for sc in (0.7, 0.9)
    }
    # where the donor shows (the feather's faint tail aside)
    changed = {sc: (b.image - plain.image).abs().amax(1) > 0.05 for sc, b in batches.items()}
    assert torch.equal(batches[0.7].z, batches[0.9].z) and torch.equal(batches[0.7].donor, batches[0.9].donor)
    for i in range(6):
        small, large = changed[0.7][i], changed[0.9][i]
        assert 0 < small.sum() < 0.8 * large.sum()
        assert not (small & ~torch.nn.functional.max_pool2d(large[None].float(), 5, 1, 2)[0].bool()).any()


@needs_teacher
def test_tiny_training_run_resumes(tmp_path):
    out = tmp_path / "ckpt.pt"
    summary = train(_cfg(out, steps=2), TINY)
    assert summary["step"] == 2 and out.is_file()
    assert out.stat().st_size < 16 * 2**20
    net = load_generator(out)
    assert net.cfg == TINY
    blob = read_checkpoint(out)
    assert blob["train"]["step"] == 2
    # resume: the step counter continues, the config comes from the checkpoint
    out2 = tmp_path / "ckpt2.pt"
    summary = train(_cfg(out2, steps=3, resume=str(out), data_workers=2))
    assert summary["step"] == 3 and summary["steps_this_chunk"] == 1
    assert read_checkpoint(out2)["train"]["step"] == 3
    # a conflicting architecture is refused
    with pytest.raises(InputError):
        train(_cfg(tmp_path / "x.pt", steps=4, resume=str(out)), GeneratorConfig())
    # a discriminator of another size is refused, unless asked to start a new one
    with pytest.raises(ModelLoadError):
        train(_cfg(tmp_path / "y.pt", steps=4, resume=str(out), d_channels=16))
    summary = train(_cfg(tmp_path / "y.pt", steps=4, resume=str(out), d_spectral_norm=True, reset_discriminator=True))
    assert summary["step"] == 4
    # a discriminator on 2x-pooled inputs: stored with the checkpoint, checked on resume like its size
    summary = train(_cfg(tmp_path / "z.pt", steps=4, resume=str(out), d_downsample=2, reset_discriminator=True))
    assert summary["step"] == 4 and read_checkpoint(tmp_path / "z.pt")["train"]["d_downsample"] == 2
    with pytest.raises(ModelLoadError):
        train(_cfg(tmp_path / "w.pt", steps=5, resume=str(tmp_path / "z.pt")))
    assert train(_cfg(tmp_path / "w.pt", steps=5, resume=str(tmp_path / "z.pt"), d_downsample=2))["step"] == 5


@needs_teacher
def test_donor_training_widens_a_generator_and_resumes(tmp_path):
    base = tmp_path / "base.pt"
    train(_cfg(base, steps=1), TINY)
    # resuming as a donor generator: the stem is widened, the step counter continues
    out = tmp_path / "donor.pt"
    summary = train(_cfg(out, steps=3, resume=str(base), swap_prob=1.0, batch_size=3), replace(TINY, donor=True))
    assert summary["step"] == 3
    net = load_generator(out)
    assert net.cfg.donor and net.stem.weight.shape[1] == 12
    # and trained the donor weights away from zero
    assert float(net.stem.weight[:, 9:].abs().sum()) > 0
    # a donor checkpoint resumes as itself
    assert train(_cfg(tmp_path / "d2.pt", steps=4, resume=str(out), swap_prob=1.0))["step"] == 4
    # but not back into a generator without donor input
    with pytest.raises(InputError):
        train(_cfg(tmp_path / "d3.pt", steps=5, resume=str(out)), TINY)


@needs_teacher
def test_folder_training(tmp_path):
    from vidanon.train.data import TeacherFaces

    folder = tmp_path / "faces"
    folder.mkdir()
    for i, f in enumerate(TeacherFaces(seed=3).sample(3)):
        big = cv2.resize(f.image, (192, 192), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "f.pt"
    summary = train(_cfg(out, data="folder", folder=str(folder), steps=1), TINY)
    assert summary["step"] == 1 and out.is_file()
    # donors are teacher faces: a donor generator does not train on a folder
    with pytest.raises(InputError, match="donor"):
        train(_cfg(tmp_path / "g.pt", data="folder", folder=str(folder), steps=1), replace(TINY, donor=True))


def test_folder_without_faces(tmp_path):
    from vidanon.train.data import FolderFaces

    with pytest.raises(InputError):
        FolderFaces(tmp_path / "missing", seed=0)
    (tmp_path / "empty").mkdir()
    cv2.imwrite(str(tmp_path / "empty" / "grey.png"), np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(InputError):
        FolderFaces(tmp_path / "empty", seed=0)


@needs_teacher
def test_train_command(tmp_path):
    import typer
    from typer.testing import CliRunner

    from vidanon.train.command import train_cmd

    app = typer.Typer()
    app.command()(train_cmd)
    out = tmp_path / "cli.pt"
    args = ["--out", str(out), "--steps", "1", "--batch-size", "2", "--threads", "1", "--width", "8"]
    result = CliRunner().invoke(app, args + ["--lr", "3e-4", "--d-lr", "1.2e-3"])
    assert result.exit_code == 0, result.output
    assert load_generator(out).cfg.base_channels == 8
    opts = torch.load(out, weights_only=True)["train"]
    assert opts["opt_g"]["param_groups"][0]["lr"] == 3e-4  # --d-lr moves the discriminator's alone
    assert opts["opt_d"]["param_groups"][0]["lr"] == 1.2e-3
    bad = CliRunner().invoke(app, ["--out", str(out), "--steps", "1", "--resolution", "96"])
    assert isinstance(bad.exception, InputError)
    bad = CliRunner().invoke(app, ["--out", str(out), "--steps", "1", "--data", "folder"])
    assert isinstance(bad.exception, InputError)


@needs_teacher
def test_concurrent_producers_and_batch_reuse(tmp_path):
    from vidanon.train.data import BatchMaker, BatchSpec, TeacherFaces

    src = TeacherFaces(seed=4)
    maker = BatchMaker(src, BatchSpec(6, 64, 1.75), np.random.default_rng(0), workers=2, producers=3)
    try:
        batches = [maker.next() for _ in range(4)]
    finally:
        maker.close()
    assert all(b.image.shape == (6, 3, 64, 64) and b.z.shape == (6, 100) for b in batches)
    # concurrent producers share one teacher stream: no z is drawn twice
    zs = torch.cat([b.z for b in batches])
    assert len(torch.unique(zs[:, 0])) == len(zs)
    assert src.kept <= src.drawn and src.kept >= 24
    # reuse: while no fresh batch is ready, a batch serves up to max_reuse steps, then the trainer waits
    from vidanon.train.loop import Trainer

    trainer = Trainer(_cfg(tmp_path / "r.pt", steps=6, data_workers=1, max_reuse=3), TINY)
    trainer.batches.close()
    fresh = iter(batches)

    class SlowMaker:  # the data pipeline's neighbour: never has a batch ready without waiting
        def next(self, block=True):
            return next(fresh) if block else None

        def close(self):
            pass

    trainer.batches = SlowMaker()
    summary = trainer.run()
    assert summary["step"] == 6 and summary["reused_batches"] == 4  # batches 1, 1, 1, 2, 2, 2
    with pytest.raises(ValueError):
        _cfg(tmp_path / "x.pt", steps=1, max_reuse=0)


@needs_teacher
def test_worker_processes_make_batches(tmp_path):
    """--processes: whole batches from worker processes, each drawing its own faces (no z
    twice across workers, another stream for another step), stopped by `close`."""
    from vidanon.train.data import BatchSpec
    from vidanon.train.procs import ProcessBatches, worker_seed

    spec = BatchSpec(5, 64, 1.75, swap_prob=1.0, fill_padding=True)
    made = ProcessBatches(spec, 2, seed=3, step=0)
    try:
        batches = [made.next() for _ in range(4)]
    finally:
        made.close()
    assert not any(p.is_alive() for p in made._procs)
    for b in batches:
        assert b.image.shape == (5, 3, 64, 64) and b.donor.shape == (5, 3, 64, 64) and b.z.shape == (5, 100)
        assert b.natural is not None and float(b.image.min()) >= -1 and float(b.image.max()) <= 1
        assert float(b.mask.sum()) > 0 and float(b.heat.max()) > 0.5
    # a swapped crop takes its donor's z, so z repeat inside a batch, never across batches
    drawn = [set(b.z[:, 0].tolist()) for b in batches]
    assert all(not (drawn[i] & drawn[j]) for i in range(4) for j in range(i))
    assert len({worker_seed(3, 0, 0), worker_seed(3, 0, 1), worker_seed(3, 100, 0)}) == 3


def test_worker_process_failure_reaches_the_trainer(tmp_path):
    """A worker that fails hands its error over: `next` raises it instead of waiting forever."""
    from vidanon.train.data import BatchSpec
    from vidanon.train.procs import ProcessBatches

    gone = (tmp_path / "gone.png", np.array([0, 0, 40, 40], np.float32), np.zeros((5, 2), np.float32))
    made = ProcessBatches(BatchSpec(2, 64, 1.75, folder_index=(gone,)), 1, seed=0, step=0)
    try:
        with pytest.raises(RuntimeError, match="data worker failed"):
            made.next()
    finally:
        made.close()


@needs_teacher
def test_training_on_worker_processes(tmp_path, monkeypatch, caplog):
    """A run with data_processes trains and saves; where /dev/shm is too small for the
    batches in flight (a container's 64 MiB), it says so and makes them on threads."""
    import logging

    from vidanon.train import procs

    out = tmp_path / "p.pt"
    assert train(_cfg(out, steps=2, data_processes=1, batch_size=3), TINY)["step"] == 2
    assert read_checkpoint(out)["train"]["step"] == 2
    monkeypatch.setattr(procs, "_shm_free", lambda: 64 * 2**20)
    with caplog.at_level(logging.WARNING, logger="vidanon.train"):
        summary = train(_cfg(tmp_path / "q.pt", steps=3, resume=str(out), data_processes=12, batch_size=8))
    assert summary["step"] == 3
    assert "shared memory" in caplog.text and "threads instead" in caplog.text


@needs_teacher
def test_resume_keeps_the_runs_swap_settings(tmp_path):
    """`vidanon train --resume` continues with the swap settings stored in the checkpoint
    (a donor generator trained on without swaps would learn to copy the crop's own face);
    an option given on the command line wins."""
    import torch
    from typer.testing import CliRunner

    from vidanon.cli import app

    def run(*args: str) -> dict:
        res = CliRunner().invoke(app, ["train", "--steps", "1", "--batch-size", "2", "--width", "8", *args])
        assert res.exit_code == 0, res.output
        return torch.load(args[args.index("--out") + 1], weights_only=True)["train"]["hyper"]

    a, b, c = (str(tmp_path / f"{n}.pt") for n in "abc")
    made = run("--out", a, "--donor", "--swap-prob", "1", "--swap-scale", "0.7", "--relight", "0.5")
    assert (made["swap_scale"], made["relight_prob"]) == (0.7, 0.5)
    first = run("--out", b, "--resume", a, "--steps", "2")
    assert (first["swap_prob"], first["swap_scale"], first["relight_prob"]) == (1.0, 0.7, 0.5)
    second = run("--out", c, "--resume", b, "--steps", "3", "--swap-scale", "0.8", "--relight", "0")
    assert (second["swap_prob"], second["swap_scale"], second["relight_prob"]) == (1.0, 0.8, 0.0)


@needs_teacher
def test_resume_switches_the_donor_warp(tmp_path):
    """`--donor-warp` on a resumed donor generator keeps its weights and step and stores the warp
    in the checkpoint's config; later resumes keep it unless told otherwise."""
    from typer.testing import CliRunner

    from vidanon.cli import app

    def run(out: Path, *args: str) -> GeneratorConfig:
        res = CliRunner().invoke(app, ["train", "--out", str(out), "--batch-size", "3", "--width", "8", *args])
        assert res.exit_code == 0, res.output
        return load_generator(out).cfg

    a, b, c, d = (tmp_path / f"{n}.pt" for n in "abcd")
    assert not run(a, "--steps", "1", "--donor", "--swap-prob", "1").donor_warp
    assert run(b, "--steps", "2", "--resume", str(a), "--donor-warp").donor_warp
    assert read_checkpoint(b)["train"]["step"] == 2
    assert run(c, "--steps", "3", "--resume", str(b)).donor_warp
    assert not run(d, "--steps", "4", "--resume", str(c), "--no-donor-warp").donor_warp
    # the padding fill and face-only donors are switched the same way, and kept by later resumes
    e, f = tmp_path / "e.pt", tmp_path / "f.pt"
    assert run(e, "--steps", "5", "--resume", str(d), "--fill-padding").fill_padding
    got = run(f, "--steps", "6", "--resume", str(e), "--donor-face-only")
    assert got.fill_padding and got.donor_face_only and not got.donor_warp
    assert run(tmp_path / "h.pt", "--steps", "7", "--resume", str(f)).donor_face_only
    # donors in context likewise (they need donors that are not face-only)
    ctx = run(tmp_path / "k.pt", "--steps", "8", "--resume", str(d), "--donor-context", "1.5")
    assert ctx.donor_context == 1.5 and read_checkpoint(tmp_path / "k.pt")["train"]["step"] == 8
    assert run(tmp_path / "m.pt", "--steps", "9", "--resume", str(tmp_path / "k.pt")).donor_context == 1.5
    # the warp needs a donor generator
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "g.pt"), "--steps", "1", "--donor-warp"])
    assert res.exit_code != 0 and "donor" in res.output


@needs_teacher
def test_vidanon_train_shows_its_progress(tmp_path):
    """The main CLI keeps its own logging at warnings; `vidanon train` still prints its steps."""
    import subprocess
    import sys

    out = tmp_path / "p.pt"
    args = ["--out", str(out), "--steps", "2", "--batch-size", "2", "--width", "8", "--threads", "1"]
    res = subprocess.run(
        [sys.executable, "-m", "vidanon", "train", *args, "--log-every", "1"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "step 2" in res.stderr and "done" in res.stderr


def test_train_refuses_a_bad_out_or_checkpoint_before_training(tmp_path):
    """--out that is a folder or an existing file other than a checkpoint (a photo given by
    mistake) is refused before any training, the file untouched; a file that is not a
    checkpoint reads as one line, without torch's advice to load it unsafely."""
    import typer
    from typer.testing import CliRunner

    from vidanon.errors import OutputError
    from vidanon.train.command import train_cmd

    app = typer.Typer()
    app.command()(train_cmd)
    args = ["--steps", "1", "--batch-size", "2", "--threads", "1", "--width", "8"]
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    for out, needle in ((tmp_path, "is a directory"), (photo, "not a vidanon checkpoint")):
        res = CliRunner().invoke(app, ["--out", str(out), *args])
        assert isinstance(res.exception, OutputError) and needle in str(res.exception), res.exception
    assert photo.read_bytes() == b"\xff\xd8\xff\xe0 not really a jpeg"
    res = CliRunner().invoke(app, ["--out", str(tmp_path / "o.pt"), "--resume", str(photo), *args])
    assert isinstance(res.exception, ModelLoadError)
    assert "\n" not in str(res.exception) and "weights_only" not in str(res.exception)
    assert not (tmp_path / "o.pt").exists()


@needs_teacher
def test_ctrl_c_saves_the_steps_since_the_last_save(tmp_path):
    """Interrupted, `vidanon train` saves its checkpoint (up to --save-every seconds of work
    would be lost otherwise) and says where and at which step; the file resumes."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "i.pt"
    args = ["--out", str(out), "--minutes", "5", "--batch-size", "2", "--width", "8", "--threads", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidanon", "train", *args, "--log-every", "1", "--save-every", "1000"],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if " step 3 " in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, "".join(lines) + rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith(f"vidanon: error: interrupted; checkpoint {out} saved at step "), last
    step = int(last.rsplit(" ", 1)[1])
    assert step >= 3 and read_checkpoint(out)["train"]["step"] == step
    assert train(_cfg(tmp_path / "r.pt", steps=step + 1, resume=str(out), d_channels=32))["step"] == step + 1
