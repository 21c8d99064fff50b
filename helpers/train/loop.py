"""One fit loop for both stages: batches from in-memory tensors, checkpoints every epoch, resume.

Loss and score are passed in, so Stage 1 (cross-entropy, accuracy) and Stage 2 (multi-label
soft margin, F1) share the loop, driven by one `TrainingConfig`. Every epoch writes `last.pt`
(weights, optimiser, history) and, when validation improves, `best.pt`, both atomically (their
places: `layout.ModelFiles`): a killed session loses at most the epoch in progress, and
`resume=True` continues to the same result as an uninterrupted run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.core import results
from helpers.core.atomic import atomic_write
from helpers.core.config import PRECISIONS, TrainingConfig
from helpers.core.layout import ModelFiles
from helpers.data import dataset
from helpers.data.batches import AugmentFn, Batches, FirstBatches
from helpers.models.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from helpers.models.networks import Network

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ScoreFn = Callable[[torch.Tensor, torch.Tensor], float]


def pick_device(prefer: str | None = None) -> torch.device:
    """`prefer` if given, else CUDA when available, else CPU."""
    return torch.device(prefer or ("cuda" if torch.cuda.is_available() else "cpu"))


BFLOAT16_CAPABILITY = (8, 0)  # Ampere and later; a T4 (7.5) has no bfloat16 units


@dataclass(frozen=True)
class Precision:
    """How a device computes: `dtype` for autocast (None: plain float32) and whether the loss
    needs scaling (float16's small range underflows gradients without it)."""

    dtype: torch.dtype | None
    scaled: bool = False


def precision_policy(device_type: str, capability: tuple[int, int] | None,
                     choice: str = "auto") -> Precision:
    """The precision for a device: float32 on the CPU whatever `choice`; on CUDA, bfloat16 where
    the GPU has it (compute capability 8.0 and later: A100, L4, H100, ...), else float16 with
    a gradient scaler (the free Colab T4); `choice` "float16" forces that path, "float32"
    turns mixed precision off, "bfloat16" insists (refused on a GPU without it)."""
    if choice not in PRECISIONS:
        raise ValueError(f"precision={choice!r}; choose one of {PRECISIONS}")
    if device_type != "cuda" or choice == "float32":
        return Precision(None)
    has_bf16 = capability is not None and tuple(capability) >= BFLOAT16_CAPABILITY
    if choice == "bfloat16" and not has_bf16:
        raise ValueError(f"precision='bfloat16', but this GPU (compute capability "
                         f"{capability}) has no bfloat16 units; use 'auto' or 'float16'")
    if choice == "float16" or not has_bf16:
        return Precision(torch.float16, scaled=True)
    return Precision(torch.bfloat16)


def device_precision(device: torch.device, choice: str = "auto") -> Precision:
    """`precision_policy` for a real device (its compute capability read from CUDA)."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return precision_policy(device.type, capability, choice)


def autocast(device: torch.device, choice: str = "auto"):
    """Mixed precision as `device_precision` decides it (nothing on the CPU)."""
    policy = device_precision(device, choice)
    return torch.autocast(device.type, dtype=policy.dtype or torch.float32,
                          enabled=policy.dtype is not None)


def lr_factor(config: TrainingConfig, progress: float) -> float:
    """Learning-rate multiplier at `progress` epochs into training (fractional): constant, or a
    linear warm-up over `warmup_epochs` then a cosine decay to zero at `epochs`."""
    if config.schedule == "constant":
        return 1.0
    if progress < config.warmup_epochs:
        return (progress + 1e-3) / config.warmup_epochs
    span = max(config.epochs - config.warmup_epochs, 1e-9)
    return 0.5 * (1 + math.cos(math.pi * min((progress - config.warmup_epochs) / span, 1.0)))


def optimizer(model: Network, config: TrainingConfig) -> torch.optim.Optimizer:
    """Adam, or AdamW with decoupled weight decay, over the trainable parameters; a pretrained
    backbone's (`backbone_parameters`) at `config.backbone_lr` x the rest's rate."""
    slow = {id(p) for p in model.backbone_parameters()}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in slow]
    params = [{"params": rest, "scale": 1.0}]
    if slow:
        params.append({"params": [p for p in model.parameters() if id(p) in slow],
                       "scale": config.backbone_lr})
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: LossFn, *, x: torch.Tensor,
               y: torch.Tensor, device: torch.device, augment: AugmentFn | None = None,
               precision: str = "auto", scaler: torch.amp.GradScaler | None = None) -> float:
    """One optimiser step on a batch already on `device` (augmented there first when `augment`
    is given), in `precision` (`device_precision`), the loss scaled by `scaler` when given
    (float16); returns the batch's mean loss."""
    if augment is not None:
        x, y = augment(x, y)
    with autocast(device, precision):
        logits = model(x)
    loss = loss_fn(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    return loss.item()


@torch.no_grad()
def predict(model: nn.Module, batches: Batches, device: torch.device | None = None, *,
            progress: bool = False, precision: str = "auto"
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets of every batch, in eval mode, gathered on the CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    outs, targets = [], []
    for x, y in tqdm(batches, desc="predict", leave=False, disable=not progress):
        with autocast(device, precision):
            outs.append(model(x.to(device)).float().cpu())
        targets.append(y.cpu())
    return torch.cat(outs), torch.cat(targets)


@dataclass
class FitResult:
    history: pd.DataFrame
    best_epoch: int
    best_score: float
    best_path: Path
    last_path: Path


def fit(
    model: Network,
    train: Batches,
    val: Batches,
    *,
    loss_fn: LossFn,
    score_fn: ScoreFn,
    files: ModelFiles,
    meta: dict,
    config: TrainingConfig,
    stop_after: int | None = None,
    augment: AugmentFn | None = None,
) -> FitResult:
    """Train, validate every epoch, keep the best-validation weights in `files.best`.

    `config` supplies every knob (per-model overrides already folded in, see
    `registry.resolve`) and is saved in both checkpoints' metadata; the learning rate
    follows its schedule step by step (a function of the epoch, so resuming needs no state).
    `augment` transforms each training batch on the device. `stop_after` ends the call after
    that many epochs, as if the session had died (tests, splitting a long run).
    """
    device = pick_device(config.device)
    model.to(device)
    meta = {**meta, "training": config.to_dict()}
    opt = optimizer(model, config)
    scaler = torch.amp.GradScaler(device.type,
                                  enabled=device_precision(device, config.precision).scaled)
    history: list[dict] = []
    if config.resume and files.last.is_file():
        state = load_checkpoint(files.last, map_location=device)
        if state["meta"]["model"] != meta["model"]:
            raise ValueError(f"{files.last} holds a {state['meta']['model']!r} model, not "
                             f"{meta['model']!r}; pick another run folder or resume=False")
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        if state.get("scaler"):  # float16's loss scale goes on where it stopped
            scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
    if not history and files.best.is_file() and not config.overwrite:
        raise FileExistsError(_refusal(files))
    if config.steps_per_epoch and config.steps_per_epoch < len(train):
        print(f"{files.best.parent.name}: {config.steps_per_epoch} of {len(train)} batches an "
              f"epoch (steps_per_epoch={config.steps_per_epoch}: a demonstration; None trains "
              "on every clip)", flush=True)
        train = FirstBatches(train, config.steps_per_epoch)
    start = len(history) + 1
    for epoch in range(start, config.epochs + 1):
        if config.patience and _epochs_since_best(history) >= config.patience:
            break
        if stop_after is not None and epoch >= start + stop_after:
            break
        torch.manual_seed(config.random_seed * 10_007 + epoch)  # dropout depends on the epoch
        train.set_epoch(epoch)
        model.train()
        tic, total, count = time.perf_counter(), 0.0, 0
        bar = tqdm(train, desc=f"epoch {epoch}/{config.epochs}", leave=False,
                   disable=not config.progress)
        for step, (x, y) in enumerate(bar):
            for group in opt.param_groups:
                group["lr"] = (config.lr * group.get("scale", 1.0)
                               * lr_factor(config, epoch - 1 + step / len(train)))
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            total += train_step(model, opt, loss_fn, x=x, y=y, device=device, augment=augment,
                                precision=config.precision, scaler=scaler) * len(x)
            count += len(x)
            bar.set_postfix(loss=f"{total / count:.3f}")
        train_seconds = time.perf_counter() - tic
        logits, targets = predict(model, val, device, precision=config.precision)
        row = {"epoch": epoch, "train_loss": total / count,
               "val_loss": float(loss_fn(logits, targets.to(logits.device))),
               "val_score": score_fn(logits, targets), "seconds": train_seconds}
        improved = not history or row["val_score"] > max(h["val_score"] for h in history)
        history.append(row)
        if improved:
            save_checkpoint(files.best, model, {**meta, "epoch": epoch,
                                                "val_score": row["val_score"]})
        save_checkpoint(files.last, model, meta, optimizer=opt.state_dict(), history=history,
                        scaler=scaler.state_dict())
        _write_history(files, history)
        if config.progress:
            tqdm.write(f"epoch {epoch}: train loss {row['train_loss']:.3f}, val loss "
                       f"{row['val_loss']:.3f}, val score {row['val_score']:.3f}"
                       f"{' (best)' if improved else ''}, {train_seconds:.1f} s")
    frame = pd.DataFrame(history)
    if frame.empty:  # epochs=0: nothing trained
        return FitResult(frame, 0, float("nan"), files.best, files.last)
    best = frame.loc[frame["val_score"].idxmax()]
    return FitResult(frame, int(best["epoch"]), float(best["val_score"]), files.best, files.last)


def record(files: ModelFiles, stage: str, name: str, *, fit: FitResult, test: dict,
           config: TrainingConfig, parameters: int, val_metric: str, **extra
           ) -> results.TrainResult:
    """The `TrainResult` of a finished fit and its `test` summary, written to
    `files.metrics`."""
    device = pick_device(config.device)
    result = results.TrainResult(
        model=name, stage=stage, parameters=parameters, val_metric=val_metric,
        val_score=fit.best_score, test=test, epochs_run=len(fit.history),
        best_epoch=fit.best_epoch, seconds_per_epoch=float(fit.history["seconds"].mean()),
        training=config.to_dict(), environment=dataset.environment(str(device)),
        checkpoint=str(fit.best_path), extra=extra)
    results.save(files.metrics, result)
    return result


def _refusal(files: ModelFiles) -> str:
    """Why a fresh run will not replace a best.pt it did not produce."""
    try:
        meta = load_checkpoint(files.best)["meta"]
        score = meta.get("val_score", float("nan"))
        what = f"epoch {meta.get('epoch')}, validation score {score:.3f}"
    except (CheckpointError, OSError) as err:
        what = f"unreadable: {err}"
    return (f"{files.best} holds a model this run did not produce ({what}) and there is no "
            f"{files.last.name} to resume from; training afresh would replace it. Use a new run "
            "folder, or set overwrite=True in the training configuration to start over.")


def _epochs_since_best(history: list[dict]) -> int:
    if not history:
        return 0
    scores = [h["val_score"] for h in history]
    return len(scores) - 1 - scores.index(max(scores))


def _write_history(files: ModelFiles, history: list[dict]) -> None:
    frame = pd.DataFrame(history)
    atomic_write(files.history_csv, lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write(files.history_json, lambda tmp: frame.to_json(tmp, orient="records"))
