"""Checkpoints whose metadata lies are refused, naming the field; never a silent wrong answer."""

import pytest
import torch
from conftest import write_wav

from helpers import checkpoints, models, predict


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
    ({"model_kwargs": {"n_mels": 64}}, "weights do not fit"),
    ({"model_kwargs": {"colour": "red"}}, "model_kwargs"),
    ({"meta": None}, "meta"),
    ({"sample_rate": 0}, "sample_rate"),
    ({"clip_samples": 0}, "clip_samples"),
    ({"task": "bogus"}, "task"),
    ({"task": None}, "task"),
]


@pytest.mark.parametrize("changes,field", CASES)
def test_lying_metadata_is_refused_naming_the_field(checkpoint, tmp_path, capsys, changes, field):
    path = _edited(checkpoint, tmp_path, **changes)
    with pytest.raises(checkpoints.CheckpointError, match=field):
        checkpoints.load_model(path)
    song = write_wav(tmp_path / "song.wav", 1.0)
    assert predict.main(["--checkpoint", str(path), str(song)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and field in err and str(path) in err


def test_an_empty_file_says_so(tmp_path):
    empty = tmp_path / "best.pt"
    empty.write_bytes(b"")
    with pytest.raises(checkpoints.CheckpointError, match="empty file"):
        checkpoints.load_model(empty)


def test_the_good_one_and_old_names_still_load(checkpoint, tmp_path):
    model, meta = checkpoints.load_model(checkpoint)
    assert meta["classes"] == ["gac", "pia", "tru", "vio"] and isinstance(model, models.MelCNN)
    old = checkpoints.save_checkpoint(tmp_path / "old.pt", models.Wave1DCNN(),
                                      checkpoints.model_meta("seed"))  # before the rename
    assert isinstance(checkpoints.load_model(old)[0], models.Wave1DCNN)
