"""Stage 2 for real on a tiny run folder: caches, a Stage-1 checkpoint, mixes, the head."""

import pytest
import torch
from conftest import cached_run
from torch import nn

from helpers import cache, checkpoints, metrics, mixing, models, stage2


def test_transfer_head_is_the_seeds():
    head = models.TransferHead()
    assert models.count_parameters(head, trainable_only=True) == 30_754
    assert [m.out_features for m in head.modules() if isinstance(m, nn.Linear)] == [100, 50, 4]
    assert head.layers[0].p == 0.2
    assert not any(isinstance(m, (nn.ReLU, nn.Sigmoid)) for m in head.modules())


@pytest.fixture(scope="module")
def run(demo_set, tmp_path_factory):
    run_dir = cached_run(demo_set, tmp_path_factory.mktemp("run"))
    torch.manual_seed(0)
    extractor = models.SeedCNN().train()
    with torch.no_grad():  # move BatchNorm statistics away from their defaults
        extractor(cache.load_split(run_dir / "cache" / "train.pt").waves[:4].float())
    checkpoints.save_checkpoint(run_dir / "stage1" / "seed" / "best.pt", extractor,
                                checkpoints.model_meta("seed"))
    stage2.build_mixes(run_dir, uses_per_clip=1, seed=1)
    return run_dir


def test_head_trains_on_features_extracted_once_with_a_frozen_eval_extractor(run):
    ckpt = run / "stage1" / "seed" / "best.pt"
    before = ckpt.read_bytes()
    extractor, _ = checkpoints.load_model(ckpt)
    state = {k: v.clone() for k, v in extractor.state_dict().items()}
    result = stage2.train_transfer(run, epochs=3, progress=False, device="cpu")
    assert result["trainable_parameters"] == 30_754
    assert ckpt.read_bytes() == before, "the Stage-1 checkpoint is untouched"
    stored = torch.load(run / "stage2" / "transfer" / "features_val.pt", weights_only=True)
    waves, plan = stage2.load_mixes(run)["val"]
    feats, _ = stage2.extract_features(extractor, mixing.MixBatches(waves, plan, 8),
                                       torch.device("cpu"), progress=False)
    assert torch.allclose(feats, stored["features"], atol=1e-5), "eval-mode features"
    for key, value in extractor.state_dict().items():  # weights and BatchNorm statistics
        assert torch.equal(value, state[key]), key
    mtime = (run / "stage2" / "transfer" / "features_train.pt").stat().st_mtime_ns
    stage2.train_transfer(run, epochs=4, progress=False, device="cpu")
    assert (run / "stage2" / "transfer" / "features_train.pt").stat().st_mtime_ns == mtime, (
        "features are not recomputed")
    for split in ("threshold", "top_k"):
        assert 0 <= result["test"][split]["exact_match"] <= 1


def test_mixes_from_another_cache_are_refused(run, tmp_path):
    other = mixing.plan_mixes(torch.tensor([0, 1, 2, 3]), uses_per_clip=1)
    _, meta = mixing.load_plan(run / "mixes" / "val.pt")
    original = (run / "mixes" / "val.pt").read_bytes()
    mixing.save_plan(run / "mixes" / "val.pt", other, {**meta, "clips": "something else"})
    try:
        with pytest.raises(ValueError, match="04_generate_mixes"):
            stage2.load_mixes(run)
    finally:
        (run / "mixes" / "val.pt").write_bytes(original)


def test_multilabel_metrics_tell_nothing_from_something():
    targets = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1.0]])
    nothing = metrics.multilabel_scores(torch.zeros_like(targets), targets)
    assert nothing["per_label_accuracy"] == 0.5  # the seed's number flatters "nothing"
    assert nothing["exact_match"] == 0 and nothing["micro_f1"] == 0
    assert nothing["count_accuracy"] == 0
    logits = torch.tensor([[3, 2, -1, -2], [-2, 1, -0.5, -3], [-1, -1, 2, 1.0]])
    s = metrics.multilabel_summary(logits, targets)
    assert s["threshold"]["exact_match"] == 2 / 3  # row 2 misses instrument 2 at p=0.5
    assert s["top_k"]["exact_match"] == 1.0  # ... but ranks it second: right when k is known
    assert s["lrap"] == 1.0
    assert metrics.micro_f1_from_logits(logits, targets) == pytest.approx(2 * 5 / (2 * 5 + 1))
