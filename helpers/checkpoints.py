"""Checkpoints: a plain state dict plus metadata, written atomically, loaded with weights_only.

The metadata (model name and arguments, classes, audio parameters) is enough to rebuild the
model anywhere, on CPU too, without the code that trained it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from helpers import models
from helpers.atomic import atomic_write
from helpers.config import CLASSES, CLIP_SAMPLES, SAMPLE_RATE

FORMAT = "irmas-instruments/1"


class CheckpointError(ValueError):
    """A file that is not a checkpoint of this project; the message names it."""


def model_meta(name: str, task: str = "single", **model_kwargs) -> dict:
    """Metadata that rebuilds a model: `task` is "single" (Stage 1) or "multi" (Stage 2)."""
    return {"model": name, "model_kwargs": model_kwargs, "task": task, "classes": list(CLASSES),
            "sample_rate": SAMPLE_RATE, "clip_samples": CLIP_SAMPLES}


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict, **extra) -> Path:
    """Save the state dict (moved to CPU), `meta` and any `extra` plain data atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "state_dict": state, "meta": meta, **extra}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely (`weights_only=True`); refuse anything that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here; train a model first (notebook 03)")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path}: not a loadable checkpoint ({err})") from err
    ours = (isinstance(data, dict) and data.get("format") == FORMAT
            and isinstance(data.get("state_dict"), dict)
            and all(isinstance(v, torch.Tensor) for v in data["state_dict"].values()))
    if not ours:
        raise CheckpointError(
            f"{path}: not a checkpoint of this project (expected a dict with format {FORMAT!r}, "
            "a plain state dict and metadata)")
    return data


def load_model(path: str | Path, map_location: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes, load its weights, put it in eval mode."""
    data = load_checkpoint(path, map_location)
    meta = data["meta"]
    model = models.build(meta["model"], **meta["model_kwargs"])
    model.load_state_dict(data["state_dict"])
    return model.to(map_location).eval(), meta
