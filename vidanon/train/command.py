"""`vidanon train`: the typer command. Registered by cli.py as `app.command("train")(train_cmd)`.

torch is imported inside the function so that the CLI starts fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer


def train_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="Checkpoint to write (atomically, every --save-every seconds and at the end).")
    ],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Training faces: 'synthetic' (drawn from the DCGAN teacher of gan-face-generate) or 'folder'.",
        ),
    ] = "synthetic",
    folder: Annotated[
        Path | None,
        typer.Option(
            "--folder", help="Folder of face images for --data folder (searched recursively; faces found with YuNet)."
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", help="Checkpoint to continue from; its architecture is used and the step counter continues."
        ),
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option(
            "--resolution",
            help="Crop side of a new generator: 64, 128 or 256 (default 64; taken from --resume when resuming).",
        ),
    ] = None,
    width: Annotated[
        int | None, typer.Option("--width", help="Base channel count of a new generator (default 24).")
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Stop at this total step count (0: no step limit).")] = 0,
    minutes: Annotated[
        float, typer.Option("--minutes", help="Stop after this many minutes of this chunk (0: no time limit).")
    ] = 0.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Faces per step.")] = 16,
    device: Annotated[
        str, typer.Option("--device", help="cpu, cuda or cuda:N. CUDA uses bf16 autocast and channels_last.")
    ] = "cpu",
    seed: Annotated[int, typer.Option("--seed", help="Seed for data, augmentation and z.")] = 0,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads for torch (0: torch default).")] = 0,
    save_every: Annotated[float, typer.Option("--save-every", help="Seconds between checkpoints.")] = 300.0,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate of generator and discriminator.")] = 5e-4,
    d_lr: Annotated[
        float,
        typer.Option(
            "--d-lr",
            help="Adam learning rate of the discriminator alone (0: --lr). A faster discriminator "
            "(two time-scale update) is one way to keep it from sitting at chance.",
        ),
    ] = 0.0,
    log_every: Annotated[int, typer.Option("--log-every", help="Steps between log lines.")] = 10,
    adv_weight: Annotated[
        float, typer.Option("--adv-weight", help="Weight of the adversarial loss (reconstruction has weight 1).")
    ] = 0.1,
    r1_gamma: Annotated[
        float,
        typer.Option(
            "--r1-gamma",
            help="R1 penalty on the discriminator (0: off). At 0.1 it kept the discriminator at chance here.",
        ),
    ] = 0.1,
    r1_every: Annotated[int, typer.Option("--r1-every", help="Apply R1 every Nth step (lazy), scaled by N.")] = 16,
    d_downsample: Annotated[
        int,
        typer.Option(
            "--d-downsample",
            help="The discriminator judges inputs average-pooled by this factor (2: structure, not the teacher's texture).",
        ),
    ] = 1,
    d_reals: Annotated[
        str,
        typer.Option(
            "--d-reals",
            help="What the discriminator sees as real: 'targets' (the reconstruction targets, face swaps "
            "with their seams included) or 'natural' (the crops before any swap).",
        ),
    ] = "targets",
    div_weight: Annotated[
        float, typer.Option("--div-weight", help="Weight of the diversity hinge between two z on the same crop.")
    ] = 0.2,
    equiv_weight: Annotated[
        float,
        typer.Option(
            "--equiv-weight",
            help="Weight of the shift-equivariance term: the crop, mask and heatmaps moved by a small random "
            "similarity (detection jitter), the generated face must move with them (0: off). Against flicker.",
        ),
    ] = 0.0,
    hold_weight: Annotated[
        float,
        typer.Option(
            "--hold-weight",
            help="Weight of the context-stability term: only the crop's pixels moved a little and noised "
            "(landmarks, mask, donor and z kept), the generated face must not change (0: off). Against flicker.",
        ),
    ] = 0.0,
    div_margin: Annotated[
        float, typer.Option("--div-margin", help="Diversity hinge margin (mean abs difference, [-1, 1] units).")
    ] = 0.25,
    div_centred: Annotated[
        bool,
        typer.Option(
            "--div-centred/--div-plain",
            help="Measure diversity after removing each output's mean colour (structure, not skin tone).",
        ),
    ] = False,
    donor: Annotated[
        bool | None,
        typer.Option(
            "--donor/--no-donor",
            help="Generator that also takes the teacher's face for z (aligned) as its identity source. "
            "With --resume of a generator without it: widen it (zero weights for the new input).",
        ),
    ] = None,
    donor_warp: Annotated[
        bool | None,
        typer.Option(
            "--donor-warp/--no-donor-warp",
            help="Donor generator: warp each donor face so its 5 landmarks land on the crop's (pose-matched "
            "donors), in training and at inference. Default: the resumed checkpoint's, else off.",
        ),
    ] = None,
    fill_padding: Annotated[
        bool | None,
        typer.Option(
            "--fill-padding/--no-fill-padding",
            help="Fill crops' padding past the source image smoothly instead of repeating its edge "
            "(teacher faces fill their draws), in training and in donor faces; filled pixels are weak "
            "targets. Default: the resumed checkpoint's, else off.",
        ),
    ] = None,
    donor_face_only: Annotated[
        bool | None,
        typer.Option(
            "--donor-face-only/--no-donor-face-only",
            help="Give the donor as its face alone (hair and background mid-grey), in training and at "
            "inference, and blend only the face region into training swaps, so the generator never copies "
            "the donor's hair and background. Default: the resumed checkpoint's, else off.",
        ),
    ] = None,
    donor_context: Annotated[
        float | None,
        typer.Option(
            "--donor-context",
            help="Show each donor within its face region grown by this factor (1-4), a smooth fill of its "
            "crop's context around it instead of its hair and background, in training and at inference "
            "(0: off). Default: the resumed checkpoint's, else off.",
        ),
    ] = None,
    swap_prob: Annotated[
        float | None,
        typer.Option(
            "--swap-prob",
            help="Share of teacher crops made face swaps (another teacher face blended in, with its z), "
            "so the face must come from z, not the context. Default: the resumed run's, else 0.",
        ),
    ] = None,
    swap_scale: Annotated[
        float | None,
        typer.Option(
            "--swap-scale",
            help="Size of the swapped region: the face box's ellipse at this scale (0.9: the whole face, "
            "smaller: the inner face only, without the other face's hair and background). "
            "Default: the resumed run's, else 0.9.",
        ),
    ] = None,
    relight: Annotated[
        float | None,
        typer.Option(
            "--relight",
            help="Share of crops shown under another light (exposure, gamma, contrast, colour cast, a side "
            "light) with the donor as drawn, so the generator learns to fit the donor to the context's "
            "light. Default: the resumed run's, else 0.",
        ),
    ] = None,
    reset_discriminator: Annotated[
        bool,
        typer.Option(
            "--reset-discriminator", help="With --resume: start a new discriminator instead of the stored one."
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Threads that detect faces and build crops ahead of each step (0: inline). Use 8-12 on a GPU machine.",
        ),
    ] = 0,
    producers: Annotated[
        int,
        typer.Option(
            "--producers",
            help="With --workers: threads that each assemble whole batches (3-4 keep a GPU fed).",
        ),
    ] = 1,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            help="Worker processes that each make whole batches (instead of --workers' threads, which share "
            "one GIL): for a GPU machine, about its cores less two.",
        ),
    ] = 0,
    max_reuse: Annotated[
        int,
        typer.Option(
            "--max-reuse",
            help="With --workers or --processes: a batch may serve up to this many steps (fresh z each) while "
            "the next is not ready.",
        ),
    ] = 1,
) -> None:
    """Train (or continue training) the face generator."""
    from vidanon.anonymize.generator import GeneratorConfig
    from vidanon.errors import InputError
    from vidanon.train.loop import TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # under the main CLI the root logger is already set up (warnings only): progress is info
    logging.getLogger("vidanon.train").setLevel(logging.INFO)
    if data == "folder" and folder is None:
        raise InputError("--data folder needs --folder PATH")
    if steps == 0 and minutes == 0:
        raise InputError("give --steps or --minutes (or both)")
    # swap settings are part of the recipe: a resumed run keeps its own unless told otherwise
    # (a donor generator trained on without swaps would learn to copy the crop's own face)
    from vidanon.anonymize.checkpoint import config_of, read_checkpoint
    from vidanon.train.data import SWAP_SCALE

    _check_out(out, resume)
    blob = read_checkpoint(resume) if resume is not None else None
    stored = _stored_recipe(blob) if blob is not None else {}
    if swap_prob is None:
        swap_prob = float(stored.get("swap_prob", 0.0))
    if swap_scale is None:
        swap_scale = float(stored.get("swap_scale", SWAP_SCALE))
    if relight is None:
        relight = float(stored.get("relight_prob", 0.0))
    logging.getLogger("vidanon.train").info(
        "swaps: --swap-prob %g --swap-scale %g; --relight %g", swap_prob, swap_scale, relight
    )
    gcfg = None
    if resume is None or any(
        v is not None for v in (resolution, width, donor, donor_warp, fill_padding, donor_face_only, donor_context)
    ):
        kwargs = {}
        if resolution is not None:
            kwargs["resolution"] = resolution
        if width is not None:
            kwargs["base_channels"] = width
        if donor is not None:
            kwargs["donor"] = donor
        if donor_warp is not None:
            kwargs["donor_warp"] = donor_warp
        if fill_padding is not None:
            kwargs["fill_padding"] = fill_padding
        if donor_face_only is not None:
            kwargs["donor_face_only"] = donor_face_only
        if donor_context is not None:
            kwargs["donor_context"] = donor_context
        # resuming, what is not asked for comes from the checkpoint (a conflicting request is the trainer's error)
        want = config_of(blob, resume).to_dict() if blob is not None else {}
        want.update(kwargs)
        try:
            gcfg = GeneratorConfig(**want)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    try:
        cfg = TrainConfig(
            out=str(out),
            data=data,
            folder=str(folder) if folder else None,
            resume=str(resume) if resume else None,
            steps=steps,
            minutes=minutes,
            batch_size=batch_size,
            device=device,
            seed=seed,
            threads=threads,
            save_every_s=save_every,
            lr_g=lr,
            lr_d=d_lr or lr,
            log_every=log_every,
            data_workers=workers,
            data_producers=producers,
            data_processes=processes,
            max_reuse=max_reuse,
            w_adv=adv_weight,
            w_div=div_weight,
            w_equiv=equiv_weight,
            w_hold=hold_weight,
            r1_gamma=r1_gamma,
            r1_every=r1_every,
            d_downsample=d_downsample,
            d_reals=d_reals,
            div_margin=div_margin,
            div_centred=div_centred,
            swap_prob=swap_prob,
            swap_scale=swap_scale,
            relight_prob=relight,
            reset_discriminator=reset_discriminator,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    summary = train(cfg, gcfg)
    logging.getLogger("vidanon.train").info("done: %s", summary)


def _check_out(out: Path, resume: Path | None) -> None:
    """Refuses, before any training, an --out that is a folder, lies in a folder nothing can be
    written in, or is an existing file other than a vidanon checkpoint (a photo given by
    mistake would be replaced). A checkpoint there, the resumed one included, is replaced:
    chunks write on."""
    from vidanon.anonymize.checkpoint import read_checkpoint
    from vidanon.errors import ModelLoadError, OutputError
    from vidanon.io.paths import check_writable

    if out.is_dir():
        raise OutputError(f"{out}: --out is a directory; give the checkpoint file's path")
    if out.exists():
        try:
            read_checkpoint(out)
        except ModelLoadError:
            raise OutputError(f"{out}: exists and is not a vidanon checkpoint; refusing to replace it") from None
    parent = out.parent if str(out.parent) else Path(".")
    if parent.is_dir():  # a missing folder is made when the checkpoint is first saved
        check_writable(out, parent)


def _stored_recipe(blob: dict) -> dict:
    """The recipe (`TrainConfig.hyper`) a checkpoint was trained with; {} when it has none."""
    train = blob.get("train") or {}
    hyper = train.get("hyper") if isinstance(train, dict) else None
    return hyper if isinstance(hyper, dict) else {}
