"""`irmas-predict`: name the instruments in audio files with a trained checkpoint
(`helpers.evaluate.predict` hears them; this module is the command line around it)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from helpers.core.config import CLIP_SAMPLES, SAMPLE_RATE
from helpers.evaluate.predict import (
    HOP_SECONDS,
    MIN_HOP_SECONDS,
    STDIN,
    THRESHOLD,
    Prediction,
    Predictor,
    printable,
)
from helpers.models.checkpoints import CheckpointError


def _number(low: float, high: float, what: str, low_open: bool = False):
    """An argparse type: a finite float in [low, high] (or (low, high])."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        below = value <= low if low_open else value < low
        if not math.isfinite(value) or below or value > high:
            raise argparse.ArgumentTypeError(
                f"{text}: {what} must be {'over' if low_open else 'at least'} {low:g} and at "
                f"most {high:g}")
        return value
    return parse


def _device(text: str) -> str:
    """An argparse type: `cpu`, or `cuda`/`cuda:N` when that GPU exists here."""
    if text == "cpu":
        return text
    if text == "cuda" or text.startswith("cuda:"):
        index = text.partition(":")[2] or "0"
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: no CUDA GPU on this machine; use cpu")
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0 ...")
        return text
    raise argparse.ArgumentTypeError(f"{text}: choose cpu or cuda (cuda:N)")


class _Plotter:
    """`--plot DIR`: one PNG per file, named after it (a second file of the same name gets
    -2, -3 …), its path printed to standard error."""

    def __init__(self, folder: Path, predictor: Predictor) -> None:
        import matplotlib

        matplotlib.use("Agg")  # files only, no window, also without a display
        from helpers.evaluate import plots

        self.folder, self.predictor, self.plots, self.used = folder, predictor, plots, set()
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, path: str | Path, prediction: Prediction) -> None:
        stem = "stdin" if str(path) == STDIN else printable(Path(path).stem) or "audio"
        name, n = stem, 1
        while name in self.used:
            n += 1
            name = f"{stem}-{n}"
        self.used.add(name)
        fig = self.plots.timeline(prediction, self.predictor.thresholds(prediction),
                                  self.predictor.meta["clip_samples"]
                                  / self.predictor.meta["sample_rate"])
        out = self.folder / f"{name}.png"
        fig.savefig(out, dpi=110, bbox_inches="tight")
        self.plots.plt.close(fig)
        print(f"plot: {out}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="irmas-predict", description="Name the instruments playing in audio files, with a "
        "trained checkpoint (it names the instruments it was trained on).")
    clip_seconds = CLIP_SAMPLES / SAMPLE_RATE
    parser.add_argument("--checkpoint", required=True, help="a best.pt from stage1/ or stage2/")
    parser.add_argument("files", nargs="+",
                        help="audio files soundfile reads (WAV, FLAC, OGG…); - reads standard "
                        "input")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument("--hop", default=HOP_SECONDS,
                        type=_number(MIN_HOP_SECONDS, round(clip_seconds, 2), "the hop"),
                        help=f"seconds between windows ({MIN_HOP_SECONDS} to a window's length)")
    parser.add_argument("--threshold", default=None, type=_number(0, 1, "the threshold"),
                        help="probability at which an instrument is named (0 to 1); default: "
                        f"the checkpoint's thresholds tuned on validation, else {THRESHOLD}")
    parser.add_argument("--device", default="cpu", type=_device, help="cpu (default) or cuda")
    parser.add_argument("--plot", metavar="DIR", type=Path, default=None,
                        help="also draw each file's probabilities window by window, with the "
                        "thresholds and the verdict: DIR/<file name>.png")
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        predictor = Predictor(args.checkpoint, args.device, args.hop, threshold=args.threshold,
                              timeline=args.plot is not None)
    except (OSError, CheckpointError) as err:
        print(f"error: --checkpoint {printable(args.checkpoint)}: "
              f"{str(err).replace(str(args.checkpoint) + ': ', '', 1)}", file=sys.stderr)
        return 2
    plotter = _Plotter(args.plot, predictor) if args.plot is not None else None
    failed = 0
    try:
        for path, result in zip(args.files, predictor.each(args.files)):
            if isinstance(result, Exception):  # on the terminal even when stdout is a file
                failed += 1
                print(f"error: {result}", file=sys.stderr, flush=True)
            if plotter is not None and not isinstance(result, Exception):
                plotter(path, result)
            if args.json:
                row = ({"file": printable(path), "error": str(result)}
                       if isinstance(result, Exception)
                       else {"file": result.path, **{k: v for k, v in asdict(result).items()
                                                     if k != "timeline" or v is not None}})
                print(json.dumps(row, allow_nan=False), flush=True)
            elif not isinstance(result, Exception):
                print(result.line(), flush=True)
    except BrokenPipeError:  # a reader such as `head` has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 1 if failed else 0



if __name__ == "__main__":
    sys.exit(main())
