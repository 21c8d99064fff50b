import pytest
import torch
from torch import nn

from helpers.core.config import CLASSES, CLIP_SAMPLES
from helpers.models import networks


def test_wave1d_cnn_is_the_2020_architecture():
    model = networks.Wave1DCNN(n_outputs=len(CLASSES))
    assert networks.count_parameters(model, (nn.Conv1d, nn.Linear)) == 81_166
    assert networks.count_parameters(model) == 81_650  # with batch-norm affine parameters
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (2, 64, 11), (64, 64, 9), (64, 64, 7), (64, 32, 5), (32, 16, 5), (16, 2, 5)]
    assert [p.kernel_size for p in model.modules() if isinstance(p, nn.MaxPool1d)] == [
        2, 2, 4, 4, 4, 4]
    assert model.head[0].p == 0.3


def test_wave1d_cnn_shapes_and_features():
    model = networks.Wave1DCNN(n_outputs=len(CLASSES)).eval()
    x = torch.randn(2, 2, CLIP_SAMPLES)
    assert model(x).shape == (2, 4)
    assert model.features(x).shape == (2, 254)


def test_mel_cnn_is_compact_and_cheap():
    from torch.utils.flop_counter import FlopCounterMode

    mel = networks.MelCNN(n_outputs=len(CLASSES)).eval()
    wave1d = networks.Wave1DCNN(n_outputs=len(CLASSES)).eval()
    assert networks.count_parameters(mel) <= 500_000
    x = torch.randn(1, 2, CLIP_SAMPLES)
    flops = {}
    for name, model in (("mel", mel), ("wave1d", wave1d)):
        with FlopCounterMode(display=False) as counter:
            out = model(x)
        flops[name] = counter.get_total_flops()
        assert out.shape == (1, 4)
    assert flops["wave1d"] >= 10 * flops["mel"]


def test_build_names_the_choices():
    assert isinstance(networks.build("mel", n_outputs=3), networks.MelCNN)
    with pytest.raises(ValueError, match="'ast', 'mel', 'musicnn', 'transfer', 'wave1d'"):
        networks.build("resnet", n_outputs=len(CLASSES))
