"""Scores and confusion matrices, from scikit-learn wherever it has them."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    label_ranking_average_precision_score,
    precision_recall_fscore_support,
)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def accuracy_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Single-label accuracy of the arg-max class; the score Stage 1 keeps its best epoch by."""
    return float(accuracy_score(_numpy(targets), _numpy(logits.argmax(dim=1))))


def per_class(y_true, y_pred, classes: tuple[str, ...]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, plus the macro average."""
    p, r, f, s = precision_recall_fscore_support(
        _numpy(y_true), _numpy(y_pred), labels=range(len(classes)), zero_division=0)
    table = pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": s}, index=list(classes))
    table.loc["macro"] = [p.mean(), r.mean(), f.mean(), s.sum()]
    return table


def _classes(classes: tuple[str, ...], width: int) -> tuple[str, ...]:
    """`classes`, checked against the number of outputs or columns it names."""
    if len(classes) != width:
        raise ValueError(f"{width} outputs but {len(classes)} class names {list(classes)}: pass "
                         "the run's or the checkpoint's class list")
    return tuple(classes)


def per_label(targets, pred, classes: tuple[str, ...]) -> pd.DataFrame:
    """Multi-label precision, recall, F1 and support per class (rows), from multi-hot rows."""
    y, p = _numpy(targets).astype(int), _numpy(pred).astype(int)
    return per_class(y, p, _classes(classes, y.shape[1])).drop(index="macro")


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts: rows are true classes, columns predicted ones."""
    return confusion_matrix(_numpy(y_true), _numpy(y_pred), labels=range(n_classes))


def single_label_summary(logits: torch.Tensor, targets: torch.Tensor,
                         classes: tuple[str, ...]) -> dict:
    """Accuracy, macro F1, per-class F1 and the confusion matrix of one evaluation."""
    classes = _classes(classes, logits.shape[1])
    pred = logits.argmax(dim=1)
    table = per_class(targets, pred, classes)
    return {
        "accuracy": accuracy_from_logits(logits, targets),
        "macro_f1": float(table.loc["macro", "f1"]),
        "f1": {c: float(table.loc[c, "f1"]) for c in classes},
        "confusion": confusion(targets, pred, len(classes)).tolist(),
    }


def top_k_predictions(probs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Multi-hot of the `k[i]` most probable labels of each row (when the count is known)."""
    ranks = probs.argsort(dim=1, descending=True).argsort(dim=1)
    return (ranks < k.view(-1, 1)).float()


def multilabel_scores(pred: torch.Tensor, targets: torch.Tensor,
                      classes: tuple[str, ...]) -> dict:
    """Scores of multi-hot predictions: the 2020 project's per-label accuracy and the stricter
    ones."""
    y, p = _numpy(targets).astype(int), _numpy(pred).astype(int)
    classes = _classes(classes, y.shape[1])
    return {
        # the 2020 project's number; naming "nothing" scores 50% on pairs
        "per_label_accuracy": float((y == p).mean()),
        "exact_match": float(accuracy_score(y, p)),
        "micro_f1": float(f1_score(y, p, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
        "count_accuracy": float((y.sum(1) == p.sum(1)).mean()),
        "f1": dict(zip(classes, f1_score(y, p, average=None, labels=range(len(classes)),
                                          zero_division=0).tolist())),
    }


def multilabel_summary(logits: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5, *,
                       classes: tuple[str, ...]) -> dict:
    """Scores at a probability threshold and with the true count known (top-k), plus LRAP."""
    probs = torch.sigmoid(logits.float())
    k = targets.sum(dim=1).long()
    return {
        "threshold": multilabel_scores((probs >= threshold).float(), targets, classes),
        "top_k": multilabel_scores(top_k_predictions(probs, k), targets, classes),
        "lrap": lrap(probs, targets),
    }


def lrap(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """Label ranking average precision: how high the playing instruments rank, no threshold."""
    return float(label_ranking_average_precision_score(_numpy(targets), _numpy(probs)))


THRESHOLD_GRID: tuple[float, ...] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))
DECODINGS = ("thresholds", "count")  # `decision_thresholds`' kinds


def tune_thresholds(probs: torch.Tensor, targets: torch.Tensor,
                    grid: tuple[float, ...] | None = None) -> list[float]:
    """Per class, the probability threshold of `grid` with the best F1 on these (validation)
    examples; 0.5 for a class they do not hold. Never call it on a test split."""
    grid = THRESHOLD_GRID if grid is None else grid
    y = _numpy(targets).astype(bool)
    p = _numpy(probs)
    out = []
    for c in range(y.shape[1]):
        if not y[:, c].any():
            out.append(0.5)
            continue
        f1s = [f1_score(y[:, c], p[:, c] >= t, zero_division=0) for t in grid]
        out.append(float(grid[int(np.argmax(f1s))]))
    return out


def exact_match(pred: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of rows whose named set is exactly the true one."""
    return float((pred.bool() == targets.bool()).all(dim=-1).float().mean())


def count_thresholds(probs: torch.Tensor) -> torch.Tensor:
    """Count-aware decoding as a threshold per row `[..., 1]`: how many instruments first (the
    expected count, the sum of the probabilities, rounded), then which (that many of the most
    probable): the k-th largest probability, or above all of them when k is 0."""
    k = probs.sum(dim=-1, keepdim=True).round().clamp(0, probs.shape[-1]).long()
    kth = probs.sort(dim=-1, descending=True).values.gather(-1, (k - 1).clamp(min=0))
    return torch.where(k > 0, kth, torch.full_like(kth, math.inf))


def decision_thresholds(probs: torch.Tensor, decoding: dict) -> torch.Tensor:
    """The probability `[..., C]` each instrument must reach under `decoding` (`DECODINGS`:
    fixed thresholds, one per instrument or one shared; or the count rule)."""
    if decoding["kind"] == "count":
        return count_thresholds(probs).expand_as(probs)
    return torch.as_tensor(decoding["thresholds"], dtype=probs.dtype,
                           device=probs.device).expand_as(probs)


def decode(probs: torch.Tensor, decoding: dict, *, at_least_one: bool = False) -> torch.Tensor:
    """Multi-hot `[..., C]` of the instruments a Stage-2 model names under `decoding`; with
    `at_least_one`, the most probable too."""
    named = probs >= decision_thresholds(probs, decoding)
    if at_least_one:
        named |= probs == probs.amax(dim=-1, keepdim=True)
    return named.float()


def choose_decoding(probs: torch.Tensor, targets: torch.Tensor) -> dict:
    """Of three ways to name instruments, the one with the best exact match on these
    (validation) mixes, ties to the first: per-instrument thresholds (each the best F1 of its
    instrument, `tune_thresholds`), one shared threshold (the best exact match), and
    count-aware decoding (`count_thresholds`). Returns the rule (`kind`, `thresholds`) with
    its name and every candidate's validation exact match. Never call it on a test split."""
    per = tune_thresholds(probs, targets)
    shared = max(THRESHOLD_GRID, key=lambda t: exact_match((probs >= t).float(), targets))
    candidates = {"per-instrument thresholds": {"kind": "thresholds", "thresholds": per},
                  "one shared threshold": {"kind": "thresholds",
                                           "thresholds": [float(shared)] * probs.shape[1]},
                  "count, then which": {"kind": "count", "thresholds": per}}
    scores = {name: exact_match(decode(probs, rule), targets)
              for name, rule in candidates.items()}
    chosen = max(scores, key=scores.get)
    return {**candidates[chosen], "rule": chosen, "val_exact": scores}


def micro_f1_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Micro F1 at probability 0.5; the score Stage 2 keeps its best epoch by."""
    pred = (torch.sigmoid(logits.float()) >= 0.5).int()
    return float(f1_score(_numpy(targets).astype(int), _numpy(pred), average="micro",
                          zero_division=0))


OTHER = "Other"


def combination_label(row, classes: tuple[str, ...]) -> str:
    """`gac+pia`: the class codes of one multi-hot row."""
    return "+".join(c for c, on in zip(classes, _numpy(row).astype(bool)) if on)


def combination_confusion(targets, pred, k: int = 2, *, classes: tuple[str, ...]
                          ) -> pd.DataFrame:
    """The 2020 project's pair matrix, for any k: rows are the true k-instrument combinations,
    columns the same combinations plus "Other" (a prediction with a wrong number of
    instruments)."""
    combos = ["+".join(c) for c in itertools.combinations(classes, k)]
    y, p = _numpy(targets).astype(int), _numpy(pred).astype(int)
    rows = y.sum(1) == k
    true = [combination_label(r, classes) for r in y[rows]]
    said = [combination_label(r, classes) if r.sum() == k else OTHER for r in p[rows]]
    table = pd.crosstab(pd.Categorical(true, combos), pd.Categorical(said, [*combos, OTHER]),
                        dropna=False)
    table.index.name, table.columns.name = "true", "predicted"
    return table


def count_confusion(targets, pred) -> pd.DataFrame:
    """How many instruments were there (rows) and how many were named (columns, 0 to all)."""
    counts = range(_numpy(targets).shape[1] + 1)
    y, p = _numpy(targets).astype(int).sum(1), _numpy(pred).astype(int).sum(1)
    table = pd.crosstab(pd.Categorical(y, counts), pd.Categorical(p, counts), dropna=False)
    table = table.loc[sorted(set(y.tolist()))]
    table.index.name, table.columns.name = "instruments playing", "instruments named"
    return table


def bootstrap_interval(statistic: Callable[[np.ndarray], float], groups, n_boot: int = 1000,
                       *, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of `statistic(item_indices)` resampling whole groups
    (recordings) with replacement, not items: excerpts of one recording are not independent,
    so resampling clips would make the interval too narrow."""
    groups = np.asarray(groups)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)
    values = [statistic(np.concatenate([members[i] for i in
                                        rng.integers(len(members), size=len(members))]))
              for _ in range(n_boot)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
