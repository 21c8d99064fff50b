"""Mini-batches from tensors already in memory (CPU or GPU): no WAV, no DataLoader workers.

An epoch of the 2020 project re-read every WAV; here batches are sliced from the decode-once
cache, or from precomputed features, and their order depends only on the random seed and the
epoch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import torch

from helpers.core.config import SEED

# What `fit` does to each training batch on the device (augmentation): (x, y) -> (x, y).
AugmentFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Batches:
    """Mini-batches of `size` items drawn from tensors already in memory: no files, no workers.

    Subclasses say how one batch is made from item numbers (`_batch`). The shuffle order
    depends only on the random seed and the epoch, so a resumed run sees the batches an
    uninterrupted one would have seen.
    """

    def __init__(self, size: int, batch_size: int, shuffle: bool = False, *, seed: int = SEED
                 ) -> None:
        self.size, self.batch_size, self.shuffle, self.seed, self.epoch = (
            size, batch_size, shuffle, seed, 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._chunks(torch.arange(self.size)))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 10_007 + self.epoch)
            order = torch.randperm(self.size, generator=gen)
        else:
            order = torch.arange(self.size)
        for chunk in self._chunks(order):
            yield self._batch(chunk)

    def _chunks(self, order: torch.Tensor) -> list[torch.Tensor]:
        """`order` in batches; in training (shuffled) a last batch of one item joins the one
        before: batch norm cannot normalise a batch of one."""
        chunks = list(order.split(self.batch_size))
        if self.shuffle and len(chunks) > 1 and len(chunks[-1]) == 1:
            chunks[-2:] = [torch.cat(chunks[-2:])]
        return chunks

    def _batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class FirstBatches:
    """The first `steps` batches of each epoch of `batches` (reshuffled each epoch, so a
    capped epoch still sees other clips every time)."""

    def __init__(self, batches: Batches, steps: int) -> None:
        self.batches, self.steps = batches, steps

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return min(self.steps, len(self.batches))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return itertools.islice(iter(self.batches), len(self))


class ClipBatches(Batches):
    """Batches of cached clips; `index` and `sign` describe the balanced training set (rows of
    `waves` and ±1 sign flips)."""

    def __init__(self, waves: torch.Tensor, targets: torch.Tensor, batch_size: int,
                 *, index: torch.Tensor | None = None, sign: torch.Tensor | None = None,
                 shuffle: bool = False, seed: int = SEED) -> None:
        self.waves, self.targets = waves, targets
        self.index = torch.arange(len(waves)) if index is None else index
        self.sign = torch.ones(len(self.index)) if sign is None else sign
        super().__init__(len(self.index), batch_size, shuffle=shuffle, seed=seed)

    def _batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.index[items].to(self.waves.device)
        sign = self.sign[items].to(self.waves.device).view(-1, 1, 1)
        clips = self.waves[rows].mul_(sign.to(self.waves.dtype)).float()  # ±1 is exact in f16
        return clips, self.targets[rows.to(self.targets.device)]


class TensorBatches(Batches):
    """Batches of rows of a plain tensor (e.g. precomputed features) and their targets."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int,
                 *, shuffle: bool = False, seed: int = SEED) -> None:
        self.inputs, self.targets = inputs, targets
        super().__init__(len(inputs), batch_size, shuffle=shuffle, seed=seed)

    def _batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[items.to(self.inputs.device)], self.targets[items.to(
            self.targets.device)]
