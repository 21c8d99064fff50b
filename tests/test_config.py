"""Where data and runs live, and the one training configuration."""

import pytest

from helpers import config
from helpers.config import TrainingConfig


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
    settings = TrainingConfig.of(epochs={"mel": 20, "wave1d": 1}, lr=1e-3,
                                 batch_size={"transfer": 64})
    assert settings.for_model("mel") == TrainingConfig(epochs=20, lr=1e-3)
    assert settings.for_model("wave1d").epochs == 1
    assert settings.for_model("transfer") == TrainingConfig(batch_size=64, lr=1e-3)
    assert settings.for_model("other") == TrainingConfig(lr=1e-3), "defaults for the rest"
    tuned = settings.with_model("mel", lr=0.0)
    assert tuned.for_model("mel") == TrainingConfig(epochs=20, lr=0.0)
    assert settings.for_model("mel").lr == 1e-3, "with_model leaves the original alone"


def test_the_config_round_trips_through_its_record_and_refuses_typos():
    settings = TrainingConfig.of(epochs={"mel": 2}, patience=3)
    assert TrainingConfig(**settings.to_dict()) == settings
    with pytest.raises(TypeError, match="epoch.*known"):
        TrainingConfig.of(epoch=3)
