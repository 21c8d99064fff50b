"""Read any audio file into what the models hear: stereo, 44.1 kHz, DC removed, in [-0.5, 0.5].

This is the one place that decides what a model hears from a file, for training clips and for
`irmas-predict` alike: every channel is read (surround folded to stereo as ITU-R BS.775 does),
a 20 Hz high-pass removes DC and rumble, and a window whose channels cancel (antiphase) gets one
channel flipped. soundfile reads (torchaudio.load needs torchcodec), soxr resamples, block by
block, a block bounded in bytes whatever the channel count. Every failure raises `AudioError`
naming the file, so a data set build can skip it and report it.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from scipy import signal

from helpers.core.config import CHANNELS, CLIP_SAMPLES, SAMPLE_RATE

BLOCK_SECONDS = 10.0
BLOCK_BYTES = 16 * 2**20  # of decoded float32 per block: 1,024 channels cost what 2 do
MIN_RATE = 1_000  # Hz; below it a file is not audio a model can hear (telephones use 8,000)
HIGHPASS_HZ = 20.0  # DC and subsonic rumble: nothing a listener hears, all a model would
ANTIPHASE_DB = 20.0  # a window whose mid is this far below its side cancels in mono
# Streaming writers (sox to a pipe, recorders killed mid-file) leave a WAV's sizes unset.
WAV_SIZE_PLACEHOLDERS = (0, 0xFFFFFFFF, 0x7FFFF000, 0x7FFFFFFF)

_M3 = 10 ** (-3 / 20)  # BS.775: centre and surrounds join the front pair at -3 dB
_L, _R, _C, _S = (1.0, 0.0), (0.0, 1.0), (_M3, _M3), (0.0, 0.0)  # _S: dropped (LFE)
_LS, _RS = (_M3, 0.0), (0.0, _M3)
# Weights [channels, 2] per channel count, in WAV/FLAC order (FL FR FC LFE BL BR SL SR).
DOWNMIX = {
    3: (_L, _R, _C),
    4: (_L, _R, _LS, _RS),
    5: (_L, _R, _C, _LS, _RS),
    6: (_L, _R, _C, _S, _LS, _RS),
    7: (_L, _R, _C, _S, _C, _LS, _RS),  # 6.1: the back centre like the centre
    8: (_L, _R, _C, _S, _LS, _RS, _LS, _RS),
}
# Ogg Vorbis and Opus order the same channels differently (FL FC FR ...): into WAV order.
VORBIS_ORDER = {3: (0, 2, 1), 5: (0, 2, 1, 3, 4), 6: (0, 2, 1, 5, 3, 4),
                7: (0, 2, 1, 6, 5, 3, 4), 8: (0, 2, 1, 7, 5, 6, 3, 4)}


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and why."""


def fold_channels(data: np.ndarray, vorbis_order: bool = False) -> np.ndarray:
    """`[N, C]` -> `[N, 2]`: stereo as it is, mono duplicated, 3 to 8 channels (3.0 ... 7.1)
    downmixed as ITU-R BS.775 does (LFE dropped), any other count averaged into both sides."""
    channels = data.shape[1]
    if channels == CHANNELS:
        return data
    if channels == 1:
        return np.repeat(data, CHANNELS, axis=1)
    if channels in DOWNMIX:
        if vorbis_order:
            data = data[:, VORBIS_ORDER[channels]]
        return (data @ np.asarray(DOWNMIX[channels], dtype=data.dtype)).astype(data.dtype)
    return np.repeat(data.mean(axis=1, keepdims=True), CHANNELS, axis=1)


def unflip(wave: torch.Tensor) -> torch.Tensor:
    """`[..., 2, n]` windows: one whose mid (L+R) is more than `ANTIPHASE_DB` below its side
    (L-R) has its right channel flipped, so the channel mean the models take does not cancel;
    any other stereo is returned exactly as it is."""
    mid = (wave[..., 0, :] + wave[..., 1, :]).square().mean(-1)
    side = (wave[..., 0, :] - wave[..., 1, :]).square().mean(-1)
    antiphase = (side > 0) & (mid < side * 10 ** (-ANTIPHASE_DB / 10))
    if not antiphase.any():
        return wave
    sign = torch.stack([torch.ones_like(side), torch.where(antiphase, -1.0, 1.0)], dim=-1)
    return wave * sign.unsqueeze(-1)


class _HighPass:
    """A 20 Hz Butterworth high-pass carried across blocks (no seam between them), started
    in the steady state of the first block's mean, so a DC offset leaves no step response
    (and a click on the first sample is not mistaken for one)."""

    def __init__(self, sample_rate: int) -> None:
        self.sos = signal.butter(2, HIGHPASS_HZ, "highpass", fs=sample_rate, output="sos")
        self.state: np.ndarray | None = None

    def __call__(self, data: np.ndarray) -> np.ndarray:
        if not len(data):
            return data
        if self.state is None:
            self.state = signal.sosfilt_zi(self.sos)[:, :, None] * data.mean(axis=0)[None, None, :]
        out, self.state = signal.sosfilt(self.sos, data, axis=0, zi=self.state)
        return out.astype(np.float32)


def _regular_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it: a FIFO would block forever and a
    pipe or device has no length to check; they can come in on standard input (`-`)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise AudioError(f"{path}: cannot be read as audio ({err.strerror})") from err
    if stat.S_ISDIR(mode):
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not stat.S_ISREG(mode):
        raise AudioError(f"{path}: is a pipe or device, not a file; pass a stream on standard "
                         "input instead: `... | irmas-predict --checkpoint CK -`")


def _wav_header(path: Path) -> tuple[int | None, bool, tuple[int, bytes] | None]:
    """What a WAV's header promises: (frames its data chunk declares, whether its sizes are
    streaming placeholders, a (offset, bytes) patch giving a data size of 0 the file's real
    length); (None, False, None) for other formats or a header that cannot be walked."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None, False, None
    placeholder = int.from_bytes(head[4:8], "little") in WAV_SIZE_PLACEHOLDERS
    offset, block_align = 12, None
    while offset + 8 <= len(head):
        chunk = head[offset:offset + 4]
        size = int.from_bytes(head[offset + 4:offset + 8], "little")
        if chunk == b"fmt " and offset + 22 <= len(head):
            block_align = int.from_bytes(head[offset + 20:offset + 22], "little")
        if chunk == b"data":
            if placeholder or size in WAV_SIZE_PLACEHOLDERS or not block_align:
                rest = path.stat().st_size - offset - 8
                patch = (offset + 4, rest.to_bytes(4, "little")) if size == 0 else None
                return None, True, patch
            return size // block_align, False, None
        offset += 8 + size + (size & 1)
    return None, placeholder, None


class _PatchedFile(io.RawIOBase):
    """A file read through a window that shows other bytes at one offset (a header field)."""

    def __init__(self, path: Path, offset: int, data: bytes) -> None:
        self.file = open(path, "rb")  # noqa: SIM115 (closed by close(), as a file is)
        self.offset, self.data = offset, data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, position: int, whence: int = 0) -> int:
        return self.file.seek(position, whence)

    def tell(self) -> int:
        return self.file.tell()

    def readinto(self, buffer) -> int:
        start = self.file.tell()
        n = self.file.readinto(buffer)
        low, high = max(start, self.offset), min(start + n, self.offset + len(self.data))
        if low < high:
            buffer[low - start:high - start] = self.data[low - self.offset:high - self.offset]
        return n

    def close(self) -> None:
        self.file.close()
        super().close()


def _reason(err: Exception) -> str:
    """libsndfile's reason without its repeat of the file name."""
    return getattr(err, "error_string", None) or str(err)


def _is_ogg(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"OggS"


def _ogg_ends_cleanly(path: Path) -> bool:
    """Whether an Ogg stream's last page carries the end-of-stream flag (a cut file's last page
    does not)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - (1 << 16)))
        tail = f.read()
    last = tail.rfind(b"OggS")
    return last >= 0 and last + 5 < len(tail) and bool(tail[last + 5] & 0x04)


class AudioStream:
    """A file's audio as float32 `[2, n]` blocks at `sample_rate` (channels folded to stereo,
    high-passed), decoded and resampled a block at a time (soxr, a polyphase resampler with a
    bounded kernel), so memory is one block whatever the file's length or channel count.
    Opening checks the header; iterating checks every block. After iterating,
    `decoded_seconds` says how much decoded and `cut` whether the file promised more
    (`declared_seconds`: what its header or container promised, None when it does not say)."""

    def __init__(self, path: str | Path, sample_rate: int = SAMPLE_RATE,
                 block_seconds: float = BLOCK_SECONDS) -> None:
        self.path, self.sample_rate = Path(path), sample_rate
        _regular_file(self.path)
        declared, self.length_unrecorded, self._patch = _wav_header(self.path)
        try:
            with self._open() as f:
                self.source_rate, frames, self.channels = f.samplerate, f.frames, f.channels
                self.vorbis_order = f.format == "OGG"
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            if _is_ogg(self.path) and not _ogg_ends_cleanly(self.path):
                raise AudioError(f"{self.path}: cut off (its Ogg stream ends without the last "
                                 "page) where the decoder cannot start; download or copy it "
                                 "again") from err
            raise AudioError(f"{self.path}: cannot be read as audio ({_reason(err)})") from err
        if frames <= 0:
            raise AudioError(f"{self.path}: holds no samples (empty or cut off after the header)")
        if self.source_rate < MIN_RATE:
            raise AudioError(f"{self.path}: its sample rate is {self.source_rate} Hz, under "
                             f"{MIN_RATE:,} Hz: not audio a model can hear")
        self.declared_seconds: float | None = (
            None if self.length_unrecorded or (declared is None and self.vorbis_order)
            else (declared or frames) / self.source_rate)
        self.ends_cleanly = not self.vorbis_order or _ogg_ends_cleanly(self.path)
        self.decoded_seconds = 0.0
        self.block = max(1, min(int(block_seconds * self.source_rate),
                                BLOCK_BYTES // (4 * self.channels)))

    def __iter__(self) -> Iterator[torch.Tensor]:
        resampler = (soxr.ResampleStream(self.source_rate, self.sample_rate, CHANNELS,
                                         dtype="float32")
                     if self.source_rate != self.sample_rate else None)
        highpass, decoded = _HighPass(self.sample_rate), 0
        try:
            with self._open() as f:
                while True:
                    data = f.read(self.block, dtype="float32", always_2d=True)
                    last = len(data) < self.block
                    decoded += len(data)
                    if not np.isfinite(data).all():
                        raise AudioError(f"{self.path}: holds NaN or infinite samples")
                    data = fold_channels(data, self.vorbis_order)
                    if resampler is not None:
                        data = resampler.resample_chunk(data, last=last)
                    if len(data):
                        yield torch.from_numpy(np.ascontiguousarray(highpass(data).T))
                    if last:
                        break
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            raise AudioError(f"{self.path}: cannot be read as audio ({_reason(err)})") from err
        finally:
            self.decoded_seconds = decoded / self.source_rate
        if decoded == 0:
            raise AudioError(f"{self.path}: holds no samples (empty or cut off after the header)")

    def _open(self) -> sf.SoundFile:
        """The file by its bytes name (any name the file system holds), or through a view
        that fills in the data size a streaming writer left as 0 (libsndfile reads none)."""
        if self._patch is None:
            return sf.SoundFile(os.fsencode(self.path))
        return sf.SoundFile(_PatchedFile(self.path, *self._patch))

    @property
    def cut(self) -> bool:
        """True when the file promised more than decoded: a WAV whose data chunk declares more,
        a compressed file whose header does, an Ogg stream without its end page."""
        short = (self.declared_seconds is not None
                 and self.decoded_seconds < self.declared_seconds - 0.01)
        return short or not self.ends_cleanly


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Decode a whole file to float32 `[2, N]` at `sample_rate`; a cut file is refused (a
    training clip or test excerpt must be what its label describes; `irmas-predict` streams
    with `AudioStream` and reports the cut instead)."""
    stream = AudioStream(path, sample_rate)
    wave = torch.cat(list(stream), dim=1)
    if stream.cut:
        raise AudioError(f"{path}: truncated, decoded {stream.decoded_seconds:.2f} s of "
                         f"{_promised(stream)}; download or copy it again")
    return wave


def _promised(stream: AudioStream) -> str:
    return (f"{stream.declared_seconds:.2f} s" if stream.declared_seconds is not None
            else "a longer stream")


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


def load_clip(
    path: str | Path, sample_rate: int = SAMPLE_RATE, length: int = CLIP_SAMPLES
) -> torch.Tensor:
    """Read, stereo, resample, crop/pad and normalise one clip: float32 `[2, length]`."""
    return peak_normalise(unflip(fix_length(read_audio(path, sample_rate), length)))
