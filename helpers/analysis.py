"""Notebook 06's evaluations: every trained model on the test clips, test mixes and whole test
excerpts, kept as probabilities per item so that tables, figures and the audio browser agree.

Test clips and mixes come from the run's caches and plans (what 03 and 05 were tested on);
test excerpts (IRMAS's 5-20 s test files, or the demo's) are heard whole, through the same
sliding windows as `helpers.predict`, which is what a user gets on their own recordings.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from helpers import cache, checkpoints, metrics, mixing, runs, training
from helpers.atomic import atomic_write
from helpers.audio import AudioError, read_audio
from helpers.batches import ClipBatches, TensorBatches
from helpers.config import CLASSES, IRMAS_TEST_SPLIT
from helpers.predict import HOP_SECONDS, Predictor, present
from helpers.stage1 import STAGE_DIR as STAGE1_DIR
from helpers.stage2 import STAGE_DIR as STAGE2_DIR
from helpers.stage2 import cached_features, load_mixes

ANALYSIS_DIR = "analysis"


@dataclass
class Evaluation:
    """One model on one evaluation set: per item its probabilities, true and named classes
    (multi-hot `[N, 4]`), and `audio(i)`, the `[2, L]` waveform of item `i` to listen to."""

    model: str
    items: list[str]
    probs: torch.Tensor
    targets: torch.Tensor
    pred: torch.Tensor
    audio: Callable[[int], torch.Tensor]

    def __len__(self) -> int:
        return len(self.items)

    def right(self) -> torch.Tensor:
        """True where exactly the right instruments were named."""
        return (self.pred == self.targets).all(dim=1)

    def select(self, true: str | None = None, named: str | None = None, outcome: str = "all"
               ) -> list[int]:
        """Items where class `true` plays, class `named` was named, and that were `outcome`
        ("right": exactly the right instruments, "wrong", or "all"); None matches any."""
        keep = torch.ones(len(self), dtype=torch.bool)
        if true is not None:
            keep &= self.targets[:, CLASSES.index(true)] > 0
        if named is not None:
            keep &= self.pred[:, CLASSES.index(named)] > 0
        if outcome != "all":
            keep &= self.right() if outcome == "right" else ~self.right()
        return keep.nonzero().flatten().tolist()

    def scores(self) -> dict:
        return metrics.multilabel_scores(self.pred, self.targets)

    def frame(self) -> pd.DataFrame:
        """One row per item: true and named instruments, right or not, probability per class."""
        table = pd.DataFrame({
            "item": self.items,
            "true": [metrics.combination_label(r) for r in self.targets],
            "named": [metrics.combination_label(r) for r in self.pred],
            "right": self.right().tolist(),
        })
        for c, column in zip(CLASSES, self.probs.T):
            table[f"p_{c}"] = column.numpy()
        return table


def _one_hot(index: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(index, len(CLASSES)).float()


def _checkpoints(run_dir: Path, stage_dir: str) -> list[Path]:
    return sorted((run_dir / stage_dir).glob("*/best.pt"))


def test_clips(run_dir: str | Path, device: str | None = None) -> dict[str, Evaluation]:
    """Each Stage-1 model's best checkpoint on the test clips: softmax, named = arg-max."""
    run_dir = Path(run_dir)
    dev = training.pick_device(device)
    test = cache.load_split(run_dir / "cache" / "test.pt")
    batches = ClipBatches(test.waves, test.labels, 64)
    out = {}
    for path in _checkpoints(run_dir, STAGE1_DIR):
        model, _ = checkpoints.load_model(path, dev)
        logits, labels = training.predict(model, batches, dev)
        probs = logits.softmax(dim=1)
        out[path.parent.name] = Evaluation(path.parent.name, test.paths, probs, _one_hot(labels),
                                           _one_hot(probs.argmax(dim=1)),
                                           lambda i, w=test.waves: w[i].float())
    if not out:
        raise FileNotFoundError(f"{run_dir / STAGE1_DIR}: no trained model; run "
                                "notebooks/03_stage1_train.ipynb first")
    return out


def test_mixes(run_dir: str | Path, device: str | None = None, threshold: float = 0.5
               ) -> dict[str, Evaluation]:
    """Each Stage-2 variant's best checkpoint on the test mixes: sigmoid, named at `threshold`
    (the rule notebook 05's "threshold" scores use)."""
    run_dir = Path(run_dir)
    dev = training.pick_device(device)
    waves, plan = load_mixes(run_dir, splits=("test",))["test"]
    names = [mixing.mix_name(plan, i) for i in range(len(plan))]
    out = {}
    for path in _checkpoints(run_dir, STAGE2_DIR):
        model, meta = checkpoints.load_model(path, dev)
        if meta["model"] == "transfer":
            batches = TensorBatches(*cached_features(run_dir, dev, progress=False)["test"], 256)
        else:
            batches = mixing.MixBatches(waves, plan, 64)
        logits, targets = training.predict(model, batches, dev)
        probs = logits.sigmoid()
        out[path.parent.name] = Evaluation(
            path.parent.name, names, probs, targets, (probs >= threshold).float(),
            lambda i, p=plan: mixing.mix(waves, p.sources[i:i + 1], p.gains[i:i + 1])[0])
    if not out:
        raise FileNotFoundError(f"{run_dir / STAGE2_DIR}: no trained model; run "
                                "notebooks/05_stage2_train.ipynb first")
    return out


def excerpt_rows(run_dir: str | Path) -> tuple[pd.DataFrame, Path]:
    """The test excerpts of the run's data set whose files are there, and the data folder."""
    manifest, data_dir, source = runs.load_dataset(run_dir)
    rows = manifest[manifest["split"] == IRMAS_TEST_SPLIT]
    found = rows[[(data_dir / p).is_file() for p in rows["path"]]]
    if found.empty:
        fix = ("irmas_parts including test1, test2, test3" if source == "irmas"
               else "demo_test_songs > 0")
        raise FileNotFoundError(
            f"none of the {len(rows)} test excerpts is under {data_dir}: run "
            f"notebooks/01_download.ipynb with {fix} (or set evaluate_excerpts = False in 06)")
    if len(found) < len(rows):
        warnings.warn(f"{len(rows) - len(found)} of {len(rows)} test excerpts are not under "
                      f"{data_dir}; evaluating the {len(found)} that are", stacklevel=2)
    return found.reset_index(drop=True), data_dir


def test_excerpts(run_dir: str | Path, hop_seconds: float = HOP_SECONDS,
                  device: str | None = None, progress: bool = True) -> dict[str, Evaluation]:
    """Every audio model (Stage 1 and Stage 2; not the transfer head, which reads features) on
    the whole test excerpts, through `helpers.predict`'s windows. Keys: `stage1/mel`, …"""
    run_dir = Path(run_dir)
    rows, data_dir = excerpt_rows(run_dir)
    dev = str(training.pick_device(device))
    predictors = {f"{stage}/{path.parent.name}": Predictor(path, dev, hop_seconds)
                  for stage in (STAGE1_DIR, STAGE2_DIR) for path in _checkpoints(run_dir, stage)
                  if path.parent.name != "transfer"}
    if not predictors:
        raise FileNotFoundError(f"{run_dir}: no trained model; run notebooks 03 and 05 first")
    probs: dict[str, list[torch.Tensor]] = {name: [] for name in predictors}
    kept, targets = [], []
    for path, labels in tqdm(list(zip(rows["path"], rows["instruments"])), desc="excerpts",
                             disable=not progress):
        try:
            wave = read_audio(data_dir / path)
        except AudioError as err:
            warnings.warn(f"skipped: {err}", stacklevel=2)
            continue
        for name, predictor in predictors.items():
            probs[name].append(predictor.probabilities(wave))
        kept.append(path)
        targets.append([float(c in labels.split()) for c in CLASSES])
    if not kept:
        raise AudioError(f"none of the test excerpts under {data_dir} could be read")
    y = torch.tensor(targets)
    out = {}
    for name, predictor in predictors.items():
        p = torch.stack(probs[name])
        out[name] = Evaluation(name, kept, p, y, present(p, predictor.meta["task"]),
                               lambda i, k=kept: read_audio(data_dir / k[i]))
    return out


def scores_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """Exact match, micro/macro F1, per-label and count accuracy of each model."""
    rows = []
    for name, ev in evaluations.items():
        s = ev.scores()
        rows.append({"model": name, "items": len(ev), "exact match": s["exact_match"],
                     "micro F1": s["micro_f1"], "macro F1": s["macro_f1"],
                     "per-label acc": s["per_label_accuracy"],
                     "count acc": s["count_accuracy"]})
    return pd.DataFrame(rows).set_index("model")


def f1_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """F1 per instrument (columns) of each model (rows)."""
    return pd.DataFrame({name: ev.scores()["f1"] for name, ev in evaluations.items()}).T


def save(run_dir: str | Path, sections: dict[str, dict[str, Evaluation]], **settings
         ) -> Path:
    """Write `analysis/metrics.json` (scores per section and model, where it ran) and
    `analysis/<section>.csv` (per-item predictions) into the run folder."""
    out = Path(run_dir) / ANALYSIS_DIR
    _, _, source = runs.load_dataset(run_dir)
    for section, evaluations in sections.items():
        table = pd.concat({name: ev.frame() for name, ev in evaluations.items()},
                          names=["model", "row"]).reset_index(level=0)
        path = out / f"{section}.csv"
        atomic_write(path, lambda tmp, t=table: t.to_csv(tmp, index=False))
    result = {"source": source, "settings": settings,
              "environment": runs.environment(str(training.pick_device())),
              **{section: {name: {"items": len(ev), **ev.scores()}
                           for name, ev in evaluations.items()}
                 for section, evaluations in sections.items()}}
    return runs.write_json(out / "metrics.json", result)
