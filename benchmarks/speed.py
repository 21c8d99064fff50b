"""Stage-1 speed, measured in one run: training clips/s of SeedCNN vs MelCNN, and loader
clips/s of the decode-once cache vs the seed's per-item WAV load + normalise.

    python benchmarks/stage1_speed.py              # CPU figures (a few minutes on 2 cores)
    python benchmarks/stage1_speed.py --epoch      # also a full epoch on 1,732 clips (GPU: seconds)

Prints a table; ratios compare figures taken in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from helpers import audio, cache, demo, models, training
from helpers.batches import ClipBatches
from helpers.config import CLIP_SAMPLES


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(name: str, device: torch.device, batch: int, steps: int) -> float:
    """Training clips per second of model `name` (forward, backward, Adam step)."""
    torch.manual_seed(0)
    model = models.build(name).to(device).train()
    opt = torch.optim.Adam(model.parameters(), 3e-4)
    x = torch.randn(batch, 2, CLIP_SAMPLES, device=device) * 0.1
    y = torch.randint(0, 4, (batch,), device=device)

    def step() -> None:
        with training._autocast(device):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, kernels)
    _sync(device)
    tic = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - tic)


def gflop_per_clip(name: str) -> float:
    model = models.build(name).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 2, CLIP_SAMPLES))
    return counter.get_total_flops() / 1e9


def loader_rates(root: Path, manifest, device: torch.device) -> tuple[float, float]:
    """Clips/s of (cache batches, per-item WAV load + normalise) over the same training clips."""
    rows = manifest[manifest["split"] == "train"]
    tic = time.perf_counter()
    for path in rows["path"]:
        audio.load_clip(root / path)
    wav_rate = len(rows) / (time.perf_counter() - tic)
    split = cache.load_split(cache.build_split(manifest, root, "train", root / "cache",
                                               progress=False), device)
    index, sign = split.balanced()
    batches = ClipBatches(split.waves, split.labels, 16, index, sign, shuffle=True)
    n, tic = 0, time.perf_counter()
    for _ in range(5):
        for x, _ in batches:
            n += len(x)
    _sync(device)
    return n / (time.perf_counter() - tic), wav_rate


def epoch_seconds(name: str, device: torch.device, clips: int = 1732, batch: int = 16) -> float:
    """One Stage-1 training epoch over `clips` cached clips, as notebook 03 runs it."""
    waves = (torch.randn(clips, 2, CLIP_SAMPLES, device=device) * 0.1).half()
    labels = torch.arange(clips, device=device) % 4
    batches = ClipBatches(waves, labels, batch, shuffle=True)
    torch.manual_seed(0)
    model = models.build(name).to(device).train()
    opt = torch.optim.Adam(model.parameters(), 3e-4)
    _sync(device)
    tic = time.perf_counter()
    for x, y in batches:
        with training._autocast(device):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model")
    parser.add_argument("--epoch", action="store_true", help="also time an epoch on 1,732 clips")
    args = parser.parse_args()
    device = training.pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"machine: {device.type} {name or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    rate = {m: train_rate(m, device, 16, args.steps) for m in ("seed", "mel")}
    flops = {m: gflop_per_clip(m) for m in ("seed", "mel")}
    rows.append(("training clips/s, SeedCNN", f"{rate['seed']:.1f}"))
    rows.append(("training clips/s, MelCNN", f"{rate['mel']:.1f}"))
    rows.append(("MelCNN / SeedCNN training speed", f"{rate['mel'] / rate['seed']:.1f}x"))
    rows.append(("forward GFLOP per clip, SeedCNN / MelCNN",
                 f"{flops['seed']:.2f} / {flops['mel']:.3f} ({flops['seed'] / flops['mel']:.0f}x)"))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = demo.render_demo(tmp, recordings_per_class=10, test_songs=0, progress=False)
        cached, wav = loader_rates(Path(tmp), manifest, device)
    rows.append(("loader clips/s, per-item WAV load + normalise (seed)", f"{wav:.0f}"))
    rows.append(("loader clips/s, decode-once cache", f"{cached:.0f}"))
    rows.append(("cache / WAV loader speed", f"{cached / wav:.0f}x"))
    if args.epoch:
        for m in ("seed", "mel"):
            rows.append((f"Stage-1 epoch on 1,732 clips, {m} (seed: 93 s)",
                         f"{epoch_seconds(m, device):.1f} s"))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
