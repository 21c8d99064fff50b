"""Each augmentation's contract on real tensors: shapes, labels, levels, determinism, silence."""

import math

import numpy as np
import pytest
import torch

from helpers.core.config import CLASSES, TrainingConfig
from helpers.data import augment
from helpers.models import networks

T = 4_410  # 0.1 s: the contracts do not depend on the clip length


def _sines(freqs: list[float]) -> torch.Tensor:
    """Stereo sines of peak 1, one per clip: orthogonal enough to tell the clips apart."""
    t = torch.arange(T) / 44_100
    waves = torch.stack([torch.sin(2 * math.pi * f * t) for f in freqs])
    waves = 0.5 * waves / waves.abs().amax(dim=1, keepdim=True)  # peak 0.5, as cached clips
    return waves.unsqueeze(1).repeat(1, 2, 1)


def test_mix_under_adds_one_quieter_clip_of_another_instrument_and_keeps_the_label():
    freqs = [220.0, 330.0, 440.0, 550.0, 660.0, 770.0, 880.0, 990.0]
    x, y = _sines(freqs), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    torch.manual_seed(3)
    out = augment.mix_under(x, y, chance=1.0, db_range=(-20.0, -6.0))
    assert out.shape == x.shape and torch.isfinite(out).all()
    basis = x[:, 0].T.numpy()  # [T, clips]
    mixed = 0
    for i in range(len(x)):
        coef, *_ = np.linalg.lstsq(basis, out[i, 0].numpy(), rcond=None)
        others = [j for j in range(len(x)) if j != i and abs(coef[j]) > 1e-3]
        assert abs(out[i].abs().max() - 0.5) < 1e-5, "peak-normalised again, as every clip"
        if others:  # the drawn partner was of another class: it plays underneath
            (j,) = others
            assert y[j] != y[i]
            db = 20 * np.log10(coef[j] / coef[i])
            assert -20.01 <= db <= -5.99
            mixed += 1
        else:  # partner of the same class: the clip is left alone
            assert torch.allclose(out[i], x[i], atol=1e-5)
    assert mixed >= 4


def test_mix_under_leaves_a_one_instrument_batch_alone_and_chance_zero_changes_nothing():
    x = _sines([220.0, 330.0, 440.0, 550.0])
    assert torch.allclose(augment.mix_under(x, torch.zeros(4, dtype=torch.long), 1.0,
                                            db_range=(-20.0, -6.0)), x, atol=1e-6)
    assert torch.allclose(augment.mix_under(x, torch.arange(4), 0.0, db_range=(-20.0, -6.0)), x,
                          atol=1e-6)


def test_mixup_mixes_targets_as_it_mixes_clips():
    x, y = _sines([220.0, 330.0, 440.0, 550.0]), torch.eye(4)
    torch.manual_seed(0)
    out, targets = augment.mixup(x, y, alpha=0.4)
    assert out.shape == x.shape and targets.shape == (4, 4)
    assert torch.allclose(targets.sum(1), torch.ones(4))
    assert ((targets >= 0) & (targets <= 1)).all()
    for i in range(4):  # the clip is the targets' mixture of the clips (before renormalising)
        mix = (targets[i].view(4, 1) * x[:, 0]).sum(0)
        assert torch.allclose(out[i, 0], 0.5 * mix / mix.abs().max(), atol=1e-4)


def test_mixup_of_class_numbers_gives_one_hot_rows_mixed():
    config = TrainingConfig(mixup=0.4, mix_under=0.0)
    torch.manual_seed(1)
    _, targets = augment.augment_waves(_sines([220.0, 330.0, 440.0]), torch.tensor([0, 1, 3]),
                                       config, n_classes=5)
    assert targets.shape == (3, 5) and torch.allclose(targets.sum(1), torch.ones(3))
    assert targets[:, 2].eq(0).all() and targets[:, 4].eq(0).all(), "no class that was absent"


def test_shift_rotates_each_clip_and_gain_scales_it_within_its_range():
    x = torch.randn(6, 2, T)
    torch.manual_seed(2)
    shifted = augment.shift(x)
    for i in range(6):
        offsets = [k for k in range(T) if torch.equal(torch.roll(x[i], -k, dims=1), shifted[i])]
        assert len(offsets) == 1
    louder = augment.gain(x, max_db=6.0)
    ratio = (louder / x).flatten(1)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4), "one gain per clip"
    db = 20 * torch.log10(ratio[:, 0])
    assert (db.abs() <= 6.0 + 1e-4).all() and db.std() > 0


def test_same_seed_same_augmentation_other_seed_other():
    config = TrainingConfig()
    x, y = torch.randn(8, 2, T), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])

    def run(seed):
        torch.manual_seed(seed)
        return augment.augment_waves(x, y, config, n_classes=4)

    (a, ya), (b, yb), (c, _) = run(5), run(5), run(6)
    assert torch.equal(a, b) and torch.equal(ya, yb) and torch.equal(ya, y)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("knobs", [{}, {"mix_under": 0.0, "mixup": 0.4}])
def test_a_silent_batch_stays_finite_through_every_augmentation_and_the_model(knobs):
    config = TrainingConfig.of(**knobs)
    silent = torch.zeros(4, 2, 44_100)
    torch.manual_seed(0)
    x, y = augment.augment_waves(silent, torch.tensor([0, 1, 2, 3]), config, n_classes=4)
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    model = networks.MelCNN(n_mels=32, widths=(8, 16, 16, 32), n_outputs=len(CLASSES))
    model.augment = augment.spectrogram_augment(config)
    model.train()
    assert torch.isfinite(model(x)).all()


def test_spectrogram_augment_acts_in_training_only_and_eq_is_constant_over_time():
    spec = torch.randn(3, 1, 32, 50) * 10 - 40
    eq = augment.SpectrogramAugment(eq_db=6.0, masks=False)
    eq.eval()
    assert torch.equal(eq(spec), spec), "evaluation and prediction are never augmented"
    eq.train()
    torch.manual_seed(0)
    delta = eq(spec) - spec
    assert torch.allclose(delta, delta[..., :1].expand_as(delta), atol=1e-4), "a filter, in dB"
    assert delta.abs().max() <= 6.0 * 1.5 + 1e-4 and delta.abs().max() > 0.1
    assert not torch.allclose(delta[0], delta[1]), "each clip its own EQ"
    masks = augment.SpectrogramAugment(masks=True).train()
    masked = masks(spec)
    floor = spec.amin(dim=(2, 3), keepdim=True)
    changed = ~torch.isclose(masked, spec, atol=1e-4)
    assert changed.any() and torch.allclose(masked[changed], floor.expand_as(spec)[changed])


def test_off_switches_give_no_augmentation_at_all():
    config = TrainingConfig.plain()
    assert augment.waves_for(config, 4) is None
    assert isinstance(augment.spectrogram_augment(config), torch.nn.Identity)


@pytest.mark.parametrize("knobs, message", [
    ({"optimizer": "sgd"}, "optimizer='sgd'"),
    ({"schedule": "step"}, "schedule='step'"),
    ({"mix_under": 1.5}, "probability"),
    ({"mix_under": 0.5, "mixup": 0.4}, "switch one off"),
])
def test_bad_recipe_settings_are_refused_with_the_fix(knobs, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**knobs)
