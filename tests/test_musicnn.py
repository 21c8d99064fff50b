"""The PyTorch port of musicnn against the original TensorFlow graph and librosa's
preprocessing (`tests/fixtures/musicnn/reference.npz`, made by `make_reference.py` beside it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers.models import musicnn

FIXTURES = Path(__file__).parent / "fixtures" / "musicnn"
REF = np.load(FIXTURES / "reference.npz")
NAMES = [str(n) for n in REF["names"]]


@pytest.fixture(scope="module", params=musicnn.NAMES)
def model_and_name(request):
    return musicnn.load_musicnn(request.param), request.param


def test_port_reproduces_the_tensorflow_graph(model_and_name):
    model, name = model_and_name
    with torch.no_grad():
        out = model(torch.from_numpy(REF["patches"]))
    assert out["taggram"].shape == (len(NAMES), 50)
    assert out["penultimate"].shape == (len(NAMES), 200)
    assert out["pool"].shape == (len(NAMES), 753, 2)
    for key in ("taggram", "penultimate"):
        np.testing.assert_allclose(out[key].numpy(), REF[f"{name}/{key}"], rtol=0, atol=1e-4)
    # the pool reaches ~80: float32 rounding of the sums (TF's own is 7e-5 from float64)
    np.testing.assert_allclose(out["pool"].numpy(), REF[f"{name}/pool"], rtol=1e-5, atol=1e-4)
    assert torch.isfinite(out["pool"][NAMES.index("silence")]).all()


def test_fast_front_end_equals_relu_bn_max():
    """Eval mode applies BN after the max over frequency, and takes the min of a channel whose
    scale is negative as the max of its negated filter; the literal order gives the same, and
    training mode runs the literal order."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 6, (3, 4))
    bn = torch.nn.BatchNorm2d(6, eps=1e-3).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -2.0, 0.3, -0.1, 0.0, 1.0]))
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(1e-27, 2.0)
    x = torch.randn(3, 1, 22, 12)
    with torch.no_grad():
        literal = bn(conv(x).relu()).amax(dim=3)
        torch.testing.assert_close(musicnn._front(conv, bn, x), literal, rtol=1e-6, atol=1e-6)
        bn.train()
        torch.testing.assert_close(musicnn._front(conv, bn, x), bn(conv(x).relu()).amax(dim=3))


def test_one_patch_at_a_time_is_the_batch_at_once():
    model = musicnn.load_musicnn()
    patches = torch.from_numpy(REF["patches"])
    with torch.no_grad():
        whole = model.front_end(patches)
        chunked = model(patches)
    assert chunked["pool"].shape[0] == whole.shape[0]
    torch.testing.assert_close(chunked["pool"][:, :whole.shape[1], 0], whole.amax(dim=2))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "silence"])
def test_log_mel_patches_match_librosa(name):
    audio, rate = sf.read(FIXTURES / f"{name}.wav", dtype="float32")  # 22.05 kHz stereo
    assert rate != musicnn.SAMPLE_RATE and audio.ndim == 2
    patches = musicnn.log_mel_patches(audio.T, rate)
    assert patches.shape == (1, 187, 96)
    diff = np.abs(patches[0].numpy() - REF["patches"][NAMES.index(name)])
    # float32 FFT sums round differently; where that crosses a float16 step the log moves by
    # one step (< 5e-4); everything else agrees to 1e-5
    assert diff.max() < 5e-4
    assert (diff > 1e-5).mean() < 0.01


def test_short_clip_is_repeat_padded():
    audio, rate = sf.read(FIXTURES / "short.wav", dtype="float32")
    spec = musicnn.log_mel(musicnn.to_16k_mono(audio.T, rate))
    assert np.abs(spec.numpy() - REF["short"]).max() < 5e-4
    patches = musicnn.patches_of(spec)
    n = len(spec)
    assert patches.shape == (1, 187, 96) and n < 187
    torch.testing.assert_close(patches[0, n:2 * n], spec)
    mono = musicnn.log_mel_patches(audio[:, 0], rate)
    assert mono.shape == (1, 187, 96)


def test_any_rate_and_hop():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal((2, 48_000 * 10)).astype(np.float32) * 0.1  # 10 s at 48 kHz
    patches = musicnn.log_mel_patches(wave, 48_000, hop_frames=93)
    frames = 1 + 160_000 // 256
    assert patches.shape == (1 + (frames - 187) // 93, 187, 96)
    assert torch.isfinite(patches).all()
    with pytest.raises(ValueError, match="empty"):
        musicnn.log_mel_patches(np.zeros((2, 0), np.float32), 44_100)


def test_silence_gives_finite_features():
    silent = musicnn.log_mel_patches(np.zeros(100, np.float32), 44_100)
    assert silent.abs().max() == 0
    with torch.no_grad():
        out = musicnn.load_musicnn()(silent)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_weights_are_converted_once_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("IRMAS_CACHE", str(tmp_path))
    state, digest = musicnn.converted_state("MTT_musicnn")
    files = list(tmp_path.glob("MTT_musicnn-*.pt"))
    assert len(files) == 1
    assert musicnn.state_digest(state) == digest
    tensors = musicnn.read_tensor_bundle(f"{musicnn.wheel_dir('MTT_musicnn')}/")
    assert not any("Adam" in k for k in state)
    assert any("Adam" in k for k in tensors)  # the bundle holds optimiser slots, skipped
    np.testing.assert_array_equal(state["dense.weight"].numpy(), tensors["dense/kernel"].T)
    files[0].write_bytes(b"not a checkpoint")
    again, digest_again = musicnn.converted_state("MTT_musicnn")
    assert digest_again == digest
    assert torch.load(files[0], weights_only=True)["sha256"] == digest


def test_missing_wheel_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "musicnn" else real(name, *a))
    with pytest.raises(musicnn.MusicnnMissing, match="pip install --no-deps musicnn==0.1.0"):
        musicnn.load_musicnn()
    with pytest.raises(ValueError, match="MSD_musicnn"):
        musicnn.wheel_dir("MTT_vgg")
