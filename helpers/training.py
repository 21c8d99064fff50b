"""One fit loop for both stages: batches from in-memory tensors, checkpoints every epoch, resume.

Loss and score are passed in, so Stage 1 (cross-entropy, accuracy) and Stage 2 (multi-label
soft margin, F1) share the loop. Every epoch writes `last.pt` (weights, optimiser, history)
and, when validation improves, `best.pt`, both atomically: a killed session loses at most the
epoch in progress, and `resume=True` continues to the same result as an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.atomic import atomic_write
from helpers.batches import Batches
from helpers.checkpoints import load_checkpoint, load_model, save_checkpoint
from helpers.config import SEED

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ScoreFn = Callable[[torch.Tensor, torch.Tensor], float]


def pick_device(prefer: str | None = None) -> torch.device:
    """`prefer` if given, else CUDA when available, else CPU."""
    return torch.device(prefer or ("cuda" if torch.cuda.is_available() else "cpu"))


def _autocast(device: torch.device):
    """bfloat16 mixed precision on CUDA (no loss scaling needed); plain float32 on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def predict(model: nn.Module, batches: Batches, device: torch.device | None = None,
            progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets of every batch, in eval mode, gathered on the CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    outs, targets = [], []
    for x, y in tqdm(batches, desc="predict", leave=False, disable=not progress):
        with _autocast(device):
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
    model: nn.Module,
    train: Batches,
    val: Batches,
    loss_fn: LossFn,
    score_fn: ScoreFn,
    out_dir: str | Path,
    meta: dict,
    epochs: int = 30,
    lr: float = 3e-4,
    patience: int | None = None,
    resume: bool = True,
    seed: int = SEED,
    device: str | torch.device | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> FitResult:
    """Train with Adam, validate every epoch, keep the best-validation weights.

    `patience` stops after that many epochs without a better validation score. `resume`
    continues from `out_dir/last.pt` when it exists. `stop_after` ends the call after that
    many epochs, as if the session had died (for tests and for splitting a long run).
    """
    out_dir = Path(out_dir)
    device = pick_device(str(device) if device else None)
    model.to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    history: list[dict] = []
    if resume and last_path.is_file():
        state = load_checkpoint(last_path, map_location=device)
        if state["meta"]["model"] != meta["model"]:
            raise ValueError(f"{last_path} holds a {state['meta']['model']!r} model, not "
                             f"{meta['model']!r}; pick another run folder or resume=False")
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        history = list(state["history"])
    start = len(history) + 1
    for epoch in range(start, epochs + 1):
        if patience and _epochs_since_best(history) >= patience:
            break
        if stop_after is not None and epoch >= start + stop_after:
            break
        torch.manual_seed(seed * 10_007 + epoch)  # dropout draws depend on the epoch only
        train.set_epoch(epoch)
        model.train()
        tic, total, count = time.perf_counter(), 0.0, 0
        bar = tqdm(train, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress)
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(device):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(x), count + len(x)
            bar.set_postfix(loss=f"{total / count:.3f}")
        train_seconds = time.perf_counter() - tic
        logits, targets = predict(model, val, device)
        row = {"epoch": epoch, "train_loss": total / count,
               "val_loss": float(loss_fn(logits, targets.to(logits.device))),
               "val_score": score_fn(logits, targets), "seconds": train_seconds}
        improved = not history or row["val_score"] > max(h["val_score"] for h in history)
        history.append(row)
        if improved:
            save_checkpoint(best_path, model, {**meta, "epoch": epoch,
                                               "val_score": row["val_score"]})
        save_checkpoint(last_path, model, meta, optimizer=opt.state_dict(), history=history)
        _write_history(out_dir, history)
        if progress:
            tqdm.write(f"epoch {epoch}: train loss {row['train_loss']:.3f}, val loss "
                       f"{row['val_loss']:.3f}, val score {row['val_score']:.3f}"
                       f"{' (best)' if improved else ''}, {train_seconds:.1f} s")
    frame = pd.DataFrame(history)
    if frame.empty:  # epochs=0: nothing trained
        return FitResult(frame, 0, float("nan"), best_path, last_path)
    best = frame.loc[frame["val_score"].idxmax()]
    return FitResult(frame, int(best["epoch"]), float(best["val_score"]), best_path, last_path)


def fit_and_test(model: nn.Module, batches: dict[str, Batches], loss_fn: LossFn,
                 score_fn: ScoreFn, summary_fn: Callable[[torch.Tensor, torch.Tensor], dict],
                 out_dir: str | Path, meta: dict, device: torch.device, **fit_kwargs
                 ) -> tuple[FitResult, dict]:
    """`fit` on `batches["train"]`/`["val"]`, then `summary_fn` of the best-validation
    checkpoint on `batches["test"]`, which training and model selection never saw."""
    result = fit(model, batches["train"], batches["val"], loss_fn, score_fn, out_dir, meta,
                 device=device, **fit_kwargs)
    best, _ = load_model(result.best_path, device)
    return result, summary_fn(*predict(best, batches["test"], device))


def _epochs_since_best(history: list[dict]) -> int:
    if not history:
        return 0
    scores = [h["val_score"] for h in history]
    return len(scores) - 1 - scores.index(max(scores))


def _write_history(out_dir: Path, history: list[dict]) -> None:
    frame = pd.DataFrame(history)
    atomic_write(out_dir / "history.csv", lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write(out_dir / "history.json", lambda tmp: frame.to_json(tmp, orient="records"))
