"""The trainable models, by the one name notebooks, benchmarks, checkpoints and results use.

Each `ModelSpec` says which network it builds (`networks.NETWORKS`, the name a checkpoint
stores), its pretrained backbone and whether that is frozen, what it reads (clips or mixes,
a backbone's stored features, a Stage-1 model's stored features), the Stage-1 model it starts
from or reads, its own defaults, and what it wants from the machine. Everything else asks
here instead of parsing a name; a new model is one entry (and, if new, its network class).

`resolve` turns a `TrainingConfig` into what one model trains with (`Settings`): its overrides
folded in, its own defaults for the knobs left at None, and the knobs it cannot use switched
off, so the record of a run says what ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from helpers.core.config import (
    AUDIO_KNOBS,
    BACKBONE_KNOBS,
    LOG_MEL_KNOBS,
    OFF,
    STAGE1,
    STAGE2,
    STAGE_KNOBS,
    STAGES,
    TrainingConfig,
)
from helpers.models import audioset, musicnn, networks
from helpers.models.backbone import Backbone

# What a model reads: audio (a stage's clips or mixes, heard whole), a frozen pretrained
# backbone's features of them (computed once, `embed`), or a frozen Stage-1 model's features of
# the mixes (the 2020 project's transfer head).
AUDIO, BACKBONE_FEATURES, STAGE1_FEATURES = "audio", "backbone features", "Stage-1 features"
BACKBONES: dict[str, type[Backbone]] = {"musicnn": networks.MusicnnFeatures,
                                        "ast": audioset.ASTFeatures}
# Every model's defaults under its own: the 2020 project's batch size, Adam's usual rate, a
# linear head on a backbone.
BASE: dict[str, Any] = {"lr": 1e-3, "batch_size": 16, "head_hidden": 0}
_HEAD = {"batch_size": 64}  # heads on stored features: cheap steps
_MUSICNN = {"backbone": musicnn.DEFAULT_CHECKPOINT, "layer": musicnn.DEFAULT_LAYER,
            "backbone_lr": 0.1}
_AST = {"backbone": audioset.DEFAULT_CHECKPOINT, "layer": "pooled", "backbone_lr": 0.02}
_TRANSFER = {"lr": 1e-4, "batch_size": 64}  # the 2020 project's transfer head
_WAVE1D = {"lr": 3e-4}  # the 2020 network's own rate


@dataclass(frozen=True)
class ModelSpec:
    """One trainable model. `stage1_source`: the Stage-1 model (by name) whose best weights it
    starts from (audio) or whose features of the mixes it reads (`STAGE1_FEATURES`);
    `cpu_epochs`: the epochs a Colab runtime without a GPU caps it at."""

    name: str
    network: str
    reads: str = AUDIO
    stages: tuple[str, ...] = STAGES
    backbone: str | None = None
    frozen: bool = False
    stage1_source: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    wants_gpu: bool = False
    cpu_epochs: int | None = None

    @property
    def log_mel(self) -> bool:
        """Whether its network has a log-mel front end (the recipe's EQ and masks)."""
        return networks.network_class(self.network).log_mel

    def inputs(self, stage: str) -> str:
        """What it hears in `stage`, in words."""
        what = "clips" if stage == STAGE1 else "mixes"
        if self.reads == BACKBONE_FEATURES:
            return f"frozen {self.backbone} features of the {what}"
        if self.reads == STAGE1_FEATURES:
            return f"frozen features of the Stage-1 {self.stage1_source} of the mixes"
        start = f", from its Stage-1 {self.stage1_source} weights" if self.stage1_source else ""
        pretrained = f", from {self.backbone}'s pretrained weights" if self.backbone else ""
        return f"the {what}{start}{pretrained}"

    def unusable(self, stage: str) -> frozenset[str]:
        """The knobs it cannot use in `stage`: those of the other stage, the audio
        augmentations for a head on stored features, the spectrogram ones without a log-mel
        front end, a backbone's without one (its learning rate when frozen), and no-instrument
        windows for the 2020 transfer head (its Stage-1 features of mixes only)."""
        out = set().union(*(STAGE_KNOBS[s] for s in STAGES if s != stage))
        if self.reads != AUDIO:
            out |= AUDIO_KNOBS
        if not self.log_mel:
            out |= LOG_MEL_KNOBS
        if self.backbone is None:
            out |= BACKBONE_KNOBS
        elif self.frozen:
            out.add("backbone_lr")
        if self.reads == STAGE1_FEATURES:
            out.add("nothing")
        return frozenset(out)

    def network_kwargs(self, config: TrainingConfig) -> dict[str, Any]:
        """What `networks.build` needs beyond the outputs: a pretrained backbone's checkpoint,
        layer, head and whether it is frozen; nothing for the networks trained from scratch
        (the transfer head's width comes from the features it reads)."""
        if self.backbone is None:
            return {}
        return {"checkpoint": config.backbone, "layer": config.layer,
                "hidden": config.head_hidden, "frozen": self.frozen}


SPECS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("mel", "mel", cpu_epochs=10),
    ModelSpec("wave1d", "wave1d", defaults=_WAVE1D, cpu_epochs=1),
    ModelSpec("mel-finetune", "mel", stages=(STAGE2,), stage1_source="mel", cpu_epochs=10),
    ModelSpec("wave1d-finetune", "wave1d", stages=(STAGE2,), stage1_source="wave1d",
              defaults=_WAVE1D, cpu_epochs=1),
    ModelSpec("transfer", "transfer", reads=STAGE1_FEATURES, stages=(STAGE2,),
              stage1_source="wave1d", defaults=_TRANSFER),
    ModelSpec("transfer-mel", "transfer", reads=STAGE1_FEATURES, stages=(STAGE2,),
              stage1_source="mel", defaults=_TRANSFER),
    ModelSpec("transfer-musicnn", "musicnn", reads=BACKBONE_FEATURES, backbone="musicnn",
              frozen=True, defaults={**_MUSICNN, **_HEAD}),
    ModelSpec("transfer-musicnn-mlp", "musicnn", reads=BACKBONE_FEATURES, backbone="musicnn",
              frozen=True, defaults={**_MUSICNN, **_HEAD, "head_hidden": [512, 256]}),
    ModelSpec("musicnn-finetune", "musicnn", backbone="musicnn", defaults=_MUSICNN,
              cpu_epochs=2),
    ModelSpec("transfer-ast", "ast", reads=BACKBONE_FEATURES, backbone="ast", frozen=True,
              defaults={**_AST, **_HEAD}, wants_gpu=True),
    ModelSpec("ast-finetune", "ast", backbone="ast", defaults=_AST, wants_gpu=True),
)}


def spec(name: str | ModelSpec) -> ModelSpec:
    """The model called `name` (a `ModelSpec` is returned as it is)."""
    if isinstance(name, ModelSpec):
        return name
    if name not in SPECS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(SPECS)}")
    return SPECS[name]


def names(stage: str) -> tuple[str, ...]:
    """The models that train in `stage`."""
    return tuple(n for n, s in SPECS.items() if stage in s.stages)


def backbone_class(backbone: dict | None) -> type[Backbone] | None:
    """The backbone a checkpoint's `backbone` field names (None: none, or not one of ours)."""
    return BACKBONES.get((backbone or {}).get("name"))


@dataclass(frozen=True)
class Settings:
    """What one model trains with in one stage: `config` resolved (its overrides folded in,
    `from_model` the knobs its own defaults filled, `switched_off` those it cannot use, set
    to `OFF`); `variant` names its run folder. Stored in its checkpoints and `metrics.json`."""

    model: str
    stage: str
    variant: str
    config: TrainingConfig
    from_model: tuple[str, ...]
    switched_off: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "stage": self.stage, "variant": self.variant,
                "from_model": list(self.from_model), "switched_off": list(self.switched_off)}

    def row(self) -> dict[str, Any]:
        """One line of the table a notebook prints before training (`settings_table`)."""
        c = self.config
        return {"model": self.variant, "reads": spec(self.model).inputs(self.stage),
                "epochs": c.epochs, "steps/epoch": c.steps_per_epoch or "all",
                "batch": c.batch_size, "lr": c.lr,
                "optimiser": f"{c.optimizer}, {c.schedule}",
                "backbone": f"{c.backbone} {c.layer}" if c.backbone else "",
                "own defaults": ", ".join(self.from_model),
                "switched off": ", ".join(self.switched_off)}


def resolve(config: TrainingConfig, stage: str, model: str | ModelSpec,
            *, variant: str | None = None) -> Settings:
    """What `model` trains with in `stage`: the overrides of `config.per_model` for its
    network, then its name, then `variant` (a run folder training it another way, e.g. the
    benchmark's recipes), its own defaults (`BASE` and `ModelSpec.defaults`) for the knobs left
    at None, and the knobs it cannot use switched off. Such a knob set for this model by name is
    a mistake, refused with one line."""
    model = spec(model)
    variant = variant or model.name
    if stage not in model.stages:
        raise ValueError(f"{model.name} trains in {', '.join(model.stages)}, not in {stage}")
    unused = model.unusable(stage)
    keys = tuple(dict.fromkeys((model.network, model.name, variant)))
    overrides: dict[str, Any] = {}
    for key in keys:
        given = config.per_model.get(key, {})
        wrong = sorted(unused & set(given))
        if wrong:
            raise ValueError(f"per-model setting {key}: {', '.join(wrong)} does nothing for "
                             f"{variant} in {stage}; remove it")
        overrides.update(given)
    chosen = replace(config, **overrides, per_model={})
    own = {k: v for k, v in {**BASE, **model.defaults}.items()
           if getattr(chosen, k) is None and k not in unused}
    resolved = replace(chosen, **own, **{k: OFF[k] for k in unused})
    return Settings(model.name, stage, variant, resolved, tuple(sorted(own)),
                    tuple(sorted(unused)))


def cpu_capped(config: TrainingConfig) -> dict[str, tuple[int, int]]:
    """The models whose epochs a runtime without a GPU caps (`ModelSpec.cpu_epochs`): name ->
    (epochs `config` asks for, the cap), only where it asks for more."""
    out = {}
    for name, model in SPECS.items():
        if model.cpu_epochs is None:
            continue
        wanted = resolve(config, model.stages[0], model).config.epochs
        if wanted > model.cpu_epochs:
            out[name] = (wanted, model.cpu_epochs)
    return out


def wants_gpu(names_: list[str] | tuple[str, ...]) -> list[str]:
    """Those of the models `names_` that take hours an epoch on a CPU."""
    return [n for n in names_ if spec(n).wants_gpu]
