"""Project-wide constants and where data and runs live.

Everything else reads its knobs from here, so a clip length or class list is defined once.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# IRMAS's eleven instruments, in its order; a run chooses any of them (`instruments`).
CLASS_NAMES: dict[str, str] = {
    "cel": "cello",
    "cla": "clarinet",
    "flu": "flute",
    "gac": "acoustic guitar",
    "gel": "electric guitar",
    "org": "organ",
    "pia": "piano",
    "sax": "saxophone",
    "tru": "trumpet",
    "vio": "violin",
    "voi": "voice",
}
ALL_CLASSES: tuple[str, ...] = tuple(CLASS_NAMES)
CLASSES: tuple[str, ...] = ("gac", "pia", "tru", "vio")  # the 2020 project's four: the default
SAMPLE_RATE = 44_100
# The 2020 project's input length: 3 s at 44.1 kHz minus one sample, as IRMAS excerpts decode.
CLIP_SAMPLES = 132_299
CHANNELS = 2
SEED = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
# Stage 1 names the one instrument of a clip, Stage 2 every instrument of a mix.
STAGE1, STAGE2 = "stage1", "stage2"
STAGES: tuple[str, ...] = (STAGE1, STAGE2)
PRECISIONS = ("auto", "bfloat16", "float16", "float32")  # `TrainingConfig.precision`
IRMAS_TEST_SPLIT = "irmas_test"


def instruments(choice: str | list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The class list a run trains on: None or "default" the 2020 project's four, "all"
    IRMAS's eleven, or any codes (a list, or one string like "cel flu"), in IRMAS's order."""
    if choice is None or choice == "default":
        return CLASSES
    if choice == "all":
        return ALL_CLASSES
    codes = choice.replace(",", " ").split() if isinstance(choice, str) else list(choice)
    unknown = [c for c in codes if c not in CLASS_NAMES]
    if unknown or not codes:
        raise ValueError(f"instruments={choice!r}: unknown code(s) {unknown}; valid: "
                         f"{', '.join(ALL_CLASSES)}, or 'all' / 'default'")
    return tuple(c for c in ALL_CLASSES if c in codes)


DRIVE_MOUNT = Path("/content/drive")
DRIVE_HOME = DRIVE_MOUNT / "MyDrive" / "irmas-instruments"
HOME_ENV = "IRMAS_HOME"


def home(override: str | Path | None = None) -> Path:
    """Folder that holds `data/` and `runs/`.

    An explicit `override` wins, then `$IRMAS_HOME`; on Colab with Drive mounted it is a Drive
    folder so data and checkpoints survive a disconnect; otherwise the current directory.
    """
    if override:
        return Path(override).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if (DRIVE_MOUNT / "MyDrive").is_dir():
        return DRIVE_HOME
    return Path.cwd()


SOURCES: tuple[str, ...] = ("demo", "irmas")


def in_colab() -> bool:
    return "google.colab" in sys.modules


def source(choice: str | None = None) -> str:
    """The data set a run uses: `choice` ("demo" or "irmas"), or for None IRMAS on Colab (it
    has internet and Drive for the 3 GB) and the offline demo set anywhere else."""
    if choice is None:
        return "irmas" if in_colab() else "demo"
    if choice not in SOURCES:
        raise ValueError(f"source={choice!r}; choose one of {SOURCES}, or None (IRMAS on Colab, "
                         "the demo set elsewhere)")
    return choice


def data_dir(source_choice: str | None, home_dir: str | Path | None = None) -> Path:
    """Where the audio of a source (`source`) is unpacked."""
    return home(home_dir) / "data" / source(source_choice)


def run_dir(source_choice: str | None, home_dir: str | Path | None = None) -> Path:
    """Where the notebooks of a source's run (`source`) write their artefacts."""
    return home(home_dir) / "runs" / source(source_choice)


@dataclass(frozen=True)
class TrainingConfig:
    """Every training knob, carried by keyword from a notebook's parameters cell to `fit`, and
    saved in each checkpoint's metadata and each `metrics.json`, so a result names the settings
    that made it. The defaults are the recommended recipe (values from the literature, none
    tuned on a test split); `plain()` is the 2020 project's training, for comparison. Each
    model uses the knobs it can, its own defaults filling those left at None
    (`registry.resolve`); `per_model` overrides knobs for one network or model by name."""

    epochs: int = 30
    # At most this many training batches an epoch (a new draw of them each epoch), None: every
    # clip. A CPU demonstration of a model too slow there (`make demo`), said when it trains.
    steps_per_epoch: int | None = None
    batch_size: int | None = None  # None: the model's own (`registry.SPECS`)
    lr: float | None = None  # None: the model's own (`registry.SPECS`)
    patience: int = 0  # stop after this many epochs without a better validation score; 0: never
    resume: bool = True  # continue from the model's last.pt when there is one
    overwrite: bool = False  # start afresh over a best.pt this run did not produce
    random_seed: int = SEED
    device: str | None = None  # None: CUDA when available, else the CPU
    # Mixed precision on a GPU (`training.precision_policy`): "auto" is bfloat16 where the GPU
    # has it, float16 with loss scaling where not (T4); "float16" forces that path, "float32"
    # turns it off. The CPU always computes in float32.
    precision: str = "auto"
    progress: bool = True
    # Optimisation: "adam" or "adamw" (decoupled weight decay); "constant" or "cosine" learning
    # rate (linear warm-up over `warmup_epochs`, then cosine decay to zero by the last epoch).
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1  # Stage 1
    # Augmentation, on whole batches on the training device (see `augment`), for models trained
    # on audio (not heads on stored features); 0/False: off.
    mix_under: float = 0.5  # Stage 1: chance that a quieter clip of another instrument plays under
    mix_under_db: tuple[float, float] | None = (-20.0, -6.0)  # its level below the labelled clip
    mixup: float = 0.0  # Beta(a, a) mixup of clip pairs with mixed targets; a = 0: off
    gain_db: float = 6.0  # random level change of up to ± this many dB
    shift: bool = True  # random circular time shift
    eq_db: float = 6.0  # random spectral tilt and band gains of up to ± this many dB (log-mel)
    spec_masks: bool = True  # SpecAugment: one frequency and one time mask per clip (log-mel)
    dynamic_mixing: bool = True  # Stage 2: fresh training mixes every epoch, not one fixed plan
    # Share of each training batch replaced by windows where no instrument plays (hiss, hum,
    # clicks, silence; `helpers.data.no_instrument`). Stage 2: all-zero target, so a model can name
    # nothing (`irmas-predict` then names no instrument where none reaches its threshold).
    # Stage 1: a flat target, so such input gets a flat answer, reported as low confidence.
    # A head on frozen features gets at least `nothing.FIXED_MINIMUM` of them (small sets).
    nothing: float = 0.1
    # Stage 2 with `dynamic_mixing`: the chance that a training example is a mix rather than
    # one clip (PaSST's recipe: 0.8), the mixes keeping notebook 04's mix sizes; None: notebook
    # 04's weights of each size as they are.
    mix_chance: float | None = None
    # A pretrained backbone (musicnn, `helpers.models.musicnn`; AST, `helpers.models.audioset`):
    # which checkpoint (musicnn: "MTT_musicnn" or "MSD_musicnn"; AST: a Hugging Face id or
    # folder) and layer (musicnn: "pool", "penultimate", "taggram"; AST: "pooled") a head reads,
    # None: the model's own (`registry.SPECS`); the head's hidden units (0: linear; a list: a
    # layer of each width), and the backbone's learning rate as a fraction of `lr` when
    # fine-tuned.
    backbone: str | None = None
    layer: str | None = None
    head_hidden: int | list[int] | None = None
    backbone_lr: float | None = None
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        choices = {"optimizer": ("adam", "adamw"), "schedule": ("constant", "cosine"),
                   "precision": PRECISIONS}
        for knob, allowed in choices.items():
            if getattr(self, knob) not in allowed:
                raise ValueError(f"{knob}={getattr(self, knob)!r}; choose one of {allowed}")
        if not 0.0 <= self.mix_under <= 1.0:
            raise ValueError(f"mix_under={self.mix_under} is a probability: give 0 to 1")
        if not 0.0 <= self.nothing < 1.0:
            raise ValueError(f"nothing={self.nothing} is a share of each batch: give 0 to <1")
        if self.mix_chance is not None and not 0.0 <= self.mix_chance <= 1.0:
            raise ValueError(f"mix_chance={self.mix_chance} is a probability: give 0 to 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={self.steps_per_epoch}: give 1 or more, or None "
                             "for every clip")
        if self.mixup and self.mix_under:
            raise ValueError("mixup and mix_under both mix clips; switch one off (set it to 0)")

    @classmethod
    def of(cls, **knobs: Any) -> TrainingConfig:
        """A config from notebook parameters: a knob given as a dict `{model: value}` sets it for
        those models only (the default for the rest), e.g. `epochs={"mel": 20, "wave1d": 1}`."""
        plain, per_model = {}, {}
        for knob, value in knobs.items():
            if knob not in _KNOBS:
                raise TypeError(f"unknown training knob {knob!r}; known: {sorted(_KNOBS)}")
            if isinstance(value, dict) and knob != "per_model":
                for model, v in value.items():
                    per_model.setdefault(model, {})[knob] = v
            else:
                plain[knob] = value
        merged = {**plain.pop("per_model", {})}
        for model, overrides in per_model.items():
            merged[model] = {**merged.get(model, {}), **overrides}
        return cls(**plain, per_model=merged)

    @classmethod
    def plain(cls, **knobs: Any) -> TrainingConfig:
        """The 2020 project's training: Adam at a constant 3e-4, no augmentation, no label
        smoothing, no no-instrument windows, one fixed plan of Stage-2 mixes; `knobs` on top."""
        return cls.of(**{**PLAIN, **knobs})

    def with_model(self, name: str, **overrides: Any) -> TrainingConfig:
        """This config with `overrides` for model `name` added."""
        per_model = {**self.per_model, name: {**self.per_model.get(name, {}), **overrides}}
        return replace(self, per_model=per_model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_KNOBS = {f.name for f in fields(TrainingConfig)}
# The 2020 project's training (`TrainingConfig.plain()`), beside the defaults in benchmarks.
PLAIN: dict[str, Any] = {
    "optimizer": "adam", "weight_decay": 0.0, "lr": 3e-4, "schedule": "constant",
    "warmup_epochs": 0.0, "label_smoothing": 0.0, "mix_under": 0.0, "gain_db": 0.0,
    "shift": False, "eq_db": 0.0, "spec_masks": False, "dynamic_mixing": False, "nothing": 0.0,
}
# A knob a model cannot use is recorded at this value: what it did.
OFF: dict[str, Any] = {**PLAIN, "mixup": 0.0, "mix_under_db": None, "mix_chance": None,
                       "backbone": None, "layer": None, "head_hidden": None, "backbone_lr": None}
# What a kind of model cannot use (`registry.ModelSpec.unusable`).
LOG_MEL_KNOBS = frozenset({"eq_db", "spec_masks"})  # a spectrogram front end: MelCNN, musicnn, AST
AUDIO_KNOBS = frozenset({"mix_under", "mix_under_db", "mixup", "gain_db", "shift",
                         "dynamic_mixing", "mix_chance"}) | LOG_MEL_KNOBS  # trained on audio
BACKBONE_KNOBS = frozenset({"backbone", "layer", "head_hidden", "backbone_lr"})
STAGE_KNOBS = {STAGE1: frozenset({"label_smoothing", "mix_under", "mix_under_db"}),
               STAGE2: frozenset({"dynamic_mixing", "mix_chance"})}  # only for that stage
