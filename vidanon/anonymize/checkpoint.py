"""Generator checkpoints: config embedded, loaded strictly.

One file serves inference and training. Layout (a plain dict, readable with
`torch.load(weights_only=True)`):

    format      "vidanon-generator"
    version     1
    config      GeneratorConfig as a dict
    generator   state dict used for inference (the EMA weights), float16
    train       optional: everything needed to resume (step, configs, raw
                generator and discriminator weights, optimizer states with
                their moments stored as bfloat16 to keep the file small)

A missing, unreadable or mismatching file raises ModelLoadError; there is no
silent fallback to random weights.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from vidanon.anonymize.generator import Generator, GeneratorConfig
from vidanon.errors import ModelLoadError

FORMAT = "vidanon-generator"
VERSION = 1
BUNDLED = Path(__file__).resolve().parent.parent / "weights" / "generator.pt"


def _cast_state(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()) for k, v in state.items()}


def pack_optimizer(state: dict) -> dict:
    """Optimizer state dict with floating tensors (Adam moments) as bfloat16, on CPU."""
    out = {"param_groups": state["param_groups"], "state": {}}
    for k, s in state["state"].items():
        out["state"][k] = {
            n: (
                v.detach().to("cpu", torch.bfloat16)
                if torch.is_tensor(v) and v.is_floating_point() and v.ndim > 0
                else v
            )
            for n, v in s.items()
        }
    return out


def unpack_optimizer(state: dict) -> dict:
    """Inverse of pack_optimizer (moments back to float32)."""
    out = {"param_groups": state["param_groups"], "state": {}}
    for k, s in state["state"].items():
        out["state"][k] = {
            n: (v.to(torch.float32) if torch.is_tensor(v) and v.is_floating_point() else v) for n, v in s.items()
        }
    return out


def save_checkpoint(
    path: str | os.PathLike,
    cfg: GeneratorConfig,
    generator_state: dict[str, torch.Tensor],
    train: dict[str, Any] | None = None,
) -> None:
    """Writes a checkpoint atomically (temporary file in the same folder, then rename).

    Args:
        path: destination.
        cfg: the generator's config.
        generator_state: inference weights (stored as float16).
        train: optional resumable training state (see module docstring).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "version": VERSION,
        "config": cfg.to_dict(),
        "generator": _cast_state(generator_state, torch.float16),
    }
    if train is not None:
        blob["train"] = train
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(blob, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict, validated for format and version.

    Raises:
        ModelLoadError: missing, unreadable, or not a vidanon generator checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"generator checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is a load error
        # torch's own text runs to several lines and suggests loading without weights_only,
        # which would run code from the file: not shown
        raise ModelLoadError(f"{path} is not a readable generator checkpoint ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelLoadError(f"{path} is not a vidanon generator checkpoint")
    if blob.get("version") != VERSION:
        raise ModelLoadError(f"{path} has checkpoint version {blob.get('version')}, expected {VERSION}")
    for key in ("config", "generator"):
        if key not in blob:
            raise ModelLoadError(f"{path} lacks '{key}'")
    return blob


def config_of(blob: dict[str, Any], path: str | os.PathLike = "<checkpoint>") -> GeneratorConfig:
    """The embedded GeneratorConfig, strictly parsed."""
    try:
        return GeneratorConfig.from_dict(dict(blob["config"]))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path} has an invalid generator config: {exc}") from exc


def build_generator(
    cfg: GeneratorConfig, state: dict[str, torch.Tensor], path: str | os.PathLike = "<checkpoint>"
) -> Generator:
    """A Generator with `state` loaded strictly (float32, eval mode, CPU)."""
    net = Generator(cfg)
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    except (RuntimeError, AttributeError) as exc:
        raise ModelLoadError(f"{path}: weights do not match the embedded config: {exc}") from exc
    return net.eval()


def load_generator(path: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> Generator:
    """The inference generator from `path` (the bundled checkpoint when None).

    Raises:
        ModelLoadError: missing, corrupt or mismatching checkpoint.
    """
    path = Path(path) if path is not None else BUNDLED
    blob = read_checkpoint(path)
    cfg = config_of(blob, path)
    net = build_generator(cfg, blob["generator"], path)
    return net.to(device).requires_grad_(False)
