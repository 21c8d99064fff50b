"""Scores and confusion matrices, from scikit-learn wherever it has them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from helpers.config import CLASSES


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def accuracy_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Single-label accuracy of the arg-max class; the score Stage 1 keeps its best epoch by."""
    return float(accuracy_score(_numpy(targets), _numpy(logits.argmax(dim=1))))


def per_class(y_true, y_pred, classes: tuple[str, ...] = CLASSES) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, plus the macro average."""
    p, r, f, s = precision_recall_fscore_support(
        _numpy(y_true), _numpy(y_pred), labels=range(len(classes)), zero_division=0)
    table = pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": s}, index=list(classes))
    table.loc["macro"] = [p.mean(), r.mean(), f.mean(), s.sum()]
    return table


def confusion(y_true, y_pred, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Counts: rows are true classes, columns predicted ones."""
    return confusion_matrix(_numpy(y_true), _numpy(y_pred), labels=range(n_classes))


def single_label_summary(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    """Accuracy, macro F1, per-class F1 and the confusion matrix of one evaluation."""
    pred = logits.argmax(dim=1)
    table = per_class(targets, pred)
    return {
        "accuracy": accuracy_from_logits(logits, targets),
        "macro_f1": float(table.loc["macro", "f1"]),
        "f1": {c: float(table.loc[c, "f1"]) for c in CLASSES},
        "confusion": confusion(targets, pred).tolist(),
    }
