"""What a pretrained backbone declares (musicnn's features, the AudioSet transformer's), so
checkpoints, stored features and the model registry read declared attributes instead of
probing: its name and install line, checkpoint, layer, feature width, weights hash, the
spectrogram-augmentation slot and, when it needs one, the architecture that rebuilds it."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class BackboneUnavailable(RuntimeError):
    """A backbone's package or weights are missing here; the message says how to get them."""


class Backbone(nn.Module):
    """A pretrained network heard as features: clips `[B, 2, L]` -> `layers()`, every layer's
    features `[B, width]`; `forward` gives the chosen `layer`'s."""

    name: ClassVar[str]  # the registry's backbone name ("musicnn", "ast")
    title: ClassVar[str]  # how messages name it
    install: ClassVar[str]  # the line that installs it
    checkpoint: str  # which pretrained weights
    layer: str
    n_features: int  # width of `layer`
    weights_sha256: str | None  # None: not the pretrained weights (random, or fine-tuned)
    augment: nn.Module  # the recipe's spectrogram EQ/masks in dB, when fine-tuned

    def identity(self) -> dict:
        """What a head on these features depends on (bound by a checkpoint's fingerprint)."""
        return {"name": self.name, "checkpoint": self.checkpoint, "layer": self.layer,
                "weights_sha256": self.weights_sha256}

    def architecture(self) -> dict | None:
        """What rebuilds the network with no downloads, for a fine-tuned checkpoint that
        stores all its weights; None: the package holds it."""
        return None

    def layers(self, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.layers(waves)[self.layer]
