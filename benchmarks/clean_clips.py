"""Clean clips are heard as before: the reading path of issue 23 against the one it replaced.

    python benchmarks/clean_clips.py --run runs/accuracy/default/tim \
        --checkpoint runs/accuracy/default/fluid-random+merlin-val/stage1/recipe-20ep/best.pt

Every clip of a run's manifest is read two ways and classified by each Stage-1 checkpoint: as a
model hears a file now (`audio.load_clip`: channels folded, 20 Hz high-pass, an antiphase window
un-flipped, peak 0.5) and as before (soundfile, the first two channels, peak 0.5, no filter).
It prints accuracy each way with a 95% bootstrap interval over recordings, and how many clips
changed their answer: the new front end must not cost clean clips accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from helpers.core import metrics
from helpers.core.config import SPLITS
from helpers.data import audio, dataset
from helpers.models import checkpoints

BATCH = 32


def before(path: Path) -> torch.Tensor:
    """A clip as the code before issue 23 read it (renders are at the models' rate)."""
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    data = np.repeat(data, 2, axis=1) if data.shape[1] == 1 else data[:, :2]
    return audio.peak_normalise(audio.fix_length(torch.from_numpy(data.T.copy())))


@torch.no_grad()
def predictions(model: torch.nn.Module, paths: list[Path], read) -> np.ndarray:
    out = []
    for i in tqdm(range(0, len(paths), BATCH), desc=read.__name__, leave=False):
        clips = torch.stack([read(p) for p in paths[i:i + BATCH]])
        out.append(model(clips).argmax(1).numpy())
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder (its manifest)")
    parser.add_argument("--checkpoint", type=Path, action="append", required=True)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)
    manifest, root, source = dataset.load_dataset(args.run)
    manifest = manifest[manifest["split"].isin(SPLITS)]  # clips, not whole test excerpts
    paths = [root / p for p in manifest["path"]]
    groups = manifest["recording"].to_numpy()
    print(f"{len(paths):,} clips of {args.run} ({source}); 95% intervals over "
          f"{len(set(groups)):,} recordings\n")
    print("| checkpoint | accuracy, as heard now | accuracy, as heard before | clips that "
          "changed answer |\n|---|---|---|---|")
    for checkpoint in args.checkpoint:
        model, meta = checkpoints.load_model(checkpoint)
        truth = np.array([meta["classes"].index(c) for c in manifest["instrument"]])
        preds, cells = [], []
        for read in (audio.load_clip, before):
            preds.append(predictions(model, paths, read))
            right = preds[-1] == truth
            low, high = metrics.bootstrap_interval(lambda idx, r=right: float(r[idx].mean()),
                                                   groups, args.bootstrap)
            cells.append(f"{right.mean():.1%} ({low:.1%}–{high:.1%})")
        changed = int((preds[0] != preds[1]).sum())
        print(f"| {checkpoint} | {cells[0]} | {cells[1]} | {changed:,} of {len(paths):,} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
