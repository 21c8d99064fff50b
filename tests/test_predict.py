"""`helpers.predict` on real audio files and real (untrained) checkpoints."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import BAD_KINDS, REPO, bad_audio_files, write_wav

from helpers import checkpoints, models, predict
from helpers.config import CLIP_SAMPLES


def test_windows_cover_the_whole_recording_and_pad_short_ones():
    assert predict.window_starts(500, 4000, 1000) == [0]
    assert predict.window_starts(4000, 4000, 1000) == [0]
    assert predict.window_starts(10_500, 4000, 1000) == [0, 1000, 2000, 3000, 4000, 5000, 6000,
                                                          6500], "the last ends at the end"
    short = predict.windows(torch.ones(2, 500), 4000, [0])
    assert short.shape == (1, 2, 4000) and short[0, :, 500:].abs().sum() == 0
    wave = torch.arange(10_500.0).expand(2, -1)
    cut = predict.windows(wave, 4000, [0, 6500])
    assert cut.abs().amax() <= 0.5, "each window is peak-normalised"
    assert torch.allclose(cut[-1, 0] * 2 * 10_499, wave[0, -4000:])


def test_present_rules():
    probs = torch.tensor([[0.6, 0.35, 0.04, 0.01], [0.2, 0.2, 0.3, 0.3]])
    assert predict.present(probs, "single").tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert predict.present(torch.tensor([[0.9, 0.6, 0.1, 0.0], [0.1, 0.3, 0.2, 0.0]]),
                           "multi").tolist() == [[1, 1, 0, 0], [0, 1, 0, 0]], "at least one"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "best.pt"
    return checkpoints.save_checkpoint(path, models.build("mel"),
                                       checkpoints.model_meta("mel", task="multi"))


@pytest.mark.parametrize("seconds,sr,channels", [(7.3, 44_100, 2), (0.5, 8_000, 1),
                                                 (3.0, 96_000, 2)])
def test_any_rate_length_and_channel_count_gives_probabilities(checkpoint, tmp_path, seconds,
                                                              sr, channels):
    path = write_wav(tmp_path / "x.wav", seconds, sr, channels)
    result = predict.Predictor(checkpoint)(path)
    assert abs(result.seconds - seconds) < 0.01
    assert list(result.probabilities) == ["gac", "pia", "tru", "vio"]
    assert all(0 <= p <= 1 for p in result.probabilities.values()) and result.present


def test_probabilities_are_the_mean_over_windows(checkpoint):
    model, meta = checkpoints.load_model(checkpoint)
    wave = torch.randn(2, 2 * CLIP_SAMPLES) * 0.1
    probs = predict.probabilities(model, meta, wave, hop_seconds=CLIP_SAMPLES / 44_100,
                                  batch_size=1)
    with torch.no_grad():
        each = model(predict.windows(wave, CLIP_SAMPLES, [0, CLIP_SAMPLES])).sigmoid()
    assert torch.allclose(probs, each.mean(0), atol=1e-5)


def test_command_predicts_good_files_and_names_bad_ones(checkpoint, tmp_path, capsys):
    good = write_wav(tmp_path / "good song.wav", 4.0)
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    code = predict.main(["--checkpoint", str(checkpoint), str(bad), str(good), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.count("\n") == 1 and "notes.wav" in err and "Traceback" not in err
    row = json.loads(out)
    assert row["path"] == str(good) and set(row["probabilities"]) == {"gac", "pia", "tru", "vio"}
    assert predict.main(["--checkpoint", str(checkpoint), str(good)]) == 0
    assert "good song.wav (4.0 s):" in capsys.readouterr().out


def test_command_refuses_what_is_not_a_usable_checkpoint(tmp_path, capsys):
    song = write_wav(tmp_path / "a.wav", 1.0)
    head = checkpoints.save_checkpoint(tmp_path / "head.pt", models.build("transfer"),
                                       checkpoints.model_meta("transfer", task="multi"))
    plain = tmp_path / "plain.pt"
    torch.save(models.build("mel").state_dict(), plain)
    for path, message in [(head, "features"), (plain, "not a checkpoint"),
                          (tmp_path / "none.pt", "no checkpoint")]:
        assert predict.main(["--checkpoint", str(path), str(song)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_silent_file_gives_finite_probabilities(checkpoint, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((44_100, 2), np.float32), 44_100)
    result = predict.Predictor(checkpoint)(path)
    assert all(np.isfinite(p) for p in result.probabilities.values())


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_each_bad_file_is_one_line_naming_it(checkpoint, tmp_path, capsys, kind):
    bad = bad_audio_files(tmp_path)[kind]
    good = write_wav(tmp_path / "fine.wav", 2.0)
    assert predict.main(["--checkpoint", str(checkpoint), str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {bad}") and err.count("\n") == 1
    assert out.startswith(str(good)), "the other files are still predicted"


def test_ten_minute_recording(checkpoint, tmp_path):
    path = write_wav(tmp_path / "long.wav", 600.0, sr=22_050)
    result = predict.Predictor(checkpoint)(path)
    assert result.seconds == pytest.approx(600.0, abs=0.01) and result.present


def test_command_line_process_exit_status_and_no_traceback(checkpoint, tmp_path):
    good = write_wav(tmp_path / "a.wav", 3.0)
    missing = tmp_path / "missing.wav"
    done = subprocess.run([sys.executable, "-m", "helpers.predict", "--checkpoint",
                           str(checkpoint), str(good), str(missing)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "missing.wav" in done.stderr and done.stdout.startswith(str(good))


def test_console_script_is_installed(checkpoint, tmp_path):
    script = Path(sys.executable).parent / "irmas-predict"
    assert script.is_file(), "pip install . (or -e .) installs the irmas-predict command"
    song = write_wav(tmp_path / "b.wav", 2.0)
    done = subprocess.run([str(script), "--checkpoint", str(checkpoint), "--json", str(song)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["path"] == str(song)
