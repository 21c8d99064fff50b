"""Read any audio file into the model's format: stereo, 44.1 kHz, 132,299 samples, in [-0.5, 0.5].

soundfile reads (torchaudio.load needs torchcodec), soxr resamples, block by block. Every
failure raises `AudioError` naming the file, so a data set build can skip it and report it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from helpers.config import CHANNELS, CLIP_SAMPLES, SAMPLE_RATE

BLOCK_SECONDS = 10.0


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and why."""


class AudioStream:
    """A file's audio as float32 `[2, n]` blocks at `sample_rate`, decoded and resampled a
    block at a time (soxr, a polyphase resampler with a bounded kernel, for any rate), so
    memory is one block whatever the file's length. Opening checks the header; iterating
    checks every block. After iterating, `decoded_seconds` says how much decoded, which can be
    less than `declared_seconds` for a cut-off compressed file."""

    def __init__(self, path: str | Path, sample_rate: int = SAMPLE_RATE,
                 block_seconds: float = BLOCK_SECONDS) -> None:
        self.path, self.sample_rate = Path(path), sample_rate
        _check_riff_complete(self.path)
        try:
            with sf.SoundFile(str(self.path)) as f:
                self.source_rate, frames = f.samplerate, f.frames
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            raise AudioError(f"{self.path}: cannot be read as audio ({err})") from err
        if frames <= 0:
            raise AudioError(f"{self.path}: holds no samples (empty or cut off after the header)")
        self.declared_seconds = frames / self.source_rate
        self.decoded_seconds = 0.0
        self.block = max(1, int(block_seconds * self.source_rate))

    def __iter__(self) -> Iterator[torch.Tensor]:
        resampler = (soxr.ResampleStream(self.source_rate, self.sample_rate, CHANNELS,
                                         dtype="float32")
                     if self.source_rate != self.sample_rate else None)
        decoded = 0
        try:
            with sf.SoundFile(str(self.path)) as f:
                while True:
                    data = f.read(self.block, dtype="float32", always_2d=True)
                    last = len(data) < self.block
                    decoded += len(data)
                    if not np.isfinite(data).all():
                        raise AudioError(f"{self.path}: holds NaN or infinite samples")
                    data = _stereo(data)
                    if resampler is not None:
                        data = resampler.resample_chunk(data, last=last)
                    if len(data):
                        yield torch.from_numpy(np.ascontiguousarray(data.T))
                    if last:
                        break
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            raise AudioError(f"{self.path}: cannot be read as audio ({err})") from err
        finally:
            self.decoded_seconds = decoded / self.source_rate
        if decoded == 0:
            raise AudioError(f"{self.path}: holds no samples (empty or cut off after the header)")

    @property
    def cut_short(self) -> bool:
        """True when less decoded than the header declares (a cut-off compressed file)."""
        return self.decoded_seconds < self.declared_seconds - 0.01


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Decode a whole file to float32 `[2, N]` at `sample_rate` (mono is duplicated)."""
    return torch.cat(list(AudioStream(path, sample_rate)), dim=1)


def _stereo(data: np.ndarray) -> np.ndarray:
    """`[N, C]` -> `[N, 2]`: mono is duplicated, more than two channels keep the first two."""
    return np.repeat(data, CHANNELS, axis=1) if data.shape[1] == 1 else data[:, :CHANNELS]


def _check_riff_complete(path: Path) -> None:
    """libsndfile silently reads a cut-off WAV; its RIFF header tells how long it should be.
    Streaming writers leave the size as 0 or 0xFFFFFFFF (unknown): then libsndfile decides."""
    try:
        with open(path, "rb") as f:
            header = f.read(8)
    except OSError as err:
        raise AudioError(f"{path}: cannot be read as audio ({err})") from err
    if header[:4] == b"RIFF":
        size = int.from_bytes(header[4:8], "little")
        expected, actual = size + 8, path.stat().st_size
        if size not in (0, 0xFFFFFFFF) and actual < expected:
            raise AudioError(
                f"{path}: truncated, {actual} of {expected} bytes; download or copy it again"
            )


def fix_length(wave: torch.Tensor, length: int = CLIP_SAMPLES) -> torch.Tensor:
    """Crop to the first `length` samples or pad the end with silence."""
    n = wave.shape[-1]
    if n >= length:
        return wave[..., :length]
    return torch.nn.functional.pad(wave, (0, length - n))


def peak_normalise(wave: torch.Tensor) -> torch.Tensor:
    """Scale into [-0.5, 0.5] (divide by 2·max|x|, as the 2020 project did); silence stays
    silence."""
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
