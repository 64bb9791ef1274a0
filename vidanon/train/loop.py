"""The training loop: resumable, chunked by steps or minutes, CPU or CUDA (AMP).

The run saves a full checkpoint (inference weights + training state) every
`save_every_s` seconds and at the end, atomically, so the file on disk is
always loadable and a killed run loses at most one interval.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vidanon.anonymize.checkpoint import (
    build_generator,
    config_of,
    pack_optimizer,
    read_checkpoint,
    save_checkpoint,
    unpack_optimizer,
)
from vidanon.anonymize.generator import Generator, GeneratorConfig, widen_for_donor
from vidanon.errors import InputError, ModelLoadError
from vidanon.train.data import SWAP_SCALE, Batch, BatchMaker, BatchSpec, FolderFaces, TeacherFaces
from vidanon.train.losses import (
    Discriminator,
    d_hinge,
    diversity,
    equivariance,
    g_hinge,
    hold,
    invert_affine,
    r1_penalty,
    random_similarity,
    reconstruction,
    target_weight,
    warp,
)
from vidanon.train.procs import ProcessBatches, SharedMemoryError

log = logging.getLogger("vidanon.train")

DATA_SOURCES = ("synthetic", "folder")
D_REALS = ("targets", "natural")


@dataclass(frozen=True)
class TrainConfig:
    """One training run (or chunk of a run).

    Attributes:
        out: checkpoint written every `save_every_s` seconds and at the end.
        data: "synthetic" (DCGAN teacher) or "folder".
        folder: image folder for data="folder".
        resume: checkpoint to continue from (its configs win; step counter continues).
        steps: stop after this many steps in total (counting resumed ones); 0: no limit.
        minutes: stop after this much wall time in this chunk; 0: no limit.
        batch_size: faces per step.
        device: "cpu", "cuda", "cuda:1", ...
        seed: seeds data, augmentation and z.
        threads: torch CPU threads (0 leaves torch's default).
        save_every_s: seconds between checkpoints.
        log_every: steps between log lines.
        lr_g, lr_d: Adam learning rates (betas 0.5, 0.99).
        w_rec, w_adv, w_div: loss weights.
        w_equiv: weight of the shift-equivariance term (`losses.equivariance`):
            the crop, mask and heatmaps moved by a small random similarity
            (detection jitter), the generated face must move with them (0: off).
        w_hold: weight of the context-stability term (`losses.hold`): only the
            crop's pixels moved a little and noised (mask, heatmaps, donor and z
            kept), the generated face must not change (0: off). Against the
            frame-to-frame change of a tracked face.
        div_margin: diversity hinge margin (mean abs difference in [-1, 1] units).
        div_centred: measure diversity after removing each output's mean colour.
        r1_gamma, r1_every: lazy R1 penalty on the discriminator (0 disables).
        ema_decay: EMA of generator weights used for inference.
        d_channels: discriminator base channels.
        d_spectral_norm: spectral normalisation in the discriminator.
        d_downsample: the discriminator judges inputs average-pooled by this factor.
        d_reals: what the discriminator is shown as real: "targets" (the
            reconstruction targets, face swaps included, with their blend seams)
            or "natural" (the crops as drawn, before any swap: a face that
            belongs to its context; the context outside the mask is the same
            as the fake's, so only the face is judged).
        reset_discriminator: when resuming, start a new discriminator (and its
            optimizer) instead of loading the stored one, e.g. to change its kind.
        data_workers: threads that detect faces and make crops ahead of the
            training step (0: inline; use several on a GPU machine).
        data_producers: with data_workers, threads that assemble whole batches
            concurrently (BatchMaker).
        data_processes: worker processes that each make whole batches
            (`procs.ProcessBatches`: the teacher on their CPU, no GIL shared
            with the training loop); replaces data_workers when above 0. For a
            GPU machine with many cores; a resumed run draws new faces instead
            of continuing the checkpoint's stream.
        max_reuse: with data_workers or data_processes, a batch may serve up to
            this many steps (each with fresh random z) when the next one is not
            ready yet, so a GPU faster than the data pipeline is not left idle; 1: never.
        swap_prob: share of teacher crops that become face swaps (another
            teacher face blended in, with that face's z; `data.make_batch`),
            so the generator must take the face from z, not from the context.
        swap_scale: size of the swapped region: the face box's ellipse at
            this scale (`data.swap_alpha`); smaller keeps the donor's hair and
            background out of the target.
        relight_prob: share of crops shown under another light (`data.relight`: exposure,
            gamma, contrast, colour cast, a side light) with their donor left as drawn,
            so that the generator fits the donor to its context's light.
    """

    out: str
    data: str = "synthetic"
    folder: str | None = None
    resume: str | None = None
    steps: int = 0
    minutes: float = 0.0
    batch_size: int = 16
    device: str = "cpu"
    seed: int = 0
    threads: int = 0
    save_every_s: float = 300.0
    log_every: int = 10
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    w_rec: float = 1.0
    w_adv: float = 0.1
    w_div: float = 0.2
    w_equiv: float = 0.0
    w_hold: float = 0.0
    div_margin: float = 0.25
    div_centred: bool = False
    r1_gamma: float = 0.1
    r1_every: int = 16
    ema_decay: float = 0.998
    d_channels: int = 32
    d_spectral_norm: bool = False
    d_downsample: int = 1
    d_reals: str = "targets"
    reset_discriminator: bool = False
    data_workers: int = 0
    data_producers: int = 1
    data_processes: int = 0
    max_reuse: int = 1
    swap_prob: float = 0.0
    swap_scale: float = SWAP_SCALE
    relight_prob: float = 0.0

    def __post_init__(self) -> None:
        if self.data not in DATA_SOURCES:
            raise ValueError(f"data must be one of {', '.join(DATA_SOURCES)}, got {self.data!r}")
        if self.data == "folder" and not self.folder:
            raise ValueError("data='folder' needs a folder")
        if self.steps < 0 or self.minutes < 0:
            raise ValueError(f"steps and minutes must be >= 0, got {self.steps}, {self.minutes}")
        if self.steps == 0 and self.minutes == 0:
            raise ValueError("give a step limit or a time limit (steps or minutes)")
        if self.d_reals not in D_REALS:
            raise ValueError(f"d_reals must be one of {', '.join(D_REALS)}, got {self.d_reals!r}")
        if self.w_equiv < 0 or self.w_hold < 0:
            raise ValueError(f"w_equiv and w_hold must be >= 0, got {self.w_equiv}, {self.w_hold}")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise ValueError(f"learning rates must be > 0, got {self.lr_g} (generator), {self.lr_d} (discriminator)")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {self.batch_size}")
        if self.r1_gamma < 0 or self.r1_every < 1:
            raise ValueError(f"r1_gamma must be >= 0 and r1_every >= 1, got {self.r1_gamma}, {self.r1_every}")
        if self.max_reuse < 1:
            raise ValueError(f"max_reuse must be >= 1, got {self.max_reuse}")
        if self.data_producers < 1:
            raise ValueError(f"data_producers must be >= 1, got {self.data_producers}")
        if not 0 <= self.data_processes <= 64:
            raise ValueError(f"data_processes must be in [0, 64], got {self.data_processes}")
        if not 0 <= self.swap_prob <= 1:
            raise ValueError(f"swap_prob must be in [0, 1], got {self.swap_prob}")
        if not 0.5 <= self.swap_scale <= 1.2:
            raise ValueError(f"swap_scale must be in [0.5, 1.2], got {self.swap_scale}")
        if not 0 <= self.relight_prob <= 1:
            raise ValueError(f"relight_prob must be in [0, 1], got {self.relight_prob}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def hyper(self) -> dict:
        """The fields that describe the recipe (stored in checkpoints for the record)."""
        skip = {"out", "resume", "steps", "minutes", "threads", "save_every_s", "log_every", "device", "data_workers"}
        skip.update({"data_producers", "data_processes", "max_reuse"})
        skip.add("reset_discriminator")
        return {k: v for k, v in asdict(self).items() if k not in skip}


def _device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"invalid device {name!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but CUDA is not available")
    return dev


class Trainer:
    """Holds models, optimizers and data for one run.

    Args:
        cfg: the run.
        gcfg: the generator architecture for a fresh run (ignored when resuming).
    """

    def __init__(self, cfg: TrainConfig, gcfg: GeneratorConfig | None = None) -> None:
        self.cfg = cfg
        self.device = _device(cfg.device)
        if cfg.threads > 0:
            import cv2

            torch.set_num_threads(cfg.threads)
            cv2.setNumThreads(cfg.threads)
        blob = read_checkpoint(cfg.resume) if cfg.resume else None
        # resuming a generator without donor input as one with it: the stem is widened with zeros
        self._widen = False
        if blob is not None:
            ckpt_g = config_of(blob, cfg.resume)
            if gcfg is None:
                gcfg = ckpt_g
            else:
                # the donor warp, the padding fill, the face-only donor and the donor's context change
                # the inputs, not the weights: a run may switch them
                inputs_only = {
                    "donor_warp": False,
                    "fill_padding": False,
                    "donor_face_only": False,
                    "donor_context": 0.0,
                }
                same_weights = replace(gcfg, **inputs_only) == replace(ckpt_g, **inputs_only)
                self._widen = bool(
                    gcfg.donor
                    and not ckpt_g.donor
                    and replace(gcfg, donor=False, **inputs_only) == replace(ckpt_g, **inputs_only)
                )
                if not (same_weights or self._widen):
                    raise InputError(
                        f"--resume {cfg.resume} has generator config {ckpt_g}, which differs from the one asked for"
                    )
        self.gcfg = gcfg or GeneratorConfig()
        if self.gcfg.donor and cfg.data != "synthetic":
            raise InputError("a donor generator trains on synthetic (teacher) faces only: its donors are teacher faces")
        self.G = Generator(self.gcfg).to(self.device)
        self.D = Discriminator(
            self.gcfg.resolution, cfg.d_channels, spectral=cfg.d_spectral_norm, downsample=cfg.d_downsample
        ).to(self.device)
        if self.device.type == "cuda":
            self.G = self.G.to(memory_format=torch.channels_last)
            self.D = self.D.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=(0.5, 0.99))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=(0.5, 0.99))
        self.step = 0
        self.reused = 0  # steps of this chunk that reused a batch
        self._last = None  # the batch on the device, and how many steps it has served
        self._uses = 0
        self.elapsed_s = 0.0
        self.zgen = torch.Generator(device="cpu")
        self.zgen.manual_seed(cfg.seed * 7919 + 1)
        self.rng = np.random.default_rng(cfg.seed + 17)
        if cfg.data == "synthetic":
            self.source = TeacherFaces(cfg.seed, self.device)
        else:
            self.source = FolderFaces(cfg.folder, cfg.seed)
        if blob is not None:
            self._restore(blob)
        self.batches = self._batch_source()

    def _batch_source(self) -> BatchMaker | ProcessBatches:
        cfg = self.cfg
        spec = BatchSpec(
            cfg.batch_size,
            self.gcfg.resolution,
            self.gcfg.crop_factor,
            swap_prob=cfg.swap_prob,
            swap_scale=cfg.swap_scale,
            donor_warp=self.gcfg.donor_warp,
            fill_padding=self.gcfg.fill_padding,
            relight_prob=cfg.relight_prob,
            donor_face_only=self.gcfg.donor_face_only,
            donor_context=self.gcfg.donor_context,
        )
        workers = cfg.data_workers
        if cfg.data_processes:
            folder = tuple(self.source.index) if isinstance(self.source, FolderFaces) else None
            try:
                made = ProcessBatches(replace(spec, folder_index=folder), cfg.data_processes, cfg.seed, self.step)
                log.info("data: %d worker processes, their faces seeded by step %d", cfg.data_processes, self.step)
                return made
            except SharedMemoryError as exc:
                workers = max(1, workers)
                log.warning("%s: making batches on %d threads instead", exc, workers)
        return BatchMaker(self.source, spec, self.rng, workers, producers=cfg.data_producers)

    def _restore(self, blob: dict) -> None:
        path = self.cfg.resume
        train = blob.get("train")
        widen = widen_for_donor if self._widen else dict
        if self._widen:
            log.info("resume: %s has no donor input; widening its stem (zero weights), new generator optimizer", path)
        if train is None:
            # an inference-only checkpoint: warm start from its weights
            self.G.load_state_dict(build_generator(self.gcfg, widen(blob["generator"]), path).state_dict())
            self.ema.load_state_dict(self.G.state_dict())
            log.info("warm start from %s (no training state in it): fresh discriminator and optimizers", path)
            return
        try:
            self.G.load_state_dict(widen(train["g"]), strict=True)
            self.ema.load_state_dict(build_generator(self.gcfg, widen(blob["generator"]), path).state_dict())
            if not self._widen:  # the stem's Adam moments have the old shape
                self.opt_g.load_state_dict(unpack_optimizer(train["opt_g"]))
            stored = (train["d_channels"], bool(train.get("d_spectral_norm", True)), int(train.get("d_downsample", 1)))
            if self.cfg.reset_discriminator:
                log.info(
                    "resume: new discriminator (stored one: channels %d, spectral norm %s, downsample %d)", *stored
                )
            elif stored != (self.cfg.d_channels, self.cfg.d_spectral_norm, self.cfg.d_downsample):
                raise ModelLoadError(
                    f"{path}: stored discriminator (channels, spectral norm, downsample) = {stored}, run asks "
                    f"{(self.cfg.d_channels, self.cfg.d_spectral_norm, self.cfg.d_downsample)}; "
                    "pass reset_discriminator to start a new one"
                )
            else:
                self.D.load_state_dict(train["d"], strict=True)
                self.opt_d.load_state_dict(unpack_optimizer(train["opt_d"]))
            for opt, lr in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):  # the run's lr wins
                for group in opt.param_groups:
                    group["lr"] = lr
            self.step = int(train["step"])
            self.elapsed_s = float(train["elapsed_s"])
            self.zgen.set_state(train["zgen"])
            self.rng.bit_generator.state = train["rng"]
            if train.get("data_kind") == self.cfg.data and train.get("data") is not None:
                self.source.load_state(train["data"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise ModelLoadError(f"{path}: training state does not load: {exc}") from exc
        log.info("resumed %s at step %d (%.1f min trained)", path, self.step, self.elapsed_s / 60)

    def save(self, path: str | Path) -> None:
        """Writes the checkpoint atomically."""
        train = {
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "hyper": self.cfg.hyper(),
            "d_channels": self.cfg.d_channels,
            "d_spectral_norm": self.cfg.d_spectral_norm,
            "d_downsample": self.cfg.d_downsample,
            "g": {k: v.detach().cpu() for k, v in self.G.state_dict().items()},
            "d": {k: v.detach().cpu() for k, v in self.D.state_dict().items()},
            "opt_g": pack_optimizer(self.opt_g.state_dict()),
            "opt_d": pack_optimizer(self.opt_d.state_dict()),
            "zgen": self.zgen.get_state(),
            "rng": self.rng.bit_generator.state,
            "data_kind": self.cfg.data,
            "data": self.source.state(),
        }
        save_checkpoint(path, self.gcfg, self.ema.state_dict(), train)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for pe, p in zip(self.ema.parameters(), self.G.parameters()):
            pe.lerp_(p.detach(), 1 - decay)
        for be, b in zip(self.ema.buffers(), self.G.buffers()):
            be.copy_(b)

    def _next_batch(self):
        """A fresh batch, or the last one again while none is ready (up to max_reuse uses)."""
        if self._last is not None and self._uses < self.cfg.max_reuse:
            fresh = self.batches.next(block=False)
            if fresh is None:
                self._uses += 1
                self.reused += 1
                return self._last
        else:
            fresh = self.batches.next()
        self._last = fresh.to(self.device)
        self._uses = 1
        return self._last

    def train_step(self) -> dict[str, float]:
        """One discriminator and one generator update; returns the losses."""
        cfg, dev = self.cfg, self.device
        batch = self._next_batch()
        if dev.type == "cuda":
            batch.image, batch.mask, batch.heat, batch.valid = (
                t.contiguous(memory_format=torch.channels_last)
                for t in (batch.image, batch.mask, batch.heat, batch.valid)
            )
            for name in ("donor", "natural", "natural_valid"):
                if getattr(batch, name) is not None:
                    setattr(batch, name, getattr(batch, name).contiguous(memory_format=torch.channels_last))
        b = batch.image.shape[0]
        teacher_z = batch.z is not None and batch.z.shape[1] == self.gcfg.z_dim
        z_a = batch.z if teacher_z else torch.randn(b, self.gcfg.z_dim, generator=self.zgen).to(dev)
        donors = None
        if self.gcfg.donor:
            # the second output (diversity term) takes the next crop's z and donor face
            z_b = z_a.roll(1, 0)
            donors = torch.cat([batch.donor, batch.donor.roll(1, 0)])
        else:
            z_b = torch.randn(b, self.gcfg.z_dim, generator=self.zgen).to(dev)
        img2, mask2, heat2 = (torch.cat([t, t]) for t in (batch.image, batch.mask, batch.heat))
        # Border padding (outside the source image) is not shown to D; it is a target only
        # when filled smoothly (fill_padding), and then a weak one.
        target_mask = target_weight(batch.mask, batch.valid, self.gcfg.fill_padding)
        real_image, real_valid = batch.reals() if cfg.d_reals == "natural" else (batch.image, batch.valid)
        real = real_image * real_valid
        shown = torch.cat([real_valid, real_valid])  # D sees real and fake through the same valid map

        with self._autocast():
            fake = self.G(img2, mask2, heat2, torch.cat([z_a, z_b]), donors)
        # discriminator
        self.D.requires_grad_(True)
        with self._autocast():
            loss_d = d_hinge(self.D(real, batch.mask, batch.heat), self.D(fake.detach() * shown, mask2, heat2))
        r1 = torch.zeros((), device=dev)
        if cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0:
            r1 = r1_penalty(self.D, real, batch.mask, batch.heat)
            loss_d = loss_d + 0.5 * cfg.r1_gamma * cfg.r1_every * r1
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        # generator
        self.D.requires_grad_(False)
        with self._autocast():
            adv = g_hinge(self.D(fake * shown, mask2, heat2))
        fake = fake.float()
        fa, fb = fake.chunk(2)
        rec = reconstruction(fa, batch.image, target_mask, coarse_only=not teacher_z)
        div = diversity(fa, fb, target_mask, cfg.div_margin, cfg.div_centred)
        loss_g = cfg.w_adv * adv + cfg.w_rec * rec + cfg.w_div * div
        parts = {"d": loss_d, "r1": r1, "adv": adv, "rec": rec, "div": div}
        # the temporal terms, only when weighted: each generates the batch once more
        for name, weight, term in (("eq", cfg.w_equiv, self._equivariance), ("hold", cfg.w_hold, self._hold)):
            if weight > 0:
                parts[name] = term(batch, fa, z_a)
                loss_g = loss_g + weight * parts[name]
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self._update_ema()
        self.step += 1
        return {k: float(v.detach()) for k, v in parts.items()}

    def _hold(self, batch: Batch, out: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The context-stability term for the outputs `out` (made with z): the crop's pixels moved by
        a random similarity of up to 1.5 px, 3% and 2 degrees and noised (sigma 2 of 255 levels), everything
        that places and identifies the face kept, generated again."""
        theta = random_similarity(out.shape[0], self.zgen, shift=1.5 / 32, scale=0.03, degrees=2.0)
        noise = torch.randn(batch.image.shape, generator=self.zgen) * (4 / 255)  # [-1, 1] units
        image = warp(batch.image, theta.to(out.device)) + noise.to(out.device)
        with self._autocast():
            jittered = self.G(image, batch.mask, batch.heat, z, batch.donor if self.gcfg.donor else None)
        return hold(out, jittered.float(), batch.mask * batch.valid)

    def _equivariance(self, batch: Batch, out: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The shift-equivariance term for the outputs `out` (made with z): the crop, its mask and
        heatmaps moved by a random similarity (a detection's jitter between frames; the donor, which
        inference aligns once per track's face, stays), generated again and moved back."""
        theta = random_similarity(out.shape[0], self.zgen).to(out.device)
        image, heat, valid = (warp(t, theta) for t in (batch.image, batch.heat, batch.valid))
        mask = (warp(batch.mask, theta) > 0.5).to(batch.mask.dtype)
        with self._autocast():
            moved = self.G(image, mask, heat, z, batch.donor if self.gcfg.donor else None)
        # compare where both outputs are generated from real (not padded) pixels
        both = warp(mask * valid, invert_affine(theta)) > 0.5
        return equivariance(out, moved.float(), theta, batch.mask * batch.valid * both)

    def run(self) -> dict[str, float]:
        """Trains until the step or time limit, saving on the way; returns a summary."""
        cfg = self.cfg
        start = time.monotonic()
        log.info(
            "training %s from step %d on %s: generator %d params, discriminator %d params",
            cfg.data,
            self.step,
            self.device,
            sum(p.numel() for p in self.G.parameters()),
            sum(p.numel() for p in self.D.parameters()),
        )
        try:
            self._loop(start)
        except BaseException as exc:
            # Ctrl-C or SIGTERM (not an error, whose weights may be broken): the steps since
            # the last save are kept, and the exception says where (the CLI prints it)
            if not isinstance(exc, Exception) and self._done:
                self.save(cfg.out)
                exc.vidanon_saved = (cfg.out, self.step)
                log.info("interrupted: saved %s at step %d", cfg.out, self.step)
            raise
        finally:
            self.batches.close()
        self.save(cfg.out)
        log.info("saved %s at step %d (%d steps this chunk)", cfg.out, self.step, self._done)
        return {
            "step": self.step,
            "steps_this_chunk": self._done,
            "reused_batches": self.reused,
            "elapsed_s": self.elapsed_s,
        }

    def _loop(self, start: float) -> None:
        cfg = self.cfg
        last_save = start
        last_log = start
        sums: dict[str, float] = {}
        n = 0
        self._done = 0
        while True:
            if cfg.steps and self.step >= cfg.steps:
                break
            if cfg.minutes and time.monotonic() - start >= cfg.minutes * 60:
                break
            t0 = time.monotonic()
            losses = self.train_step()
            self.elapsed_s += time.monotonic() - t0
            self._done += 1
            for k, v in losses.items():
                if not math.isfinite(v):
                    raise FloatingPointError(f"loss {k} is {v} at step {self.step}")
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            now = time.monotonic()
            if self.step % cfg.log_every == 0:
                rate = n / max(now - last_log, 1e-9)
                log.info(
                    "step %d  %s  %.2f steps/s  (%d reused batches)",
                    self.step,
                    "  ".join(f"{k} {v / n:.4f}" for k, v in sums.items()),
                    rate,
                    self.reused,
                )
                sums, n, last_log = {}, 0, now
            if now - last_save >= cfg.save_every_s:
                self.save(cfg.out)
                last_save = now
                log.info("saved %s at step %d", cfg.out, self.step)


def train(cfg: TrainConfig, gcfg: GeneratorConfig | None = None) -> dict[str, float]:
    """Runs (or continues) training; see TrainConfig."""
    return Trainer(cfg, gcfg).run()
