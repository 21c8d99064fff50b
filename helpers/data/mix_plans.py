"""Each split's mixes: planned once from that split's cached clips (notebook 04), loaded back
with a check that they come from the same cache, or drawn afresh every epoch for training
(`dynamic_batches`). A plan records a key of its clips and settings (`freshness`' rule) and is
planned again when, and only when, that changes."""

from __future__ import annotations

from pathlib import Path

import torch

from helpers.core.config import SEED, SPLITS, TrainingConfig
from helpers.core.freshness import content_key
from helpers.core.layout import RunLayout, as_layout
from helpers.data import cache, mixing


def build_mixes(run: RunLayout | str | Path, *, uses_per_clip: float = 3.0,
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
        plan = mixing.plan_mixes(cached.labels, uses_per_clip=uses_per_clip, k_weights=k_weights,
                                 gain_db=gain_db, seed=random_seed * 100 + offset,
                                 classes=cached.classes)
        mixing.save_plan(path, plan, {**settings, "cache_key": cached.key, "key": key})
        plans[split] = plan
    return plans


def load_mixes(run: RunLayout | str | Path, device: torch.device | None = None,
               splits: tuple[str, ...] = SPLITS) -> dict[str, tuple[torch.Tensor, mixing.MixPlan]]:
    """(cached waves, plan) per split; refuses plans made from another cache."""
    run = as_layout(run)
    cached = cache.load_caches(run, device, splits)
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
                                    uses_per_clip=settings["uses_per_clip"], k_weights=k_weights,
                                    gain_db=settings["gain_db"], seed=config.random_seed,
                                    classes=train.classes, nothing=config.nothing)
