"""Frozen features, computed once and kept beside the run until what they came from changes.

A frozen backbone (musicnn) or a frozen Stage-1 network hears every clip or mix of a split
once; heads then train for many epochs on the stored features in a second or so. Each file
records a key of the weights and the clips or mix plan it was made from (`freshness`'s rule)
and is rebuilt when, and only when, that key changes; a damaged or half-written file is
rebuilt too (writes are atomic).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.core.atomic import atomic_write
from helpers.core.config import SPLITS
from helpers.core.freshness import content_key
from helpers.core.layout import RunLayout
from helpers.data import cache, mixing, no_instrument
from helpers.data.batches import Batches, ClipBatches
from helpers.models import registry

Features = torch.Tensor | dict[str, torch.Tensor]


@torch.no_grad()
def extract(features: Callable[[torch.Tensor], Features], batches: Batches,
            device: torch.device, *, progress: bool = True, desc: str = "features"
            ) -> tuple[Features, torch.Tensor]:
    """`features(x)` of every batch (a tensor, or a dict of tensors), gathered on the CPU."""
    out: list[Features] = []
    targets = []
    for x, y in tqdm(batches, desc=desc, leave=False, disable=not progress):
        out.append(features(x.to(device)))
        targets.append(y.cpu())
    if isinstance(out[0], dict):
        return {k: torch.cat([o[k].float().cpu() for o in out]) for k in out[0]}, torch.cat(targets)
    return torch.cat([o.float().cpu() for o in out]), torch.cat(targets)


def stored(path: Path, key: str, compute: Callable[[], tuple[Features, torch.Tensor]]
           ) -> tuple[Features, torch.Tensor]:
    """The (features, targets) kept in `path` when made with `key`, else `compute()`d and kept."""
    if path.is_file():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged file fails in many ways; it is only a cache
            print(f"recomputing {path}: damaged ({type(err).__name__}: {err})", flush=True)
            data = {}
        if isinstance(data, dict) and data.get("key") == key:
            return data["features"], data["targets"]
    feats, targets = compute()
    payload = {"key": key, "features": feats, "targets": targets}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return feats, targets


def build_backbone(model: str, checkpoint: str, device: torch.device) -> nn.Module:
    """Pretrained backbone `model` (`registry.BACKBONES`: musicnn, ast) from `checkpoint`, in
    eval mode on `device`: built once and handed to every function below, since each build
    re-reads and hashes the weights (~350 MB for AST)."""
    return registry.BACKBONES[model](checkpoint).to(device).eval()


def backbone_features(run: RunLayout, backbone: nn.Module, device: torch.device,
                      *, progress: bool = True, mixes: bool = False,
                      splits: tuple[str, ...] = SPLITS
                      ) -> dict[str, tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """Every layer's features of pretrained `backbone` (`build_backbone`: musicnn's three,
    AST's pooled embedding) and the targets of each split's cached clips (Stage 1: class
    numbers) or of its planned mixes (`mixes`, Stage 2: multi-hot); one pass of the backbone
    serves every layer."""
    checkpoint = backbone.checkpoint
    out = {}
    for split in splits:
        plan_meta = mixing.load_plan(run.mixes(split)) if mixes else None
        # the key comes from the cache's stamp or the plan: fresh features cost no audio load
        source = plan_meta[1]["key"] if mixes else cache.recorded_key(run.cache(split))

        def compute(split=split, plan_meta=plan_meta):
            clips = cache.load_split(run.cache(split), "cpu")
            batches = (mixing.MixBatches(clips.waves, plan_meta[0], 32) if mixes
                       else ClipBatches(clips.waves, clips.labels, 32))
            return extract(backbone.layers, batches, device, progress=progress,
                           desc=f"{checkpoint} {'mixes' if mixes else 'clips'} {split}")

        key = content_key(backbone.weights_sha256, source)
        out[split] = stored(run.backbone_features(checkpoint, split, mixes), key, compute)
    return out


def with_nothing(run: RunLayout, train: tuple[dict[str, torch.Tensor], torch.Tensor],
                 share: float, *, backbone: nn.Module, device: torch.device, seed: int,
                 fill: float = 0.0, progress: bool = True
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A frozen head's training features and target matrix `train` with no-instrument windows
    added, `share` of the result (as in the trained-whole models' batches) but at least
    `no_instrument.FIXED_MINIMUM`, their targets all `fill` (Stage 2: 0, name nothing; Stage 1: 1/C,
    a flat answer)."""
    layers, targets = train
    if not share:
        return train
    count = max(round(len(targets) * share / (1 - share)), no_instrument.FIXED_MINIMUM)
    more, zeros = nothing_features(run, backbone, device, count=count,
                                   n_classes=targets.shape[1], seed=seed, progress=progress)
    return ({k: torch.cat([v, more[k]]) for k, v in layers.items()},
            torch.cat([targets, zeros + fill]))


def nothing_features(run: RunLayout, backbone: nn.Module, device: torch.device,
                     *, count: int, n_classes: int, seed: int, progress: bool = True
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every layer's features of `backbone` for `count` no-instrument windows
    (`helpers.data.no_instrument`) and their all-zero targets; kept like the mixes' features."""
    checkpoint = backbone.checkpoint
    key = content_key(backbone.weights_sha256, {"nothing": count, "seed": seed,
                                                "kinds": list(no_instrument.KINDS)})

    def compute():
        windows = no_instrument.NothingBatches(count, n_classes, 32, seed=seed)
        return extract(backbone.layers, windows, device, progress=progress,
                       desc=f"{checkpoint} no-instrument windows")

    return stored(run.backbone_features(checkpoint, "nothing", True), key, compute)
