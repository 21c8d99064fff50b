"""Calibration, the step after fitting that chooses on validation how a model's probabilities
become answers, and stores it in the checkpoint `irmas-predict` reads: Stage 1's confidence
floor (under it an answer is "low confidence"); Stage 2's way of naming instruments, the best
on validation of per-instrument thresholds, one shared threshold and count-aware decoding
(`metrics.choose_decoding`). Test data is never read here."""

from __future__ import annotations

from pathlib import Path

import torch

from helpers.core import metrics
from helpers.core.config import STAGE1
from helpers.data.batches import Batches
from helpers.models import checkpoints
from helpers.train import loop

CONFIDENT_SHARE = 0.99  # of validation clips whose top probability is over the floor


def confidence_floor(logits: torch.Tensor) -> float:
    """The top probability that `CONFIDENT_SHARE` of validation clips exceed."""
    top = logits.softmax(dim=1).amax(dim=1)
    return float(torch.quantile(top, 1 - CONFIDENT_SHARE))


def calibrate(best: Path, stage: str, val: Batches, *, device: torch.device) -> dict:
    """Choose `stage`'s calibration on the validation batches `val` with the weights in
    `best`, and store it in `best`'s metadata; returns what it stored
    (`{"confidence_floor": p}`, or `{"thresholds": [p, ...], "decoding": {...}}`: the rule's
    name and kind, and each candidate's validation exact match)."""
    model, meta = checkpoints.load_model(best, device)
    logits, targets = loop.predict(model, val, device)
    if stage == STAGE1:
        chosen = {"confidence_floor": confidence_floor(logits)}
    else:
        rule = metrics.choose_decoding(torch.sigmoid(logits), targets)
        chosen = {"thresholds": rule["thresholds"],
                  "decoding": {k: rule[k] for k in ("rule", "kind", "val_exact")}}
    checkpoints.save_checkpoint(best, model, {**meta, **chosen})
    return chosen
