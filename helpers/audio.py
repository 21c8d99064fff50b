"""Read any audio file into the model's format: stereo, 44.1 kHz, 132,299 samples, in [-0.5, 0.5].

soundfile reads (torchaudio.load needs torchcodec); torchaudio only resamples. Every failure
raises `AudioError` naming the file, so a data set build can skip it and report it.
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch
import torchaudio.functional as AF

from helpers.config import CHANNELS, CLIP_SAMPLES, SAMPLE_RATE


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and why."""


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Decode a whole file to float32 `[2, N]` at `sample_rate` (mono is duplicated)."""
    path = Path(path)
    try:
        _check_riff_complete(path)
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(f"{path}: cannot be read as audio ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples (empty or cut off after the header)")
    wave = torch.from_numpy(data.T.copy())
    if not torch.isfinite(wave).all():
        raise AudioError(f"{path}: holds NaN or infinite samples")
    wave = to_stereo(wave)
    if sr != sample_rate:
        wave = AF.resample(wave, sr, sample_rate)
    return wave


def _check_riff_complete(path: Path) -> None:
    """libsndfile silently reads a cut-off WAV; its RIFF header tells how long it should be."""
    with open(path, "rb") as f:
        header = f.read(8)
    if header[:4] == b"RIFF":
        expected = int.from_bytes(header[4:8], "little") + 8
        actual = path.stat().st_size
        if actual < expected:
            raise AudioError(
                f"{path}: truncated, {actual} of {expected} bytes; download or copy it again"
            )


def to_stereo(wave: torch.Tensor) -> torch.Tensor:
    """`[C, N]` → `[2, N]`: mono is duplicated, more than two channels keep the first two."""
    if wave.shape[0] == 1:
        return wave.expand(CHANNELS, -1).clone()
    return wave[:CHANNELS]


def fix_length(wave: torch.Tensor, length: int = CLIP_SAMPLES) -> torch.Tensor:
    """Crop to the first `length` samples or pad the end with silence."""
    n = wave.shape[-1]
    if n >= length:
        return wave[..., :length]
    return torch.nn.functional.pad(wave, (0, length - n))


def peak_normalise(wave: torch.Tensor) -> torch.Tensor:
    """Scale into [-0.5, 0.5] (divide by 2·max|x|, as the seed did); silence stays silence."""
    peak = wave.abs().amax(dim=(-2, -1), keepdim=True)
    return torch.where(peak > 0, wave / (2 * peak.clamp_min(1e-12)), torch.zeros_like(wave))


def sign_flip(wave: torch.Tensor) -> torch.Tensor:
    """Polarity inversion: sounds the same to a person, is a new input to the network."""
    return -wave


def load_clip(
    path: str | Path, sample_rate: int = SAMPLE_RATE, length: int = CLIP_SAMPLES
) -> torch.Tensor:
    """Read, stereo, resample, crop/pad and normalise one clip: float32 `[2, length]`."""
    return peak_normalise(fix_length(read_audio(path, sample_rate), length))
