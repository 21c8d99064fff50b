"""Name the instruments in any recording: 3 s windows with a hop, probabilities per file.

The models hear 3 s clips. A recording of any length, rate or channel count is read a block at
a time as `helpers.data.audio` decides (stereo, DC removed), cut into overlapping windows (a short
file is padded to one window), each window un-flipped and peak-normalised like the training
clips; memory is one block plus one batch of windows, whatever the length. The file's
probabilities are the mean over its windows that are neither silence (an absolute floor) nor
its noise floor (more than `QUIET_DB` below its loudest window). A file that is all silence
names no instrument. A Stage-1 (single-label) model's averaged softmax names every instrument
within half of the top probability (Han, Kim & Lee, 2017); a Stage-2 (multi-label) model's
averaged sigmoid names every instrument at its threshold or more, and nothing when none
reaches it if the model was trained to name nothing (`TrainingConfig.nothing`), else at least
the most probable.

    irmas-predict --checkpoint runs/demo/stage2/transfer-musicnn/best.pt song.wav
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from helpers.core import metrics
from helpers.core.config import CLASS_NAMES
from helpers.data.audio import AudioError, AudioStream, fix_length, peak_normalise, unflip
from helpers.models import checkpoints
from helpers.models.checkpoints import CheckpointError, hears_audio, load_model

HOP_SECONDS = 1.5
MIN_HOP_SECONDS = 0.1  # finer hops multiply the windows without hearing anything new
THRESHOLD = 0.5
# A window whose RMS is below -60 dBFS is silence (16-bit dither sits near -90 dBFS).
SILENCE_RMS = 10 ** (-60 / 20)
# A window more than this far below the file's loudest is its noise floor (tape hiss, room
# tone, a fade), not the music: it does not count towards the file's answer.
QUIET_DB = 30.0


def stream_windows(blocks: Iterable[torch.Tensor], length: int, hop: int
                   ) -> Iterator[tuple[int, torch.Tensor]]:
    """(first sample, raw `[2, length]` window) of a recording that arrives as `[2, n]` blocks:
    one every `hop` samples, plus one ending at the end; a recording shorter than `length`
    gives one window, padded with silence. Only the samples a later window still needs are
    kept."""
    buffer, offset, total, next_start, emitted_end = torch.zeros(2, 0), 0, 0, 0, 0
    for block in blocks:
        buffer = torch.cat([buffer, block], dim=1)
        total += block.shape[1]
        while next_start + length <= total:
            yield next_start, buffer[:, next_start - offset:next_start - offset + length]
            emitted_end, next_start = next_start + length, next_start + hop
        keep = max(min(next_start, total - length), offset)
        buffer, offset = buffer[:, keep - offset:], keep
    if total and not emitted_end:
        yield 0, fix_length(buffer, length)
    elif emitted_end < total:
        yield total - length, buffer[:, total - length - offset:]


@dataclass
class Timeline:
    """What each window heard, in order: its start in seconds, its probabilities per class
    (None: silent, not run) and whether it counts towards the file's answer (neither silent
    nor its noise floor). A few numbers per window: `--plot` draws it."""

    starts: list[float]
    probabilities: list[list[float] | None]
    counted: list[bool]


@dataclass
class Heard:
    """Averaged probabilities `[C]` over the windows that count, and how many windows there
    were: `silent` below the absolute floor, `quiet` more than `QUIET_DB` below the loudest."""

    probs: torch.Tensor
    windows: int
    silent: int
    quiet: int = 0
    timeline: Timeline | None = None

    @property
    def all_silent(self) -> bool:
        return self.silent == self.windows


@torch.no_grad()
def hear(model: nn.Module, meta: dict, audio: torch.Tensor | Iterable[torch.Tensor],
         *, hop_seconds: float = HOP_SECONDS, batch_size: int = 16) -> Heard:
    """Windows of a `[2, N]` recording (or of its blocks, as `AudioStream` yields them), each
    un-flipped and peak-normalised as training clips are and batched through `model`. Once
    all are heard, the file's probabilities are the mean over the windows that are neither
    silent (absolute floor) nor quiet (more than `QUIET_DB` below the loudest window): a noise
    floor, normalised to full scale like every window, must not outvote the music. Only a
    level and `C` probabilities per window are kept, so streaming stays."""
    device = next(model.parameters()).device
    length = meta["clip_samples"]
    hop = max(1, round(hop_seconds * meta["sample_rate"]))
    blocks = [audio] if isinstance(audio, torch.Tensor) else audio
    levels: list[float] = []
    starts: list[float] = []
    probs: dict[int, torch.Tensor] = {}  # window index -> probabilities, audible ones only
    batch: list[tuple[int, torch.Tensor]] = []

    def run(batch: list[tuple[int, torch.Tensor]]) -> None:
        logits = model(peak_normalise(torch.stack([w for _, w in batch])).to(device)).float()
        out = logits.softmax(dim=1) if meta["task"] == "single" else logits.sigmoid()
        probs.update(zip([i for i, _ in batch], out.cpu()))

    for index, (start, window) in enumerate(stream_windows(blocks, length, hop)):
        starts.append(start / meta["sample_rate"])
        window = unflip(window)
        levels.append(window.square().mean().sqrt().item())
        if levels[-1] >= SILENCE_RMS:
            batch.append((index, window))
        if len(batch) == batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    floor = max([SILENCE_RMS, *levels]) * 10 ** (-QUIET_DB / 20)
    counts = [level >= max(floor, SILENCE_RMS) for level in levels]
    counted = [probs[i] for i, on in enumerate(counts) if on]
    total = torch.stack(counted).mean(0) if counted else torch.zeros(len(meta["classes"]))
    silent = sum(level < SILENCE_RMS for level in levels)
    timeline = Timeline(starts, [probs[i].tolist() if i in probs else None
                                 for i in range(len(levels))], counts)
    return Heard(total, len(levels), silent, len(levels) - silent - len(counted), timeline)


def probabilities(model: nn.Module, meta: dict, wave: torch.Tensor,
                  *, hop_seconds: float = HOP_SECONDS, batch_size: int = 16) -> torch.Tensor:
    """Per-class probabilities `[C]` of a `[2, N]` recording, averaged over its audible
    windows (all zero when it is silent)."""
    return hear(model, meta, wave, hop_seconds=hop_seconds, batch_size=batch_size).probs


def present(probs: torch.Tensor, task: str, threshold: float | list[float] = THRESHOLD,
            *, at_least_one: bool = True, count: bool = False) -> torch.Tensor:
    """Multi-hot `[..., C]` of the instruments named: single-label models name every class at
    `threshold` × the top probability or more; multi-label ones every class at `threshold` (one
    number, or one per class) or more, or with `count` the expected number of the most probable
    (`metrics.count_thresholds`), and, with `at_least_one` (a model never shown a recording
    without instruments; the benchmark's documented rule), the most probable. All-zero
    probabilities (silence) name nothing."""
    top = probs.amax(dim=-1, keepdim=True)
    named = probs >= thresholds(probs, task, threshold, count=count)
    if task != "single":
        named |= (probs == top) & at_least_one
    return (named & (top > 0)).float()


def thresholds(probs: torch.Tensor, task: str, threshold: float | list[float] = THRESHOLD,
               *, count: bool = False) -> torch.Tensor:
    """The probability `[..., C]` each class must reach to be named (`present`'s rule):
    `threshold` × the top probability for a single-label model, `threshold` itself (one
    number, or one per class) for a multi-label one, or with `count` the count rule's."""
    if task != "single":  # Stage 2's rules: `metrics.decision_thresholds`
        return metrics.decision_thresholds(
            probs, {"kind": "count" if count else "thresholds", "thresholds": threshold})
    threshold = torch.as_tensor(threshold, dtype=probs.dtype, device=probs.device)
    return (threshold * probs.amax(dim=-1, keepdim=True)).expand_as(probs)


@dataclass
class Prediction:
    """What a model hears in one file: probability per class code and the classes present,
    and what a reader must know to trust it (windows left out, a cut or unrecorded length)."""

    path: str
    seconds: float
    probabilities: dict[str, float]
    present: list[str]
    silent: bool = False
    declared_seconds: float | None = None  # set when less decoded than the file promised
    cut: bool = False  # the file promised more than decoded (declared_seconds, if it said)
    length_unrecorded: bool = False  # a WAV written to a pipe: its header has no length
    windows: int = 0
    quiet_windows: int = 0  # more than QUIET_DB below the loudest: left out of the answer
    low_confidence: bool = False  # Stage 1: top probability under the validation floor
    timeline: Timeline | None = None  # window by window, when the Predictor keeps it

    def line(self) -> str:
        where = f"{self.path} ({self.seconds:.1f} s"
        if self.declared_seconds is not None:
            where += f", decoded {self.seconds:.1f} of {self.declared_seconds:.1f} s"
        elif self.cut:
            where += ", cut: the stream ends without its last page"
        if self.length_unrecorded:
            where += ", length not recorded in its header"
        if self.silent:
            return f"{where}): silent, no instrument named"
        top = max(self.probabilities, key=self.probabilities.get)
        named = (", ".join(f"{CLASS_NAMES.get(c, c)} {self.probabilities[c]:.0%}"
                           for c in self.present)
                 or f"no instrument named (most likely {CLASS_NAMES.get(top, top)} "
                    f"{self.probabilities[top]:.0%}, under its threshold)")
        if self.low_confidence:
            named += " (low confidence: under what 99% of validation clips reach)"
        if self.quiet_windows:
            named += (f" ({self.quiet_windows} of {self.windows} windows left out: more than "
                      f"{QUIET_DB:.0f} dB below the loudest)")
        return f"{where}): {named}"


class Predictor:
    """A checkpoint loaded once (CPU by default) and applied to many files."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu",
                 hop_seconds: float = HOP_SECONDS, *, threshold: float | None = None,
                 timeline: bool = False) -> None:
        """`threshold` None: the rule a Stage-2 checkpoint's calibration chose on validation
        (`train.calibrate`: its thresholds, or count-aware decoding), else `THRESHOLD`;
        `timeline`: each `Prediction` keeps what every window heard."""
        self.model, self.meta = load_model(checkpoint, map_location=device)
        if not hears_audio(self.meta):
            raise CheckpointError(
                f"{checkpoint}: a transfer head reads Stage-1 features, not audio; use a "
                "Stage-1 checkpoint or another Stage-2 model (stage2/transfer-musicnn/best.pt, "
                "stage2/mel/best.pt)")
        rule = checkpoints.decoding(self.meta)
        self.count = threshold is None and rule["kind"] == "count"  # `present`'s count rule
        if threshold is None:
            threshold = rule["thresholds"] if self.meta["task"] == "multi" else THRESHOLD
        self.hop_seconds, self.threshold, self.timeline = hop_seconds, threshold, timeline

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    def probabilities(self, wave: torch.Tensor) -> torch.Tensor:
        """Averaged probabilities `[C]` of a `[2, N]` wave at the checkpoint's sample rate."""
        return probabilities(self.model, self.meta, wave, hop_seconds=self.hop_seconds)

    def __call__(self, path: str | Path) -> Prediction:
        """Predict one file, read a block at a time (`-`: standard input); raises `AudioError`
        (naming it) when it cannot be used."""
        if str(path) == STDIN:
            with _spooled_stdin() as copy:
                return replace(self(copy), path=STDIN)
        stream = AudioStream(path, self.meta["sample_rate"])
        heard = hear(self.model, self.meta, stream, hop_seconds=self.hop_seconds)
        named = present(heard.probs, self.meta["task"], self.threshold, count=self.count,
                        at_least_one=not self.meta.get("names_nothing", False)).bool().tolist()
        return Prediction(
            path=printable(path), seconds=stream.decoded_seconds,
            probabilities=dict(zip(self.classes, heard.probs.tolist())),
            present=[c for c, on in zip(self.classes, named) if on], silent=heard.all_silent,
            declared_seconds=stream.declared_seconds if stream.cut else None, cut=stream.cut,
            length_unrecorded=stream.length_unrecorded, windows=heard.windows,
            quiet_windows=heard.quiet, low_confidence=self.low_confidence(heard),
            timeline=heard.timeline if self.timeline else None)

    def thresholds(self, prediction: Prediction) -> dict[str, float]:
        """The probability each class had to reach in `prediction` to be named."""
        probs = torch.tensor([prediction.probabilities[c] for c in self.classes])
        return dict(zip(self.classes, thresholds(probs, self.meta["task"], self.threshold,
                                                 count=self.count).tolist()))

    def low_confidence(self, heard: Heard) -> bool:
        """A Stage-1 answer whose top probability is under the floor 99% of validation clips
        exceed (`train.calibrate`); never for silence or a Stage-2 model."""
        floor = self.meta.get("confidence_floor")
        return (self.meta["task"] == "single" and floor is not None and not heard.all_silent
                and heard.probs.max().item() < floor)

    def each(self, paths: Iterable[str | Path]) -> Iterator[Prediction | Exception]:
        """A `Prediction` per file, or the error that file raised; never stops early."""
        for path in paths:
            try:
                yield self(path)
            except Exception as err:  # one bad file must not cost the others their answer
                yield err if isinstance(err, AudioError) else AudioError(
                    f"{printable(path)}: {type(err).__name__}: {err}")


STDIN = "-"


@contextmanager
def _spooled_stdin() -> Iterator[Path]:
    """Standard input copied to a temporary file a block at a time (a decoder needs to seek;
    memory stays one block); refused when nothing is piped in."""
    if sys.stdin is None or sys.stdin.isatty():
        raise AudioError("-: reads standard input, but nothing is piped in "
                         "(`cat song.wav | irmas-predict --checkpoint CK -`)")
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "stdin"
        with open(copy, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        yield copy


def printable(path: str | Path) -> str:
    """A file name as text that any terminal or JSON encoder takes: bytes that are not UTF-8
    (kept by Python as surrogates) are shown as \\x escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
