import numpy as np
import pytest
import torch

from helpers import baseline, cache


def test_logmel_stats_shape_and_finite_on_silence():
    waves = torch.zeros(3, 2, 44_100, dtype=torch.float16)
    waves[0].uniform_(-0.5, 0.5)
    feats = baseline.logmel_stats(waves, n_mels=32)
    assert feats.shape == (3, 64) and np.isfinite(feats).all()


@pytest.mark.parametrize("kind", ["logreg", "forest"])
def test_baseline_learns_the_demo_set_better_than_chance(demo_set, tmp_path, kind):
    root, manifest = demo_set
    splits = {s: cache.load_split(cache.build_split(manifest, root, s, tmp_path, progress=False))
              for s in ["train", "val", "test"]}
    scores = baseline.evaluate(splits["train"], {"train": splits["train"], "test": splits["test"]},
                               kind)
    assert scores["train"] > 0.9  # it can fit what it saw
    assert 0.0 <= scores["test"] <= 1.0


def test_unknown_baseline_is_named():
    with pytest.raises(ValueError, match="svm"):
        baseline.make_model("svm")
