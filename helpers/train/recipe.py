"""One training recipe for every model of both stages: resolve its settings, read its
batches, build its network, fit, calibrate on validation, assess on test, record.

    recipe.train(run, "stage1", "mel", TrainingConfig(epochs=20))
    recipe.train_models(run, "stage2", ["transfer-musicnn", "mel", "transfer"], config)

Which network a name builds, what it reads and what it cannot use: `helpers.models.registry`.
Each model's numbers land in its `metrics.json` (see `layout`), so tables and the README come
from files, not memory.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from helpers.core import metrics, results
from helpers.core.config import STAGE1, STAGE2, TrainingConfig
from helpers.core.layout import RunLayout, as_layout
from helpers.data import augment
from helpers.models import checkpoints, networks, registry
from helpers.models.registry import ModelSpec
from helpers.train import loop, sources
from helpers.train.assess import assess
from helpers.train.calibrate import calibrate


@dataclass(frozen=True)
class StageRecipe:
    """What a stage trains for: its task (a checkpoint's `task`), the validation score that
    picks the best epoch, and its loss."""

    task: str
    val_metric: str
    score: loop.ScoreFn

    def loss(self, config: TrainingConfig) -> loop.LossFn:
        """Stage 1: cross-entropy with `config`'s label smoothing; Stage 2: multi-label soft
        margin (sigmoid per instrument)."""
        if self.task == "single":
            return functools.partial(nn.functional.cross_entropy,
                                     label_smoothing=config.label_smoothing)
        return nn.MultiLabelSoftMarginLoss()


STAGE_RECIPES = {STAGE1: StageRecipe("single", "accuracy", metrics.accuracy_from_logits),
                 STAGE2: StageRecipe("multi", "micro F1", metrics.micro_f1_from_logits)}


def train(run: RunLayout | str | Path, stage: str, model: str | ModelSpec,
          *, config: TrainingConfig | None = None, variant: str | None = None
          ) -> results.TrainResult:
    """Train `model` (a registry name or spec) in `stage` on the run's data, then calibrate
    its best-validation checkpoint on validation and assess it on test.

    `variant` names the result and its folder when one run trains a model several ways (the
    benchmark's recipes); its overrides in `config.per_model` apply on top of the model's.
    """
    run = as_layout(run)
    spec = registry.spec(model)
    settings = registry.resolve(config or TrainingConfig(), stage, spec, variant=variant)
    config, recipe = settings.config, STAGE_RECIPES[stage]
    device = loop.pick_device(config.device)
    files = run.model(stage, settings.variant)
    source = sources.prepare(run, stage, spec, config=config, device=device, files=files)
    torch.manual_seed(config.random_seed)
    kwargs = {**spec.network_kwargs(config), **source.network_kwargs}
    net = networks.build(spec.network, n_outputs=len(source.classes), **kwargs)
    if spec.stage1_source and spec.reads == registry.AUDIO:
        start_from(run.model(STAGE1, spec.stage1_source).best, net, source.classes)
    if spec.log_mel and spec.reads == registry.AUDIO:
        net.set_augment(augment.spectrogram_augment(config))
    meta = {**checkpoints.model_meta(spec.network, task=recipe.task, classes=source.classes,
                                     **kwargs),
            **source.meta, "settings": settings.to_dict()}
    fit = loop.fit(net, source.batches["train"], source.batches["val"], loss_fn=recipe.loss(config),
                   score_fn=recipe.score, files=files, meta=meta, config=config,
                   augment=source.augment)
    calibration = calibrate(files.best, stage, source.batches["val"], device=device)
    test = {**assess(files.best, source.batches["test"], device), **calibration}
    return loop.record(files, stage, settings.variant, fit=fit, test=test, config=config,
                       parameters=networks.conv_linear_parameters(net),
                       val_metric=recipe.val_metric,
                       parameters_all=networks.count_parameters(net, trainable_only=True),
                       settings=settings.to_dict())


def start_from(best: Path, net: networks.Network, classes: tuple[str, ...]) -> None:
    """Load a Stage-1 model's best weights into `net` (Stage 2 fine-tuning), refusing one
    trained on other instruments."""
    trained, meta = checkpoints.load_model(best)
    checkpoints.check_classes(meta, classes, best)
    net.load_state_dict(trained.state_dict())


def train_models(run: RunLayout | str | Path, stage: str, names: Iterable[str],
                 *, config: TrainingConfig | None = None) -> dict[str, results.TrainResult]:
    """`train` each of `names` in turn (notebooks 03 and 05)."""
    return {name: train(run, stage, name, config=config) for name in names}


def settings_table(stage: str, names: Iterable[str], config: TrainingConfig) -> pd.DataFrame:
    """What each of `names` will train with in `stage` (`registry.resolve`), a row each:
    what it reads, epochs, batch, learning rate, the knobs its own defaults filled and those
    it cannot use, switched off. Notebooks show it before training."""
    rows = [registry.resolve(config, stage, name).row() for name in names]
    return pd.DataFrame(rows).set_index("model")
