"""Stage 1 end to end: cached splits -> batches -> fit -> best checkpoint -> test metrics.

Notebook 03 calls `train` once per model (`train_models`); each model's numbers land
in its `metrics.json` (see `layout`), so tables and the README come from files, not memory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from helpers.core import metrics, results
from helpers.core.config import BACKBONE_MODELS, SEED, SPLITS, TrainingConfig
from helpers.core.layout import RunLayout, as_layout
from helpers.data import augment, cache, dataset
from helpers.data.batches import AugmentFn, ClipBatches, TensorBatches
from helpers.data.no_instrument import flat_share
from helpers.models import checkpoints, embed, networks
from helpers.train import loop

STAGE = "stage1"


def load_caches(run: RunLayout | str | Path, device: torch.device | None = None,
                splits: tuple[str, ...] = SPLITS) -> dict[str, cache.CachedSplit]:
    """The caches notebook 02 wrote (train/val/test); on the GPU when training runs there."""
    run = as_layout(run)
    place = device if device is not None and device.type == "cuda" else "cpu"
    return {s: cache.load_split(run.cache(s), place) for s in splits}


def make_batches(cached: dict[str, cache.CachedSplit], batch_size: int, seed: int = SEED
                 ) -> dict[str, ClipBatches]:
    """Balanced, shuffled training batches; plain val/test batches."""
    index, sign = cached["train"].balanced(seed)
    train = cached["train"]
    out = {"train": ClipBatches(train.waves, train.labels, batch_size, index, sign,
                                shuffle=True, seed=seed)}
    for split in ("val", "test"):
        out[split] = ClipBatches(cached[split].waves, cached[split].labels, 64)
    return out


def loss(config: TrainingConfig) -> loop.LossFn:
    """Stage 1's loss: cross-entropy, with `config`'s label smoothing."""
    return functools.partial(nn.functional.cross_entropy, label_smoothing=config.label_smoothing)


def model_kwargs(name: str, config: TrainingConfig, frozen: bool = False) -> dict:
    """What `networks.build` needs beyond the outputs: a pretrained backbone's checkpoint, layer
    and head from `config`, trained whole (fine-tuned) or `frozen`; nothing for the networks
    trained from scratch."""
    if name not in BACKBONE_MODELS:
        return {}
    return {"checkpoint": config.backbone, "layer": config.layer, "hidden": config.head_hidden,
            "frozen": frozen}


def batch_transform(config: TrainingConfig, n_classes: int) -> AugmentFn | None:
    """What happens to each Stage-1 training batch: `config`'s waveform augmentations, then
    its share of no-instrument windows with a flat target (`nothing.flat_share`)."""
    return flat_share(augment.waves_for(config, n_classes), config.nothing, n_classes)


FROZEN = "transfer-musicnn"  # a head on frozen musicnn features (`train_frozen`)


def train_frozen(run: RunLayout | str | Path, config: TrainingConfig | None = None,
                 variant: str = FROZEN, model: str = "musicnn") -> results.TrainResult:
    """A head on the frozen features of pretrained backbone `model` (musicnn or ast; checkpoint
    `config.backbone`, layer `config.layer`) of the cached clips, computed once (`embed`); its
    checkpoint holds only the head and predicts on audio through the backbone it names. Knobs
    from `config.per_model[variant]`."""
    run = as_layout(run)
    config = (config or TrainingConfig()).applied(STAGE, model, variant, on_audio=False)
    dev = loop.pick_device(config.device)
    backbone = embed.build_backbone(model, config.backbone, dev)
    feats = embed.backbone_features(run, backbone, dev, config.progress)
    layers, labels = feats["train"]
    n_classes = len(dataset.instruments(run))
    feats["train"] = embed.with_nothing(
        run, (layers, nn.functional.one_hot(labels, n_classes).float()), config.nothing,
        backbone, dev, config.random_seed, fill=1 / n_classes, progress=config.progress)
    return fit_head(run, STAGE, model, variant, config, feats, loss(config),
                    metrics.accuracy_from_logits, "accuracy", floor_and_test)


CONFIDENT_SHARE = 0.99  # of validation clips whose top probability is over the floor


def floor_and_test(best: Path, batches: dict, device: torch.device) -> dict:
    """The confidence floor, chosen on validation: the top probability that 99% of validation
    clips exceed, stored in `best`'s metadata (`irmas-predict` marks an answer under it "low
    confidence"); then the test summary."""
    model, meta = checkpoints.load_model(best, device)
    val_logits, _ = loop.predict(model, batches["val"], device)
    top = val_logits.softmax(dim=1).amax(dim=1)
    floor = float(torch.quantile(top, 1 - CONFIDENT_SHARE))
    checkpoints.save_checkpoint(best, model, {**meta, "confidence_floor": floor})
    return {**metrics.single_label_summary(*loop.predict(model, batches["test"], device),
                                           classes=tuple(meta["classes"])),
            "confidence_floor": floor}


def fit_head(run: RunLayout, stage: str, model_name: str, variant: str, config: TrainingConfig,
             feats: dict, loss_fn: loop.LossFn, score_fn: loop.ScoreFn, val_metric: str,
             test_fn: Callable[[Path, dict, torch.device], dict], **meta_extra
             ) -> results.TrainResult:
    """Train a head on frozen backbone `model_name`'s `feats` (per split: every layer's
    features, targets), then `test_fn(best.pt, batches, device)` (Stage 2 tunes thresholds on
    validation first);
    `meta_extra` joins the checkpoint's metadata."""
    dev = loop.pick_device(config.device)
    batches = {s: TensorBatches(f[config.layer], y, config.batch_size if s == "train" else 256,
                                shuffle=s == "train", seed=config.random_seed)
               for s, (f, y) in feats.items()}
    classes = dataset.instruments(run)
    torch.manual_seed(config.random_seed)
    kwargs = model_kwargs(model_name, config, frozen=True)
    model = networks.build(model_name, n_outputs=len(classes), **kwargs)
    files = run.model(stage, variant)
    task = "single" if stage == STAGE else "multi"
    meta = {**checkpoints.model_meta(model_name, task=task, classes=classes, **kwargs),
            **meta_extra}
    fit = loop.fit(model, batches["train"], batches["val"], loss_fn, score_fn, files, meta,
                       config)
    test = test_fn(files.best, batches, dev)
    return loop.record(files, stage, variant, fit, test, config,
                           networks.count_parameters(model, trainable_only=True), val_metric)


def train(run: RunLayout | str | Path, name: str, config: TrainingConfig | None = None,
          variant: str | None = None) -> results.TrainResult:
    """Train model `name` on the run's caches, test its best-validation checkpoint, save metrics.

    `variant` names the result and its folder when one run trains the same network several
    ways (the benchmark's recipes); its overrides in `config.per_model` apply on top of the
    model's. The spectrogram augmentations (`eq_db`, `spec_masks`) apply to the log-mel model.
    """
    run = as_layout(run)
    variant = variant or name
    config = (config or TrainingConfig()).applied(STAGE, name, variant)
    dev = loop.pick_device(config.device)
    cached = load_caches(run, dev)
    classes = cached["train"].classes
    batches = make_batches(cached, config.batch_size, config.random_seed)
    torch.manual_seed(config.random_seed)
    kwargs = model_kwargs(name, config)
    model = networks.build(name, n_outputs=len(classes), **kwargs)
    augment.equip(model, config)
    files = run.model(STAGE, variant)
    fit = loop.fit(model, batches["train"], batches["val"], loss(config),
                       metrics.accuracy_from_logits, files,
                       checkpoints.model_meta(name, classes=classes, **kwargs), config,
                       augment=batch_transform(config, len(classes)))
    test = floor_and_test(files.best, batches, dev)
    return loop.record(files, STAGE, variant, fit, test, config,
                           networks.conv_linear_parameters(model), "accuracy",
                           parameters_all=networks.count_parameters(model),
                           train_clips_per_epoch=len(batches["train"].index))


def train_named(run: RunLayout | str | Path, name: str, config: TrainingConfig | None = None
                ) -> results.TrainResult:
    """One model by the name notebooks use: a network trained whole (`mel`, `wave1d`,
    `musicnn-finetune` or `ast-finetune`: a pretrained backbone from its weights) or a head on
    a frozen backbone's features (`transfer-musicnn`, `transfer-ast`)."""
    model, frozen = networks.pretrained_name(name)
    if frozen:
        return train_frozen(run, config, variant=name, model=model)
    return train(run, model, config, variant=name)


def train_models(run: RunLayout | str | Path, names: list[str],
                 config: TrainingConfig | None = None) -> dict[str, results.TrainResult]:
    """`train_named` each of `names` in turn (notebook 03)."""
    return {name: train_named(run, name, config) for name in names}
