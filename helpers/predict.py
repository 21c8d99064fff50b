"""Name the instruments in any recording: 3 s windows with a hop, probabilities per file.

The models hear 3 s clips. A recording of any length, rate or channel count is read with
soundfile, made stereo at the checkpoint's sample rate, cut into overlapping windows (a short
file is padded to one window), each window peak-normalised like the training clips, and the
window probabilities averaged. A Stage-1 (single-label) model's averaged softmax names every
instrument within half of the top probability (Han, Kim & Lee, 2017); a Stage-2 (multi-label)
model's averaged sigmoid names every instrument at 0.5 or more, and at least the most probable.

    python -m helpers.predict --checkpoint runs/demo/stage2/mel/best.pt song.wav other.flac
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from helpers.audio import AudioError, fix_length, peak_normalise, read_audio
from helpers.checkpoints import CheckpointError, load_model
from helpers.config import CLASS_NAMES

HOP_SECONDS = 1.5
THRESHOLD = 0.5


def window_starts(n: int, length: int, hop: int) -> list[int]:
    """Where the windows of an `n`-sample recording start: every `hop` samples, plus one ending
    at the end; a recording shorter than `length` gets one window (padded)."""
    starts = list(range(0, max(n - length, 0) + 1, hop))
    if starts[-1] + length < n:
        starts.append(n - length)
    return starts


def windows(wave: torch.Tensor, length: int, starts: list[int]) -> torch.Tensor:
    """`[2, N]` → `[len(starts), 2, length]`, each window peak-normalised like a training clip
    (a window running past the end is padded with silence)."""
    return peak_normalise(torch.stack([fix_length(wave[:, s:s + length], length)
                                       for s in starts]))


@torch.no_grad()
def probabilities(model: nn.Module, meta: dict, wave: torch.Tensor,
                  hop_seconds: float = HOP_SECONDS, batch_size: int = 16) -> torch.Tensor:
    """Per-class probabilities `[C]` of a `[2, N]` recording, averaged over its windows. Only
    `batch_size` windows exist at a time: memory is the recording plus one batch, not the ~2×
    copy that overlapping windows of the whole recording would take."""
    device = next(model.parameters()).device
    length = meta["clip_samples"]
    starts = window_starts(wave.shape[-1], length, max(1, round(hop_seconds * meta["sample_rate"])))
    total = 0
    for i in range(0, len(starts), batch_size):
        logits = model(windows(wave, length, starts[i:i + batch_size]).to(device)).float()
        probs = logits.softmax(dim=1) if meta["task"] == "single" else logits.sigmoid()
        total = total + probs.sum(dim=0)
    return (total / len(starts)).cpu()


def present(probs: torch.Tensor, task: str, threshold: float = THRESHOLD) -> torch.Tensor:
    """Multi-hot `[..., C]` of the instruments named: single-label models name every class at
    `threshold` × the top probability or more; multi-label ones every class at `threshold` or
    more, and at least the most probable (a recording holds some instrument)."""
    top = probs.amax(dim=-1, keepdim=True)
    if task == "single":
        return (probs >= threshold * top).float()
    return ((probs >= threshold) | (probs == top)).float()


@dataclass
class Prediction:
    """What a model hears in one file: probability per class code and the classes present."""

    path: str
    seconds: float
    probabilities: dict[str, float]
    present: list[str]

    def line(self) -> str:
        named = ", ".join(f"{CLASS_NAMES.get(c, c)} {self.probabilities[c]:.0%}"
                          for c in self.present)
        return f"{self.path} ({self.seconds:.1f} s): {named}"


class Predictor:
    """A checkpoint loaded once (CPU by default) and applied to many files."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu",
                 hop_seconds: float = HOP_SECONDS, threshold: float = THRESHOLD) -> None:
        self.model, self.meta = load_model(checkpoint, map_location=device)
        if self.meta["model"] == "transfer":
            raise CheckpointError(
                f"{checkpoint}: a transfer head reads Wave1DCNN features, not audio; use a "
                "Stage-1 checkpoint or a Stage-2 CNN (stage2/mel/best.pt, "
                "stage2/wave1d-finetune/best.pt)")
        self.hop_seconds, self.threshold = hop_seconds, threshold

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    def probabilities(self, wave: torch.Tensor) -> torch.Tensor:
        """Averaged probabilities `[C]` of a `[2, N]` wave at the checkpoint's sample rate."""
        return probabilities(self.model, self.meta, wave, self.hop_seconds)

    def __call__(self, path: str | Path) -> Prediction:
        """Predict one file; raises `AudioError` (naming it) when it cannot be used."""
        wave = read_audio(path, self.meta["sample_rate"])
        probs = self.probabilities(wave)
        named = present(probs, self.meta["task"], self.threshold).bool().tolist()
        return Prediction(str(path), wave.shape[-1] / self.meta["sample_rate"],
                          dict(zip(self.classes, probs.tolist())),
                          [c for c, on in zip(self.classes, named) if on])

    def each(self, paths: Iterable[str | Path]) -> Iterator[Prediction | AudioError]:
        """A `Prediction` per file, or the `AudioError` that file raised; never stops early."""
        for path in paths:
            try:
                yield self(path)
            except AudioError as err:
                yield err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="irmas-predict", description="Name the instruments (guitar, piano, trumpet, "
        "violin) playing in audio files, with a trained checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="a best.pt from stage1/ or stage2/")
    parser.add_argument("files", nargs="+", help="audio files soundfile reads (WAV, FLAC, OGG…)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument("--hop", type=float, default=HOP_SECONDS, help="seconds between windows")
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args(argv)
    try:
        predictor = Predictor(args.checkpoint, args.device, args.hop, args.threshold)
    except (OSError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = 0
    for result in predictor.each(args.files):
        if isinstance(result, AudioError):
            failed += 1
            print(f"error: {result}", file=sys.stderr)
        elif args.json:
            print(json.dumps(result.__dict__))
        else:
            print(result.line())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
