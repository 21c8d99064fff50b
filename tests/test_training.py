"""fit() for real: tiny rendered clips, real models, real checkpoints on disk."""

import pickle

import pytest
import torch
from torch import nn

from helpers import cache, checkpoints, metrics, models, training
from helpers.batches import ClipBatches


@pytest.fixture(scope="module")
def tiny(demo_set, tmp_path_factory):
    root, manifest = demo_set
    folder = tmp_path_factory.mktemp("cache")
    split = {s: cache.load_split(cache.build_split(manifest, root, s, folder, progress=False))
             for s in ("train", "val")}
    # 1 s crops keep the steps cheap; the models are length-agnostic (MelCNN) or told (SeedCNN)
    crop = {s: c.waves[..., :44_100] for s, c in split.items()}
    index, sign = split["train"].balanced()
    return {
        "train": ClipBatches(crop["train"], split["train"].labels, 8, index, sign,
                                      shuffle=True),
        "val": ClipBatches(crop["val"], split["val"].labels, 16),
    }


def _fit(tiny, out, epochs, **kw):
    torch.manual_seed(0)
    model = models.MelCNN(n_mels=32, widths=(8, 16, 16, 32))
    meta = checkpoints.model_meta("mel", n_mels=32, widths=[8, 16, 16, 32])
    result = training.fit(model, tiny["train"], tiny["val"], nn.functional.cross_entropy,
                          metrics.accuracy_from_logits, out, meta, epochs=epochs, lr=3e-3,
                          progress=False, device="cpu", **kw)
    return model, result


def test_a_few_epochs_lower_the_loss_and_write_everything(tiny, tmp_path):
    model, result = _fit(tiny, tmp_path, epochs=4)
    h = result.history
    assert list(h["epoch"]) == [1, 2, 3, 4]
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert ((h["val_score"] >= 0) & (h["val_score"] <= 1)).all()
    assert {"best.pt", "last.pt", "history.csv", "history.json"} <= {
        p.name for p in tmp_path.iterdir()}
    best, meta = checkpoints.load_model(result.best_path)
    assert meta["epoch"] == result.best_epoch == int(h.loc[h["val_score"].idxmax(), "epoch"])
    assert not list(tmp_path.glob(".*tmp*"))


def test_stopped_and_resumed_equals_uninterrupted(tiny, tmp_path):
    straight, _ = _fit(tiny, tmp_path / "straight", epochs=3)
    _fit(tiny, tmp_path / "resumed", epochs=3, stop_after=1)  # the session "dies" after epoch 1
    resumed, result = _fit(tiny, tmp_path / "resumed", epochs=3)
    assert list(result.history["epoch"]) == [1, 2, 3]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_early_stopping(tiny, tmp_path):
    _, result = _fit(tiny, tmp_path, epochs=50, patience=2)
    h = result.history
    assert len(h) < 50
    assert len(h) - result.best_epoch == 2


def test_resume_refuses_another_model(tiny, tmp_path):
    _fit(tiny, tmp_path, epochs=1)
    model = models.SeedCNN(length=44_100)
    with pytest.raises(ValueError, match="'mel' model"):
        training.fit(model, tiny["train"], tiny["val"], nn.functional.cross_entropy,
                     metrics.accuracy_from_logits, tmp_path, checkpoints.model_meta("seed"),
                     epochs=2, progress=False)


def test_batches_balance_and_flip(tiny):
    batches = tiny["train"]
    batches.set_epoch(1)
    first = [y for _, y in batches]
    batches.set_epoch(2)
    second = [y for _, y in batches]
    labels = torch.cat(first)
    assert len(labels) == len(batches.index)
    assert (torch.bincount(labels) == torch.bincount(labels).max()).all()
    assert not all(torch.equal(a, b) for a, b in zip(first, second)), "epochs reshuffle"
    batches.set_epoch(1)
    assert all(torch.equal(a, b) for a, (_, b) in zip(first, batches)), "same epoch, same order"


def test_checkpoint_loads_on_cpu_with_weights_only(tmp_path):
    model = models.SeedCNN()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model.to(device),
                                       checkpoints.model_meta("seed"))
    loaded, meta = checkpoints.load_model(path, map_location="cpu")
    assert meta["model"] == "seed" and meta["classes"] == ["gac", "pia", "tru", "vio"]
    assert next(loaded.parameters()).device.type == "cpu"
    x = torch.randn(1, 2, 132_299)
    assert torch.allclose(loaded(x), model.cpu().eval()(x))


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(models.SeedCNN().state_dict(), plain)  # a bare state dict, no metadata
    with pytest.raises(checkpoints.CheckpointError, match="not a checkpoint of this project"):
        checkpoints.load_checkpoint(plain)
    pickled = tmp_path / "evil.pt"
    with open(pickled, "wb") as f:
        pickle.dump({"format": checkpoints.FORMAT, "state_dict": {}, "x": object()}, f, protocol=2)
    with pytest.raises(checkpoints.CheckpointError, match="evil.pt"):
        checkpoints.load_checkpoint(pickled)
    with pytest.raises(FileNotFoundError, match="notebook 03"):
        checkpoints.load_checkpoint(tmp_path / "none.pt")
