"""Peak memory of `irmas-predict` by recording length: 4 s, 3 min and 30 min of 44.1 kHz stereo.

    python benchmarks/predict_memory.py            # MelCNN checkpoint (untrained: same memory)

Each length runs in a fresh process on the CPU; it prints the process's peak resident memory
after loading the model and after predicting, so the difference is what the recording costs.
Files are read in blocks, so that difference should not grow with the length.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from helpers.core.config import CLASSES
from helpers.data import dataset
from helpers.models import checkpoints, networks

MEASURE = """
import resource, sys, time
from helpers.evaluate import predict
p = predict.Predictor(sys.argv[1])
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tic = time.perf_counter()
p(sys.argv[2])
print(loaded, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - tic)
"""


def write_noise(path: Path, seconds: float, sr: int = 44_100) -> Path:
    """A 16-bit stereo WAV of quiet noise, written a minute at a time."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 2, subtype="PCM_16") as f:
        left = int(seconds * sr)
        while left:
            n = min(left, 60 * sr)
            f.write((0.1 * rng.standard_normal((n, 2))).astype(np.float32))
            left -= n
    return path


def main() -> None:
    env = dataset.environment()
    print(f"machine: {env['cpu']}, {env['cores']} cores, torch {env['torch']}, {env['date']}")
    print(f"{'recording':>10}  {'file MB':>8}  {'peak MB (model)':>15}  {'peak MB (predict)':>17}"
          f"  {'growth MB':>9}  {'seconds':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = checkpoints.save_checkpoint(
            Path(tmp) / "mel.pt", networks.build("mel", n_outputs=len(CLASSES)),
            checkpoints.model_meta("mel", classes=CLASSES, task="multi"))
        for label, seconds in (("4 s", 4.0), ("3 min", 180.0), ("30 min", 1800.0)):
            wav = write_noise(Path(tmp) / f"{seconds:.0f}.wav", seconds)
            done = subprocess.run([sys.executable, "-c", MEASURE, str(ckpt), str(wav)],
                                  capture_output=True, text=True, check=True)
            loaded, peak, took = (float(v) for v in done.stdout.split())
            print(f"{label:>10}  {wav.stat().st_size / 1e6:8.0f}  {loaded / 1024:15.0f}  "
                  f"{peak / 1024:17.0f}  {(peak - loaded) / 1024:9.0f}  {took:7.1f}")
            wav.unlink()


if __name__ == "__main__":
    main()
