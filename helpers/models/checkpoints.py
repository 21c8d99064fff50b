"""Checkpoints: a plain state dict plus metadata, written atomically, loaded with weights_only.

The metadata (model name and arguments, classes, audio parameters) is enough to rebuild the
model anywhere, on CPU too, without the code that trained it.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from pathlib import Path

import torch

from helpers.core import metrics
from helpers.core.atomic import atomic_write
from helpers.core.config import ALL_CLASSES, CLIP_SAMPLES, SAMPLE_RATE
from helpers.models import networks, registry
from helpers.models.backbone import BackboneUnavailable

FORMAT = "irmas-instruments/1"
TASKS = ("single", "multi")  # Stage 1 (one instrument, softmax), Stage 2 (any, sigmoid)


class CheckpointError(ValueError):
    """A file that is not a checkpoint of this project; the message names it."""


def model_meta(name: str, *, classes: tuple[str, ...], task: str = "single",
               **model_kwargs) -> dict:
    """Metadata that rebuilds a model: `task` is "single" (Stage 1) or "multi" (Stage 2);
    `classes` the instruments its outputs stand for, in order."""
    return {"model": name, "model_kwargs": model_kwargs, "task": task, "classes": list(classes),
            "sample_rate": SAMPLE_RATE, "clip_samples": CLIP_SAMPLES}


def check_classes(meta: dict, classes: tuple[str, ...], path: str | Path = "checkpoint"
                  ) -> None:
    """Refuse a model trained on other instruments than `classes` (those of the run it is
    applied to): its outputs would be read with another meaning."""
    if tuple(meta["classes"]) != tuple(classes):
        raise CheckpointError(
            f"{path} was trained on {', '.join(meta['classes'])}, but this run is on "
            f"{', '.join(classes)}: use a model trained on this run's instruments")


# Metadata fields that change an answer, bound to the weights with the classes and backbone.
BOUND = ("model", "model_kwargs", "task", "sample_rate", "clip_samples", "thresholds",
         "names_nothing", "confidence_floor", "decoding")
MAX_CLIP_SECONDS = 30.0  # a window longer than this asks for memory no model here needs
RATES = (8_000, 192_000)


def fingerprint(state: dict[str, torch.Tensor], classes: list[str],
                backbone: dict | None = None, *, settings: dict | None = None) -> str:
    """Binds the class list, the backbone a head was trained on (its checkpoint, layer and
    weights, which a frozen head does not store) and the `settings` that change an answer
    (`BOUND`: model, task, audio format, thresholds) to the weights: an edited field no longer
    matches, so a model is never read with another meaning or run at another rate."""
    h = hashlib.sha256(json.dumps(classes).encode())
    if backbone is not None:
        h.update(json.dumps(backbone, sort_keys=True).encode())
    if settings is not None:
        h.update(json.dumps(settings, sort_keys=True).encode())
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy()
                 .tobytes())
    return h.hexdigest()


def decoding(meta: dict) -> dict:
    """How a Stage-2 checkpoint names instruments: the rule calibration chose on validation,
    or, for one saved before there was a choice, its per-instrument thresholds (p = 0.5
    without them)."""
    thresholds = meta.get("thresholds", 0.5)
    return {"kind": meta.get("decoding", {}).get("kind", "thresholds"),
            "thresholds": thresholds}


def hears_audio(meta: dict) -> bool:
    """Whether a checkpoint's model takes audio: all but the 2020 transfer head, which reads
    features of a Stage-1 model kept elsewhere (a musicnn head rebuilds its own backbone)."""
    return networks.network_class(meta["model"]).hears_audio


def save_checkpoint(path: str | Path, model: networks.Network, meta: dict, **extra) -> Path:
    """Save the state dict (moved to CPU), `meta` and any `extra` plain data atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    backbone = model.backbone_identity()
    if backbone is not None:
        meta = {**meta, "backbone": backbone}
    architecture = model.architecture()
    if architecture is not None:
        # all its weights are here: with its architecture it rebuilds with no hub files
        meta = {**meta, "model_kwargs": {**meta.get("model_kwargs", {}),
                                         "architecture": architecture}}
    settings = _bound(meta)
    meta = {**meta, "bound": sorted(settings),
            "fingerprint": fingerprint(state, meta["classes"], backbone, settings=settings)}
    payload = {"format": FORMAT, "state_dict": state, "meta": meta, **extra}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _why(err: Exception) -> str:
    """torch's reason in a few words: its messages run to paragraphs that advise
    `weights_only=False`, which would run whatever code the file holds."""
    if isinstance(err, pickle.UnpicklingError):
        return "it holds Python objects, not only tensors and settings; refused unexecuted"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return first if len(first) < 120 else type(err).__name__


def _bound(meta: dict) -> dict:
    return {k: meta[k] for k in BOUND if k in meta}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely (`weights_only=True`); refuse anything that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here; train a model first (notebook 03)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (an interrupted copy?); copy or train it again")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        kind = ("an audio file: are --checkpoint and the audio files swapped?"
                if magic in (b"RIFF", b"fLaC", b"OggS", b"ID3\x03")
                else "text" if magic.isascii() and magic.strip() else "other bytes")
        raise CheckpointError(f"{path}: not a checkpoint of this project (not the zip archive "
                              f"torch.save writes, but {kind}); give the best.pt a training "
                              "run wrote")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many kinds on a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a checkpoint of this project ({_why(err)}); "
                              "give the best.pt a training run wrote") from err
    ours = (isinstance(data, dict) and data.get("format") == FORMAT
            and isinstance(data.get("state_dict"), dict)
            and all(isinstance(v, torch.Tensor) for v in data["state_dict"].values()))
    if not ours:
        raise CheckpointError(
            f"{path}: not a checkpoint of this project (expected a dict with format {FORMAT!r}, "
            "a plain state dict and metadata)")
    return data


def check_meta(meta, path: str | Path = "checkpoint") -> dict:
    """The metadata a model is rebuilt from, checked field by field; a `CheckpointError`
    names the first field that is missing or wrong."""
    def bad(field: str, why: str) -> CheckpointError:
        return CheckpointError(f"{path}: metadata field {field!r} {why}")

    if not isinstance(meta, dict):
        raise bad("meta", "is missing (not a dict)")
    name = meta.get("model")
    if networks.RENAMED.get(name, name) not in networks.NETWORKS:
        raise bad("model", f"is {name!r}, not one of {sorted(networks.NETWORKS)}")
    if not isinstance(meta.get("model_kwargs", {}), dict):
        raise bad("model_kwargs", "is not a dict")
    if meta.get("task") not in TASKS:
        raise bad("task", f"is {meta.get('task')!r}, not one of {TASKS}")
    classes = meta.get("classes")
    if (not isinstance(classes, list) or not classes or len(set(classes)) != len(classes)
            or not set(classes) <= set(ALL_CLASSES)):
        raise bad("classes", f"is {classes!r}, not a list of distinct IRMAS codes {ALL_CLASSES}")
    for field in ("sample_rate", "clip_samples"):
        value = meta.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise bad(field, f"is {value!r}, not a positive whole number")
    if not RATES[0] <= meta["sample_rate"] <= RATES[1]:
        raise bad("sample_rate", f"is {meta['sample_rate']}, not {RATES[0]:,} to {RATES[1]:,} Hz")
    if meta["clip_samples"] > MAX_CLIP_SECONDS * meta["sample_rate"]:
        raise bad("clip_samples", f"is {meta['clip_samples']:,}, over {MAX_CLIP_SECONDS:g} s")
    if "thresholds" in meta:
        _check_thresholds(meta["thresholds"], len(classes), bad)
    if "confidence_floor" in meta:
        _check_thresholds(meta["confidence_floor"], len(classes), bad, "confidence_floor")
    if "decoding" in meta and (not isinstance(meta["decoding"], dict)
                               or meta["decoding"].get("kind") not in metrics.DECODINGS):
        raise bad("decoding", f"is {meta['decoding']!r}, not a rule of kind "
                  f"{' or '.join(metrics.DECODINGS)}")
    if not isinstance(meta.get("names_nothing", False), bool):
        raise bad("names_nothing", f"is {meta['names_nothing']!r}, not true or false")
    if not isinstance(meta.get("fingerprint"), str):
        raise bad("fingerprint", "is missing: this file was not saved by this project's "
                  "save_checkpoint (or was edited); train or save the model again")
    return meta


def _check_thresholds(thresholds, n_classes: int, bad, field: str = "thresholds") -> None:
    """One probability per class (or one for all), each a finite number in [0, 1]."""
    values = thresholds if isinstance(thresholds, list) else [thresholds]
    if isinstance(thresholds, list) and len(values) != n_classes:
        raise bad(field, f"holds {len(values)} values for {n_classes} classes")
    for value in values:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not 0 <= value <= 1:
            raise bad(field, f"holds {value!r}, not a probability from 0 to 1")


def _install_line(backbone: dict) -> str:
    known = registry.backbone_class(backbone)
    return known.install if known else f"the backbone {backbone.get('name')!r}"


def load_model(path: str | Path, map_location: str | torch.device = "cpu"
               ) -> tuple[networks.Network, dict]:
    """Rebuild the model a checkpoint describes, load its weights, put it in eval mode. The
    metadata is checked first, and the rebuilt model's outputs against its class list."""
    data = load_checkpoint(path, map_location)
    meta = check_meta(data.get("meta"), path)
    for key, value in data["state_dict"].items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: weight {key!r} holds NaN or infinite values (a "
                                  "diverged training run?); train the model again")
    backbone = meta.get("backbone")
    settings = _bound(meta) if "bound" in meta else None  # None: saved before BOUND existed
    if meta["fingerprint"] != fingerprint(data["state_dict"], meta["classes"], backbone,
                                          settings=settings):
        raise CheckpointError(
            f"{path}: its metadata is not what these weights were saved with: a field among "
            f"'classes', 'backbone'{', ' + ', '.join(map(repr, BOUND)) if settings else ''} was "
            "edited or reordered; use the file as training wrote it")
    try:
        model = networks.build(meta["model"], n_outputs=len(meta["classes"]),
                             **meta.get("model_kwargs", {}))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: metadata field 'model_kwargs' does not build a "
                              f"{meta['model']!r} model ({err})") from err
    except BackboneUnavailable as err:
        known = registry.backbone_class(backbone)
        raise CheckpointError(f"{path}: its model hears through "
                              f"{known.title if known else meta['model']}, and {err}") from err
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"{path}: the weights do not fit the model its metadata describes ({meta['model']}, "
            f"{len(meta['classes'])} classes): {first[1].strip() if len(first) > 1 else first[0]}"
        ) from err
    if model.backbone_identity() != backbone:
        raise CheckpointError(
            f"{path}: this head was trained on backbone {backbone}, but the installed one is "
            f"{model.backbone_identity()}: install the backbone it names "
            f"({_install_line(backbone)}) or train the head again")
    return model.to(map_location).eval(), meta
