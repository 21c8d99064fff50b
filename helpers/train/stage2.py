"""Stage 2 end to end: mixes per split -> multi-label CNNs, the transfer head, fine-tuning.

Notebook 04 calls `build_mixes`; notebook 05 calls `train_cnn` (from scratch or fine-tuned from
Stage 1) and `train_transfer`, each writing the variant's `metrics.json` (see `layout`).
Mix plans and the transfer head's features follow `freshness`' rule: each records a key of what
it was built from and with which settings, and is rebuilt when, and only when, that changes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from helpers.core import metrics, results
from helpers.core.config import SEED, SPLITS, TrainingConfig
from helpers.core.freshness import content_key, file_digest
from helpers.core.layout import RunLayout, as_layout
from helpers.data import augment, cache, dataset, mixing
from helpers.data.batches import Batches, TensorBatches
from helpers.models import checkpoints, embed, networks
from helpers.train import loop, stage1
from helpers.train.stage1 import STAGE as STAGE1
from helpers.train.stage1 import load_caches

STAGE = "stage2"
LOSS = nn.MultiLabelSoftMarginLoss()
EXTRACTOR = "wave1d"  # the 2020 project's extractor: the Stage-1 model the transfer head reads


def build_mixes(run: RunLayout | str | Path, uses_per_clip: float = 3.0,
                k_weights: dict[int, float] | None = None, gain_db: float = 6.0,
                random_seed: int = SEED) -> dict[str, mixing.MixPlan]:
    """Plan each split's mixes from that split's cached clips and save them in the run; a plan
    whose clips and settings are unchanged is kept as it is."""
    run = as_layout(run)
    plans = {}
    for offset, split in enumerate(SPLITS):
        cached = cache.load_split(run.cache(split))
        settings = {"split": split, "uses_per_clip": uses_per_clip, "gain_db": gain_db,
                    "k_weights": {str(k): w for k, w in (k_weights or {2: 1.0}).items()},
                    "random_seed": random_seed}
        key = content_key(cached.key, settings)
        path = run.mixes(split)
        if path.is_file():
            try:
                plan, meta = mixing.load_plan(path)
            except ValueError as err:  # damaged: plan it again
                print(f"replanning: {err}", flush=True)
                meta = {}
            if meta.get("key") == key:
                plans[split] = plan
                continue
        plan = mixing.plan_mixes(cached.labels, uses_per_clip, k_weights, gain_db,
                                 random_seed * 100 + offset, classes=cached.classes)
        mixing.save_plan(path, plan, {**settings, "cache_key": cached.key, "key": key})
        plans[split] = plan
    return plans


def load_mixes(run: RunLayout | str | Path, device: torch.device | None = None,
               splits: tuple[str, ...] = SPLITS) -> dict[str, tuple[torch.Tensor, mixing.MixPlan]]:
    """(cached waves, plan) per split; refuses plans made from another cache."""
    run = as_layout(run)
    cached = load_caches(run, device, splits)
    return {split: (cached[split].waves, plan) for split, plan in plans_of(run, cached).items()}


def plans_of(run: RunLayout, cached: dict[str, cache.CachedSplit]) -> dict[str, mixing.MixPlan]:
    """The stored mix plan of each cached split; refuses plans made from another cache."""
    out = {}
    for split, clips in cached.items():
        plan, meta = mixing.load_plan(run.mixes(split))
        if meta.get("cache_key") != clips.key:
            raise ValueError(f"the {split} mixes were planned from another cache: run "
                             "notebooks/04_generate_mixes.ipynb again")
        out[split] = plan
    return out


def train_cnn(run: RunLayout | str | Path, name: str, config: TrainingConfig | None = None,
              finetune: bool = False, variant: str | None = None,
              stage1_variant: str | None = None) -> results.TrainResult:
    """A multi-label CNN on mixes: from scratch, or (`finetune`) from its Stage-1 weights
    (those of `stage1_variant`, by default the model's own Stage-1 folder).

    The variant (`mel`, `wave1d-finetune`, or `variant`) picks its knobs from
    `config.per_model`. With `dynamic_mixing` the training mixes are drawn afresh every epoch
    with the settings of notebook 04's training plan; validation and test keep their fixed
    plans, so scores stay comparable. Decision thresholds are then tuned on validation
    (`tune_thresholds`) and stored in `best.pt`.
    """
    run = as_layout(run)
    variant = variant or (f"{name}-finetune" if finetune else name)
    config = (config or TrainingConfig()).applied(STAGE, name, variant)
    dev = loop.pick_device(config.device)
    cached = load_caches(run, dev)
    plans = plans_of(run, cached)
    batches = {s: mixing.MixBatches(cached[s].waves, plans[s],
                                    config.batch_size if s == "train" else 64,
                                    shuffle=s == "train", seed=config.random_seed,
                                    nothing=config.nothing if s == "train" else 0.0)
               for s in SPLITS}
    if config.dynamic_mixing:
        batches["train"] = dynamic_batches(run, cached["train"], config)
    classes = cached["train"].classes
    torch.manual_seed(config.random_seed)
    kwargs = stage1.model_kwargs(name, config)
    model = networks.build(name, n_outputs=len(classes), **kwargs)
    if finetune:
        source = run.model(STAGE1, stage1_variant or name).best
        trained, trained_meta = checkpoints.load_model(source)
        checkpoints.check_classes(trained_meta, classes, source)
        model.load_state_dict(trained.state_dict())
    augment.equip(model, config)
    files = run.model(STAGE, variant)
    meta = {**checkpoints.model_meta(name, task="multi", classes=classes, **kwargs),
            "names_nothing": config.nothing > 0}
    fit = loop.fit(model, batches["train"], batches["val"], LOSS,
                       metrics.micro_f1_from_logits, files, meta, config,
                       augment=augment.waves_for(config, len(classes)))
    test = tune_and_test(files.best, batches, dev)
    return loop.record(files, STAGE, variant, fit, test, config,
                           networks.conv_linear_parameters(model), "micro F1")


def with_mix_chance(k_weights: dict[int, float], chance: float | None) -> dict[int, float]:
    """Weights of each number of instruments per training example, the single clips given
    1 - `chance` of the whole and the mixes of two or more `chance` (in their own proportions:
    PaSST's recipe mixes with p = 0.8); `chance` None: `k_weights` as they are."""
    mixes = {k: w for k, w in k_weights.items() if k > 1}
    if chance is None or not mixes:
        return k_weights
    total = sum(mixes.values())
    return {1: 1.0 - chance, **{k: chance * w / total for k, w in mixes.items()}}


def dynamic_batches(run: RunLayout, train: cache.CachedSplit, config: TrainingConfig
                    ) -> mixing.DynamicMixBatches:
    """Training batches of fresh mixes each epoch from the cached training split, planned as
    notebook 04 planned the fixed training mixes (clip uses, k weights, gains)."""
    _, settings = mixing.load_plan(run.mixes("train"))
    k_weights = with_mix_chance({int(k): w for k, w in settings["k_weights"].items()},
                                config.mix_chance)
    return mixing.DynamicMixBatches(train.waves, train.labels, config.batch_size,
                                    settings["uses_per_clip"], k_weights, settings["gain_db"],
                                    config.random_seed, classes=train.classes,
                                    nothing=config.nothing)


def tune_and_test(best: Path, batches: dict[str, Batches], device: torch.device) -> dict:
    """Per-class thresholds chosen on validation (stored in `best`'s metadata, where
    `irmas-predict` finds them), then the test summary at p = 0.5 and at those thresholds."""
    model, meta = checkpoints.load_model(best, device)
    val_logits, val_targets = loop.predict(model, batches["val"], device)
    thresholds = metrics.tune_thresholds(torch.sigmoid(val_logits), val_targets)
    checkpoints.save_checkpoint(best, model, {**meta, "thresholds": thresholds})
    logits, targets = loop.predict(model, batches["test"], device)
    tuned = (torch.sigmoid(logits) >= torch.tensor(thresholds)).float()
    classes = tuple(meta["classes"])
    return {**metrics.multilabel_summary(logits, targets, classes=classes),
            "tuned": metrics.multilabel_scores(tuned, targets, classes), "thresholds": thresholds}


def transfer_variant(extractor: str) -> str:
    """`transfer` (on Wave1DCNN, as in 2020), or `transfer-<model>` on another extractor."""
    return "transfer" if extractor == EXTRACTOR else f"transfer-{extractor}"


def cached_features(run: RunLayout | str | Path, device: torch.device, progress: bool = True,
                    extractor: str = EXTRACTOR) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Frozen features of every mix by the Stage-1 model `extractor`, computed once and kept
    beside its transfer head until the Stage-1 checkpoint's bytes or the mix plan change."""
    run = as_layout(run)
    ckpt = run.model(STAGE1, extractor).best
    model, _ = checkpoints.load_model(ckpt, device)
    for p in model.parameters():
        p.requires_grad_(False)
    weights = file_digest(ckpt)
    files = run.model(STAGE, transfer_variant(extractor))
    out = {}
    data = None
    for split in SPLITS:
        key = content_key(weights, mixing.load_plan(run.mixes(split))[1]["key"])

        def compute(split=split):
            nonlocal data
            data = data or load_mixes(run, device)
            model.eval()
            return embed.extract(model.features, mixing.MixBatches(*data[split], 64), device,
                                 progress)

        out[split] = embed.stored(files.features(split), key, compute)
    return out


def train_frozen(run: RunLayout | str | Path, config: TrainingConfig | None = None,
                 variant: str = stage1.FROZEN, model: str = "musicnn") -> results.TrainResult:
    """A multi-label head on the frozen features of pretrained backbone `model` (musicnn or
    ast) of notebook 04's mixes (fixed plans; a mix's features are those of its summed audio),
    computed once (`embed`); thresholds tuned on validation. Its checkpoint holds only the head
    and predicts on audio through the backbone it names. Knobs from `config.per_model[variant]`."""
    run = as_layout(run)
    config = (config or TrainingConfig()).applied(STAGE, model, variant, on_audio=False)
    dev = loop.pick_device(config.device)
    backbone = embed.build_backbone(model, config.backbone, dev)
    feats = embed.backbone_features(run, backbone, dev, config.progress, mixes=True)
    feats["train"] = embed.with_nothing(run, feats["train"], config.nothing, backbone, dev,
                                        config.random_seed, progress=config.progress)
    return stage1.fit_head(run, STAGE, model, variant, config, feats, LOSS,
                           metrics.micro_f1_from_logits, "micro F1", tune_and_test,
                           names_nothing=config.nothing > 0)


def train_transfer(run: RunLayout | str | Path, config: TrainingConfig | None = None,
                   extractor: str = EXTRACTOR) -> results.TrainResult:
    """The 2020 project's transfer head (its layer sizes) on frozen, eval-mode features of the
    Stage-1 model `extractor` (extracted once): on Wave1DCNN as in 2020 (variant `transfer`),
    or on a stronger extractor such as MelCNN (`transfer-mel`). Knobs from
    `config.per_model[variant]`."""
    run = as_layout(run)
    variant = transfer_variant(extractor)
    config = (config or TrainingConfig()).applied(STAGE, "transfer", variant, on_audio=False)
    dev = loop.pick_device(config.device)
    feats = cached_features(run, dev, config.progress, extractor)
    batches = {s: TensorBatches(*feats[s], config.batch_size if s == "train" else 256,
                                shuffle=s == "train", seed=config.random_seed) for s in SPLITS}
    torch.manual_seed(config.random_seed)
    n_features = feats["train"][0].shape[1]
    classes = dataset.instruments(run)
    head = networks.build("transfer", n_features=n_features, n_outputs=len(classes))
    files = run.model(STAGE, variant)
    meta = {**checkpoints.model_meta("transfer", task="multi", classes=classes,
                                     n_features=n_features),
            "extractor": extractor}
    fit = loop.fit(head, batches["train"], batches["val"], LOSS,
                       metrics.micro_f1_from_logits, files, meta, config)
    test = tune_and_test(files.best, batches, dev)
    return loop.record(files, STAGE, variant, fit, test, config,
                           networks.count_parameters(head, trainable_only=True), "micro F1")


def train_pretrained(run: RunLayout | str | Path, name: str, config: TrainingConfig | None = None
                     ) -> results.TrainResult:
    """A pretrained backbone's model by its name (`networks.pretrained_name`): a head on its
    frozen features of the mixes, or the whole network from its weights on fresh mixes."""
    model, frozen = networks.pretrained_name(name)
    if frozen:
        return train_frozen(run, config, variant=name, model=model)
    return train_cnn(run, model, config, variant=name)


def train_variants(run: RunLayout | str | Path, config: TrainingConfig | None = None,
                   from_scratch: tuple[str, ...] = ("mel", "wave1d"), transfer: bool = True,
                   finetune: tuple[str, ...] = ("wave1d",),
                   transfer_from: tuple[str, ...] = (EXTRACTOR,),
                   pretrained: tuple[str, ...] = (stage1.FROZEN,)
                   ) -> dict[str, results.TrainResult]:
    """Notebook 05's variants in turn: pretrained backbones (`transfer-musicnn`,
    `transfer-ast`: a head on frozen features of the mixes; `musicnn-finetune`,
    `ast-finetune`: the whole network from its pretrained weights), CNNs from scratch, the
    transfer head on each Stage-1 model of `transfer_from`, fine-tuned Stage-1 models
    (`<name>-finetune`), each with its knobs from `config.per_model`."""
    out = {name: train_pretrained(run, name, config) for name in pretrained}
    out |= {name: train_cnn(run, name, config) for name in from_scratch}
    for extractor in transfer_from if transfer else ():
        out[transfer_variant(extractor)] = train_transfer(run, config, extractor)
    for name in finetune:
        out[f"{name}-finetune"] = train_cnn(run, name, config, finetune=True)
    return out
