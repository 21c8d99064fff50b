"""Notebook 06's evaluations: every trained model on the test clips, test mixes and whole test
excerpts, kept as probabilities per item so that tables, figures and the audio browser agree.

Test clips and mixes come from the run's caches and plans (what 03 and 05 were tested on);
test excerpts (IRMAS's 5-20 s test files, or the demo's) are heard whole, through the same
sliding windows as `helpers.evaluate.predict`, which is what a user gets on their own recordings.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from helpers.core import metrics, results
from helpers.core.atomic import atomic_write
from helpers.core.config import IRMAS_TEST_SPLIT, STAGE1, STAGE2
from helpers.core.layout import ModelFiles, RunLayout, as_layout
from helpers.data import cache, dataset, mix_plans, mixing
from helpers.data.audio import AudioError, read_audio
from helpers.data.batches import ClipBatches, TensorBatches
from helpers.evaluate.predict import HOP_SECONDS, Prediction, Predictor, present
from helpers.models import checkpoints
from helpers.train import loop
from helpers.train.sources import stage1_features


@dataclass
class Evaluation:
    """One model on one evaluation set: per item its probabilities, true and named classes
    (multi-hot `[N, classes]`), and `audio(i)`, the `[2, L]` waveform of item `i` to listen
    to; `classes` are the model's instruments, in the order of the columns."""

    model: str
    items: list[str]
    probs: torch.Tensor
    targets: torch.Tensor
    pred: torch.Tensor
    audio: Callable[[int], torch.Tensor]
    classes: tuple[str, ...]

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
            keep &= self.targets[:, self.classes.index(true)] > 0
        if named is not None:
            keep &= self.pred[:, self.classes.index(named)] > 0
        if outcome != "all":
            keep &= self.right() if outcome == "right" else ~self.right()
        return keep.nonzero().flatten().tolist()

    def scores(self) -> dict:
        """The multi-label scores of what was named, and LRAP of the probabilities (for a
        single-label model: of its softmax)."""
        return {**metrics.multilabel_scores(self.pred, self.targets, self.classes),
                "lrap": metrics.lrap(self.probs, self.targets)}

    def frame(self) -> pd.DataFrame:
        """One row per item: true and named instruments, right or not, probability per class."""
        table = pd.DataFrame({
            "item": self.items,
            "true": [metrics.combination_label(r, self.classes) for r in self.targets],
            "named": [metrics.combination_label(r, self.classes) for r in self.pred],
            "right": self.right().tolist(),
        })
        for c, column in zip(self.classes, self.probs.T):
            table[f"p_{c}"] = column.numpy()
        return table


def _one_hot(index: torch.Tensor, classes: tuple[str, ...]) -> torch.Tensor:
    return torch.nn.functional.one_hot(index, len(classes)).float()


def _trained(run: RunLayout, stage: str, notebook: str) -> list[ModelFiles]:
    trained = run.trained(stage)
    if not trained:
        raise FileNotFoundError(f"{run.root / stage}: no trained model; run "
                                f"notebooks/{notebook}.ipynb first")
    return trained


def evaluate_clips(run: RunLayout | str | Path, device: str | None = None
                   ) -> dict[str, Evaluation]:
    """Each Stage-1 model's best checkpoint on the test clips: softmax, named = arg-max."""
    run = as_layout(run)
    dev = loop.pick_device(device)
    test = cache.load_split(run.cache("test"))
    batches = ClipBatches(test.waves, test.labels, 64)
    out = {}
    for files in _trained(run, STAGE1, "03_stage1_train"):
        model, meta = checkpoints.load_model(files.best, dev)
        checkpoints.check_classes(meta, test.classes, files.best)
        logits, labels = loop.predict(model, batches, dev)
        probs = logits.softmax(dim=1)
        out[files.name] = Evaluation(files.name, test.paths, probs, _one_hot(labels, test.classes),
                                     _one_hot(probs.argmax(dim=1), test.classes),
                                     lambda i, w=test.waves: w[i].float(), test.classes)
    return out


def evaluate_mixes(run: RunLayout | str | Path, device: str | None = None,
                   threshold: float = 0.5) -> dict[str, Evaluation]:
    """Each Stage-2 variant's best checkpoint on the test mixes: sigmoid, named at `threshold`
    (the rule notebook 05's "threshold" scores use)."""
    run = as_layout(run)
    dev = loop.pick_device(device)
    waves, plan = mix_plans.load_mixes(run, splits=("test",))["test"]
    classes = plan.classes
    names = [mixing.mix_name(plan, i) for i in range(len(plan))]
    out = {}
    for files in _trained(run, STAGE2, "05_stage2_train"):
        model, meta = checkpoints.load_model(files.best, dev)
        checkpoints.check_classes(meta, classes, files.best)
        if not checkpoints.hears_audio(meta):
            feats = stage1_features(run, meta["extractor"], files, device=dev, progress=False)
            batches = TensorBatches(*feats["test"], 256)
        else:
            batches = mixing.MixBatches(waves, plan, 64)
        logits, targets = loop.predict(model, batches, dev)
        probs = logits.sigmoid()
        out[files.name] = Evaluation(
            files.name, names, probs, targets, (probs >= threshold).float(),
            lambda i, p=plan: mixing.mix(waves, p.sources[i:i + 1], p.gains[i:i + 1])[0],
            classes)
    return out


def excerpt_rows(run: RunLayout | str | Path) -> tuple[pd.DataFrame, Path]:
    """The test excerpts of the run's data set whose files are there, and the data folder."""
    manifest, data_dir, source = dataset.load_dataset(run)
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


def evaluate_excerpts(run: RunLayout | str | Path, hop_seconds: float = HOP_SECONDS,
                      device: str | None = None, *, progress: bool = True) -> dict[str, Evaluation]:
    """Every audio model (Stage 1 and Stage 2; not the 2020 transfer head, which reads features) on
    the whole test excerpts, through `helpers.evaluate.predict`'s windows. Keys: `stage1/mel`, …"""
    run = as_layout(run)
    rows, data_dir = excerpt_rows(run)
    dev = str(loop.pick_device(device))
    predictors = {f"{stage}/{files.name}": Predictor(files.best, dev, hop_seconds)
                  for stage in (STAGE1, STAGE2) for files in run.trained(stage)
                  if checkpoints.hears_audio(checkpoints.load_checkpoint(files.best)["meta"])}
    if not predictors:
        raise FileNotFoundError(f"{run.root}: no trained model; run notebooks 03 and 05 first")
    classes = dataset.instruments(run)
    for name, predictor in predictors.items():
        checkpoints.check_classes(predictor.meta, classes, name)
    return hear_excerpts(predictors, rows, data_dir, progress=progress)


def hear_excerpts(predictors: dict[str, Predictor], rows: pd.DataFrame, data_dir: Path,
                  *, progress: bool = True) -> dict[str, Evaluation]:
    """Each predictor on the excerpts of `rows` (manifest rows: `path`, `instruments`) under
    `data_dir`: window probabilities averaged per excerpt, instruments named by each
    checkpoint's rule and thresholds (all predictors share one class list). An unreadable
    excerpt is skipped with a warning."""
    lists = {tuple(p.classes) for p in predictors.values()}
    if len(lists) != 1:
        raise ValueError(f"these models name different instruments: {sorted(lists)}")
    classes = lists.pop()
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
        targets.append([float(c in labels.split()) for c in classes])
    if not kept:
        raise AudioError(f"none of the test excerpts under {data_dir} could be read")
    y = torch.tensor(targets)
    out = {}
    for name, predictor in predictors.items():
        p = torch.stack(probs[name])
        out[name] = Evaluation(name, kept, p, y,
                               present(p, predictor.meta["task"], predictor.threshold,
                                       count=predictor.count),
                               lambda i, k=kept: read_audio(data_dir / k[i]), classes)
    return out


def timelines(run: RunLayout | str | Path, excerpts: Evaluation, count: int = 6,
              *, hop_seconds: float = HOP_SECONDS, device: str | None = None
              ) -> list[tuple[Prediction, dict[str, float], list[str]]]:
    """Up to `count` of the excerpts `excerpts` (an `evaluate_excerpts` result; its model
    `stage/name`) heard again window by window, mistakes first (half, or more when fewer were
    right): each one's `Prediction` with its timeline, the probability each class had to
    reach and the instruments playing, for `plots.timeline`."""
    run = as_layout(run)
    _, data_dir, _ = dataset.load_dataset(run)
    wrong, right = excerpts.select(outcome="wrong"), excerpts.select(outcome="right")
    picked = (wrong[:max(count // 2, count - len(right))] + right)[:count]
    stage, name = excerpts.model.split("/")
    predictor = Predictor(run.model(stage, name).best, str(loop.pick_device(device)),
                          hop_seconds, timeline=True)
    out = []
    for i in sorted(picked):
        heard = replace(predictor(data_dir / excerpts.items[i]), path=excerpts.items[i])
        playing = [c for c, on in zip(excerpts.classes, excerpts.targets[i]) if on]
        out.append((heard, predictor.thresholds(heard), playing))
    return out


def scores_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """Exact match, micro/macro F1, per-label and count accuracy of each model."""
    rows = []
    for name, ev in evaluations.items():
        s = ev.scores()
        rows.append({"model": name, "items": len(ev), "exact match": s["exact_match"],
                     "micro F1": s["micro_f1"], "macro F1": s["macro_f1"],
                     "per-label acc": s["per_label_accuracy"],
                     "count acc": s["count_accuracy"], "LRAP": s["lrap"]})
    table = pd.DataFrame(rows).set_index("model")
    table.attrs["percent"] = ["exact match", "micro F1", "macro F1", "per-label acc", "count acc",
                              "LRAP"]
    return table


def f1_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """F1 per instrument (columns) of each model (rows)."""
    return pd.DataFrame({name: ev.scores()["f1"] for name, ev in evaluations.items()}).T


def best(evaluations: dict[str, Evaluation], run: RunLayout | str | Path,
         stage: str | None = None) -> str:
    """The model the audio browsers show: the best *validation* score in its `metrics.json`
    (never a test score). Names are `stage/model`, or models of `stage`; between stages a
    Stage-2 model wins (it is trained to name several instruments), and a model on a
    pretrained backbone (musicnn) before one trained from scratch: in-run validation shares
    the training set's timbre and cannot tell them apart, the accuracy benchmark's unheard
    validation timbre can (docs/results.md). Ties: the first."""
    run = as_layout(run)

    def validation(name: str) -> tuple[bool, bool, float]:
        where, model = name.split("/", 1) if "/" in name else (stage, name)
        files = run.model(where, model)
        pretrained = (files.best.is_file()
                      and "backbone" in checkpoints.load_checkpoint(files.best)["meta"])
        score = results.load(files.metrics).val_score if files.metrics.is_file() else -1.0
        return where == STAGE2, pretrained, score

    return max(evaluations, key=validation)


def save(run: RunLayout | str | Path, sections: dict[str, dict[str, Evaluation]], **settings
         ) -> Path:
    """Write the analysis scores (per section and model, where it ran) and per-item
    predictions (`<section>.csv`) into the run folder."""
    run = as_layout(run)
    _, _, source = dataset.load_dataset(run)
    for section, evaluations in sections.items():
        table = pd.concat({name: ev.frame() for name, ev in evaluations.items()},
                          names=["model", "row"]).reset_index(level=0)
        atomic_write(run.analysis_table(section),
                     lambda tmp, t=table: t.to_csv(tmp, index=False))
    result = {"source": source, "settings": settings,
              "environment": dataset.environment(str(loop.pick_device())),
              **{section: {name: {"items": len(ev), **ev.scores()}
                           for name, ev in evaluations.items()}
                 for section, evaluations in sections.items()}}
    return dataset.write_json(run.analysis, result)
