import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import BAD_KINDS, bad_audio_files, write_wav

from helpers.core.config import CLIP_SAMPLES, SAMPLE_RATE
from helpers.data import audio


@pytest.mark.parametrize(("seconds", "sr", "channels"), [
    (3.0, 44_100, 2), (3.0, 44_100, 1), (2.0, 8_000, 1), (1.0, 96_000, 2), (0.5, 44_100, 2),
    (20.0, 22_050, 2), (3.0, 48_000, 4),
])
def test_any_file_becomes_a_normalised_stereo_clip(tmp_path, seconds, sr, channels):
    path = write_wav(tmp_path / "x.wav", seconds, sr, channels)
    clip = audio.load_clip(path)
    assert clip.shape == (2, CLIP_SAMPLES) and clip.dtype == torch.float32
    assert clip.abs().max().item() == pytest.approx(0.5, abs=1e-6)
    whole = audio.read_audio(path)
    assert whole.shape[1] == pytest.approx(seconds * SAMPLE_RATE, abs=2)
    if seconds * SAMPLE_RATE < CLIP_SAMPLES:  # padded with silence at the end
        assert clip[:, whole.shape[1] + 1:].abs().max() == 0


def test_mono_is_duplicated_to_both_channels(tmp_path):
    clip = audio.load_clip(write_wav(tmp_path / "m.wav", 1.0, channels=1))
    assert torch.equal(clip[0], clip[1])


def test_resampling_keeps_the_pitch(tmp_path):
    wave = audio.read_audio(write_wav(tmp_path / "t.wav", 1.0, sr=8_000, channels=1))
    spectrum = torch.fft.rfft(wave[0]).abs()
    assert abs(spectrum.argmax().item() * SAMPLE_RATE / wave.shape[1] - 440) < 2


def test_silence_normalises_to_silence_not_nan(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros((44_100, 2), np.float32), 44_100)
    clip = audio.load_clip(path)
    assert torch.isfinite(clip).all() and clip.abs().max() == 0


def test_peak_normalise():
    x = torch.tensor([[0.1, -0.4], [0.2, 0.0]])
    y = audio.peak_normalise(x)
    assert y.abs().max() == pytest.approx(0.5) and torch.allclose(y, x * 1.25)
    batch = audio.peak_normalise(torch.stack([x, 3 * x, torch.zeros_like(x)]))
    assert torch.allclose(batch[0], batch[1]) and batch[2].abs().max() == 0


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_files_raise_an_error_naming_the_file(tmp_path, kind):
    path = bad_audio_files(tmp_path)[kind]
    with pytest.raises(audio.AudioError, match=str(path).replace("(", r"\(")):
        audio.load_clip(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(audio.AudioError, match="nowhere.wav"):
        audio.load_clip(tmp_path / "nowhere.wav")
