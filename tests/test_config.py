"""Where data and runs live, and the one training configuration."""

import pytest

from helpers.core import config
from helpers.core.config import TrainingConfig


def test_home_precedence_explicit_then_env_then_drive_then_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.HOME_ENV, raising=False)
    drive = tmp_path / "drive"
    monkeypatch.setattr(config, "DRIVE_MOUNT", drive)
    monkeypatch.setattr(config, "DRIVE_HOME", drive / "MyDrive" / "irmas-instruments")
    assert config.home() == tmp_path, "nothing set, no Drive: the current folder"
    (drive / "MyDrive").mkdir(parents=True)
    assert config.home() == drive / "MyDrive" / "irmas-instruments", "a mounted Drive"
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "env"))
    assert config.home() == tmp_path / "env", "$IRMAS_HOME beats Drive"
    assert config.home(tmp_path / "explicit") == tmp_path / "explicit", "an argument beats all"
    assert config.run_dir("demo", tmp_path / "x") == tmp_path / "x" / "runs" / "demo"
    assert config.data_dir("irmas") == tmp_path / "env" / "data" / "irmas"


def test_a_knob_given_per_model_applies_to_that_model_only():
    settings = TrainingConfig.of(epochs={"mel": 20, "wave1d": 1}, lr=2e-3,
                                 batch_size={"transfer": 32})
    mel = settings.for_model("mel")
    assert (mel.epochs, mel.lr, mel.batch_size, mel.per_model) == (20, 2e-3, 16, {})
    assert settings.for_model("wave1d").epochs == 1
    assert settings.for_model("transfer").batch_size == 32
    assert settings.for_model("other") == TrainingConfig(lr=2e-3, batch_size=16), "the rest"
    tuned = settings.with_model("mel", lr=0.0)
    assert tuned.for_model("mel") == TrainingConfig(epochs=20, lr=0.0, batch_size=16)
    assert settings.for_model("mel").lr == 2e-3, "with_model leaves the original alone"


def test_the_defaults_are_the_recipe_and_plain_is_the_2020_training():
    recipe = TrainingConfig()
    mel = recipe.for_model("mel")
    assert (mel.optimizer, mel.schedule, mel.lr, mel.batch_size) == ("adamw", "cosine", 1e-3, 16)
    assert recipe.mix_under and recipe.spec_masks and recipe.dynamic_mixing and recipe.nothing
    assert recipe.for_model("wave1d").lr == 3e-4, "the 2020 network's own learning rate"
    assert recipe.for_model("musicnn", "transfer-musicnn").batch_size == 64
    assert TrainingConfig(lr=5e-4).for_model("wave1d").lr == 5e-4, "given: for every model"
    plain = TrainingConfig.plain(epochs=3)
    assert (plain.optimizer, plain.schedule, plain.lr, plain.epochs) == ("adam", "constant",
                                                                          3e-4, 3)
    assert not (plain.mix_under or plain.gain_db or plain.shift or plain.eq_db or plain.nothing
                or plain.spec_masks or plain.dynamic_mixing or plain.label_smoothing)


def test_a_model_records_only_the_knobs_it_used():
    recipe = TrainingConfig()
    stage2_mel = recipe.applied("stage2", "mel", "mel")
    assert (stage2_mel.mix_under, stage2_mel.label_smoothing) == (0.0, 0.0), "single-label only"
    assert stage2_mel.dynamic_mixing and stage2_mel.eq_db == 6.0 and stage2_mel.backbone is None
    wave = recipe.applied("stage1", "wave1d", "wave1d")
    assert (wave.eq_db, wave.spec_masks, wave.lr) == (0.0, False, 3e-4), "no log-mel front end"
    assert wave.mix_under == 0.5 and not wave.dynamic_mixing
    head = recipe.applied("stage1", "musicnn", "transfer-musicnn", on_audio=False)
    assert (head.shift, head.gain_db, head.mix_under, head.backbone_lr) == (False, 0.0, 0.0, None)
    assert (head.backbone, head.label_smoothing, head.nothing) == ("MTT_musicnn", 0.1, 0.1)
    transfer = recipe.applied("stage2", "transfer", "transfer-mel", on_audio=False)
    assert (transfer.nothing, transfer.lr, transfer.batch_size) == (0.0, 1e-4, 64)
    assert recipe.applied("stage1", "musicnn", "musicnn-finetune").backbone_lr == 0.1


@pytest.mark.parametrize("knobs, message", [
    ({"spec_masks": {"wave1d": False}}, "per-model setting wave1d: spec_masks does nothing"),
    ({"shift": {"transfer-musicnn": False}}, "transfer-musicnn: shift does nothing"),
])
def test_a_per_model_knob_its_model_cannot_use_is_refused(knobs, message):
    settings = TrainingConfig.of(**knobs)
    model, variant = ("wave1d", "wave1d") if "wave1d" in str(knobs) else ("musicnn",
                                                                          "transfer-musicnn")
    with pytest.raises(ValueError, match=message):
        settings.applied("stage1", model, variant, on_audio=model == "wave1d")
    settings.applied("stage1", "mel", "mel")  # other models: fine


def test_the_config_round_trips_through_its_record_and_refuses_typos():
    settings = TrainingConfig.of(epochs={"mel": 2}, patience=3)
    assert TrainingConfig(**settings.to_dict()) == settings
    with pytest.raises(TypeError, match="epoch.*known"):
        TrainingConfig.of(epoch=3)
