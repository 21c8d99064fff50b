"""Decode each split once into one tensor file, so no training epoch ever opens a WAV.

The seed re-read and re-normalised every WAV in every epoch (most of its 93 s per epoch). Here a
split is decoded once into float16 `[N, 2, 132299]` (peak-normalised), saved atomically, and
reused as long as the manifest rows and audio parameters are the same.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from helpers.atomic import atomic_write
from helpers.audio import AudioError, load_clip
from helpers.config import CLASSES, CLIP_SAMPLES, SAMPLE_RATE, SEED, SPLITS
from helpers.freshness import content_key
from helpers.layout import RunLayout
from helpers.splits import balance_train

FORMAT_VERSION = 1


@dataclass
class CachedSplit:
    """One split's decoded clips: `waves` float16 `[N, 2, L]`, `labels` class indices `[N]`."""

    waves: torch.Tensor
    labels: torch.Tensor
    paths: list[str]
    skipped: list[tuple[str, str]]
    key: str  # what it was built from (`cache_key`); artefacts derived from it record this

    def __len__(self) -> int:
        return len(self.paths)

    def first_of_each_class(self) -> list[int]:
        """Index of the first clip of each class present (for listening and plots)."""
        return [int((self.labels == c).nonzero()[0]) for c in sorted(set(self.labels.tolist()))]

    def balanced(self, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices into `waves` and signs (+1/-1) that balance the classes by sign-flip copies."""
        rows = pd.DataFrame({"row": range(len(self)), "instrument": self.labels.tolist()})
        table = balance_train(rows, seed)
        index = torch.tensor(table["row"].to_numpy(), dtype=torch.long)
        sign = torch.tensor(1.0 - 2.0 * table["flip"].to_numpy(), dtype=torch.float32)
        return index, sign


def _file_id(file: Path, md5: str) -> str:
    if md5:
        return md5
    return f"size {file.stat().st_size}" if file.exists() else "missing"


def cache_key(rows: pd.DataFrame, root: Path) -> str:
    """Fingerprint of what a cache was built from: file list, checksums, audio parameters."""
    ids = [(path, _file_id(root / path, md5)) for path, md5 in zip(rows["path"], rows["md5"])]
    return content_key({"rows": ids, "sr": SAMPLE_RATE, "len": CLIP_SAMPLES, "v": FORMAT_VERSION})


def build_split(
    manifest: pd.DataFrame,
    root: str | Path,
    split: str,
    target: str | Path,
    progress: bool = True,
) -> Path:
    """Decode the clips of `split` under `root` into the file `target` (reused if current).

    Files that cannot be decoded are skipped, recorded in the cache and reported in a warning;
    every other clip is kept.
    """
    root, target = Path(root), Path(target)
    rows = manifest[manifest["split"] == split].sort_values("path")
    if rows.empty:
        raise ValueError(f"split {split!r} has no rows in the manifest")
    stamp = target.with_suffix(".json")  # read without loading the tensors
    key = cache_key(rows, root)
    if target.is_file() and stamp.is_file() and json.loads(stamp.read_text())["key"] == key:
        return target
    waves = torch.empty(len(rows), 2, CLIP_SAMPLES, dtype=torch.float16)
    labels, paths, skipped = [], [], []
    for path, code in tqdm(list(zip(rows["path"], rows["instrument"])), desc=f"cache {split}",
                           disable=not progress):
        try:
            waves[len(paths)] = load_clip(root / path)
        except AudioError as err:
            skipped.append((path, str(err)))
            continue
        labels.append(CLASSES.index(code))
        paths.append(path)
    if skipped:
        warnings.warn(
            f"{len(skipped)} file(s) of split {split!r} could not be decoded and were skipped: "
            + "; ".join(reason for _, reason in skipped[:5]),
            stacklevel=2,
        )
    payload = {
        "key": key, "waves": waves[: len(paths)].clone() if skipped else waves,
        "labels": torch.tensor(labels, dtype=torch.long), "paths": paths,
        "skipped": [list(s) for s in skipped],
    }
    stamp.unlink(missing_ok=True)  # a stamp never vouches for a file it did not see written
    atomic_write(target, lambda tmp: torch.save(payload, tmp))
    atomic_write(stamp, lambda tmp: tmp.write_text(json.dumps({"key": key, "clips": len(paths)})))
    return target


def load_split(path: str | Path, device: str | torch.device = "cpu") -> CachedSplit:
    """Load a cache file written by `build_split` (tensors land on `device`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no cache here. Run notebooks/02_balance.ipynb first (it builds the caches)."
        )
    data = torch.load(path, map_location=device, weights_only=True)
    return CachedSplit(data["waves"], data["labels"], data["paths"],
                       [tuple(s) for s in data["skipped"]], data["key"])


def build_all(manifest: pd.DataFrame, root: str | Path, run: RunLayout, progress: bool = True
              ) -> dict[str, CachedSplit]:
    """Build (or reuse) and load the cache of every split of the run."""
    return {s: load_split(build_split(manifest, root, s, run.cache(s), progress))
            for s in SPLITS}


def sizes(cached: dict[str, CachedSplit]) -> pd.DataFrame:
    """Clips, size in memory and skipped files per split."""
    return pd.DataFrame({s: {"clips": len(c), "MiB": round(c.waves.nbytes / 2**20),
                             "skipped": len(c.skipped)} for s, c in cached.items()})
