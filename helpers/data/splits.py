"""Leak-free train/val/test splits and balancing inside the training split only.

The seed balanced before splitting and split excerpts of one recording apart, so near-copies of
a clip were in train and test at once. Here a whole recording goes to one split, and the
sign-flipped copies that balance the classes are made from training clips alone.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from helpers.core.config import CLASS_NAMES, SEED, SPLITS

# Each split's share of a class's clips.
SHARES = {"train": 0.6, "val": 0.2, "test": 0.2}


def grouped_split(
    labels: pd.Series | np.ndarray,
    groups: pd.Series | np.ndarray,
    seed: int = SEED,
) -> np.ndarray:
    """Assign each row to train/val/test (≈60/20/20 of every class's clips), grouped by
    recording: a recording's rows all go to one split.

    Per class, its recordings (largest first, ties in an order drawn from `seed`) go one by one
    to the split furthest below its share, so with the 5 recordings a class needs at least,
    every split holds it. It depends on nothing but the names, the counts and the seed (not on
    a library's version: scikit-learn's StratifiedGroupKFold, used before, split the same demo
    set differently in 1.6 and 1.9, leaving a class out of a split).
    """
    labels = np.asarray(labels).astype(str)
    groups = np.asarray(groups).astype(str)
    rows = pd.DataFrame({"label": labels, "group": groups})
    per_class = rows.groupby("label")["group"].nunique()
    if (per_class < 5).any():
        raise ValueError(
            "a 60/20/20 split grouped by recording needs at least 5 recordings per class; "
            f"these have fewer: {per_class[per_class < 5].to_dict()} (render more demo recordings)"
        )
    assigned: dict[str, str] = {}
    for _, own in rows.groupby("label", sort=True):
        sizes = own["group"].value_counts()
        order = sorted(sizes.index, key=lambda g: (-sizes[g], _draw(seed, g)))
        held = dict.fromkeys(SPLITS, 0)
        for group in order:
            split = max(SPLITS, key=lambda s: SHARES[s] * len(own) - held[s])
            assigned[group] = split
            held[split] += sizes[group]
    return rows["group"].map(assigned).to_numpy(dtype=object)


def _draw(seed: int, name: str) -> str:
    """A reproducible pseudo-random key for `name` (the same on every machine and version)."""
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


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
