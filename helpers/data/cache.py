"""Decode each split once into one tensor file, so no training epoch ever opens a WAV.

The seed re-read and re-normalised every WAV in every epoch (most of its 93 s per epoch). Here a
split is decoded once into float16 `[N, 2, 132299]` (peak-normalised), saved atomically, and
reused as long as the manifest rows and audio parameters are the same.
"""

from __future__ import annotations

import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from helpers.core.atomic import atomic_write
from helpers.core.config import CLIP_SAMPLES, SAMPLE_RATE, SEED, SPLITS
from helpers.core.freshness import content_key, file_digest
from helpers.core.layout import RunLayout, as_layout
from helpers.data.audio import AudioError, load_clip
from helpers.data.splits import balance_train

FORMAT_VERSION = 3  # 2: the class list travels with the labels; 3: high-passed, folded


@dataclass
class CachedSplit:
    """One split's decoded clips: `waves` float16 `[N, 2, L]`, `labels` indices `[N]` into
    `classes` (the run's instruments, which every model and plot downstream takes from here)."""

    waves: torch.Tensor
    labels: torch.Tensor
    paths: list[str]
    skipped: list[tuple[str, str]]
    key: str  # what it was built from (`cache_key`); artefacts derived from it record this
    classes: tuple[str, ...]

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


class CacheError(RuntimeError):
    """A cache file that is damaged or does not match its stamp; the message names it."""


def _file_id(file: Path, md5: str) -> list:
    """What identifies a source file: the manifest's md5, and its size and modification time,
    so a file replaced after caching is noticed without hashing every WAV again."""
    if not file.exists():
        return [md5, "missing"]
    info = file.stat()
    return [md5, info.st_size, info.st_mtime_ns]


def cache_key(rows: pd.DataFrame, root: Path, classes: tuple[str, ...]) -> str:
    """Fingerprint of what a cache was built from: file list, checksums, class list, audio
    parameters."""
    ids = [(path, _file_id(root / path, md5)) for path, md5 in zip(rows["path"], rows["md5"])]
    return content_key({"rows": ids, "classes": list(classes), "sr": SAMPLE_RATE,
                        "len": CLIP_SAMPLES, "v": FORMAT_VERSION})


def _stamp(target: Path) -> Path:
    return target.with_suffix(".json")  # read without loading the tensors


def _read_stamp(stamp: Path) -> dict:
    """A stamp's record; `CacheError` naming the file when it is not a JSON object (a stamp of
    `null`, a list, binary bytes or a half-written file)."""
    try:
        record = json.loads(stamp.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CacheError(f"{stamp}: stamp is not JSON ({err})") from err
    if not isinstance(record, dict):
        raise CacheError(f"{stamp}: stamp is {type(record).__name__}, not a JSON object")
    return record


def recorded_key(target: Path) -> str | None:
    """The key a cache's stamp records (what it was built from), read without loading the
    tensors; None when there is no readable stamp."""
    try:
        key = _read_stamp(_stamp(Path(target))).get("key")
    except (OSError, CacheError):
        return None
    return key if isinstance(key, str) else None


def stale_reason(target: Path, key: str | None = None) -> str | None:
    """Why the cache at `target` cannot be used (None: it can): no stamp, sources or settings
    other than `key` (when given), or bytes that differ from the checksum it was written with."""
    stamp = _stamp(target)
    if not target.is_file():
        return "not built yet"
    if not stamp.is_file():
        return f"its stamp {stamp.name} is missing"
    try:
        recorded = _read_stamp(stamp)
    except CacheError as err:
        return f"its stamp is malformed ({err})"
    if key is not None and recorded.get("key") != key:
        return "its source files or audio settings changed"
    if recorded.get("sha256") != file_digest(target):
        return "its bytes differ from the checksum it was written with (damaged)"
    return None


def build_split(
    manifest: pd.DataFrame,
    root: str | Path,
    split: str,
    *, target: str | Path,
    progress: bool = True,
    classes: tuple[str, ...],
) -> Path:
    """Decode the clips of `split` under `root` into the file `target` (reused if current),
    labelled by their index in `classes` (rows of other instruments are left out).

    Files that cannot be decoded are skipped, recorded in the cache and reported in a warning;
    every other clip is kept.
    """
    root, target = Path(root), Path(target)
    rows = manifest[(manifest["split"] == split) & manifest["instrument"].isin(classes)]
    rows = rows.sort_values("path")
    if rows.empty:
        raise ValueError(f"split {split!r} has no clips of {', '.join(classes)} in the manifest")
    stamp = _stamp(target)
    key = cache_key(rows, root, classes)
    reason = stale_reason(target, key)
    if reason is None:
        return target
    if target.is_file():
        print(f"rebuilding {target}: {reason}", flush=True)
    waves = torch.empty(len(rows), 2, CLIP_SAMPLES, dtype=torch.float16)
    labels, paths, skipped = [], [], []
    for path, code in tqdm(list(zip(rows["path"], rows["instrument"])), desc=f"cache {split}",
                           disable=not progress):
        try:
            waves[len(paths)] = load_clip(root / path)
        except AudioError as err:
            skipped.append((path, str(err)))
            continue
        labels.append(classes.index(code))
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
        "skipped": [list(s) for s in skipped], "classes": list(classes),
    }
    stamp.unlink(missing_ok=True)  # a stamp never vouches for a file it did not see written
    atomic_write(target, lambda tmp: torch.save(payload, tmp))
    record = {"key": key, "clips": len(paths), "sha256": file_digest(target)}
    atomic_write(stamp, lambda tmp: tmp.write_text(json.dumps(record)))
    return target


def load_split(path: str | Path, device: str | torch.device = "cpu") -> CachedSplit:
    """Load a cache file written by `build_split` (tensors land on `device`), after checking
    its bytes against the checksum it was written with."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no cache here. Run notebooks/02_balance.ipynb first (it builds the caches)."
        )
    rebuild = "run notebooks/02_balance.ipynb again to rebuild it"
    problem = stale_reason(path)
    if problem:
        raise CacheError(f"{path}: {problem}; {rebuild}")
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise CacheError(f"{path}: cannot be loaded ({err}); {rebuild}") from err
    if "classes" not in data:
        raise CacheError(f"{path}: does not say which instruments its labels stand for; {rebuild}")
    return CachedSplit(data["waves"], data["labels"], data["paths"],
                       [tuple(s) for s in data["skipped"]], data["key"], tuple(data["classes"]))


def build_all(manifest: pd.DataFrame, root: str | Path, run: RunLayout, *, progress: bool = True,
              classes: tuple[str, ...]) -> dict[str, CachedSplit]:
    """Build (or reuse) and load the cache of every split of the run, on its `classes`."""
    return {s: load_split(build_split(manifest, root, s, target=run.cache(s), progress=progress,
                                      classes=classes))
            for s in SPLITS}


def sizes(cached: dict[str, CachedSplit]) -> pd.DataFrame:
    """Clips, size in memory and skipped files per split."""
    return pd.DataFrame({s: {"clips": len(c), "MiB": round(c.waves.nbytes / 2**20),
                             "skipped": len(c.skipped)} for s, c in cached.items()})


def load_caches(run: RunLayout | str | Path, device: torch.device | None = None,
                splits: tuple[str, ...] = SPLITS) -> dict[str, CachedSplit]:
    """The caches notebook 02 wrote (train/val/test); on the GPU when training runs there."""
    run = as_layout(run)
    place = device if device is not None and device.type == "cuda" else "cpu"
    return {s: load_split(run.cache(s), place) for s in splits}
