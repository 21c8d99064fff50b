"""Speed, measured in one run: training clips/s of Wave1DCNN (the 2020 project's 1D CNN) vs
MelCNN (and fine-tuned musicnn), loader clips/s of the decode-once cache vs the 2020 project's
per-item WAV load + normalise, MelCNN's training speed with the training recipe's augmentation
vs without, musicnn's feature throughput, head epochs on precomputed features, and
`helpers.evaluate.predict` on a 3-minute stereo song on the CPU.

    python benchmarks/speed.py              # CPU figures (a few minutes on 2 cores)
    python benchmarks/speed.py --epoch      # also a Stage-1 epoch on 1,732 clips (GPU: seconds)
    python benchmarks/speed.py --only musicnn   # musicnn and a song, beside commit BASELINE

Prints a table; ratios compare figures taken in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from helpers.core.config import CLASSES, CLIP_SAMPLES, SAMPLE_RATE, STAGE1, STAGE2, TrainingConfig
from helpers.core.literature import PROJECT_2020
from helpers.data import audio, augment, cache, dataset
from helpers.data.batches import ClipBatches, TensorBatches
from helpers.demo import render_set
from helpers.evaluate import predict
from helpers.models import checkpoints, networks, registry
from helpers.train import loop, recipe, sources

REPO = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).with_name("speed_probe.py")
MUSICNN_FIXTURES = REPO / "tests" / "fixtures" / "musicnn"
# The code before issue 30's speed work: musicnn and irmas-predict are timed beside it.
BASELINE = "9d2b640"
GROUPS = ["training", "loader", "heads", "musicnn", "predict"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(name: str, device: torch.device, batch: int, steps: int,
               config: TrainingConfig | None = None) -> float:
    """Training clips per second of Stage-1 model `name` (forward, backward, optimiser step),
    with what `config` asks for of it (default: the 2020 project's training, no augmentation)."""
    spec = registry.spec(name)
    config = registry.resolve(config or TrainingConfig.plain(), STAGE1, spec).config
    torch.manual_seed(0)
    model = networks.build(spec.network, n_outputs=len(CLASSES),
                           **spec.network_kwargs(config)).to(device).train()
    if spec.log_mel:
        model.set_augment(augment.spectrogram_augment(config))
    opt = loop.optimizer(model, config)
    waves = sources.clip_augment(config, len(CLASSES))
    loss = recipe.STAGE_RECIPES[STAGE1].loss(config)
    x = torch.randn(batch, 2, CLIP_SAMPLES, device=device) * 0.1
    y = torch.arange(batch, device=device) % 4

    def step() -> None:
        loop.train_step(model, opt, loss, x=x, y=y, device=device, augment=waves)

    step()  # warm-up (allocations, kernels)
    _sync(device)
    tic = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - tic)


def gflop_per_clip(name: str) -> float:
    model = networks.build(name, n_outputs=len(CLASSES)).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 2, CLIP_SAMPLES))
    return counter.get_total_flops() / 1e9


def drop_page_cache() -> bool:
    """Empty Linux's page cache (needs root), so files come from the disk as in a fresh session."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        return False
    return True


def wav_rate(root: Path, paths) -> float:
    """Clips/s of the 2020 project's way: read, normalise and crop every WAV, one at a time."""
    tic = time.perf_counter()
    for path in paths:
        audio.load_clip(root / path)
    return len(paths) / (time.perf_counter() - tic)


def loader_rates(root: Path, manifest, device: torch.device) -> tuple[float, float, float | None]:
    """Clips/s of cache batches, of per-item WAV load + normalise from the page cache, and from
    the disk (None where the page cache cannot be dropped), over the same training clips."""
    paths = manifest.loc[manifest["split"] == "train", "path"].tolist()
    cold = wav_rate(root, paths) if drop_page_cache() else None
    warm = wav_rate(root, paths)
    split = cache.load_split(cache.build_split(manifest, root, "train", target=root / "train.pt",
                                               progress=False, classes=CLASSES), device)
    index, sign = split.balanced()
    batches = ClipBatches(split.waves, split.labels, 16, index=index, sign=sign, shuffle=True)
    n, tic = 0, time.perf_counter()
    for _ in range(5):
        for x, _ in batches:
            n += len(x)
    _sync(device)
    return n / (time.perf_counter() - tic), warm, cold


def epoch_seconds(name: str, device: torch.device, clips: int = 1732, batch: int = 16) -> float:
    """One Stage-1 training epoch over `clips` cached clips, as notebook 03 runs it."""
    waves = (torch.randn(clips, 2, CLIP_SAMPLES, device=device) * 0.1).half()
    labels = torch.arange(clips, device=device) % 4
    batches = ClipBatches(waves, labels, batch, shuffle=True)
    torch.manual_seed(0)
    model = networks.build(name, n_outputs=len(CLASSES)).to(device).train()
    opt = torch.optim.Adam(model.parameters(), 3e-4)
    _sync(device)
    tic = time.perf_counter()
    for x, y in batches:
        loop.train_step(model, opt, nn.functional.cross_entropy, x=x, y=y, device=device)
    _sync(device)
    return time.perf_counter() - tic


def transfer_epoch_seconds(device: torch.device, mixes: int = 2265, epochs: int = 5) -> float:
    """One epoch of the 2020 transfer head on precomputed Wave1DCNN features (254 per mix);
    2,265 mixes: IRMAS's 1,510 training clips, each in 3 pairs."""
    feats = torch.randn(mixes, 254, device=device)
    targets = torch.zeros(mixes, 4, device=device)
    targets[torch.arange(mixes), torch.arange(mixes) % 4] = 1
    head = networks.build("transfer", n_outputs=len(CLASSES)).to(device)
    return head_epoch(head, torch.optim.Adam(head.parameters(), 1e-4),
                      recipe.STAGE_RECIPES[STAGE2].loss(TrainingConfig()),
                      TensorBatches(feats, targets, 64, shuffle=True), device, epochs)


def head_epoch(head: nn.Module, opt: torch.optim.Optimizer, loss: loop.LossFn,
               batches: TensorBatches, device: torch.device, epochs: int) -> float:
    """Median seconds of an epoch of `head` on feature `batches`, after one to warm up."""
    head.train()
    times = []
    for epoch in range(epochs + 1):
        batches.set_epoch(epoch)
        _sync(device)
        tic = time.perf_counter()
        for x, y in batches:
            loop.train_step(head, opt, loss, x=x, y=y, device=device)
        _sync(device)
        times.append(time.perf_counter() - tic)
    return float(np.median(times[1:]))


def head_epoch_seconds(device: torch.device, clips: int = 1508, epochs: int = 5) -> float:
    """One epoch of a linear head on cached musicnn features of the default layer (200 of
    `penultimate`) of IRMAS's four-instrument training split (1,508 clips), batch 64, AdamW."""
    model = networks.build("musicnn", n_outputs=len(CLASSES)).to(device)
    feats = torch.randn(clips, model.backbone.n_features, device=device)
    targets = torch.arange(clips, device=device) % 4
    settings = registry.resolve(TrainingConfig(), STAGE1, "transfer-musicnn").config
    return head_epoch(model, loop.optimizer(model, settings),
                      nn.functional.cross_entropy, TensorBatches(feats, targets, 64, shuffle=True),
                      device, epochs)


def untrained_checkpoint(folder: Path, name: str) -> Path:
    """A Stage-2 checkpoint of model `name` at seeded random weights: what a prediction costs
    does not depend on them (`musicnn`: a head on frozen musicnn, the whole backbone a window)."""
    torch.manual_seed(0)
    return checkpoints.save_checkpoint(folder / f"{name}.pt",
                                       networks.build(name, n_outputs=len(CLASSES)),
                                       checkpoints.model_meta(name, classes=CLASSES, task="multi"))


def predict_rows() -> list[tuple[str, str]]:
    """`irmas-predict` on the musicnn rows' 3-minute song with MelCNN and the 2020 network."""
    with tempfile.TemporaryDirectory() as tmp:
        song = song_of_reference_clips(Path(tmp) / "song.wav")
        rows = []
        for m in ("mel", "wave1d"):
            heard = probe(REPO, "predict", str(untrained_checkpoint(Path(tmp), m)), str(song))
            rows.append((f"irmas-predict, the same 3-minute song, {m} (untrained weights)",
                         f"{heard['seconds']:.2f} s"))
        return rows


def training_rows(device: torch.device, steps: int) -> list[tuple[str, str]]:
    """Training clips/s of the 2020 network and MelCNN, plain and with the recipe, and FLOPs."""
    rate = {m: train_rate(m, device, 16, steps) for m in ("wave1d", "mel")}
    flops = {m: gflop_per_clip(m) for m in ("wave1d", "mel")}
    recipe = train_rate("mel", device, 16, steps, TrainingConfig())
    return [
        ("training clips/s, Wave1DCNN", f"{rate['wave1d']:.1f}"),
        ("training clips/s, MelCNN", f"{rate['mel']:.1f}"),
        ("MelCNN / Wave1DCNN training speed", f"{rate['mel'] / rate['wave1d']:.1f}x"),
        ("training clips/s, MelCNN with the recipe (augmentation on the device)",
         f"{recipe:.1f} (time per clip {rate['mel'] / recipe:.2f}x plain; goal <= 1.5x)"),
        ("forward GFLOP per clip, Wave1DCNN / MelCNN",
         f"{flops['wave1d']:.2f} / {flops['mel']:.3f} ({flops['wave1d'] / flops['mel']:.0f}x)"),
        ("training clips/s, musicnn fine-tuned (recipe's log-mel EQ and masks)",
         f"{train_rate('musicnn-finetune', device, 16, steps, TrainingConfig()):.1f}"),
    ]


def loader_rows(device: torch.device) -> list[tuple[str, str]]:
    """The decode-once cache's batches against the 2020 way of reading WAVs per item."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest = render_set.render_demo(tmp, recordings_per_class=10, test_songs=0,
                                          progress=False)
        cached, warm, cold = loader_rates(Path(tmp), manifest, device)
    rows = []
    if cold:
        rows.append(("loader clips/s, per-item WAV load + normalise (2020 way), from disk",
                     f"{cold:.0f}"))
    rows.append(("loader clips/s, the same from the page cache", f"{warm:.0f}"))
    rows.append((f"loader clips/s, decode-once cache on {device.type}", f"{cached:.0f}"))
    if cold:
        rows.append(("cache / WAV-from-disk loader speed", f"{cached / cold:.0f}x"))
    rows.append(("cache / WAV-from-page-cache loader speed", f"{cached / warm:.0f}x"))
    return rows


def head_rows(device: torch.device) -> list[tuple[str, str]]:
    """Epochs of the heads that train on precomputed features."""
    reported = PROJECT_2020["stage2"]["transfer"]["seconds_per_epoch"]
    return [
        (f"transfer-head epoch, 2,265 mixes of features (2020: {reported} s)",
         f"{transfer_epoch_seconds(device) * 1000:.1f} ms"),
        ("frozen-musicnn head epoch, 1,508 clips of cached features (goal <= 1 s)",
         f"{head_epoch_seconds(device) * 1000:.1f} ms"),
    ]


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a large float32 matrix product: the most this machine's BLAS attains, the
    yardstick for what fraction of the CPU a network uses."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    tic = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - tic) / 1e9


def probe(root: Path, *args: str) -> dict:
    """`speed_probe.py args` in a fresh process with `root`'s helpers package imported."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, str(PROBE), *args], env=env, check=True, text=True,
                          stdout=subprocess.PIPE, cwd=root)
    answer = json.loads(done.stdout.splitlines()[-1])
    if not answer["helpers"].startswith(str(root)):
        raise RuntimeError(f"the probe imported {answer['helpers']}, not {root}'s helpers")
    return answer


def song_of_reference_clips(path: Path, seconds: float = 180.0) -> Path:
    """A `seconds`-long 44.1 kHz stereo WAV of the musicnn fixture's four instrument clips in
    turn (3 s each, at levels from -10 to 0 dB): music, so the models name instruments."""
    clips = [sf.read(MUSICNN_FIXTURES / f"{c}.wav", dtype="float32") for c in CLASSES]
    parts, total, i = [], 0, 0
    while total < seconds * SAMPLE_RATE:
        clip, rate = clips[i % len(clips)]
        part = soxr.resample(clip, rate, SAMPLE_RATE) * 10 ** (-(i % 5) * 2.5 / 20)
        parts.append(part)
        total += len(part)
        i += 1
    sf.write(path, np.concatenate(parts)[:int(seconds * SAMPLE_RATE)], SAMPLE_RATE,
             subtype="PCM_16")
    return path


def musicnn_rows(baseline: str, checkpoint: Path | None) -> list[tuple[str, str]]:
    """musicnn's throughput and a 3-minute song through `irmas-predict`, this code beside the
    code of commit `baseline` (each in its own process, one after the other, best of several), with
    how far this code's outputs are from the baseline's and from the TensorFlow graph's."""
    reference = MUSICNN_FIXTURES / "reference.npz"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_root = tmp / "baseline"
        old_root.mkdir()
        tree = subprocess.run(["git", "-C", str(REPO), "archive", baseline, "helpers"],
                              check=True, stdout=subprocess.PIPE).stdout
        subprocess.run(["tar", "-x", "-C", str(old_root)], input=tree, check=True)
        roots = {"baseline": old_root, "now": REPO}
        nets = {k: probe(root, "musicnn", str(reference), str(tmp / f"{k}.npz"))
                for k, root in roots.items()}
        checkpoint = checkpoint or untrained_checkpoint(tmp, "musicnn")
        song = song_of_reference_clips(tmp / "song.wav")
        songs = {k: probe(root, "predict", str(checkpoint), str(song)) for k, root in roots.items()}
        outs = {k: np.load(tmp / f"{k}.npz") for k in roots}
        ref = np.load(reference)
        to_old = max(float(np.abs(outs["now"][k] - outs["baseline"][k]).max())
                     for k in ("taggram", "penultimate", "pool"))
        to_tf = max(float(np.abs(outs["now"][k] - ref[f"MTT_musicnn/{k}"]).max())
                    for k in ("taggram", "penultimate"))
    peak = gemm_gflops()
    now, old = nets["now"], nets["baseline"]
    drift = max(abs(songs["now"]["probabilities"][c] - songs["baseline"]["probabilities"][c])
                for c in songs["now"]["probabilities"])
    return [
        (f"musicnn network clips/s, batch 32 (commit {baseline} / now)",
         f"{old['network']:.1f} / {now['network']:.1f} ({now['network'] / old['network']:.2f}x)"),
        (f"musicnn features clips/s, 3 s stereo at 44.1 kHz, resampling and log-mel included "
         f"(commit {baseline} / now; goal >= 2x)",
         f"{old['features']:.1f} / {now['features']:.1f} "
         f"({now['features'] / old['features']:.2f}x; IRMAS's 6,705 clips: "
         f"{6705 / now['features'] / 60:.1f} min)"),
        ("musicnn outputs, max |now - baseline| / max |now - TensorFlow| (goal <= 1e-4)",
         f"{to_old:.1e} / {to_tf:.1e}"),
        ("musicnn forward GFLOP per clip, the graph's (baseline) / as executed now",
         f"{old['gflop']:.2f} / {now['gflop']:.2f}"),
        ("musicnn network: the graph's GFLOP/s now, share of a 2048x2048 matrix product's",
         f"{old['gflop'] * now['network']:.0f} ({old['gflop'] * now['network'] / peak:.0%} "
         f"of {peak:.0f} GFLOP/s)"),
        (f"irmas-predict, 3-minute song, musicnn head, {predict.HOP_SECONDS} s hop "
         f"(commit {baseline} / now; goal <= 1 s)",
         f"{songs['baseline']['seconds']:.2f} / {songs['now']['seconds']:.2f} s"),
        ("the same: named now / then, max |probability difference| (goal <= 0.01)",
         f"{songs['now']['present']} / {songs['baseline']['present']}, {drift:.4f}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model")
    parser.add_argument("--epoch", action="store_true", help="also time an epoch on 1,732 clips")
    parser.add_argument("--only", choices=GROUPS, action="append",
                        help="only these groups of rows (repeatable; default: all)")
    parser.add_argument("--baseline", default=BASELINE,
                        help=f"commit musicnn and irmas-predict are compared with ({BASELINE})")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="the predict rows' model (default: an untrained musicnn head)")
    args = parser.parse_args()
    groups = args.only or GROUPS
    if "musicnn" in groups and subprocess.run(
            ["git", "-C", str(REPO), "cat-file", "-e", f"{args.baseline}^{{commit}}"],
            capture_output=True).returncode:
        parser.error(f"--baseline {args.baseline} is not in this clone's history (a shallow "
                     "clone? git fetch --unshallow), or time the other groups (--only "
                     "training --only loader --only heads --only predict)")
    device = loop.pick_device(args.device)
    env = dataset.environment(str(device))
    print(f"machine: {env['device']} · {env['cpu']}, {env['cores']} cores, torch {env['torch']}, "
          f"{env['torch_threads']} threads, {env['date']}")
    rows = []
    if "training" in groups:
        rows += training_rows(device, args.steps)
    if "loader" in groups:
        rows += loader_rows(device)
    if "heads" in groups:
        rows += head_rows(device)
    if "musicnn" in groups:
        rows += musicnn_rows(args.baseline, args.checkpoint and args.checkpoint.resolve())
    if "predict" in groups:
        rows += predict_rows()
    if args.epoch:
        for m in ("wave1d", "mel"):
            rows.append((f"Stage-1 epoch on 1,732 clips, {m} (2020: "
                         f"{PROJECT_2020['stage1']['wave1d']['seconds_per_epoch']:.0f} s)",
                         f"{epoch_seconds(m, device):.1f} s"))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
