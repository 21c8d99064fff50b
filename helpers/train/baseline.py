"""A simple baseline: mean and spread of log-mel bands fed to a scikit-learn classifier.

It tells how hard a data set is before any network is trained (the seed's random forest scored
40.3% on IRMAS), and it keeps the demo set honest: a demo set that such a baseline solves
perfectly would teach nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from helpers.core import results
from helpers.core.config import SAMPLE_RATE, SEED
from helpers.core.layout import RunLayout, as_layout
from helpers.data.cache import CachedSplit, load_split


@torch.no_grad()
def logmel_stats(waves: torch.Tensor, n_mels: int = 64, batch: int = 64) -> np.ndarray:
    """Per clip, the mean and standard deviation over time of each log-mel band: `[N, 2·n_mels]`."""
    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=2048, hop_length=1024,
                                               n_mels=n_mels)
    to_db = torchaudio.transforms.AmplitudeToDB(top_db=80)
    feats = []
    for start in range(0, len(waves), batch):
        spec = to_db(mel(waves[start:start + batch].float().mean(dim=1)))  # [B, mels, T]
        feats.append(torch.cat([spec.mean(-1), spec.std(-1)], dim=1))
    return torch.cat(feats).numpy()


def make_model(kind: str = "logreg"):
    """`logreg` (standardised logistic regression) or `forest` (a random forest, as the seed)."""
    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    if kind == "forest":
        return RandomForestClassifier(n_estimators=300, random_state=SEED, n_jobs=-1)
    raise ValueError(f"unknown baseline {kind!r}: use 'logreg' or 'forest'")


def evaluate(train: CachedSplit, splits: dict[str, CachedSplit], kind: str = "logreg"
             ) -> dict[str, float]:
    """Fit on `train`, return accuracy on each of `splits` (e.g. val and test)."""
    model = make_model(kind).fit(logmel_stats(train.waves), train.labels.numpy())
    return {
        name: float(accuracy_score(split.labels.numpy(), model.predict(logmel_stats(split.waves))))
        for name, split in splits.items()
    }


def run_baseline(run: RunLayout | str | Path, kind: str = "logreg") -> results.BaselineResult:
    """Fit `kind` on the run's cached training split, score val and test, save the record."""
    run = as_layout(run)
    train, val, test = (load_split(run.cache(s)) for s in ("train", "val", "test"))
    scores = evaluate(train, {"val": val, "test": test}, kind)
    result = results.BaselineResult(kind, scores["val"], scores["test"])
    results.save(run.baseline(kind), result)
    return result
