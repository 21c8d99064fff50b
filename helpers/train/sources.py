"""What a model reads, as batches per split: one source per kind of input (`registry`'s
`reads`) and stage. Audio models hear the cached clips (Stage 1, balanced and augmented) or
mixes of them (Stage 2, fresh each epoch with `dynamic_mixing`); heads on a frozen backbone or
a frozen Stage-1 model read features computed once and kept beside the run (`embed`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from helpers.core.config import SPLITS, STAGE1, STAGE2, TrainingConfig
from helpers.core.freshness import content_key, file_digest
from helpers.core.layout import ModelFiles, RunLayout
from helpers.data import augment, cache, dataset, mix_plans, mixing
from helpers.data.batches import AugmentFn, Batches, ClipBatches, TensorBatches
from helpers.data.no_instrument import flat_share
from helpers.models import checkpoints, embed, registry
from helpers.models.registry import ModelSpec

# Validation and test batches: clips of audio take memory, stored features little.
AUDIO_EVAL_BATCH, FEATURES_EVAL_BATCH = 64, 256


@dataclass
class Source:
    """A model's batches per split (train, val, test) and what the recipe needs beside them:
    the class list, the augmentation of each training batch, the network's arguments that
    come from the data, and metadata for its checkpoint."""

    batches: dict[str, Batches]
    classes: tuple[str, ...]
    augment: AugmentFn | None = None
    network_kwargs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def prepare(run: RunLayout, stage: str, model: ModelSpec, *, config: TrainingConfig,
            device: torch.device, files: ModelFiles) -> Source:
    """The source of `model` in `stage` with the resolved `config` (`registry.resolve`);
    `files` is its run folder (a Stage-1 model's features of the mixes are kept there)."""
    if model.reads == registry.BACKBONE_FEATURES:
        return backbone_source(run, stage, model, config=config, device=device)
    if model.reads == registry.STAGE1_FEATURES:
        return stage1_source(run, model, config, device=device, files=files)
    return clip_source(run, config, device) if stage == STAGE1 else mix_source(run, config,
                                                                              device)


def clip_source(run: RunLayout, config: TrainingConfig, device: torch.device) -> Source:
    """Stage 1 on audio: balanced, shuffled training clips (the waveform augmentations, then
    a share of no-instrument windows with a flat target); plain validation and test clips."""
    cached = cache.load_caches(run, device)
    train = cached["train"]
    index, sign = train.balanced(config.random_seed)
    batches = {"train": ClipBatches(train.waves, train.labels, config.batch_size, index=index,
                                    sign=sign, shuffle=True, seed=config.random_seed)}
    for split in ("val", "test"):
        batches[split] = ClipBatches(cached[split].waves, cached[split].labels, AUDIO_EVAL_BATCH)
    return Source(batches, train.classes, clip_augment(config, len(train.classes)))


def clip_augment(config: TrainingConfig, n_classes: int) -> AugmentFn | None:
    """What happens to each Stage-1 training batch: `config`'s waveform augmentations, then
    its share of no-instrument windows with a flat target (`no_instrument.flat_share`)."""
    return flat_share(augment.waves_for(config, n_classes), config.nothing, n_classes)


def mix_source(run: RunLayout, config: TrainingConfig, device: torch.device) -> Source:
    """Stage 2 on audio: notebook 04's fixed mixes per split (a share of no-instrument
    windows in training), or with `dynamic_mixing` fresh training mixes every epoch, planned
    as notebook 04 planned the fixed ones; validation and test keep their fixed plans."""
    cached = cache.load_caches(run, device)
    plans = mix_plans.plans_of(run, cached)
    batches = {s: mixing.MixBatches(cached[s].waves, plans[s],
                                    config.batch_size if s == "train" else AUDIO_EVAL_BATCH,
                                    shuffle=s == "train", seed=config.random_seed,
                                    nothing=config.nothing if s == "train" else 0.0)
               for s in SPLITS}
    if config.dynamic_mixing:
        batches["train"] = mix_plans.dynamic_batches(run, cached["train"], config)
    classes = cached["train"].classes
    return Source(batches, classes, augment.waves_for(config, len(classes)),
                  meta={"names_nothing": config.nothing > 0})


def backbone_source(run: RunLayout, stage: str, model: ModelSpec, *, config: TrainingConfig,
                    device: torch.device) -> Source:
    """A head on the frozen features of `model`'s backbone (checkpoint `config.backbone`,
    layer `config.layer`) of the cached clips (Stage 1) or notebook 04's mixes (Stage 2),
    computed once; no-instrument windows added to training, with a flat target in Stage 1
    and an empty one in Stage 2."""
    backbone = embed.build_backbone(model.backbone, config.backbone, device)
    feats = embed.backbone_features(run, backbone, device, progress=config.progress,
                                    mixes=stage == STAGE2)
    classes = dataset.instruments(run)
    layers, targets = feats["train"]
    if stage == STAGE1:  # class numbers -> one-hot rows, so no-instrument rows can be flat
        targets = nn.functional.one_hot(targets, len(classes)).float()
    feats["train"] = embed.with_nothing(
        run, (layers, targets), config.nothing, backbone=backbone, device=device,
        seed=config.random_seed, fill=1 / len(classes) if stage == STAGE1 else 0.0,
        progress=config.progress)
    batches = {s: TensorBatches(f[config.layer], y,
                                config.batch_size if s == "train" else FEATURES_EVAL_BATCH,
                                shuffle=s == "train", seed=config.random_seed)
               for s, (f, y) in feats.items()}
    return Source(batches, classes,
                  meta={"names_nothing": config.nothing > 0} if stage == STAGE2 else {})


def stage1_source(run: RunLayout, model: ModelSpec, config: TrainingConfig,
                  *, device: torch.device, files: ModelFiles) -> Source:
    """The 2020 project's transfer head: frozen, eval-mode features of the Stage-1 model
    `model.stage1_source` of every mix (`stage1_features`)."""
    feats = stage1_features(run, model.stage1_source, files, device=device,
                            progress=config.progress)
    batches = {s: TensorBatches(*feats[s],
                                config.batch_size if s == "train" else FEATURES_EVAL_BATCH,
                                shuffle=s == "train", seed=config.random_seed) for s in SPLITS}
    return Source(batches, dataset.instruments(run),
                  network_kwargs={"n_features": feats["train"][0].shape[1]},
                  meta={"extractor": model.stage1_source})


def stage1_features(run: RunLayout, extractor: str, files: ModelFiles, *, device: torch.device,
                    progress: bool = True) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Frozen features of every mix by the Stage-1 model `extractor`, computed once and kept
    in `files` (the transfer head's folder) until the Stage-1 checkpoint's bytes or the mix
    plan change."""
    ckpt = run.model(STAGE1, extractor).best
    model, _ = checkpoints.load_model(ckpt, device)
    model.requires_grad_(False)
    weights = file_digest(ckpt)
    out = {}
    data = None
    for split in SPLITS:
        key = content_key(weights, mixing.load_plan(run.mixes(split))[1]["key"])

        def compute(split=split):
            nonlocal data
            data = data or mix_plans.load_mixes(run, device)
            model.eval()
            return embed.extract(model.features, mixing.MixBatches(*data[split],
                                                                   AUDIO_EVAL_BATCH),
                                 device, progress=progress)

        out[split] = embed.stored(files.features(split), key, compute)
    return out
