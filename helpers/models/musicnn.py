"""musicnn (Pons & Serra, 2019) in PyTorch: tagging CNNs trained on real music, used here as a
backbone that has heard instruments, not soundfonts.

The `musicnn` wheel (ISC licence, code and weights) ships TF1 checkpoints; they are read here
without TensorFlow (a tensor bundle is an SSTable index of `BundleEntryProto`s plus a file of
raw little-endian arrays), converted once to a PyTorch state dict and cached. The network and
its preprocessing reproduce the original graph (checked against its outputs in the tests):

    patches = log_mel_patches(waveform, sample_rate)      # (N, 187, 96), 3 s each
    out = load_musicnn("MTT_musicnn")(patches)             # taggram, penultimate, pool
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import soxr
import torch
import torchaudio
from torch import nn

from helpers.core.atomic import atomic_write
from helpers.models.backbone import BackboneUnavailable

NAMES: tuple[str, ...] = ("MTT_musicnn", "MSD_musicnn")
INSTALL = "pip install --no-deps musicnn==0.1.0"
# The checkpoint and layer chosen on the accuracy benchmark's validation timbre, Merlin (MTT
# penultimate 91.3%, MTT pool 88.4%, MSD pool 85.1%; benchmarks/results/accuracy.md).
DEFAULT_CHECKPOINT = "MTT_musicnn"
DEFAULT_LAYER = "penultimate"
SAMPLE_RATE = 16_000
N_FFT, HOP, N_MELS = 512, 256, 96
PATCH_FRAMES = 187  # 3 s, the length the models were trained on
EPS = 1e-3  # TF1 batch-norm epsilon (some moving variances are ~1e-27)
LAYERS: dict[str, int] = {"taggram": 50, "penultimate": 200, "pool": 1506}  # feature widths
FRONT_CHUNK = 1  # patches per front-end pass on a CPU (`Musicnn.forward`)
TF_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}


class MusicnnMissing(BackboneUnavailable):
    """The musicnn wheel (which holds the weights) is not installed."""


# --- reading a TF1 tensor bundle without TensorFlow -------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints as ints, the rest as bytes."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"protobuf wire type {wire} is not used by tensor bundles")
        out.append((field, value))
    return out


def _sstable_block(data: bytes, handle: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value entries of the SSTable block a (varint offset, varint size) handle points to."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if data[offset + size] != 0:
        raise ValueError("compressed SSTable blocks are not used by TF tensor bundles")
    block = data[offset:offset + size]
    restarts = int.from_bytes(block[-4:], "little")
    end, pos, key, entries = len(block) - 4 - 4 * restarts, 0, b"", []
    while pos < end:
        shared, pos = _varint(block, pos)
        own, pos = _varint(block, pos)
        size, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + own]
        pos += own
        entries.append((key, block[pos:pos + size]))
        pos += size
    return entries


def read_tensor_bundle(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a TF checkpoint `<prefix>.index` + `<prefix>.data-00000-of-00001`."""
    index = Path(f"{prefix}.index").read_bytes()
    data = Path(f"{prefix}.data-00000-of-00001").read_bytes()
    footer = index[-48:]
    _, pos = _varint(footer, 0)  # skip the metaindex handle (offset, size)
    _, pos = _varint(footer, pos)
    tensors = {}
    for _, handle in _sstable_block(index, footer[pos:]):
        for key, value in _sstable_block(index, handle):
            if not key:  # the bundle header
                continue
            entry = dict(_proto_fields(value))
            shape = [dict(_proto_fields(dim)).get(1, 0)
                     for field, dim in _proto_fields(entry.get(2, b"")) if field == 2]
            dtype = TF_DTYPES[entry.get(1, 1)]
            start, size = entry.get(4, 0), entry.get(5, 0)
            array = np.frombuffer(data[start:start + size], dtype=np.dtype(dtype).newbyteorder("<"))
            tensors[key.decode()] = array.reshape(shape).astype(dtype)
    return tensors


# --- the network ------------------------------------------------------------------------------

def _bn(channels: int, dims: int = 2) -> nn.Module:
    return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels, eps=EPS)


def _affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of a batch norm with its running statistics: `bn(x) = x*scale + shift`."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    return scale, bn.bias - bn.running_mean * scale


def _front(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """conv -> ReLU -> BN -> max over frequency of a padded input `(B, 1, T', F)`: `(B, C, T)`.
    With running statistics (eval mode) BN is a per-channel monotone affine map, so it goes
    after the max; where its scale is negative it wants the min, which is the max of the
    negated filter: one conv and one reduction, the same numbers as the literal order without
    three passes over the network's largest tensor."""
    if bn.training:
        return bn(conv(x).relu()).amax(dim=3)
    scale, shift = _affine(bn)
    sign = torch.where(scale >= 0, 1.0, -1.0).to(conv.weight.dtype)
    flipped = nn.functional.conv2d(x, conv.weight * sign.view(-1, 1, 1, 1), conv.bias * sign)
    peak = flipped.amax(dim=3) * sign.view(1, -1, 1)  # the max, or the min where scale < 0
    return peak.relu() * scale.view(1, -1, 1) + shift.view(1, -1, 1)


class Musicnn(nn.Module):
    """musicnn's graph: input batch norm; timbral (7x38, 7x67) and temporal (128, 64, 32 frames)
    front-end filters, each conv -> ReLU -> BN -> max over frequency; three residual mid-end
    convolutions; max and mean over time; two dense layers. `forward(patches (B, 187, 96))`
    returns `taggram` (B, 50), `penultimate` (B, 200) and `pool` (B, 753, 2: max, mean)."""

    TEMPORAL = (128, 64, 32)

    def __init__(self, n_tags: int = 50, timbral: int = 204, temporal: int = 51,
                 *, midend: int = 64, dense: int = 200) -> None:
        super().__init__()
        self.input_bn = _bn(1)
        self.timbral = nn.ModuleList(nn.Conv2d(1, timbral, (7, w)) for w in (38, 67))
        self.timbral_bn = nn.ModuleList(_bn(timbral) for _ in range(2))
        self.temporal = nn.ModuleList(nn.Conv2d(1, temporal, (k, 1)) for k in self.TEMPORAL)
        self.temporal_bn = nn.ModuleList(_bn(temporal) for _ in self.TEMPORAL)
        front = 2 * timbral + 3 * temporal
        self.midend = nn.ModuleList(nn.Conv1d(c, midend, 7) for c in (front, midend, midend))
        self.midend_bn = nn.ModuleList(_bn(midend, 1) for _ in range(3))
        self.n_pool = front + 3 * midend  # 753
        self.pool_bn = _bn(2 * self.n_pool, 1)
        self.dense = nn.Linear(2 * self.n_pool, dense)
        self.dense_bn = _bn(dense, 1)
        self.output = nn.Linear(dense, n_tags)
        self.dropout = nn.Dropout(0.5)

    def front_end(self, patches: torch.Tensor) -> torch.Tensor:
        """The five front-end branches, `(B, 561, T)`."""
        x = self.input_bn(patches.unsqueeze(1))  # (B, 1, T, F)
        padded = nn.functional.pad(x, (0, 0, 3, 3))
        branches = [_front(conv, bn, padded) for conv, bn in zip(self.timbral, self.timbral_bn)]
        for conv, bn, k in zip(self.temporal, self.temporal_bn, self.TEMPORAL):
            same = nn.functional.pad(x, (0, 0, (k - 1) // 2, k // 2))  # TF 'same': extra at end
            branches.append(_front(conv, bn, same))
        return torch.cat(branches, dim=1)

    def forward(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        # a front-end conv's output is ~9 MB a patch before its max over frequency: on a CPU,
        # one patch at a time stays in its cache (2.4x faster than a batch of 32 at once); a
        # GPU wants the whole batch in one launch
        chunk = FRONT_CHUNK if patches.device.type == "cpu" else max(1, len(patches))
        front = torch.cat([self.front_end(part) for part in patches.split(chunk)])
        features, h = [front], front
        for i, (conv, bn) in enumerate(zip(self.midend, self.midend_bn)):
            out = bn(conv(nn.functional.pad(h, (3, 3))).relu())
            h = out if i == 0 else out + h
            features.append(h)
        mid = torch.cat(features, dim=1)  # (B, 753, T)
        pool = torch.stack([mid.amax(dim=2), mid.mean(dim=2)], dim=2)  # (B, 753, 2)
        flat = self.dropout(self.pool_bn(pool.flatten(1)))
        penultimate = self.dense_bn(self.dense(flat).relu())
        logits = self.output(self.dropout(penultimate))
        return {"taggram": logits.sigmoid(), "penultimate": penultimate, "pool": pool}


def _tf_to_torch(tf: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The state dict of `Musicnn` from the TF variables (Adam slots skipped). TF1 numbers its
    layers in creation order: batch_normalization, conv2d, ..., dense, dense_1."""
    def bn(i: int, prefix: str) -> dict[str, np.ndarray]:
        name = "batch_normalization" + (f"_{i}" if i else "")
        return {f"{prefix}.weight": tf[f"{name}/gamma"], f"{prefix}.bias": tf[f"{name}/beta"],
                f"{prefix}.running_mean": tf[f"{name}/moving_mean"],
                f"{prefix}.running_var": tf[f"{name}/moving_variance"]}

    def conv(i: int) -> tuple[np.ndarray, np.ndarray]:
        name = "conv2d" + (f"_{i}" if i else "")
        return tf[f"{name}/kernel"], tf[f"{name}/bias"]

    state = bn(0, "input_bn")
    for i, prefix in enumerate(["timbral.0", "timbral.1", "temporal.0", "temporal.1",
                                "temporal.2"]):
        kernel, bias = conv(i)
        state[f"{prefix}.weight"] = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        state[f"{prefix}.bias"] = bias
        kind, j = prefix.split(".")
        state.update(bn(i + 1, f"{kind}_bn.{j}"))
    for j in range(3):
        kernel, bias = conv(5 + j)  # (7, width, 1, 64) -> Conv1d (64, width, 7)
        state[f"midend.{j}.weight"] = kernel[:, :, 0, :].transpose(2, 1, 0)
        state[f"midend.{j}.bias"] = bias
        state.update(bn(6 + j, f"midend_bn.{j}"))
    state.update(bn(9, "pool_bn"))
    state.update({"dense.weight": tf["dense/kernel"].T, "dense.bias": tf["dense/bias"]})
    state.update(bn(10, "dense_bn"))
    state.update({"output.weight": tf["dense_1/kernel"].T, "output.bias": tf["dense_1/bias"]})
    out = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
    out.update({k.replace("running_mean", "num_batches_tracked"): torch.tensor(0)
                for k in state if k.endswith("running_mean")})
    return out


def wheel_dir(name: str) -> Path:
    """The folder of checkpoint `name` inside the installed musicnn wheel."""
    if name not in NAMES:
        raise ValueError(f"unknown musicnn model {name!r}; choose one of {NAMES}")
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise MusicnnMissing(f"the musicnn wheel (its weights) is not installed: {INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations))) / name
    if not (folder / ".index").is_file():
        raise MusicnnMissing(f"{folder}: no checkpoint in the musicnn wheel; reinstall it: "
                             f"{INSTALL} --force-reinstall")
    return folder


def cache_dir() -> Path:
    """Where converted weights are kept: `$IRMAS_CACHE`, else the user's cache folder."""
    if os.environ.get("IRMAS_CACHE"):
        return Path(os.environ["IRMAS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "irmas-instruments"


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names and bytes: what a frozen head's checkpoint binds."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def converted_state(name: str = "MTT_musicnn") -> tuple[dict[str, torch.Tensor], str]:
    """The PyTorch weights of checkpoint `name` and their digest, converted from the wheel once
    and cached (atomically) under `cache_dir()`; reconverted when the wheel's files change."""
    folder = wheel_dir(name)
    source = hashlib.sha256((folder / ".index").read_bytes()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{source}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if state_digest(stored["state_dict"]) == stored["sha256"]:
                return stored["state_dict"], stored["sha256"]
        except Exception:  # damaged in any way: it is only a cache, convert again
            pass
    state = _tf_to_torch(read_tensor_bundle(f"{folder}{os.sep}"))  # files ".index", ".data-…"
    digest = state_digest(state)
    atomic_write(path, lambda tmp: torch.save({"state_dict": state, "sha256": digest}, tmp))
    print(f"musicnn: converted {name} from {folder} to {path}", flush=True)
    return state, digest


def load_musicnn(name: str = "MTT_musicnn") -> Musicnn:
    """musicnn checkpoint `name` (`MTT_musicnn` or `MSD_musicnn`) in eval mode."""
    model = Musicnn()
    model.load_state_dict(converted_state(name)[0])
    return model.eval()


# --- preprocessing ----------------------------------------------------------------------------

_MEL = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS,
                                             SAMPLE_RATE, norm="slaney", mel_scale="slaney")


def to_16k_mono(waveform: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
    """Mean of channels, resampled to 16 kHz as librosa.load does (soxr HQ, length
    ceil(n x ratio)). `waveform` is `(samples,)`, `(channels, samples)` or a batch
    `(B, channels, samples)`; the result `(samples',)` or `(B, samples')` float32."""
    x = torch.as_tensor(waveform).detach().float().cpu()
    if x.ndim > 1:
        x = x.mean(dim=-2)
    if x.shape[-1] == 0:
        raise ValueError("an empty waveform has no spectrogram")
    if sample_rate == SAMPLE_RATE:
        return x
    n = math.ceil(x.shape[-1] * SAMPLE_RATE / sample_rate)
    y = soxr.resample(x.numpy().T, sample_rate, SAMPLE_RATE, quality="HQ")
    y = torch.from_numpy(np.ascontiguousarray(y.T, dtype=np.float32))
    return nn.functional.pad(y, (0, max(0, n - y.shape[-1])))[..., :n]


def log_mel(mono16k: torch.Tensor) -> torch.Tensor:
    """musicnn's spectrogram `(..., frames, 96)` of 16 kHz audio `(..., samples)`: mel power
    (n_fft 512, hop 256, Slaney, centred with zeros), kept as float16 as the models were trained,
    then log10(1 + 10000 x) in float32."""
    spec = torch.stft(mono16k, N_FFT, HOP, window=torch.hann_window(N_FFT, device=mono16k.device),
                      center=True, pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()
    mel = (power.transpose(-1, -2) @ _MEL.to(power.device)).half().float()
    return torch.log10(1 + 10000 * mel)


def patches_of(spec: torch.Tensor, hop_frames: int = PATCH_FRAMES) -> torch.Tensor:
    """3 s patches `(N, 187, 96)` every `hop_frames` of a spectrogram `(frames, 96)`; a shorter
    one is repeated until it fills one patch (musicnn's "repeat-pad")."""
    if spec.shape[0] < PATCH_FRAMES:
        spec = spec.repeat(math.ceil(PATCH_FRAMES / spec.shape[0]), 1)
    return spec.unfold(0, PATCH_FRAMES, hop_frames).transpose(1, 2).contiguous()


def log_mel_patches(waveform: torch.Tensor | np.ndarray, sample_rate: int,
                    hop_frames: int = PATCH_FRAMES) -> torch.Tensor:
    """musicnn's input from any waveform `(samples,)` or `(channels, samples)` at any rate:
    3 s log-mel patches `(N, 187, 96)`, one every `hop_frames` frames."""
    return patches_of(log_mel(to_16k_mono(waveform, sample_rate)), hop_frames)
