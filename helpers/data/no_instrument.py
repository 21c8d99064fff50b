"""No-instrument examples: what a recording holds where nobody plays, so a model learns to say so.

A model trained only on instruments has never been told that an input can hold none: tape
hiss, mains hum or a click, normalised to full scale like every window, gets the instrument it
resembles most, confidently. Training batches therefore include a share of these: Stage 2's
with an all-zero target (name nothing), Stage 1's with a flat one (every instrument equally
likely, which `irmas-predict` reports as low confidence). IRMAS has no band-only audio, so
they are synthesised here (the same everywhere); digital silence is among them, as a window of
it can be left after the high-pass.
"""

from __future__ import annotations

import math

import torch

from helpers.core.config import CLIP_SAMPLES, SAMPLE_RATE, SEED
from helpers.data.audio import peak_normalise
from helpers.data.batches import AugmentFn, Batches

KINDS = ("hiss", "hum", "clicks", "hum+hiss", "silence")
# A frozen head sees one fixed set of them every epoch (batches draw fresh ones): at least this
# many, so that a small training set (the demo's 174 clips) still teaches every kind.
FIXED_MINIMUM = 10 * len(KINDS)


def _hiss(n: int, length: int, g: torch.Generator) -> torch.Tensor:
    """White to brown noise: a random spectral slope from 0 to -6 dB per octave."""
    white = torch.randn(n, 2, length, generator=g)
    spectrum = torch.fft.rfft(white)
    freqs = torch.arange(spectrum.shape[-1]).clamp_min(1).float()
    slope = torch.rand(n, 1, 1, generator=g)  # 0: white, 0.5: pink, 1: brown
    return torch.fft.irfft(spectrum * freqs ** -slope, n=length)


def _hum(n: int, length: int, g: torch.Generator, sample_rate: int) -> torch.Tensor:
    """Mains hum: 50 or 60 Hz and a few harmonics of random strength, the same in both
    channels."""
    t = torch.arange(length) / sample_rate
    base = torch.where(torch.rand(n, generator=g) < 0.5, 50.0, 60.0)
    hum = torch.zeros(n, length)
    for harmonic in range(1, 6):
        amp = torch.rand(n, 1, generator=g) / harmonic
        phase = 2 * math.pi * torch.rand(n, 1, generator=g)
        hum += amp * torch.sin(2 * math.pi * harmonic * base[:, None] * t + phase)
    return hum[:, None, :].expand(n, 2, length).clone()


def _clicks(n: int, length: int, g: torch.Generator) -> torch.Tensor:
    """A few clicks (vinyl, a cable) in silence: single samples of random sign."""
    out = torch.zeros(n, 2, length)
    for i in range(n):
        count = int(torch.randint(1, 8, (1,), generator=g))
        where = torch.randint(0, length, (count,), generator=g)
        out[i, :, where] = torch.randn(count, generator=g).sign()
    return out


def no_instrument(n: int, length: int, generator: torch.Generator,
                  *, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """`n` stereo windows `[n, 2, length]` in which no instrument plays, drawn evenly from
    `KINDS`, peak-normalised as training clips are (silence stays silence)."""
    kinds = torch.randint(0, len(KINDS), (n,), generator=generator)
    hiss, hum = _hiss(n, length, generator), _hum(n, length, generator, sample_rate)
    clicks = _clicks(n, length, generator)
    level = 10 ** (-30 * torch.rand(n, 1, 1, generator=generator) / 20)  # hiss under the hum
    by_kind = {"hiss": hiss, "hum": hum, "clicks": clicks,
               "hum+hiss": hum + level * hiss / hiss.abs().amax(-1, keepdim=True).clamp_min(1e-9),
               "silence": torch.zeros_like(hiss)}
    out = torch.stack([by_kind[KINDS[int(k)]][i] for i, k in enumerate(kinds)])
    return peak_normalise(out)


def replace_share(x: torch.Tensor, y: torch.Tensor, share: float, *, generator: torch.Generator,
                  fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch `x` `[B, 2, L]`, target matrix `y` `[B, C]` with its first `round(share * B)`
    items replaced by no-instrument windows whose targets are all `fill` (0: name nothing;
    1/C: a flat softmax target). The batch is shuffled, so which items does not matter."""
    m = round(share * len(x))
    if not m:
        return x, y
    x, y = x.clone(), y.clone()
    x[:m] = no_instrument(m, x.shape[-1], generator).to(x)
    y[:m] = fill
    return x, y


def flat_share(waves_augment: AugmentFn | None, share: float, n_classes: int
               ) -> AugmentFn | None:
    """Stage 1's batch transform: `waves_augment` (if any), then `share` of each batch replaced
    by no-instrument windows with a flat target (1/`n_classes` each; class numbers become
    one-hot rows). Draws come from torch's global generator, which `training.fit` seeds per
    epoch, so a resumed run sees the same windows."""
    if not share:
        return waves_augment

    def apply(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if waves_augment is not None:
            x, y = waves_augment(x, y)
        if y.dim() == 1:
            y = torch.nn.functional.one_hot(y, n_classes).float()
        g = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
        return replace_share(x, y, share, generator=g, fill=1 / n_classes)

    return apply


class NothingBatches(Batches):
    """`count` no-instrument windows with all-zero targets over `n_classes`, made a batch at a
    time (the same ones for the same seed), for the features a frozen backbone gives them."""

    def __init__(self, count: int, n_classes: int, batch_size: int, *, seed: int = SEED,
                 length: int = CLIP_SAMPLES) -> None:
        self.n_classes, self.length = n_classes, length
        super().__init__(count, batch_size, shuffle=False, seed=seed)

    def _batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(items[0]))
        return (no_instrument(len(items), self.length, g),
                torch.zeros(len(items), self.n_classes))
