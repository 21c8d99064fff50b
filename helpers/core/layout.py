"""The run folder's layout: the one place that says where each artefact of a run lives.

Notebooks, stages, the analysis and the report ask a `RunLayout` for paths; no other module
spells `cache/train.pt` or `best.pt`, so the folder can change here and nowhere else.

    <run>/dataset.json, manifest.csv      notebook 01: which data, which files
    <run>/cache/<split>.pt (+ .json)      notebook 02: decoded clips (and their stamp)
    <run>/baselines/<kind>.json           notebooks 02, 03: log-mel baselines
    <run>/stage1/<model>/                 notebook 03: best.pt, last.pt, history.*, metrics.json
    <run>/mixes/<split>.pt, mixes/wav/    notebook 04: mix plans, exported test mixes
    <run>/stage2/<variant>/               notebook 05: as stage1 (+ features_<split>.pt)
    <run>/features/<backbone>/            notebooks 03, 05: musicnn features of clips, mixes
    <run>/analysis/                       notebook 06: metrics.json, <section>.csv
    <run>/figures/<name>.png              every notebook's figures
    <run>/notebooks/                      executed copies (helpers.notebooks)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from helpers.core.config import STAGES


@dataclass(frozen=True)
class ModelFiles:
    """The files of one trained model (or Stage-2 variant)."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def history_csv(self) -> Path:
        return self.folder / "history.csv"

    @property
    def history_json(self) -> Path:
        return self.folder / "history.json"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.json"

    def features(self, split: str) -> Path:
        """Cached frozen-extractor features of a split's mixes (the transfer head's input)."""
        return self.folder / f"features_{split}.pt"


@dataclass(frozen=True)
class RunLayout:
    """Where every artefact of the run rooted at `root` lives."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def dataset(self) -> Path:
        return self.root / "dataset.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    def baseline(self, kind: str) -> Path:
        """A classical baseline's scores (`logreg`, `forest`)."""
        return self.root / "baselines" / f"{kind}.json"

    def cache(self, split: str) -> Path:
        return self.root / "cache" / f"{split}.pt"

    def mixes(self, split: str) -> Path:
        return self.root / "mixes" / f"{split}.pt"

    @property
    def mix_wavs(self) -> Path:
        return self.root / "mixes" / "wav"

    def backbone_features(self, backbone: str, split: str, mixes: bool = False) -> Path:
        """Cached features of a pretrained backbone checkpoint (a name, a hub id such as
        `MIT/ast-…`, or a folder) for a split's clips (Stage 1) or mixes."""
        folder = re.sub(r"[^A-Za-z0-9._-]+", "_", backbone).strip("_")[-100:]
        return self.root / "features" / folder / f"{'mixes_' if mixes else ''}{split}.pt"

    def model(self, stage: str, name: str) -> ModelFiles:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
        return ModelFiles(self.root / stage / name)

    def trained(self, stage: str) -> list[ModelFiles]:
        """The models of `stage` that have a best checkpoint, by name."""
        return [ModelFiles(p.parent) for p in sorted((self.root / stage).glob("*/best.pt"))]

    def metrics_files(self, stage: str) -> list[Path]:
        """Every `metrics.json` of `stage` (baselines too), by model name."""
        return sorted((self.root / stage).glob("*/metrics.json"))

    def figure(self, name: str) -> Path:
        return self.root / "figures" / f"{name}.png"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis" / "metrics.json"

    def analysis_table(self, section: str) -> Path:
        return self.root / "analysis" / f"{section}.csv"

    @property
    def report(self) -> Path:
        """The run's results tables as Markdown (`helpers.evaluate.report.save`), beside its
        figures."""
        return self.root / "report.md"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"


def as_layout(run: RunLayout | str | Path) -> RunLayout:
    """`run` as a layout (a path is the run folder's root)."""
    return run if isinstance(run, RunLayout) else RunLayout(Path(run))
