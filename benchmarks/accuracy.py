"""Accuracy that transfers: Stage 1 trained on one soundfont's recordings, tested on another's.

    python benchmarks/accuracy.py                 # IRMAS-size, FluidR3_GM -> TimGM6mb
    python benchmarks/accuracy.py --both          # and TimGM6mb -> FluidR3_GM
    python benchmarks/accuracy.py --quick         # a smoke run (minutes)

Each soundfont gets its own IRMAS-size demo set (IRMAS's four class counts, 3 excerpts per
recording), rendered with its own seed, so the other set's music and timbre are both unheard.
A MelCNN is trained and validated on one set's grouped train/val split and tested on that set's
test split (in-font) and on every clip of the other set (across soundfonts). Accuracy and
macro-F1 come with 95% bootstrap intervals over recordings. Everything lands in
`runs/accuracy/<name>/`: the data sets' caches, each model's `best.pt`, `results.json` and
`table.md` (which names the data, the machine and the date).

This is the first part of the accuracy benchmark: Stage 2, whole test excerpts and the training
recipe's ablations are not in it yet.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from helpers import cache, checkpoints, demo, irmas, metrics, runs, stage1, training
from helpers.batches import ClipBatches
from helpers.config import SPLITS, TrainingConfig
from helpers.layout import RunLayout

FONTS = {"fluid": "FluidR3_GM.sf2", "tim": "TimGM6mb.sf2"}
SEEDS = {"fluid": 1, "tim": 2}
IRMAS_LARGEST = 241  # piano: 721 IRMAS clips = 241 recordings x 3 excerpts (2,515 clips in all)


def prepare(font: str, recordings: int, data_root: Path, run_root: Path) -> RunLayout:
    """Render (or reuse) the set of one soundfont and cache its splits."""
    root = data_root / font
    manifest = demo.render_demo(root, recordings, test_songs=0, seed=SEEDS[font],
                                soundfonts=[FONTS[font]])
    run = RunLayout(run_root / font)
    runs.save_dataset(run, "demo", root, manifest)
    cache.build_all(manifest, root, run)
    return run


def heard(best: Path, run: RunLayout, splits: tuple[str, ...]) -> dict:
    """Labels, predictions and recording of every clip of `splits`, by the model in `best`."""
    model, _ = checkpoints.load_model(best)
    labels, preds, groups = [], [], []
    for split in splits:
        cached = cache.load_split(run.cache(split))
        logits, y = training.predict(model, ClipBatches(cached.waves, cached.labels, 64))
        labels.append(y.numpy())
        preds.append(logits.argmax(1).numpy())
        groups += [irmas.parse_training_name(p).recording for p in cached.paths]
    return {"y": np.concatenate(labels), "p": np.concatenate(preds), "groups": np.array(groups)}


def scores(items: dict, n_boot: int) -> dict:
    """Accuracy and macro-F1 with 95% intervals from a bootstrap over recordings."""
    y, p = items["y"], items["p"]

    def accuracy(idx):
        return float((y[idx] == p[idx]).mean())

    def macro_f1(idx):
        return float(f1_score(y[idx], p[idx], average="macro", zero_division=0))

    everything = np.arange(len(y))
    return {"clips": len(y), "recordings": len(set(items["groups"])),
            "accuracy": accuracy(everything),
            "accuracy_95": metrics.bootstrap_interval(accuracy, items["groups"], n_boot),
            "macro_f1": macro_f1(everything),
            "macro_f1_95": metrics.bootstrap_interval(macro_f1, items["groups"], n_boot)}


def table(rows: list[dict]) -> str:
    lines = ["| model | trained on | tested on | clips | recordings | accuracy (95% CI) | "
             "macro-F1 (95% CI) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        (al, ah), (fl, fh) = r["accuracy_95"], r["macro_f1_95"]
        lines.append(f"| {r['model']} | {r['train']} | {r['test']} | {r['clips']:,} | "
                     f"{r['recordings']:,} | {r['accuracy']:.1%} ({al:.1%}–{ah:.1%}) | "
                     f"{r['macro_f1']:.3f} ({fl:.3f}–{fh:.3f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="stage1", help="run folder under runs/accuracy/")
    parser.add_argument("--both", action="store_true", help="also TimGM6mb -> FluidR3_GM")
    parser.add_argument("--quick", action="store_true", help="tiny sets, 2 epochs: smoke run")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--recordings", type=int, default=IRMAS_LARGEST,
                        help="recordings of the largest class (IRMAS: 241)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=Path("data/accuracy"))
    args = parser.parse_args(argv)
    if args.quick:
        args.recordings, args.epochs, args.bootstrap = 8, 2, 200
        args.name += "-quick"
    out = Path("runs/accuracy") / args.name
    tic = time.perf_counter()
    sets = {font: prepare(font, args.recordings, args.data / str(args.recordings), out)
            for font in FONTS}
    directions = [("fluid", "tim")] + ([("tim", "fluid")] if args.both else [])
    config = TrainingConfig(epochs=args.epochs, random_seed=1)
    rows = []
    for train_font, test_font in directions:
        fit = stage1.train(sets[train_font], "mel", config)
        best = Path(fit.checkpoint)
        for test_on, splits in ((train_font, ("test",)), (test_font, SPLITS)):
            rows.append({"model": "mel (plain)", "train": FONTS[train_font],
                         "test": FONTS[test_on] + (" (test split)" if test_on == train_font
                                                   else " (all clips)"),
                         "val_accuracy": fit.val_score,
                         **scores(heard(best, sets[test_on], splits), args.bootstrap)})
    env = runs.environment(str(training.pick_device()))
    minutes = (time.perf_counter() - tic) / 60
    header = (f"`python benchmarks/accuracy.py{' --both' if args.both else ''}"
              f"{' --quick' if args.quick else ''}`: demo sets of {args.recordings} recordings "
              f"for the largest class per soundfont, MelCNN {args.epochs} epochs, measured on "
              f"{env['cpu'] if env['device'] == 'CPU' else env['device']} ({env['cores']} "
              f"cores), torch {env['torch']}, {env['date']}, {minutes:.0f} min.")
    text = f"{header}\n\n{table(rows)}\n"
    runs.write_json(out / "results.json", {"rows": rows, "environment": env,
                                           "settings": vars(args),
                                           "training": config.to_dict(), "minutes": minutes})
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
