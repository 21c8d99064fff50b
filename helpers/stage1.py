"""Stage 1 end to end: cached splits -> batches -> fit -> best checkpoint -> test metrics.

Notebook 03 calls `train` once per model and `results_table` once; each model's numbers land
in `run_dir/stage1/<model>/metrics.json`, so tables and the README come from files, not memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from helpers import baseline, cache, checkpoints, metrics, models, runs, training
from helpers.batches import ClipBatches
from helpers.config import SEED, SEED_REPORTED, SPLITS

STAGE_DIR = "stage1"


def load_caches(run_dir: str | Path, device: torch.device | None = None,
                splits: tuple[str, ...] = SPLITS) -> dict[str, cache.CachedSplit]:
    """The caches notebook 02 wrote (train/val/test); on the GPU when training runs there."""
    place = device if device is not None and device.type == "cuda" else "cpu"
    return {s: cache.load_split(Path(run_dir) / "cache" / f"{s}.pt", place) for s in splits}


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


def conv_linear_parameters(model: nn.Module) -> int:
    """The seed's "learnable parameters": convolutions and linear layers, no batch norm."""
    return models.count_parameters(model, (nn.Conv1d, nn.Conv2d, nn.Linear))


def train(
    run_dir: str | Path,
    name: str,
    epochs: int = 30,
    batch_size: int = 16,
    lr: float = 3e-4,
    patience: int | None = None,
    resume: bool = True,
    seed: int = SEED,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """Train model `name` on the run's caches, test its best-validation checkpoint, save metrics."""
    run_dir = Path(run_dir)
    dev = training.pick_device(device)
    batches = make_batches(load_caches(run_dir, dev), batch_size, seed)
    torch.manual_seed(seed)
    model = models.build(name)
    out = run_dir / STAGE_DIR / name
    fit, test = training.fit_and_test(
        model, batches, nn.functional.cross_entropy, metrics.accuracy_from_logits,
        metrics.single_label_summary, out, checkpoints.model_meta(name), dev, epochs=epochs,
        lr=lr, patience=patience, resume=resume, seed=seed, progress=progress)
    result = {
        "model": name, "parameters": conv_linear_parameters(model),
        "parameters_all": models.count_parameters(model), "device": str(dev),
        "environment": runs.environment(str(dev)),
        "epochs_run": len(fit.history), "best_epoch": fit.best_epoch,
        "seconds_per_epoch": float(fit.history["seconds"].mean()),
        "train_clips_per_epoch": len(batches["train"].index),
        "val_accuracy": fit.best_score, "test_accuracy": test["accuracy"], "test": test,
        "checkpoint": str(fit.best_path),
    }
    runs.write_json(out / "metrics.json", result)
    return result


def forest_baseline(run_dir: str | Path) -> dict:
    """The seed's baseline kind, a random forest on log-mel statistics, on the same split."""
    cached = load_caches(run_dir)
    scores = baseline.evaluate(cached["train"], {"val": cached["val"], "test": cached["test"]},
                               "forest")
    result = {"model": "forest", "val_accuracy": scores["val"], "test_accuracy": scores["test"]}
    runs.write_json(Path(run_dir) / STAGE_DIR / "forest" / "metrics.json", result)
    return result


def results_table(run_dir: str | Path) -> pd.DataFrame:
    """This run's Stage-1 numbers beside the seed's reported ones."""
    _, _, source = runs.load_dataset(run_dir)
    rows = []
    for model, (val, test) in SEED_REPORTED["stage1"].items():
        rows.append({"model": model, "data": "IRMAS (seed's report, leaky split)",
                     "parameters": 81_166 if model == "seed" else None,
                     "epochs": 30 if model == "seed" else None, "best epoch": None,
                     "s/epoch": 93.0 if model == "seed" else None, "val": val, "test": test})
    logreg = Path(run_dir) / "baseline.json"
    if logreg.is_file():
        m = json.loads(logreg.read_text())
        rows.append({"model": "logreg (log-mel mean+std)", "data": f"{source} (this run)",
                     "val": m["val"], "test": m["test"]})
    for path in sorted((Path(run_dir) / STAGE_DIR).glob("*/metrics.json")):
        m = json.loads(path.read_text())
        rows.append({"model": m["model"], "data": f"{source} (this run)",
                     "parameters": m.get("parameters"), "epochs": m.get("epochs_run"),
                     "best epoch": m.get("best_epoch"), "s/epoch": m.get("seconds_per_epoch"),
                     "val": m["val_accuracy"], "test": m["test_accuracy"]})
    return pd.DataFrame(rows)
