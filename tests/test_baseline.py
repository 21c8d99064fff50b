import numpy as np
import pytest
import torch
from conftest import cached_run

from helpers.core import results
from helpers.core.config import CLASSES
from helpers.core.layout import RunLayout
from helpers.data import cache
from helpers.train import baseline


def test_logmel_stats_shape_and_finite_on_silence():
    waves = torch.zeros(3, 2, 44_100, dtype=torch.float16)
    waves[0].uniform_(-0.5, 0.5)
    feats = baseline.logmel_stats(waves, n_mels=32)
    assert feats.shape == (3, 64) and np.isfinite(feats).all()


def _tones(n_per_class: int, seed: int) -> cache.CachedSplit:
    """Clips that are separable by design: class c is a tone at 220·2^c Hz in noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(22_050) / 44_100
    waves, labels = [], []
    for c in range(4):
        for _ in range(n_per_class):
            tone = 0.3 * torch.sin(2 * torch.pi * 220 * 2 ** c * t + torch.rand(1, generator=g))
            waves.append((tone + 0.05 * torch.randn(2, len(t), generator=g)).half())
            labels.append(c)
    return cache.CachedSplit(torch.stack(waves), torch.tensor(labels),
                             [f"{i}.wav" for i in range(len(labels))], [], "tones", classes=CLASSES)


@pytest.mark.parametrize("kind", ["logreg", "forest"])
def test_baseline_beats_chance_on_a_separable_set(kind):
    scores = baseline.evaluate(_tones(8, seed=0), {"test": _tones(5, seed=1)}, kind)
    assert scores["test"] >= 0.9  # chance is 0.25


def test_baseline_record_lands_in_the_run(demo_set, tmp_path):
    run = cached_run(demo_set, tmp_path / "run")
    result = baseline.run_baseline(run, "logreg")
    layout = RunLayout(run)
    assert results.load(layout.baseline("logreg")) == result
    train, test = (cache.load_split(layout.cache(s)) for s in ("train", "test"))
    assert result.test_score == baseline.evaluate(train, {"test": test})["test"]


def test_unknown_baseline_is_named():
    with pytest.raises(ValueError, match="svm"):
        baseline.make_model("svm")
