"""Stage 2 end to end: mixes per split -> multi-label CNNs, the transfer head, fine-tuning.

Notebook 04 calls `build_mixes`; notebook 05 calls `train_cnn` (from scratch or fine-tuned from
Stage 1) and `train_transfer`, each writing `run_dir/stage2/<variant>/metrics.json`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers import cache, checkpoints, metrics, mixing, models, runs, training
from helpers.atomic import atomic_write
from helpers.batches import Batches, TensorBatches
from helpers.config import SEED, SEED_REPORTED, SPLITS
from helpers.stage1 import STAGE_DIR as STAGE1_DIR
from helpers.stage1 import conv_linear_parameters, load_caches

STAGE_DIR = "stage2"
MIX_DIR = "mixes"
LOSS = nn.MultiLabelSoftMarginLoss()


def _paths_key(paths: list[str]) -> str:
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def build_mixes(run_dir: str | Path, uses_per_clip: float = 3.0,
                k_weights: dict[int, float] | None = None, gain_db: float = 6.0,
                seed: int = SEED) -> dict[str, mixing.MixPlan]:
    """Plan each split's mixes from that split's cached clips and save them in the run."""
    run_dir = Path(run_dir)
    plans = {}
    for offset, split in enumerate(SPLITS):
        cached = cache.load_split(run_dir / "cache" / f"{split}.pt")
        plan = mixing.plan_mixes(cached.labels, uses_per_clip, k_weights, gain_db,
                                 seed * 100 + offset)
        meta = {"split": split, "uses_per_clip": uses_per_clip, "gain_db": gain_db,
                "k_weights": {str(k): w for k, w in (k_weights or {2: 1.0}).items()},
                "seed": seed, "clips": _paths_key(cached.paths)}
        mixing.save_plan(run_dir / MIX_DIR / f"{split}.pt", plan, meta)
        plans[split] = plan
    return plans


def load_mixes(run_dir: str | Path, device: torch.device | None = None,
               splits: tuple[str, ...] = SPLITS) -> dict[str, tuple[torch.Tensor, mixing.MixPlan]]:
    """(cached waves, plan) per split; refuses plans made from another version of the cache."""
    cached = load_caches(run_dir, device, splits)
    out = {}
    for split in splits:
        plan, meta = mixing.load_plan(Path(run_dir) / MIX_DIR / f"{split}.pt")
        if meta["clips"] != _paths_key(cached[split].paths):
            raise ValueError(f"the {split} mixes were planned from another cache: run "
                             "notebooks/04_generate_mixes.ipynb again")
        out[split] = (cached[split].waves, plan)
    return out


def _finish(out: Path, name: str, fit: training.FitResult, test: dict, device: torch.device,
            trainable: int) -> dict:
    result = {
        "model": name, "trainable_parameters": trainable, "device": str(device),
        "environment": runs.environment(str(device)),
        "epochs_run": len(fit.history), "best_epoch": fit.best_epoch,
        "seconds_per_epoch": float(fit.history["seconds"].mean()),
        "val_micro_f1": fit.best_score, "test": test,
        "test_per_label_accuracy": test["threshold"]["per_label_accuracy"],
        "test_exact_match": test["threshold"]["exact_match"], "checkpoint": str(fit.best_path),
    }
    runs.write_json(out / "metrics.json", result)
    return result


def train_cnn(
    run_dir: str | Path,
    name: str,
    epochs: int = 30,
    batch_size: int = 16,
    lr: float = 3e-4,
    patience: int | None = None,
    resume: bool = True,
    seed: int = SEED,
    finetune: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """A multi-label CNN on mixes: from scratch, or (`finetune`) from its Stage-1 weights."""
    run_dir = Path(run_dir)
    dev = training.pick_device(device)
    data = load_mixes(run_dir, dev)
    batches = {s: mixing.MixBatches(*data[s], batch_size if s == "train" else 64,
                                    shuffle=s == "train", seed=seed) for s in SPLITS}
    torch.manual_seed(seed)
    model = models.build(name)
    variant = f"{name}-finetune" if finetune else name
    if finetune:
        stage1, _ = checkpoints.load_model(run_dir / STAGE1_DIR / name / "best.pt")
        model.load_state_dict(stage1.state_dict())
    out = run_dir / STAGE_DIR / variant
    fit, test = training.fit_and_test(
        model, batches, LOSS, metrics.micro_f1_from_logits, metrics.multilabel_summary, out,
        checkpoints.model_meta(name, task="multi"), dev, epochs=epochs, lr=lr,
        patience=patience, resume=resume, seed=seed, progress=progress)
    return _finish(out, variant, fit, test, dev, conv_linear_parameters(model))


@torch.no_grad()
def extract_features(extractor: nn.Module, batches: Batches, device: torch.device,
                     progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """`extractor.features` of every batch, in eval mode (BatchNorm statistics stay put)."""
    extractor.eval()
    feats, targets = [], []
    for x, y in tqdm(batches, desc="features", leave=False, disable=not progress):
        feats.append(extractor.features(x.to(device)).float().cpu())
        targets.append(y.cpu())
    return torch.cat(feats), torch.cat(targets)


def cached_features(run_dir: Path, device: torch.device, progress: bool = True
                    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Stage-1 SeedCNN features of every mix, computed once and saved beside the head."""
    ckpt = run_dir / STAGE1_DIR / "seed" / "best.pt"
    extractor, _ = checkpoints.load_model(ckpt, device)
    for p in extractor.parameters():
        p.requires_grad_(False)
    out = {}
    data = None
    for split in SPLITS:
        path = run_dir / STAGE_DIR / "transfer" / f"features_{split}.pt"
        plan_file = run_dir / MIX_DIR / f"{split}.pt"
        key = f"{ckpt.stat().st_mtime_ns}:{plan_file.stat().st_mtime_ns}"
        if path.is_file():
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored["key"] == key:
                out[split] = (stored["features"], stored["targets"])
                continue
        data = data or load_mixes(run_dir, device)
        feats, targets = extract_features(extractor, mixing.MixBatches(*data[split], 64),
                                          device, progress)
        payload = {"key": key, "features": feats, "targets": targets}
        atomic_write(path, lambda tmp, p=payload: torch.save(p, tmp))
        out[split] = (feats, targets)
    return out


def train_transfer(
    run_dir: str | Path,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-4,
    patience: int | None = None,
    resume: bool = True,
    seed: int = SEED,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """The seed's transfer head on frozen, eval-mode Stage-1 SeedCNN features (extracted once)."""
    run_dir = Path(run_dir)
    dev = training.pick_device(device)
    feats = cached_features(run_dir, dev, progress)
    batches = {s: TensorBatches(*feats[s], batch_size if s == "train" else 256,
                                shuffle=s == "train", seed=seed) for s in SPLITS}
    torch.manual_seed(seed)
    head = models.build("transfer")
    out = run_dir / STAGE_DIR / "transfer"
    fit, test = training.fit_and_test(
        head, batches, LOSS, metrics.micro_f1_from_logits, metrics.multilabel_summary, out,
        checkpoints.model_meta("transfer", task="multi"), dev, epochs=epochs, lr=lr,
        patience=patience, resume=resume, seed=seed, progress=progress)
    return _finish(out, "transfer", fit, test, dev,
                   models.count_parameters(head, trainable_only=True))


def results_table(run_dir: str | Path) -> pd.DataFrame:
    """This run's Stage-2 numbers beside the seed's reported ones."""
    _, _, source = runs.load_dataset(run_dir)
    seed_rows = {"seed": (81_166, 30, 93.0), "transfer": (30_754, None, 0.33)}
    rows = [{"model": model, "data": "IRMAS (seed's report, leaky split)",
             "trainable": seed_rows[model][0], "epochs": seed_rows[model][1],
             "best epoch": None, "s/epoch": seed_rows[model][2], "per-label acc": test}
            for model, (_, test) in SEED_REPORTED["stage2"].items()]
    for path in sorted((Path(run_dir) / STAGE_DIR).glob("*/metrics.json")):
        m = json.loads(path.read_text())
        t, k = m["test"]["threshold"], m["test"]["top_k"]
        rows.append({"model": m["model"], "data": f"{source} (this run)",
                     "trainable": m["trainable_parameters"], "epochs": m["epochs_run"],
                     "best epoch": m["best_epoch"], "s/epoch": m["seconds_per_epoch"],
                     "per-label acc": t["per_label_accuracy"], "exact": t["exact_match"],
                     "micro F1": t["micro_f1"], "macro F1": t["macro_f1"],
                     "count acc": t["count_accuracy"], "exact (k known)": k["exact_match"],
                     "LRAP": m["test"]["lrap"]})
    return pd.DataFrame(rows)
