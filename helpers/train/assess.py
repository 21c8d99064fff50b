"""The test split's figures of a trained, calibrated model: read from its checkpoint, never
written to it (`calibrate` chose everything on validation first)."""

from __future__ import annotations

from pathlib import Path

import torch

from helpers.core import metrics
from helpers.data.batches import Batches
from helpers.models import checkpoints
from helpers.train import loop


def assess(best: Path, test: Batches, device: torch.device) -> dict:
    """The test summary of the model in `best`: Stage 1's accuracy and per-class scores;
    Stage 2's multi-label scores at p = 0.5, with the count known, and named by the rule
    calibration chose on validation (`tuned`)."""
    model, meta = checkpoints.load_model(best, device)
    logits, targets = loop.predict(model, test, device)
    classes = tuple(meta["classes"])
    if meta["task"] == "single":
        return metrics.single_label_summary(logits, targets, classes=classes)
    named = metrics.decode(torch.sigmoid(logits), checkpoints.decoding(meta))
    return {**metrics.multilabel_summary(logits, targets, classes=classes),
            "tuned": metrics.multilabel_scores(named, targets, classes)}
