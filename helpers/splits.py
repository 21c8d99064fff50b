"""Leak-free train/val/test splits and balancing inside the training split only.

The seed balanced before splitting and split excerpts of one recording apart, so near-copies of
a clip were in train and test at once. Here a whole recording goes to one split, and the
sign-flipped copies that balance the classes are made from training clips alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from helpers.config import CLASS_NAMES, SEED, SPLITS


def grouped_split(
    labels: pd.Series | np.ndarray,
    groups: pd.Series | np.ndarray,
    seed: int = SEED,
) -> np.ndarray:
    """Assign each row to train/val/test (≈60/20/20), stratified by label, grouped by recording.

    Five stratified group folds: fold 0 is test, fold 1 val, the other three train.
    Deterministic for a seed.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    per_class = pd.Series(groups).groupby(labels).nunique()
    if (per_class < 5).any():
        raise ValueError(
            "a 60/20/20 split grouped by recording needs at least 5 recordings per class; "
            f"these have fewer: {per_class[per_class < 5].to_dict()} (render more demo recordings)"
        )
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    out = np.full(len(labels), SPLITS[0], dtype=object)
    for fold, (_, held_out) in enumerate(folds.split(np.zeros(len(labels)), labels, groups)):
        if fold < 2:
            out[held_out] = SPLITS[2 - fold]  # fold 0 -> test, fold 1 -> val
    return out


def straddling(manifest: pd.DataFrame) -> list[str]:
    """Recordings whose excerpts sit in more than one of train/val/test (should be none)."""
    rows = manifest[manifest["split"].isin(SPLITS)]
    per_recording = rows.groupby("recording")["split"].nunique()
    return sorted(per_recording[per_recording > 1].index)


def balance_train(train: pd.DataFrame, seed: int = SEED, label: str = "instrument") -> pd.DataFrame:
    """Add sign-flipped copies of training rows until every class has as many as the largest.

    Returns the rows with a boolean `flip` column (False for originals). Copies are drawn
    without replacement while a class has clips left to copy, so no clip is copied twice
    unless a class is less than half the size of the largest.
    """
    rng = np.random.default_rng(seed)
    target = train[label].value_counts().max()
    parts = [train.assign(flip=False)]
    for _, rows in train.groupby(label, sort=True):
        missing = target - len(rows)
        if missing <= 0:
            continue
        order = np.concatenate(
            [rng.permutation(len(rows)) for _ in range(-(-missing // len(rows)))]
        )[:missing]
        parts.append(rows.iloc[order].assign(flip=True))
    return pd.concat(parts, ignore_index=True)


def counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Clips per instrument (rows) and split (columns), with totals."""
    rows = manifest[manifest["split"].isin(SPLITS)]
    table = pd.crosstab(rows["instrument"].map(CLASS_NAMES), rows["split"], margins=True,
                        margins_name="all")
    return table[[s for s in (*SPLITS, "all") if s in table.columns]]


def check_grouped(manifest: pd.DataFrame) -> None:
    """Raise when a recording's excerpts sit in two splits (a leak), naming a few."""
    leaks = straddling(manifest)
    if leaks:
        raise ValueError(f"{len(leaks)} recordings sit in two splits, e.g. {leaks[:5]}: rebuild "
                         "the manifest (`make manifest`) or render the demo set again")
