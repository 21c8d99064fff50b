"""Typed records of what a run measured, written to and read from its `metrics.json` files.

Stage 1 and 2 write a `TrainResult` per model, baselines a `BaselineResult`; tables and the
report read them back through `load`, so a renamed field fails loudly in one place instead of
as a KeyError in a table.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from helpers.core.atomic import atomic_write


@dataclass
class TrainResult:
    """One trained model: its best-validation epoch's scores and the settings that made it."""

    model: str
    stage: str
    parameters: int  # the 2020 project's count: conv + linear (CNNs), trainable (transfer head)
    val_metric: str  # "accuracy" (Stage 1) or "micro F1" (Stage 2)
    val_score: float
    test: dict[str, Any]  # metrics.single_label_summary / multilabel_summary of the test split
    epochs_run: int
    best_epoch: int
    seconds_per_epoch: float
    training: dict[str, Any]  # TrainingConfig.to_dict()
    environment: dict[str, Any]  # runs.environment()
    checkpoint: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        """Stage 1's headline: accuracy on the test clips."""
        return self.test["accuracy"]


@dataclass
class BaselineResult:
    """A classical baseline on log-mel statistics (no epochs, no checkpoint)."""

    model: str
    val_score: float
    test_score: float


Result = TrainResult | BaselineResult


def save(path: str | Path, result: Result) -> Path:
    """Write `result` atomically as JSON, with its kind so `load` knows what to build."""
    data = {"kind": type(result).__name__, **asdict(result)}
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str)))


def load(path: str | Path) -> Result:
    """Read a record written by `save`; a file of another shape is refused, naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    kinds = {cls.__name__: cls for cls in (TrainResult, BaselineResult)}
    cls = kinds.get(data.pop("kind", None)) if isinstance(data, dict) else None
    if cls is None or not _fits(cls, data):
        raise ValueError(f"{path}: not a results record of this version; run the notebook "
                         "that wrote it again")
    return cls(**data)


def _fits(cls: type, data: dict) -> bool:
    known = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls)
                if f.default is MISSING and f.default_factory is MISSING}
    return required <= set(data) <= known
