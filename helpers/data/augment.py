"""Training-time augmentation on whole batches, on the training device: no per-clip Python
loop, no file reads. Draws come from torch's generator, which `training.fit` seeds from the
random seed and the epoch, so a resumed run augments as an uninterrupted one did.

Waveform parts (`augment_waves`) act on peak-normalised stereo clips `[B, 2, T]`; spectrogram
parts (`SpectrogramAugment`) sit inside `MelCNN` between its log-mel front end and its network
and are active in training mode only. Which parts run is read from a `TrainingConfig`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torchaudio
from torch import nn

from helpers.core.config import TrainingConfig
from helpers.data.audio import peak_normalise


def _uniform(shape: tuple[int, ...], low: float, high: float, device: torch.device
             ) -> torch.Tensor:
    return torch.rand(shape, device=device) * (high - low) + low


def mix_under(x: torch.Tensor, y: torch.Tensor, chance: float,
              *, db_range: tuple[float, float]) -> torch.Tensor:
    """With probability `chance`, add another clip of the batch *of a different instrument*
    `db_range` dB below each clip (IRMAS's predominant instrument over others), normalised
    again as every clip is (`audio.peak_normalise`); the label of the clip stays. `y` holds
    class numbers."""
    b = len(x)
    partner = torch.randperm(b, device=x.device)
    use = (torch.rand(b, device=x.device) < chance) & (y[partner] != y)
    db = _uniform((b,), *db_range, x.device)
    gain = torch.where(use, 10 ** (db / 20), torch.zeros_like(db)).view(-1, 1, 1)
    return peak_normalise(x + gain * x[partner])


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): each clip summed with a partner at weights λ, 1 − λ with
    λ ~ Beta(α, α); targets mixed alike. `y` is a target matrix `[B, classes]` (one-hot or
    multi-hot); the result's rows sum as `y`'s did."""
    b = len(x)
    partner = torch.randperm(b, device=x.device)
    a = torch.tensor(float(alpha), device=x.device)
    lam = torch.distributions.Beta(a, a).sample((b,))
    mixed = lam.view(-1, 1, 1) * x + (1 - lam).view(-1, 1, 1) * x[partner]
    return peak_normalise(mixed), lam.view(-1, 1) * y + (1 - lam).view(-1, 1) * y[partner]


def gain(x: torch.Tensor, max_db: float) -> torch.Tensor:
    """Each clip louder or quieter by a uniform ±`max_db` dB."""
    db = _uniform((len(x), 1, 1), -max_db, max_db, x.device)
    return x * 10 ** (db / 20)


def shift(x: torch.Tensor) -> torch.Tensor:
    """Each clip rotated in time by a random offset (one gather, no loop)."""
    b, c, t = x.shape
    offset = torch.randint(0, t, (b, 1, 1), device=x.device)
    index = (torch.arange(t, device=x.device).view(1, 1, t) + offset) % t
    return x.gather(2, index.expand(b, c, t))


def augment_waves(x: torch.Tensor, y: torch.Tensor, config: TrainingConfig, *, n_classes: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The waveform augmentations `config` switches on, in a fixed order: mixing, time shift,
    gain. `y` holds class numbers (Stage 1) or a multi-hot matrix (Stage 2). Mix-under keeps
    class numbers; mixup returns a target matrix `[B, n_classes]` (one-hot rows mixed)."""
    if config.mix_under and y.dim() == 1:
        x = mix_under(x, y, config.mix_under, db_range=config.mix_under_db)
    if config.mixup:
        targets = y.float() if y.dim() == 2 else nn.functional.one_hot(y, n_classes).float()
        x, y = mixup(x, targets, config.mixup)
    if config.shift:
        x = shift(x)
    if config.gain_db:
        x = gain(x, config.gain_db)
    return x, y


def waves_for(config: TrainingConfig, n_classes: int
              ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None:
    """`augment_waves` with `config`'s settings, for `training.fit`; None when all are off."""
    if not (config.mix_under or config.mixup or config.gain_db or config.shift):
        return None
    return functools.partial(augment_waves, config=config, n_classes=n_classes)


class SpectrogramAugment(nn.Module):
    """Random EQ and SpecAugment on a log-mel batch `[B, 1, mels, frames]` (dB), in training
    mode only: a spectral tilt of up to ±`eq_db` dB across the mel range plus smooth random
    band gains of up to ±`eq_db`/2 dB (a different microphone, room or instrument body), and
    one frequency and one time mask per clip (Park et al. 2019)."""

    def __init__(self, eq_db: float = 0.0, masks: bool = False, freq_mask: int = 12,
                 *, time_mask: int = 16, control_points: int = 6) -> None:
        super().__init__()
        self.eq_db, self.masks, self.control_points = eq_db, masks, control_points
        self.freq = torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(time_mask, iid_masks=True)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return spec
        if self.eq_db:
            spec = spec + self._eq(spec)
        if self.masks:
            floor = spec.amin(dim=(2, 3), keepdim=True)  # masked cells read as silence
            spec = self.time(self.freq(spec - floor)) + floor
        return spec

    def _eq(self, spec: torch.Tensor) -> torch.Tensor:
        b, _, mels, _ = spec.shape
        ramp = torch.linspace(-1.0, 1.0, mels, device=spec.device)
        tilt = (torch.rand(b, 1, device=spec.device) * 2 - 1) * self.eq_db * ramp
        points = (torch.rand(b, 1, self.control_points, device=spec.device) * 2 - 1)
        bands = nn.functional.interpolate(points * self.eq_db / 2, size=mels, mode="linear",
                                          align_corners=True).squeeze(1)
        return (tilt + bands).view(b, 1, mels, 1)


def spectrogram_augment(config: TrainingConfig) -> nn.Module:
    """What goes between a log-mel front end and its network for `config`."""
    if not (config.eq_db or config.spec_masks):
        return nn.Identity()
    return SpectrogramAugment(config.eq_db, config.spec_masks)
