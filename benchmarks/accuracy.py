"""Accuracy that transfers: Stage 1 trained on one soundfont's recordings, tested on another's,
with the plain training configuration beside the training recipe (`config.RECIPE`).

    python benchmarks/accuracy.py                 # IRMAS-size, both directions, plain vs recipe
    python benchmarks/accuracy.py --one-way       # FluidR3_GM -> TimGM6mb only (half the time)
    python benchmarks/accuracy.py --ablation      # also the recipe with each part switched off
    python benchmarks/accuracy.py --quick         # a smoke run (minutes)

Each soundfont gets its own IRMAS-size demo set (IRMAS's four class counts, 3 excerpts per
recording), rendered with its own seed, so the other set's music and timbre are both unheard;
the recipe trains on the same music rendered with randomised timbre (`demo.GEN_OFFSETS`).
Every model is trained and validated (checkpoint chosen on validation) on one set's grouped
train/val split and tested on that set's test split (in-font) and on every clip of the other
soundfont's plain set (across soundfonts). Accuracy and macro-F1 come with 95% bootstrap
intervals over recordings. Everything lands in `runs/accuracy/<name>/`: the sets' caches, every
model's `best.pt`, `results.json` and `table.md` (which names the data, the machine and the
date). A killed run resumes where it stopped (each model continues from its `last.pt`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from helpers import cache, checkpoints, demo, irmas, metrics, runs, stage1, training
from helpers.batches import ClipBatches
from helpers.config import RECIPE, SPLITS, TrainingConfig
from helpers.layout import RunLayout

FONTS = {"fluid": "FluidR3_GM.sf2", "tim": "TimGM6mb.sf2"}
SEEDS = {"fluid": 1, "tim": 2}
IRMAS_LARGEST = 241  # piano: 721 IRMAS clips = 241 recordings x 3 excerpts (2,515 clips in all)
PLAIN = {"optimizer": "adam", "lr": 3e-4, "schedule": "constant"}  # TrainingConfig's defaults
# name: (what it is, training knobs, timbre of the training set)
VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "plain": ("plain (Adam, no augmentation)", {}, "fixed"),
    "recipe": ("recipe", RECIPE, "random"),
}
ABLATIONS: dict[str, tuple[str, dict[str, Any], str]] = {
    "no-timbre": ("recipe − timbre randomisation", RECIPE, "fixed"),
    "no-mix-under": ("recipe − mix-under", {**RECIPE, "mix_under": 0.0}, "random"),
    "no-eq-gain": ("recipe − EQ and gain", {**RECIPE, "eq_db": 0.0, "gain_db": 0.0}, "random"),
    "no-masks": ("recipe − SpecAugment masks", {**RECIPE, "spec_masks": False}, "random"),
    "no-shift": ("recipe − time shift", {**RECIPE, "shift": False}, "random"),
    "no-schedule": ("recipe − AdamW + warm-up/cosine",
                    {**RECIPE, **PLAIN, "weight_decay": 0.0, "warmup_epochs": 0.0}, "random"),
    "no-smoothing": ("recipe − label smoothing", {**RECIPE, "label_smoothing": 0.0}, "random"),
    "mixup": ("recipe, mixup instead of mix-under",
              {**RECIPE, "mix_under": 0.0, "mixup": 0.4}, "random"),
}


def prepare(font: str, timbre: str, recordings: int, data_root: Path, run_root: Path
            ) -> RunLayout:
    """Render (or reuse) the set of one soundfont and timbre, and cache its splits."""
    label = font if timbre == "fixed" else f"{font}-{timbre}"
    root = data_root / label
    manifest = demo.render_demo(root, recordings, test_songs=0, seed=SEEDS[font],
                                soundfonts=[FONTS[font]], timbre=timbre)
    run = RunLayout(run_root / label)
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
    lines = ["| training | epochs | trained on | tested on | clips | recordings | "
             "accuracy (95% CI) | macro-F1 (95% CI) | val acc. | s/epoch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        (al, ah), (fl, fh) = r["accuracy_95"], r["macro_f1_95"]
        lines.append(f"| {r['model']} | {r['epochs']} | {r['train']} | {r['test']} | "
                     f"{r['clips']:,} | {r['recordings']:,} | {r['accuracy']:.1%} "
                     f"({al:.1%}–{ah:.1%}) | {r['macro_f1']:.3f} ({fl:.3f}–{fh:.3f}) | "
                     f"{r['val_accuracy']:.1%} | {r['seconds_per_epoch']:.1f} |")
    return "\n".join(lines)


def run_variant(variant: str, spec: tuple[str, dict[str, Any], str], epochs: int,
                train_font: str, test_font: str, sets: dict, n_boot: int) -> list[dict]:
    """Train one variant on `train_font` and test it in-font and across soundfonts."""
    label, knobs, timbre = spec
    config = TrainingConfig.of(**{**knobs, "epochs": epochs, "random_seed": 1})
    trained_on = sets[train_font, timbre]
    fit = stage1.train(trained_on, "mel", config, variant=f"{variant}-{epochs}ep")
    best = Path(fit.checkpoint)
    timbre_note = " (random timbre)" if timbre == "random" else ""
    common = {"model": label, "variant": variant, "epochs": epochs,
              "train": FONTS[train_font] + timbre_note, "val_accuracy": fit.val_score,
              "seconds_per_epoch": fit.seconds_per_epoch, "training": config.to_dict()}
    return [
        {**common, "test": f"{FONTS[train_font]}{timbre_note} (test split)", "across": False,
         **scores(heard(best, trained_on, ("test",)), n_boot)},
        {**common, "test": f"{FONTS[test_font]} (all clips)", "across": True,
         **scores(heard(best, sets[test_font, "fixed"], SPLITS), n_boot)},
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="default", help="run folder under runs/accuracy/")
    parser.add_argument("--one-way", action="store_true", help="only FluidR3_GM -> TimGM6mb")
    parser.add_argument("--ablation", action="store_true",
                        help="also train the recipe with each part off (FluidR3_GM -> TimGM6mb)")
    parser.add_argument("--quick", action="store_true", help="tiny sets, 2 epochs: smoke run")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--ablation-epochs", type=int, default=10,
                        help="budget of the ablation rows (and of a recipe row beside them)")
    parser.add_argument("--recordings", type=int, default=IRMAS_LARGEST,
                        help="recordings of the largest class (IRMAS: 241)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=Path("data/accuracy"))
    args = parser.parse_args(argv)
    if args.quick:
        args.recordings, args.epochs, args.ablation_epochs, args.bootstrap = 8, 2, 1, 200
        args.name += "-quick"
    out = Path("runs/accuracy") / args.name
    tic = time.perf_counter()
    directions = [("fluid", "tim")] + ([] if args.one_way else [("tim", "fluid")])
    sets = {(font, timbre): prepare(font, timbre, args.recordings,
                                    args.data / str(args.recordings), out)
            for font in FONTS for timbre in demo.TIMBRES}
    rows = []
    for train_font, test_font in directions:
        for variant, spec in VARIANTS.items():
            rows += run_variant(variant, spec, args.epochs, train_font, test_font, sets,
                                args.bootstrap)
    if args.ablation:
        for variant, spec in {"recipe": VARIANTS["recipe"], **ABLATIONS}.items():
            rows += run_variant(variant, spec, args.ablation_epochs, *directions[0], sets,
                                args.bootstrap)
    env = runs.environment(str(training.pick_device()))
    minutes = (time.perf_counter() - tic) / 60
    flags = " ".join(f for f, on in (("--one-way", args.one_way), ("--ablation", args.ablation),
                                     ("--quick", args.quick)) if on)
    header = (f"`python benchmarks/accuracy.py {flags}`".replace(" `", "`") +
              f": demo sets of {args.recordings} recordings for the largest class per "
              f"soundfont, MelCNN, measured on "
              f"{env['cpu'] if env['device'] == 'CPU' else env['device']} ({env['cores']} "
              f"cores), torch {env['torch']}, {env['date']}, {minutes:.0f} min.")
    text = f"{header}\n\n{table(rows)}\n"
    runs.write_json(out / "results.json", {"rows": rows, "environment": env,
                                           "settings": {**vars(args), "data": str(args.data)},
                                           "minutes": minutes})
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
