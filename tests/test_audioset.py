"""The AudioSet transformer (AST) as a backbone, with no network: a tiny model of the same class
that the tests save with `save_pretrained` and load through the path a hub id takes; the
full-size architecture at random initialisation for the real input length."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import cached_run, write_wav

from helpers import cli
from helpers.core.config import STAGE1, STAGE2, TrainingConfig
from helpers.core.layout import RunLayout
from helpers.data import mix_plans
from helpers.evaluate import predict
from helpers.models import audioset, checkpoints
from helpers.train import recipe

transformers = pytest.importorskip("transformers")
FRAMES = 320  # the tiny model's input: ~3.2 s of 10 ms frames (the real one takes 1,024)


@pytest.fixture(scope="module")
def tiny_ast(tmp_path_factory):
    """A one-layer AST with a 32-wide embedding, written as a checkpoint folder."""
    folder = tmp_path_factory.mktemp("tiny-ast")
    config = transformers.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64, max_length=FRAMES)
    torch.manual_seed(0)
    transformers.ASTModel(config).save_pretrained(folder)
    transformers.ASTFeatureExtractor(max_length=FRAMES).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def run(demo_set, tmp_path_factory):
    path = cached_run(demo_set, tmp_path_factory.mktemp("ast") / "run")
    mix_plans.build_mixes(path, uses_per_clip=1, random_seed=1)
    return path


def _config(tiny_ast: str, **knobs) -> TrainingConfig:
    return TrainingConfig(**{"epochs": 2, "progress": False, "device": "cpu",
                             "backbone": tiny_ast, **knobs})


def test_features_of_our_windows_come_from_the_checkpoint_folder(tiny_ast):
    features = audioset.ASTFeatures(tiny_ast)
    waves = torch.randn(3, 2, 132_299) * 0.1
    bank = features.filterbank(waves)
    assert bank.shape == (3, FRAMES, 128), "mono 16 kHz, 128 bands, padded to the model's length"
    with torch.no_grad():
        out = features(waves)
    assert out.shape == (3, 32) and torch.isfinite(out).all()
    identity = features.identity()
    assert identity["name"] == "ast" and identity["checkpoint"] == tiny_ast
    assert identity["revision"] == "local" and len(identity["weights_sha256"]) == 64


def test_a_frozen_head_trains_on_cached_features_and_predicts_on_audio(tiny_ast, run, tmp_path):
    result = recipe.train(run, STAGE1, "transfer-ast", config=_config(tiny_ast))
    data = checkpoints.load_checkpoint(result.checkpoint)
    assert all(k.startswith("head.") for k in data["state_dict"]), "the backbone is not stored"
    assert data["meta"]["backbone"]["name"] == "ast"
    assert data["meta"]["training"]["backbone"] == tiny_ast
    assert data["meta"]["training"]["shift"] is False, "a head on stored features: no shift"
    assert RunLayout(run).backbone_features(tiny_ast, "train").is_file()
    heard = predict.Predictor(result.checkpoint)(write_wav(tmp_path / "song.wav", seconds=5.0))
    assert sum(heard.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert list(heard.probabilities) == ["gac", "pia", "tru", "vio"]


@pytest.mark.slow
def test_fine_tuning_trains_and_stores_the_whole_backbone(tiny_ast, run, tmp_path):
    config = _config(tiny_ast, epochs=1, mix_under=0.0)
    result = recipe.train(run, STAGE1, "ast-finetune", config=config)
    model, meta = checkpoints.load_model(result.checkpoint)
    assert any(k.startswith("backbone.net.") for k in model.state_dict()), "all of it is kept"
    assert meta["training"]["backbone_lr"] == 0.02, "the transformer's gentler backbone rate"
    assert meta["backbone"]["weights_sha256"] is None, "its weights are in the file"
    start = audioset.ASTFeatures(tiny_ast).net.state_dict()
    tuned = {k.removeprefix("backbone.net."): v for k, v in model.state_dict().items()
             if k.startswith("backbone.net.")}
    assert any(not torch.equal(start[k], tuned[k]) for k in start), "the backbone learned"
    wav = write_wav(tmp_path / "clip.wav", seconds=3.0)
    heard = predict.Predictor(result.checkpoint)(wav)
    assert heard.present
    # it holds every weight and its architecture: it predicts with the hub folder gone
    assert meta["model_kwargs"]["architecture"]["model"]["hidden_size"] == 32
    moved = tmp_path / "moved"
    shutil.move(tiny_ast, moved)
    try:
        alone = predict.Predictor(result.checkpoint)(wav)
    finally:
        shutil.move(moved, tiny_ast)
    assert alone.probabilities == pytest.approx(heard.probabilities, abs=1e-5)
    # Stage 2, as notebook 05 asks for it: the whole network on fresh mixes, mixed by chance
    mixed = recipe.train_models(run, STAGE2, ["ast-finetune"],
                                config=_config(tiny_ast, epochs=1, mix_chance=0.8))["ast-finetune"]
    model, meta = checkpoints.load_model(mixed.checkpoint)
    assert meta["training"]["mix_chance"] == 0.8 and meta["training"]["dynamic_mixing"]
    assert len(meta["thresholds"]) == 4 and any(k.startswith("backbone.net.")
                                                 for k in model.state_dict())
    assert predict.Predictor(mixed.checkpoint)(wav).probabilities.keys() == {
        "gac", "pia", "tru", "vio"}


def test_stage2_head_on_mixes_tunes_thresholds_and_mixes_by_chance(tiny_ast, run):
    result = recipe.train(run, STAGE2, "transfer-ast", config=_config(tiny_ast))
    assert len(result.test["thresholds"]) == 4
    weights = mix_plans.with_mix_chance({1: 1.0, 2: 2.0, 3: 1.0}, 0.8)
    assert weights == pytest.approx({1: 0.2, 2: 0.8 * 2 / 3, 3: 0.8 / 3}), "PaSST's p = 0.8"
    assert mix_plans.with_mix_chance({2: 1.0}, None) == {2: 1.0}


def test_without_the_weights_one_line_names_the_model_and_the_fix(tmp_path, monkeypatch,
                                                                  tiny_ast, run, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # read once when huggingface_hub is imported: without this, minutes of network retries
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(audioset.AstUnavailable, match="'no-such/ast'.*run once with internet"):
        audioset.ASTFeatures("no-such/ast")
    moved = tmp_path / "moved"
    result = recipe.train(run, STAGE1, "transfer-ast", config=_config(tiny_ast, epochs=1))
    data = checkpoints.load_checkpoint(result.checkpoint)
    shutil.move(tiny_ast, moved)  # the backbone the head names is gone
    try:
        code = cli.main(["--checkpoint", str(result.checkpoint),
                             str(write_wav(tmp_path / "x.wav"))])
    finally:
        shutil.move(moved, tiny_ast)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "hears through AST" in err and "is gone" in err and "choose musicnn" in err
    assert data["meta"]["backbone"]["checkpoint"] == tiny_ast


@pytest.mark.slow
def test_the_full_size_architecture_hears_our_windows():
    """The AudioSet model's configuration at random initialisation (no download): 1,024 frames
    of 128 bands, 1,212 patches plus two tokens, a 768-wide embedding."""
    features = audioset.ASTFeatures.at_random()
    assert features.net.config.max_length == 1024 and features.n_features == 768
    assert features.net.embeddings.position_embeddings.shape[1] == 1212 + 2
    waves = torch.randn(2, 2, 132_299) * 0.1
    assert features.filterbank(waves).shape == (2, 1024, 128)
    with torch.no_grad():
        out = features(waves)
    assert out.shape == (2, 768) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1]), "two windows, two embeddings"
