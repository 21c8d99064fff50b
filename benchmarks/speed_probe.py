"""One timed probe of musicnn or `irmas-predict`, run by `benchmarks/speed.py` in a fresh process
against whichever `helpers` is first on PYTHONPATH: this repository's, or an earlier commit's
(`speed.py --baseline`), so both are timed in the same run on the same machine. It uses only
what both have (`musicnn.load_musicnn`, `networks.MusicnnFeatures.layers`, `predict.Predictor`)
and prints one JSON line, with the `helpers` it imported.

    python benchmarks/speed_probe.py musicnn REFERENCE.npz OUT.npz
    python benchmarks/speed_probe.py predict CHECKPOINT SONG.wav
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import helpers

try:  # this repository's layout
    from helpers.core.config import CLIP_SAMPLES
    from helpers.evaluate import predict
    from helpers.models import musicnn, networks
except ImportError:  # a baseline commit from before helpers/ had subpackages
    from helpers.config import CLIP_SAMPLES

    from helpers import models as networks
    from helpers import musicnn, predict


def best_seconds(work: Callable[[], object], repeats: int = 5, warm_up: bool = True) -> float:
    """The fastest of `repeats` timed calls, after one to warm up (allocations, kernels)
    unless the caller's own first call was that."""
    if warm_up:
        work()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        work()
        times.append(time.perf_counter() - tic)
    return min(times)


@torch.no_grad()
def musicnn_probe(reference: str, out: str, batch: int = 32) -> dict:
    """GFLOP per clip and clips/s of the network on log-mel patches, and clips/s of the
    features of 3 s stereo clips at 44.1 kHz (resampling and log-mel included); the reference
    patches' outputs go to `out`."""
    net = musicnn.load_musicnn("MTT_musicnn")
    outputs = net(torch.from_numpy(np.load(reference)["patches"]))
    np.savez(out, **{k: v.numpy() for k, v in outputs.items()})
    torch.manual_seed(0)
    patches = torch.rand(batch, musicnn.PATCH_FRAMES, musicnn.N_MELS) * 3
    features = networks.MusicnnFeatures("MTT_musicnn").eval()
    waves = torch.randn(batch, 2, CLIP_SAMPLES) * 0.1
    with FlopCounterMode(display=False) as counter:
        net(patches[:1])
    return {"gflop": counter.get_total_flops() / 1e9,
            "network": batch / best_seconds(lambda: net(patches)),
            "features": batch / best_seconds(lambda: features.layers(waves), repeats=3)}


def predict_probe(checkpoint: str, song: str) -> dict:
    """Seconds of `Predictor(checkpoint)(song)` with the model loaded, and what it answered."""
    predictor = predict.Predictor(checkpoint, device="cpu")
    answer = predictor(song)  # also the warm-up
    return {"seconds": best_seconds(lambda: predictor(song), repeats=3, warm_up=False),
            "probabilities": answer.probabilities, "present": answer.present}


if __name__ == "__main__":
    probe = {"musicnn": musicnn_probe, "predict": predict_probe}[sys.argv[1]]
    print(json.dumps({**probe(*sys.argv[2:]), "helpers": helpers.__file__}))
