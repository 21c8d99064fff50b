"""Real recordings are not clean clips: every hostile-but-fair case through `irmas-predict`.

    python benchmarks/recordings.py --checkpoint runs/demo/stage2/transfer-musicnn/best.pt \
        --checkpoint runs/demo/stage1/transfer-musicnn/best.pt

Each case is a real file (or argument) made here from the rendered clips of
`tests/fixtures/musicnn/`; each runs as a user would run it, and the table says what a person
would answer, the exit code and the last line printed. The first two rows are the clean clips:
a damaged recording should get the answer its clean clip gets (the model's own mistakes on the
clean clip are the model's, not the recording chain's). The tests
(`tests/test_recordings.py`, `tests/test_checkpoints.py`) hold the same cases to their answers;
this prints what a trained model says.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "musicnn"
SR = 22_050


def _mono(name: str) -> np.ndarray:
    return sf.read(FIXTURES / f"{name}.wav", dtype="float32")[0].mean(axis=1)


def _stereo(x: np.ndarray) -> np.ndarray:
    return np.stack([x, x], axis=1)


def _hiss(seconds: float, dbfs: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((int(seconds * SR), 2)) * 10 ** (dbfs / 20)).astype(np.float32)


def _write(path: Path, data: np.ndarray, sr: int = SR, **kwargs) -> Path:
    sf.write(path, data, sr, **kwargs)
    return path


def _cut(path: Path, riff: int | None = None) -> Path:
    data = bytearray(path.read_bytes()[: path.stat().st_size // 2])
    if riff is not None:
        data[4:8] = riff.to_bytes(4, "little")
    cut = path.with_name(f"cut{'' if riff is None else f' riff {riff:x}'} {path.name}")
    cut.write_bytes(bytes(data))
    return cut


def _sizes(path: Path, riff: int, data: int) -> Path:
    raw = bytearray(path.read_bytes())
    raw[4:8], raw[40:44] = riff.to_bytes(4, "little"), data.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


def _edited(checkpoint: Path, folder: Path, name: str, edit: Callable[[dict], None]) -> Path:
    data = torch.load(checkpoint, weights_only=True)
    edit(data)
    path = folder / f"{name}.pt"
    torch.save(data, path)
    return path


def audio_cases(d: Path) -> list[tuple[str, str, list[str], bytes | None]]:
    """(case, what a person would answer, files, standard input)."""
    piano, trumpet = _mono("pia"), _mono("tru")
    surround = np.zeros((len(piano), 6), np.float32)
    surround[:, 2] = piano
    u8 = _write(d / "u8.wav", _hiss(1, -20)[:4_001, :1], subtype="PCM_U8")
    u8.write_bytes(u8.read_bytes()[:-1])
    fifo = d / "fifo.wav"
    os.mkfifo(fifo)
    song = _write(d / "piano.wav", _stereo(piano))
    weird = os.fsdecode(bytes(d) + b"/caf\xe9 piano.wav")
    Path(weird).write_bytes(song.read_bytes())
    return [
        ("reference: the clean piano clip", "piano", [str(song)], None),
        ("reference: the clean trumpet clip", "trumpet",
         [str(_write(d / "trumpet.wav", _stereo(trumpet)))], None),
        ("trumpet 3 s, then 57 s of hiss at -55 dBFS", "trumpet",
         [str(_write(d / "trumpet+hiss.wav", np.concatenate([_stereo(trumpet),
                                                             _hiss(57, -55)])))], None),
        ("hiss alone, -55 dBFS", "nothing",
         [str(_write(d / "hiss.wav", _hiss(60, -55)))], None),
        ("DC offset alone, -54 dBFS", "nothing",
         [str(_write(d / "dc.wav", np.full((10 * SR, 2), 10 ** (-54 / 20), np.float32)))], None),
        ("mains hum alone, 50 Hz at -40 dBFS", "nothing",
         [str(_write(d / "hum.wav", _stereo(0.01 * np.sin(2 * np.pi * 50 * np.arange(10 * SR)
                                                           / SR).astype(np.float32))))], None),
        ("stereo piano with L = -R", "piano",
         [str(_write(d / "antiphase.wav", np.stack([piano, -piano], 1)))], None),
        ("one click in 4 s of silence", "nothing (silent)",
         [str(_write(d / "click.wav", np.eye(1, 4 * SR * 2).reshape(-1, 2).astype(np.float32)
                     * 0.3))], None),
        ("5.1 WAV, piano in the centre channel", "piano",
         [str(_write(d / "centre.wav", surround))], None),
        ("half an OGG Vorbis file", "piano, said cut",
         [str(_cut(_write(d / "piano.ogg", _stereo(piano), format="OGG")))], None),
        ("half an Opus file", "piano said cut, or refused as cut",
         [str(_cut(_write(d / "piano.opus", _stereo(piano), 48_000, format="OGG",
                          subtype="OPUS")))], None),
        ("half a WAV", "piano, decoded 1.5 of 3.0 s", [str(_cut(song))], None),
        ("half a WAV, RIFF size 0", "piano, length not recorded",
         [str(_cut(song, 0))], None),
        ("half a WAV, RIFF size 0xFFFFFFFF", "piano, length not recorded",
         [str(_cut(song, 0xFFFFFFFF))], None),
        ("WAV from sox to a pipe (0x7ffff000 / 0x7fffffff)", "piano, whole",
         [str(_sizes(_write(d / "sox.wav", _stereo(piano)), 0x7FFFF000, 0x7FFFFFFF))], None),
        ("8-bit WAV missing only its pad byte", "read whole", [str(u8)], None),
        ("a file name that is not UTF-8", "piano, name escaped", [weird], None),
        ("a FIFO with no writer", "refused at once, not a hang", [str(fifo)], None),
        ("`-` with the WAV piped in", "piano", ["-"], song.read_bytes()),
        ("/dev/stdin with the WAV piped in", "refused: pass `-`", ["/dev/stdin"],
         song.read_bytes()),
        ("a 1,244-byte WAV at 1 Hz", "refused",
         [str(_write(d / "1hz.wav", np.zeros(600, np.float32), 1))], None),
    ]


def checkpoint_cases(checkpoint: Path, d: Path) -> list[tuple[str, Path]]:
    """(case, a --checkpoint that must be refused in one line, exit 2)."""
    song = d / "piano.wav"
    csv = d / "rows.csv"
    csv.write_text("path,instrument\na.wav,pia\n")
    noise = d / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    meta = torch.load(checkpoint, weights_only=True)["meta"]
    n = len(meta["classes"])

    def setter(field, value):
        def edit(data):
            if value is None:
                data["meta"].pop(field, None)
            else:
                data["meta"][field] = value
        return edit

    def nan_weights(data):
        key = next(k for k, v in data["state_dict"].items() if v.is_floating_point())
        data["state_dict"][key] = data["state_dict"][key].clone().fill_(float("nan"))

    edits = {"thresholds NaN": setter("thresholds", [float("nan")] * n),
             "thresholds 2": setter("thresholds", [2.0] * n),
             "thresholds -1": setter("thresholds", [-1.0] * n),
             "thresholds true": setter("thresholds", [True] * n),
             "thresholds one short": setter("thresholds", [0.5] * (n - 1)),
             "task edited": setter("task", "single" if meta["task"] == "multi" else "multi"),
             "sample_rate edited": setter("sample_rate", 22_050),
             "fingerprint deleted": setter("fingerprint", None),
             "NaN weights": nan_weights,
             "clip_samples huge": setter("clip_samples", 10**10),
             "model_kwargs edited": setter("model_kwargs", {**meta["model_kwargs"],
                                                            "n_mels": 10**6})}
    return ([("a WAV as --checkpoint", song), ("a CSV as --checkpoint", csv),
             ("random bytes as --checkpoint", noise)]
            + [(name, _edited(checkpoint, d, name.replace(" ", "_"), edit))
               for name, edit in edits.items()])


def run(args: list[str], stdin: bytes | None = None) -> tuple[int, str]:
    """Exit code and last line (stdout, else stderr) of one `irmas-predict` command."""
    done = subprocess.run([sys.executable, "-m", "helpers.cli", *args], cwd=REPO,
                          input=stdin if stdin is not None else b"", capture_output=True,
                          timeout=600)
    lines = (done.stdout or done.stderr).decode(errors="backslashreplace").strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def _short(line: str, folder: Path) -> str:
    return line.replace(str(folder) + "/", "").replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cases = audio_cases(d)
        for checkpoint in args.checkpoint:
            meta = torch.load(checkpoint, weights_only=True)["meta"]
            print(f"\n### `{checkpoint}` ({meta['model']}, task {meta['task']}, names nothing: "
                  f"{meta.get('names_nothing', False)})\n")
            print("| case | a person would say | exit | last line |\n|---|---|---|---|")
            for case, expect, files, stdin in cases:
                code, line = run(["--checkpoint", str(checkpoint), *files], stdin)
                print(f"| {case} | {expect} | {code} | {_short(line, d)} |", flush=True)
            code, line = run(["--checkpoint", str(checkpoint), "--json",
                                 str(d / "piano.wav"), str(d / "missing.wav")])
            row = json.loads(line)
            print(f"| --json, the second file missing | one object per file | {code} | "
                  f"{_short(json.dumps(row), d)} |")
            for case, path in checkpoint_cases(checkpoint, d):
                code, line = run(["--checkpoint", str(path), str(d / "piano.wav")])
                print(f"| {case} | refused, one line | {code} | {_short(line, d)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
