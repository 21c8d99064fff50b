"""Checkpoints whose metadata lies are refused, naming the field; never a silent wrong answer."""

import pytest
import torch
from conftest import write_wav

from helpers import cli
from helpers.core.config import CLASSES
from helpers.evaluate import predict
from helpers.models import checkpoints, networks


def _edited(checkpoint, tmp_path, **changes):
    """A copy of the good checkpoint with its metadata changed (None deletes a field)."""
    data = torch.load(checkpoint, weights_only=True)
    for field, value in changes.items():
        if field == "meta" and value is None:
            del data["meta"]
        elif value is None:
            del data["meta"][field]
        else:
            data["meta"][field] = value
    path = tmp_path / "edited.pt"
    torch.save(data, path)
    return path


CASES = [
    ({"classes": ["gac", "pia", "tru"]}, "classes"),
    ({"classes": ["gac", "pia", "tru", "vio", "cel"]}, "classes"),
    ({"classes": ["vio", "pia", "tru", "gac"]}, "classes"),  # reordered: violin read as guitar
    ({"classes": ["gac", "pia", "tru", "xyz"]}, "classes"),
    ({"model": "resnet"}, "model"),
    ({"model_kwargs": {"n_mels": 64}}, "model_kwargs"),
    ({"model_kwargs": {"n_mels": 10**7}}, "model_kwargs"),  # would ask for gigabytes
    ({"model_kwargs": {"colour": "red"}}, "model_kwargs"),
    ({"meta": None}, "meta"),
    ({"sample_rate": 0}, "sample_rate"),
    ({"clip_samples": 0}, "clip_samples"),
    ({"task": "bogus"}, "task"),
    ({"task": None}, "task"),
    ({"task": "single"}, "task"),  # valid, but not what the weights were trained for
    ({"sample_rate": 22_050}, "sample_rate"),
    ({"sample_rate": 10**9}, "sample_rate"),
    ({"clip_samples": 10**10}, "clip_samples"),
    ({"thresholds": [float("nan")] * 4}, "thresholds"),
    ({"thresholds": [2.0] * 4}, "thresholds"),
    ({"thresholds": [-1.0] * 4}, "thresholds"),
    ({"thresholds": [True] * 4}, "thresholds"),
    ({"thresholds": [0.5] * 3}, "thresholds"),
    ({"thresholds": [0.4] * 4}, "thresholds"),  # in range, but not what was tuned
    ({"fingerprint": None}, "fingerprint"),
    ({"bound": None}, "edited"),  # the fingerprint then no longer matches
]


@pytest.mark.parametrize("changes,field", CASES)
def test_lying_metadata_is_refused_naming_the_field(checkpoint, tmp_path, capsys, changes, field):
    path = _edited(checkpoint, tmp_path, **changes)
    with pytest.raises(checkpoints.CheckpointError, match=field):
        checkpoints.load_model(path)
    song = write_wav(tmp_path / "song.wav", 1.0)
    assert cli.main(["--checkpoint", str(path), str(song)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and field in err and str(path) in err


def test_non_finite_weights_are_refused(checkpoint, tmp_path):
    model, meta = checkpoints.load_model(checkpoint)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    path = checkpoints.save_checkpoint(tmp_path / "nan.pt", model, meta)
    with pytest.raises(checkpoints.CheckpointError, match="NaN or infinite"):
        checkpoints.load_model(path)


def test_thresholds_are_bound_to_the_weights(checkpoint, tmp_path):
    """A checkpoint saved again with tuned thresholds (as Stage 2 does) loads with them."""
    model, meta = checkpoints.load_model(checkpoint)
    path = checkpoints.save_checkpoint(tmp_path / "tuned.pt", model,
                                       {**meta, "thresholds": [0.3, 0.4, 0.5, 0.6]})
    assert checkpoints.load_model(path)[1]["thresholds"] == [0.3, 0.4, 0.5, 0.6]
    assert predict.Predictor(path).threshold == [0.3, 0.4, 0.5, 0.6]


def test_an_empty_file_says_so(tmp_path):
    empty = tmp_path / "best.pt"
    empty.write_bytes(b"")
    with pytest.raises(checkpoints.CheckpointError, match="empty file"):
        checkpoints.load_model(empty)


def test_the_good_one_and_old_names_still_load(checkpoint, tmp_path):
    model, meta = checkpoints.load_model(checkpoint)
    assert meta["classes"] == ["gac", "pia", "tru", "vio"] and isinstance(model, networks.MelCNN)
    old = checkpoints.save_checkpoint(tmp_path / "old.pt",
                                      networks.Wave1DCNN(n_outputs=len(CLASSES)),
                                      checkpoints.model_meta("seed",
                                                             classes=CLASSES))  # before the rename
    assert isinstance(checkpoints.load_model(old)[0], networks.Wave1DCNN)
