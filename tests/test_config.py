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


def test_plain_is_the_2020_training():
    plain = TrainingConfig.plain(epochs=3)
    assert (plain.optimizer, plain.schedule, plain.lr, plain.epochs) == ("adam", "constant",
                                                                          3e-4, 3)
    assert not (plain.mix_under or plain.gain_db or plain.shift or plain.eq_db or plain.nothing
                or plain.spec_masks or plain.dynamic_mixing or plain.label_smoothing)


def test_the_config_round_trips_through_its_record_and_refuses_typos():
    settings = TrainingConfig.of(epochs={"mel": 2}, patience=3)
    assert TrainingConfig(**settings.to_dict()) == settings
    with pytest.raises(TypeError, match="epoch.*known"):
        TrainingConfig.of(epoch=3)
