"""fit() for real: tiny rendered clips, real models, real checkpoints on disk."""

import pickle
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from torch import nn

from helpers.core import metrics, results
from helpers.core.config import CLASSES, PLAIN, STAGE1, TrainingConfig
from helpers.core.layout import ModelFiles
from helpers.data import augment, cache
from helpers.data.batches import ClipBatches, TensorBatches
from helpers.evaluate import report
from helpers.models import checkpoints, networks, registry
from helpers.train import loop, sources
from helpers.train.recipe import STAGE_RECIPES


@pytest.fixture(scope="module")
def tiny(demo_set, tmp_path_factory):
    root, manifest = demo_set
    folder = tmp_path_factory.mktemp("cache")
    split = {s: cache.load_split(cache.build_split(manifest, root, s, target=folder / f"{s}.pt",
                                                   progress=False, classes=CLASSES))
             for s in ("train", "val")}
    # 1 s crops keep the steps cheap; the models are length-agnostic (MelCNN) or told (Wave1DCNN)
    crop = {s: c.waves[..., :44_100] for s, c in split.items()}
    index, sign = split["train"].balanced()
    return {
        "train": ClipBatches(crop["train"], split["train"].labels, 8, index=index, sign=sign,
                                      shuffle=True),
        "val": ClipBatches(crop["val"], split["val"].labels, 16),
    }


def _fit(tiny, out, epochs, stop_after=None, spy=None, recipe=False, **knobs):
    """MelCNN fitted on `tiny` as `recipe.train` fits it: with the 2020 project's training at
    lr 3e-3 and `knobs` over it, or with the defaults, the recipe (`recipe=True`)."""
    torch.manual_seed(0)
    model = networks.MelCNN(n_mels=32, widths=(8, 16, 16, 32), n_outputs=len(CLASSES))
    meta = checkpoints.model_meta("mel", n_mels=32, widths=[8, 16, 16, 32], classes=CLASSES)
    base = {} if recipe else {**PLAIN, "lr": 3e-3}
    config = TrainingConfig.of(**{**base, **knobs, "epochs": epochs, "progress": False,
                                  "device": "cpu"})
    config = registry.resolve(config, STAGE1, "mel").config
    model.set_augment(augment.spectrogram_augment(config))
    waves = sources.clip_augment(config, len(CLASSES))
    if spy is not None:  # sees what the real augmentation is given, then lets it run
        waves = spy(waves)
    result = loop.fit(model, tiny["train"], tiny["val"],
                      loss_fn=STAGE_RECIPES[STAGE1].loss(config),
                      score_fn=metrics.accuracy_from_logits, files=ModelFiles(Path(out)),
                      meta=meta, config=config, stop_after=stop_after, augment=waves)
    return model, result


def test_a_few_epochs_lower_the_loss_and_write_everything(tiny, tmp_path):
    model, result = _fit(tiny, tmp_path, epochs=4)
    h = result.history
    assert list(h["epoch"]) == [1, 2, 3, 4]
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    best, _ = checkpoints.load_model(result.best_path)
    val = metrics.accuracy_from_logits(*loop.predict(best, tiny["val"]))
    assert val == pytest.approx(result.best_score) == h["val_score"].max(), (
        "best.pt holds the weights of the best validation score")
    assert {"best.pt", "last.pt", "history.csv", "history.json"} <= {
        p.name for p in tmp_path.iterdir()}
    _, meta = checkpoints.load_model(result.best_path)
    assert meta["epoch"] == result.best_epoch == int(h.loc[h["val_score"].idxmax(), "epoch"])
    assert not list(tmp_path.glob(".*tmp*"))


def test_steps_per_epoch_trains_that_many_batches_a_new_draw_each_epoch(tiny, tmp_path,
                                                                       capsys):
    seen = []

    def spy(waves):
        def look(x, y):
            seen.append(y.clone())
            return (x, y) if waves is None else waves(x, y)
        return look

    _, result = _fit(tiny, tmp_path, epochs=2, spy=spy, steps_per_epoch=2)
    assert len(tiny["train"]) > 2 and len(seen) == 4, "2 batches in each of 2 epochs"
    assert not all(torch.equal(a, b) for a, b in zip(seen[:2], seen[2:])), "reshuffled"
    meta = checkpoints.load_checkpoint(result.best_path)["meta"]
    assert meta["training"]["steps_per_epoch"] == 2, "the checkpoint says what ran"
    assert f"2 of {len(tiny['train'])} batches an epoch" in capsys.readouterr().out
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        TrainingConfig(steps_per_epoch=0)
    record = results.TrainResult("mel", "stage1", 1, "accuracy", 0.5, {}, 2, 1, 1.0,
                                 meta["training"], {}, "best.pt")
    assert report.epochs_run(record) == "2 × 2 batches", "the results table says so too"


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [False, True], ids=["plain", "recipe"])
def test_stopped_and_resumed_equals_uninterrupted(tiny, tmp_path, recipe):
    straight, _ = _fit(tiny, tmp_path / "straight", epochs=3, recipe=recipe)
    # the session "dies" after epoch 1
    _fit(tiny, tmp_path / "resumed", epochs=3, stop_after=1, recipe=recipe)
    resumed, result = _fit(tiny, tmp_path / "resumed", epochs=3, recipe=recipe)
    assert list(result.history["epoch"]) == [1, 2, 3]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_the_recipe_trains_and_augments_training_batches_only(tiny, tmp_path):
    seen = []

    def spy(real):
        def waves(x, y):
            seen.append(x.clone())
            return real(x, y)
        return waves

    _, result = _fit(tiny, tmp_path, epochs=2, spy=spy, recipe=True)
    train, val = tiny["train"], tiny["val"]
    assert len(seen) == 2 * len(train), "every training batch, every epoch, nothing else"
    rows = {tuple(train.waves[i, 0, :64].abs().tolist()) for i in range(len(train.waves))}
    assert all(tuple(b[0, :64].abs().tolist()) in rows for x in seen for b in x), (
        "only training clips reach the augmentation (±1 flips aside)")
    assert not any(tuple(v[0, :64].abs().tolist()) in rows for v in val.waves)
    assert result.history["train_loss"].notna().all()
    assert checkpoints.load_model(result.best_path)[1]["training"]["mix_under"] == 0.5


def test_the_learning_rate_follows_the_schedule(tiny, tmp_path):
    model, _ = _fit(tiny, tmp_path / "cosine", epochs=2, schedule="cosine", warmup_epochs=0.5)
    last = checkpoints.load_checkpoint(tmp_path / "cosine" / "last.pt")
    lr = last["optimizer"]["param_groups"][0]["lr"]
    steps = len(tiny["train"])
    expected = 3e-3 * loop.lr_factor(TrainingConfig(epochs=2, schedule="cosine",
                                                       warmup_epochs=0.5), 1 + (steps - 1) / steps)
    assert lr == pytest.approx(expected) and lr < 3e-3 * 0.1


# `_fit(..., epochs=3)` itself, in its own process, killed (SIGKILL) inside epoch 2.
KILLED_MID_EPOCH = """
import os, signal, sys, torch
sys.path.insert(0, "tests")
from helpers.data.batches import ClipBatches
from test_training import _fit

class DiesInEpoch2(ClipBatches):
    def __iter__(self):
        for i, batch in enumerate(super().__iter__()):
            if self.epoch == 2 and i == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

d = torch.load(sys.argv[1], weights_only=True)
tiny = {"train": DiesInEpoch2(d["x"], d["y"], 8, index=d["index"], sign=d["sign"], shuffle=True),
        "val": ClipBatches(d["vx"], d["vy"], 16)}
_fit(tiny, sys.argv[2], epochs=3)
"""


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_from_its_last_checkpoint(tiny, tmp_path):
    train, val = tiny["train"], tiny["val"]
    data = tmp_path / "data.pt"
    torch.save({"x": train.waves, "y": train.targets, "index": train.index, "sign": train.sign,
                "vx": val.waves, "vy": val.targets}, data)
    out = tmp_path / "killed"
    done = subprocess.run([sys.executable, "-c", KILLED_MID_EPOCH, str(data), str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr
    saved = checkpoints.load_checkpoint(out / "last.pt")
    assert [h["epoch"] for h in saved["history"]] == [1], "epoch 1 survived, whole"
    assert not [p for p in out.iterdir() if p.name not in
                {"best.pt", "last.pt", "history.csv", "history.json"}], "no half-written file"
    resumed, result = _fit(tiny, out, epochs=3)
    straight, _ = _fit(tiny, tmp_path / "straight", epochs=3)
    assert list(result.history["epoch"]) == [1, 2, 3]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_same_seed_same_metrics(tiny, tmp_path):
    _, first = _fit(tiny, tmp_path / "a", epochs=2)
    _, second = _fit(tiny, tmp_path / "b", epochs=2)
    columns = ["epoch", "train_loss", "val_loss", "val_score"]
    assert first.history[columns].equals(second.history[columns])


def test_early_stopping(tiny, tmp_path):
    _, result = _fit(tiny, tmp_path, epochs=50, patience=2)
    h = result.history
    assert len(h) < 50
    assert len(h) - result.best_epoch == 2


def test_resume_refuses_another_model(tiny, tmp_path):
    _fit(tiny, tmp_path, epochs=1)
    model = networks.Wave1DCNN(length=44_100, n_outputs=len(CLASSES))
    with pytest.raises(ValueError, match="'mel' model"):
        loop.fit(model, tiny["train"], tiny["val"], loss_fn=nn.functional.cross_entropy,
                     score_fn=metrics.accuracy_from_logits, files=ModelFiles(tmp_path),
                     meta=checkpoints.model_meta("wave1d", classes=CLASSES),
                     config=TrainingConfig(epochs=2, progress=False, device="cpu", lr=1e-3,
                                    batch_size=16))


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


def test_a_training_batch_of_one_joins_the_batch_before():
    """Batch norm cannot train on one item: 33 shuffled items in 16s are a 16 and a 17."""
    shuffled = TensorBatches(torch.randn(33, 3), torch.zeros(33), 16, shuffle=True)
    assert [len(x) for x, _ in shuffled] == [16, 17] and len(shuffled) == 2
    assert sorted(torch.cat([x for x, _ in shuffled])[:, 0].tolist()) == sorted(
        shuffled.inputs[:, 0].tolist()), "every item once"
    plain = TensorBatches(torch.randn(33, 3), torch.zeros(33), 16)
    assert [len(x) for x, _ in plain] == [16, 16, 1] and len(plain) == 3, "evaluation: all"


def test_stage1_batches_hold_a_share_of_no_instrument_windows_with_flat_targets():
    waves, labels = torch.randn(8, 2, 1000) * 0.1, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    transform = sources.clip_augment(TrainingConfig.plain(nothing=0.25), n_classes=4)
    torch.manual_seed(5)
    x, y = transform(waves, labels)
    assert torch.equal(y[:2], torch.full((2, 4), 0.25)), "2 of 8: every instrument as likely"
    assert torch.equal(y[2:], nn.functional.one_hot(labels[2:], 4).float())
    assert torch.equal(x[2:], waves[2:]) and not torch.equal(x[:2], waves[:2])
    assert set(x[:2].abs().amax(dim=(1, 2)).tolist()) <= {0.0, 0.5}, "normalised like clips"
    torch.manual_seed(5)
    assert torch.equal(transform(waves, labels)[0], x), "the same windows in a resumed epoch"
    assert sources.clip_augment(TrainingConfig.plain(), 4) is None, "off: untouched"


def test_checkpoint_loads_on_cpu_with_weights_only(tmp_path):
    model = networks.Wave1DCNN(n_outputs=len(CLASSES))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model.to(device),
                                       checkpoints.model_meta("wave1d", classes=CLASSES))
    loaded, meta = checkpoints.load_model(path, map_location="cpu")
    assert meta["model"] == "wave1d" and meta["classes"] == ["gac", "pia", "tru", "vio"]
    assert next(loaded.parameters()).device.type == "cpu"
    x = torch.randn(1, 2, 132_299)
    assert torch.allclose(loaded(x), model.cpu().eval()(x))


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(networks.Wave1DCNN(n_outputs=len(CLASSES)).state_dict(),
               plain)  # a bare state dict, no metadata
    with pytest.raises(checkpoints.CheckpointError, match="not a checkpoint of this project"):
        checkpoints.load_checkpoint(plain)
    pickled = tmp_path / "evil.pt"
    with open(pickled, "wb") as f:
        pickle.dump({"format": checkpoints.FORMAT, "state_dict": {}, "x": object()}, f, protocol=2)
    with pytest.raises(checkpoints.CheckpointError, match="evil.pt"):
        checkpoints.load_checkpoint(pickled)
    with pytest.raises(FileNotFoundError, match="notebook 03"):
        checkpoints.load_checkpoint(tmp_path / "none.pt")


def _as_if_saved_on_cuda(path):
    """Rewrite the device torch.save recorded for every tensor as `cuda:0`, as a GPU run
    writes it (optimizer state in last.pt stays on the GPU); works on machines without one."""
    with zipfile.ZipFile(path) as z:
        entries = [(info.filename, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            if name.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            z.writestr(name, data)


def test_checkpoint_saved_from_cuda_tensors_loads_on_cpu(tmp_path):
    model = networks.MelCNN(n_mels=32, widths=(8, 16, 16, 32), n_outputs=len(CLASSES))
    path = checkpoints.save_checkpoint(tmp_path / "gpu.pt", model, checkpoints.model_meta(
        "mel", n_mels=32, widths=[8, 16, 16, 32], classes=CLASSES))
    _as_if_saved_on_cuda(path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # what a load without map_location does
    loaded, _ = checkpoints.load_model(path)
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_a_pickled_whole_model_is_refused(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(networks.MelCNN(n_mels=32, widths=(8, 16, 16, 32), n_outputs=len(CLASSES)), path)
    with pytest.raises(checkpoints.CheckpointError, match="whole.pt"):
        checkpoints.load_checkpoint(path)


def test_a_fresh_run_never_replaces_a_best_model_it_did_not_produce(tiny, tmp_path):
    _fit(tiny, tmp_path, epochs=2)
    best = (tmp_path / "best.pt").read_bytes()
    history = (tmp_path / "history.csv").read_bytes()
    (tmp_path / "last.pt").unlink()  # the natural fix for a corrupt last.pt
    with pytest.raises(FileExistsError, match="did not produce.*epoch.*overwrite=True"):
        _fit(tiny, tmp_path, epochs=1)
    assert (tmp_path / "best.pt").read_bytes() == best, "the better model is kept"
    assert (tmp_path / "history.csv").read_bytes() == history
    _, result = _fit(tiny, tmp_path, epochs=1, overwrite=True)  # asked for: start over
    assert list(result.history["epoch"]) == [1]


def test_schedule_warms_up_then_decays_to_zero_and_constant_stays():
    config = TrainingConfig(epochs=10, schedule="cosine", warmup_epochs=1.0)
    factors = [loop.lr_factor(config, p) for p in np.linspace(0, 10, 101)]
    peak = int(np.argmax(factors))
    assert 9 <= peak <= 11 and factors[peak] == pytest.approx(1.0, abs=1e-3)
    assert all(a <= b for a, b in zip(factors[:peak], factors[1:peak + 1]))
    assert all(a >= b for a, b in zip(factors[peak:], factors[peak + 1:]))
    assert factors[-1] == pytest.approx(0.0, abs=1e-9)
    assert loop.lr_factor(TrainingConfig.plain(), 3.7) == 1.0


@pytest.mark.parametrize(("device", "capability", "choice", "dtype", "scaled"), [
    ("cpu", None, "auto", None, False),
    ("cpu", None, "float16", None, False),  # the CPU always computes in float32
    ("cuda", (7, 5), "auto", torch.float16, True),  # T4: no bfloat16 units, loss scaling
    ("cuda", (8, 0), "auto", torch.bfloat16, False),  # A100
    ("cuda", (9, 0), "auto", torch.bfloat16, False),  # H100
    ("cuda", (8, 9), "float16", torch.float16, True),  # forced: the T4 path on an L4
    ("cuda", (8, 0), "float32", None, False),
])
def test_precision_follows_the_device(device, capability, choice, dtype, scaled):
    assert loop.precision_policy(device, capability, choice) == loop.Precision(
        dtype, scaled)


def test_precision_refuses_what_the_gpu_cannot_do_and_unknown_choices():
    with pytest.raises(ValueError, match="no bfloat16"):
        loop.precision_policy("cuda", (7, 5), "bfloat16")
    with pytest.raises(ValueError, match="precision='half'"):
        loop.precision_policy("cuda", (8, 0), "half")
    with pytest.raises(ValueError, match="precision"):
        TrainingConfig(precision="half")


def test_a_scaled_step_trains_like_an_unscaled_one():
    """The float16 path's gradient scaler, run for real (on the CPU the step is float32, so
    scaled and unscaled steps must agree)."""
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    steps = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0**10)):
        torch.manual_seed(0)
        model = nn.Linear(5, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = [loop.train_step(model, opt, nn.functional.cross_entropy, x=x, y=y,
                                      device=torch.device("cpu"), scaler=scaler) for _ in range(3)]
        steps.append((losses, model.weight.detach().clone()))
    assert steps[0][0] == pytest.approx(steps[1][0], rel=1e-5)
    torch.testing.assert_close(steps[0][1], steps[1][1])
    assert steps[0][0][-1] < steps[0][0][0]
