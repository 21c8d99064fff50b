"""musicnn as a backbone for real, on a tiny rendered run: frozen heads (Stage 1 and 2) on
cached features, fine-tuning, checkpoints that name their backbone, predictions on audio."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest
import torch
from conftest import cached_run, write_wav

from helpers import cli
from helpers.core.config import SPLITS, STAGE1, STAGE2, TrainingConfig
from helpers.core.layout import RunLayout
from helpers.data import cache, mix_plans
from helpers.evaluate import predict
from helpers.models import checkpoints, embed, networks, registry
from helpers.train import loop, recipe

HEAD = TrainingConfig(epochs=4, lr=3e-3, batch_size=32, progress=False, device="cpu")


@pytest.fixture(scope="module")
def run(demo_set, tmp_path_factory):
    path = cached_run(demo_set, tmp_path_factory.mktemp("backbone") / "run")
    mix_plans.build_mixes(path, uses_per_clip=1, random_seed=1)
    return path


@pytest.fixture(scope="module")
def mtt():
    return embed.build_backbone("musicnn", "MTT_musicnn", torch.device("cpu"))


@pytest.fixture(scope="module")
def frozen(run):
    return recipe.train(run, STAGE1, "transfer-musicnn", config=HEAD)


def test_frozen_head_learns_and_stores_only_the_head(run, frozen, mtt):
    layout = RunLayout(run)
    history = pd.read_csv(layout.model("stage1", "transfer-musicnn").history_csv)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0], "the head learns"
    data = checkpoints.load_checkpoint(frozen.checkpoint)
    assert all(k.startswith("head.") for k in data["state_dict"]), "no backbone weights stored"
    backbone = data["meta"]["backbone"]
    assert (backbone["checkpoint"], backbone["layer"]) == ("MTT_musicnn", "penultimate")
    assert len(backbone["weights_sha256"]) == 64
    assert frozen.parameters == 200 * 4 + 4, "the 2020 count: the linear layer that trains"
    assert frozen.extra["parameters_all"] == 200 * 4 + 4 + 2 * 200, "+ its input batch norm"
    model, _ = checkpoints.load_model(frozen.checkpoint)
    feats, labels = embed.backbone_features(RunLayout(run), mtt, torch.device("cpu"),
                                            progress=False, splits=("test",))["test"]
    with torch.no_grad():
        right = (model(feats["penultimate"]).argmax(1) == labels).float().mean().item()
    assert frozen.test["accuracy"] == pytest.approx(right), "the record is best.pt's on test"


def test_features_are_computed_once_and_rebuilt_when_damaged(run, frozen, mtt):
    layout = RunLayout(run)
    files = [layout.backbone_features("MTT_musicnn", s) for s in SPLITS]
    stamps = [f.stat().st_mtime_ns for f in files]
    feats = embed.backbone_features(layout, mtt, torch.device("cpu"),
                                    progress=False)
    assert [f.stat().st_mtime_ns for f in files] == stamps, "reused, not recomputed"
    assert set(feats["val"][0]) == {"pool", "penultimate", "taggram"}
    assert feats["val"][0]["pool"].shape[1] == 1506
    files[1].write_bytes(b"half a file")
    again = embed.backbone_features(layout, mtt, torch.device("cpu"),
                                    progress=False)
    torch.testing.assert_close(again["val"][0]["pool"], feats["val"][0]["pool"])


def test_a_frozen_head_predicts_on_audio_as_on_its_features(run, frozen, mtt,
                                                             tmp_path):
    model, meta = checkpoints.load_model(frozen.checkpoint)
    layout = RunLayout(run)
    feats, _ = embed.backbone_features(layout, mtt, torch.device("cpu"),
                                       progress=False, splits=("test",))["test"]
    clips = cache.load_split(layout.cache("test"))
    with torch.no_grad():
        from_audio = model(clips.waves[:4].float())
        from_features = model(feats[meta["backbone"]["layer"]][:4])
    torch.testing.assert_close(from_audio, from_features, rtol=1e-4, atol=1e-4)
    wav = write_wav(tmp_path / "song.wav", seconds=7.0, sr=22_050, channels=1)
    result = predict.Predictor(frozen.checkpoint)(wav)
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.present


def test_an_edited_backbone_is_refused(frozen, tmp_path):
    data = checkpoints.load_checkpoint(frozen.checkpoint)
    for field, value in (("checkpoint", "MSD_musicnn"), ("weights_sha256", "0" * 64)):
        edited = {**data, "meta": {**data["meta"],
                                   "backbone": {**data["meta"]["backbone"], field: value}}}
        path = tmp_path / f"{field}.pt"
        torch.save(edited, path)
        with pytest.raises(checkpoints.CheckpointError, match="backbone"):
            checkpoints.load_model(path)


def test_without_the_wheel_a_head_says_how_to_install_it(frozen, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "musicnn" else real(name, *a))
    assert cli.main(["--checkpoint", frozen.checkpoint, "x.wav"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "pip install --no-deps musicnn==0.1.0" in err and "best.pt" in err


@pytest.mark.slow
def test_a_head_trained_with_no_instrument_windows_is_unsure_of_hiss_and_hum(run, tmp_path):
    """Stage 1 with the default no-instrument windows (flat target; on this small set the
    fixed minimum of each kind): tape hiss at -55 dBFS and mains hum get a near-flat answer
    under the validation floor, which `irmas-predict` marks "low confidence"; the clips are
    still heard."""
    import numpy as np
    import soundfile as sf

    config = TrainingConfig(epochs=30, lr=1e-3, batch_size=16, progress=False, device="cpu")
    result = recipe.train(run, STAGE1, "transfer-musicnn", config=config,
                          variant="transfer-musicnn-nothing")
    predictor = predict.Predictor(result.checkpoint)
    rng = np.random.default_rng(0)
    t = np.arange(10 * 44_100) / 44_100
    files = {"hiss": 10 ** (-55 / 20) * rng.standard_normal((len(t), 2)),
             "hum": 0.01 * np.sin(2 * np.pi * 50 * t)[:, None].repeat(2, 1)}
    for name, data in files.items():
        path = tmp_path / f"{name}.wav"
        sf.write(path, data.astype(np.float32), 44_100)
        heard = predictor(path)
        assert heard.low_confidence and max(heard.probabilities.values()) < 0.4, (
            name, heard.probabilities, result.test["confidence_floor"])
        assert "(low confidence" in heard.line()
    assert result.test["accuracy"] > 0.5, "it still hears the instruments"


def test_stage2_frozen_head_on_mixes_tunes_thresholds(run, tmp_path):
    result = recipe.train(run, STAGE2, "transfer-musicnn", config=HEAD)
    data = checkpoints.load_checkpoint(result.checkpoint)
    assert data["meta"]["task"] == "multi" and len(data["meta"]["thresholds"]) == 4
    assert "tuned" in result.test
    layout = RunLayout(run)
    assert layout.backbone_features("MTT_musicnn", "train", mixes=True).is_file()
    wav = write_wav(tmp_path / "mix.wav", seconds=5.0)
    assert predict.Predictor(result.checkpoint)(wav).present


@pytest.mark.slow
def test_finetuning_trains_the_backbone_slower(run):
    config = TrainingConfig(epochs=1, lr=1e-3, backbone_lr=0.1, eq_db=6.0, spec_masks=True,
                            progress=False, device="cpu")
    spec = registry.spec("musicnn-finetune")
    model = networks.build("musicnn", n_outputs=4,
                           **spec.network_kwargs(registry.resolve(config, STAGE1, spec).config))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = loop.optimizer(model, config)
    assert [g["scale"] for g in opt.param_groups] == [1.0, 0.1]
    assert type(model.backbone.augment).__name__ == "Identity"
    result = recipe.train(run, STAGE1, "musicnn-finetune", config=config)
    trained, meta = checkpoints.load_model(result.checkpoint)
    assert meta["backbone"]["weights_sha256"] is None  # its weights are in the state dict
    changed = [k for k, v in trained.state_dict().items()
               if k.startswith("backbone.net.") and k.endswith("weight") and not torch.equal(
                   v, before[k])]
    assert changed, "the backbone's weights moved"
    assert all(torch.equal(trained.state_dict()[k], before[k]) for k in before
               if k.startswith("backbone.") and k.endswith("running_mean")), "BN statistics stay"
