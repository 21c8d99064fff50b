"""Leak-free instrument mixes: k clips of k different instruments, all from one split.

The seed paired file k of one class with file k of another in directory order, reused each
clip in three mixes and split the mixes afterwards, so test mixes shared clips with training
mixes. Here a split's mixes are planned from that split's clips only: instrument combinations
are drawn in balanced rounds, each clip is picked among the least used of its class (so uses are
bounded and even), and random gains vary the balance. A plan is a few small tensors; the audio
is summed from the cache on the fly, and can be exported to WAV for listening.
"""

from __future__ import annotations

import itertools
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from helpers.core.atomic import atomic_write
from helpers.core.config import SAMPLE_RATE, SEED
from helpers.data import no_instrument
from helpers.data.audio import peak_normalise
from helpers.data.batches import Batches

MAX_K = 4  # instruments in one mix: 1 to 4 (the 2020 project: 2)


@dataclass
class MixPlan:
    """`sources` `[M, 4]` rows of the split's cache (-1 = unused slot), `gains` linear `[M, 4]`,
    `targets` multi-hot `[M, classes]` float, over the instruments `classes`."""

    sources: torch.Tensor
    gains: torch.Tensor
    targets: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def k(self) -> torch.Tensor:
        """Instruments per mix."""
        return (self.sources >= 0).sum(dim=1)

    def to_dict(self) -> dict:
        return {"sources": self.sources, "gains": self.gains, "targets": self.targets,
                "classes": list(self.classes)}


def _counts(n: int, weights: dict[int, float]) -> dict[int, int]:
    """Split `n` mixes over k by `weights` (largest remainder, so the total is exact)."""
    total = sum(weights.values())
    raw = {k: n * w / total for k, w in weights.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[: n - sum(out.values())]:
        out[k] += 1
    return out


def plan_mixes(
    labels: torch.Tensor | np.ndarray,
    *,
    uses_per_clip: float = 3.0,
    k_weights: dict[int, float] | None = None,
    gain_db: float = 6.0,
    seed: int = SEED,
    classes: tuple[str, ...],
) -> MixPlan:
    """Plan mixes of one split's clips (`labels`: index into `classes` per cached clip).

    `k_weights` is the distribution of the number of instruments, e.g. `{2: 1}` for pairs only
    (the default, as the 2020 project) or `{1: 1, 2: 2, 3: 1, 4: 1}`. The number of mixes is
    chosen so that each clip is used about `uses_per_clip` times. Gains are uniform in
    ±`gain_db` dB.
    """
    k_weights = {int(k): w for k, w in (k_weights or {2: 1.0}).items() if w > 0}
    most = min(MAX_K, len(classes))
    if not k_weights or not set(k_weights) <= set(range(1, most + 1)):
        raise ValueError(f"k_weights needs keys in 1..{most} with positive weight: {k_weights}")
    labels = np.asarray(labels)
    by_class = [np.flatnonzero(labels == c) for c in range(len(classes))]
    empty = [classes[c] for c, rows in enumerate(by_class) if len(rows) == 0]
    if empty:
        raise ValueError(f"no clips of {empty} in this split: cannot mix them")
    rng = np.random.default_rng(seed)
    mean_k = sum(k * w for k, w in k_weights.items()) / sum(k_weights.values())
    n_mixes = max(1, round(len(labels) * uses_per_clip / mean_k))
    uses = np.zeros(len(labels), dtype=int)
    rows: list[list[int]] = []
    for k, count in _counts(n_mixes, k_weights).items():
        combos = list(itertools.combinations(range(len(classes)), k))
        rounds = -(-count // len(combos))
        drawn = [combos[i] for _ in range(rounds) for i in rng.permutation(len(combos))][:count]
        for combo in drawn:
            picks = []
            for c in combo:
                pool = by_class[c]
                least = pool[uses[pool] == uses[pool].min()]
                pick = int(rng.choice(least))
                uses[pick] += 1
                picks.append(pick)
            rows.append(picks + [-1] * (MAX_K - k))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    sources = torch.tensor(rows, dtype=torch.long)
    db = torch.from_numpy(rng.uniform(-gain_db, gain_db, size=sources.shape)).float()
    gains = torch.where(sources >= 0, 10 ** (db / 20), torch.zeros_like(db))
    targets = torch.zeros(len(rows), len(classes))
    for i, picks in enumerate(rows):
        targets[i, [int(labels[p]) for p in picks if p >= 0]] = 1.0
    return MixPlan(sources, gains, targets, tuple(classes))


def mix(waves: torch.Tensor, sources: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Sum the (normalised) source clips with their gains and normalise again: `[B, 2, L]`."""
    sources = sources.to(waves.device)
    gains = gains.to(waves.device)
    stack = waves[sources.clamp_min(0)].float() * gains[..., None, None]  # [B, 4, 2, L]
    return peak_normalise(stack.sum(dim=1))


class MixBatches(Batches):
    """Batches of mixes summed on the fly from a split's cached clips; for training, a share
    `nothing` of each batch is replaced by no-instrument windows (`helpers.data.no_instrument`),
    drawn from the seed, the epoch and the batch, so a resumed run sees the same ones."""

    def __init__(self, waves: torch.Tensor, plan: MixPlan, batch_size: int,
                 *, shuffle: bool = False, seed: int = SEED, nothing: float = 0.0) -> None:
        self.waves, self.plan, self.nothing = waves, plan, nothing
        super().__init__(len(plan), batch_size, shuffle=shuffle, seed=seed)

    def _batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = mix(self.waves, self.plan.sources[items], self.plan.gains[items])
        y = self.plan.targets[items].to(x.device)
        if self.nothing:
            g = torch.Generator().manual_seed(
                (self.seed * 1_000_003 + self.epoch) * 1_000_003 + int(items[0]))
            x, y = no_instrument.replace_share(x, y, self.nothing, generator=g)
        return x, y


class DynamicMixBatches(MixBatches):
    """Fresh training mixes every epoch: the split's clips planned again (same settings, a seed
    drawn from the random seed and the epoch), so the model never sees one mix twice. As many
    mixes per epoch as the fixed plan holds; a resumed run replans exactly as before."""

    def __init__(self, waves: torch.Tensor, labels: torch.Tensor | np.ndarray, batch_size: int,
                 *, uses_per_clip: float = 3.0, k_weights: dict[int, float] | None = None,
                 gain_db: float = 6.0, seed: int = SEED, classes: tuple[str, ...],
                 nothing: float = 0.0) -> None:
        self.labels, self.settings = np.asarray(labels), (uses_per_clip, k_weights, gain_db)
        self.classes = classes
        super().__init__(waves, self._plan(seed), batch_size, shuffle=True, seed=seed,
                         nothing=nothing)

    def _plan(self, seed: int) -> MixPlan:
        uses_per_clip, k_weights, gain_db = self.settings
        return plan_mixes(self.labels, uses_per_clip=uses_per_clip, k_weights=k_weights,
                          gain_db=gain_db, seed=seed, classes=self.classes)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.plan = self._plan(self.seed * 100_003 + epoch)


def save_plan(path: str | Path, plan: MixPlan, meta: dict) -> Path:
    """Save a plan (small tensors + how it was made) atomically."""
    return atomic_write(path, lambda tmp: torch.save({**plan.to_dict(), "meta": meta}, tmp))


def load_plan(path: str | Path) -> tuple[MixPlan, dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no mixes here. Run notebooks/04_generate_mixes.ipynb "
                                "first.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: damaged mix plan ({err}); run "
                         "notebooks/04_generate_mixes.ipynb again") from err
    if "classes" not in data:
        raise ValueError(f"{path}: does not say which instruments its targets stand for; run "
                         "notebooks/04_generate_mixes.ipynb again")
    return (MixPlan(data["sources"], data["gains"], data["targets"], tuple(data["classes"])),
            data["meta"])


def instruments(plan: MixPlan, i: int) -> list[str]:
    """Class codes of the instruments in mix `i`."""
    return [plan.classes[c] for c in plan.targets[i].nonzero().flatten().tolist()]


def mix_name(plan: MixPlan, i: int) -> str:
    """`0007_gac+pia`: the mix number and the instruments in it."""
    return f"{i:04d}_{'+'.join(instruments(plan, i))}"


def by_combination(plan: MixPlan) -> dict[str, list[int]]:
    """Mix indices grouped by their instruments (`gac+pia` -> [0, 7, ...]), sorted by name."""
    groups: dict[str, list[int]] = {}
    for i in range(len(plan)):
        groups.setdefault("+".join(instruments(plan, i)), []).append(i)
    return dict(sorted(groups.items()))


def summary(plans: dict[str, MixPlan]) -> pd.DataFrame:
    """Per split: mixes, distinct clips used, and the most uses of one clip."""
    table = {}
    for split, plan in plans.items():
        used = plan.sources[plan.sources >= 0]
        table[split] = {"mixes": len(plan), "clips used": int(used.unique().numel()),
                        "max uses of a clip": int(used.bincount().max())}
    return pd.DataFrame(table)


def export_examples(waves: torch.Tensor, plan: MixPlan, folder: str | Path,
                    *, per_combination: int = 2) -> list[Path]:
    """The first `per_combination` mixes of every instrument combination as WAVs."""
    items = [i for group in by_combination(plan).values() for i in group[:per_combination]]
    return export_wavs(waves, plan, folder, items=items)


def export_wavs(waves: torch.Tensor, plan: MixPlan, folder: str | Path,
                *, items: list[int] | None = None) -> list[Path]:
    """Write mixes as 16-bit stereo WAVs named after their instruments (for listening/reuse)."""
    folder = Path(folder)
    written = []
    for i in items if items is not None else range(len(plan)):
        audio = mix(waves, plan.sources[i:i + 1], plan.gains[i:i + 1])[0].T.cpu().numpy()
        path = folder / f"{mix_name(plan, i)}.wav"
        atomic_write(path, lambda tmp, a=audio: sf.write(tmp, a, SAMPLE_RATE, subtype="PCM_16",
                                                         format="WAV"))
        written.append(path)
    return written
