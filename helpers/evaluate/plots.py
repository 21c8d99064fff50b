"""Figures for the notebooks: seaborn on matplotlib, shown inline and saved as PNG in the run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torchaudio

from helpers.core.config import ALL_CLASSES, CLASS_NAMES, SAMPLE_RATE, SEED
from helpers.core.layout import RunLayout, as_layout
from helpers.core.metrics import combination_confusion, confusion, count_confusion, per_label
from helpers.data.cache import CachedSplit
from helpers.data.mixing import by_combination
from helpers.data.splits import balance_train

sns.set_theme(style="whitegrid", context="notebook")
PALETTE = dict(zip(ALL_CLASSES, sns.color_palette("tab20", len(ALL_CLASSES))))
MATRIX_CLASSES = 4  # up to this many instruments the pair matrix is readable (4: 6 pairs)


def save(fig: plt.Figure, run: RunLayout | str | Path, name: str) -> Path:
    """Save `fig` as the run's figure `name` (a PNG) and return the path."""
    path = as_layout(run).figure(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def clip_counts(manifest: pd.DataFrame, by: str = "genre") -> plt.Figure:
    """Training clips per instrument, stacked by `by` (genre, drums or split)."""
    train = manifest[manifest["instrument"].isin(ALL_CLASSES)]
    table = pd.crosstab(train["instrument"].map(CLASS_NAMES), train[by].replace("", "untagged"))
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(table) + 2))
    table.plot.barh(stacked=True, ax=ax, colormap="tab10", width=0.75)
    ax.set(xlabel="clips", ylabel="", title=f"Training clips per instrument, by {by}")
    ax.legend(title=by, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    return fig


def balance_counts(before: pd.Series, after: pd.Series) -> plt.Figure:
    """Clips per instrument in the training split before and after sign-flip balancing."""
    df = pd.DataFrame({"before": before, "after balancing": after}).rename(index=CLASS_NAMES)
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(df)), 3))
    df.plot.bar(ax=ax, rot=0 if len(df) <= 6 else 30, color=["#9db4d0", "#34699a"], width=0.8)
    ax.set(ylabel="training clips", title="Balancing happens inside the training split only")
    for container in ax.containers:
        ax.bar_label(container, fontsize=8)
    return fig


def examples(waves: torch.Tensor, labels: list[str]) -> plt.Figure:
    """Waveform and log-mel spectrogram of a few clips side by side."""
    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=2048, hop_length=512, n_mels=96)
    to_db = torchaudio.transforms.AmplitudeToDB(top_db=80)
    fig, axes = plt.subplots(2, len(labels), figsize=(3.3 * len(labels), 4.6), squeeze=False)
    for i, (wave, label) in enumerate(zip(waves.float(), labels)):
        t = torch.arange(wave.shape[-1]) / SAMPLE_RATE
        axes[0, i].plot(t, wave[0], lw=0.3, color=PALETTE.get(label, "k"))
        axes[0, i].set(title=CLASS_NAMES.get(label, label), ylim=(-0.55, 0.55), xlabel="s")
        axes[1, i].imshow(to_db(mel(wave.mean(0))), origin="lower", aspect="auto", cmap="magma")
        axes[1, i].set(xlabel="frame", ylabel="mel band" if i == 0 else "")
        axes[1, i].grid(False)
    fig.tight_layout()
    return fig


def learning_curves(histories: dict[str, pd.DataFrame], score: str = "accuracy") -> plt.Figure:
    """Loss (train and val) and validation score per epoch, one colour per model."""
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 3.4))
    for (name, h), colour in zip(histories.items(), sns.color_palette("deep")):
        ax_loss.plot(h["epoch"], h["train_loss"], color=colour, ls="--", label=f"{name} train")
        ax_loss.plot(h["epoch"], h["val_loss"], color=colour, label=f"{name} val")
        ax_score.plot(h["epoch"], h["val_score"], color=colour, marker="o", ms=3, label=name)
        best = h["val_score"].idxmax()
        ax_score.scatter(h.loc[best, "epoch"], h.loc[best, "val_score"], s=90,
                         facecolors="none", edgecolors=colour)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_score.set(xlabel="epoch", ylabel=f"validation {score}", title="Validation (o = kept)",
                 ylim=(0, 1.02))
    ax_loss.legend(fontsize=8, frameon=False)
    ax_score.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _count_and_share(counts: pd.DataFrame, title: str, share: str, axes) -> None:
    rows = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", cbar=False, ax=axes[0])
    sns.heatmap(rows, annot=True, fmt=".0%", cmap="Blues", vmin=0, vmax=1, cbar=False,
                ax=axes[1])
    for ax, what in zip(axes, ["counts", share]):
        ax.set(xlabel=counts.columns.name or "predicted", ylabel=counts.index.name or "true",
               title=f"{title} ({what})".strip())
        ax.tick_params(axis="y", rotation=0)
        ax.tick_params(axis="x", rotation=30 if max(len(str(c)) for c in counts.columns) > 3
                       else 0)


def _class_confusions(matrices: dict, classes: tuple[str, ...]) -> plt.Figure:
    """Stage-1 confusion matrices (rows: true instrument), one row of the figure per model."""
    names = [CLASS_NAMES[c] for c in classes]
    return confusions({f"{model}, test clips": pd.DataFrame(matrix, index=names, columns=names)
                       for model, matrix in matrices.items()})


def result_confusions(results: dict) -> plt.Figure:
    """The test confusion matrices trained models reported (`results.TrainResult`); the
    instruments are those of their per-class F1, in the models' order."""
    classes = tuple(next(iter(results.values())).test["f1"])
    return _class_confusions({model: r.test["confusion"] for model, r in results.items()},
                             classes)


def f1_bars(f1: pd.DataFrame, title: str = "F1 per instrument") -> plt.Figure:
    """Grouped bars: F1 per instrument (columns of `f1`) for each model (rows)."""
    long = (f1.rename(columns=CLASS_NAMES).rename_axis("model").reset_index()
            .melt(id_vars="model", var_name="instrument", value_name="F1"))
    fig, ax = plt.subplots(figsize=(1.6 * f1.shape[1] + 3.5, 3.4))
    sns.barplot(long, x="instrument", y="F1", hue="model", palette="deep", ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.2f", fontsize=7, padding=1)
    ax.set(ylim=(0, 1.1), xlabel="", title=title)
    ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False, fontsize=8)
    return fig


MAX_COMBINATION_ROWS = 30  # more (eleven instruments: 55 pairs) and the plot shows totals


def mix_counts(plans: dict) -> plt.Figure:
    """Mixes per instrument combination and split; with more combinations than
    `MAX_COMBINATION_ROWS`, mixes per number of instruments and mixes holding each instrument."""
    table = pd.DataFrame({split: {combo: len(items) for combo, items in
                                  by_combination(plan).items()}
                          for split, plan in plans.items()}).fillna(0)
    if len(table) > MAX_COMBINATION_ROWS:
        return _mix_totals(plans)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(table) + 1.2))
    table[list(plans)].plot.barh(ax=ax, stacked=True, width=0.75, colormap="Set2")
    ax.set(xlabel="mixes", ylabel="", title="Mixes per instrument combination")
    ax.legend(title="split", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    return fig


def _mix_totals(plans: dict) -> plt.Figure:
    """Mixes per number of instruments, and mixes holding each instrument, per split."""
    per_k = pd.DataFrame({split: plan.k.bincount().numpy() for split, plan in plans.items()}
                         ).rename_axis("instruments per mix").iloc[1:]
    names = [CLASS_NAMES[c] for c in next(iter(plans.values())).classes]
    holding = pd.DataFrame({split: plan.targets.sum(0).int().numpy()
                            for split, plan in plans.items()}, index=names)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.3 * len(names) + 2),
                                      width_ratios=[1, 1.6])
    per_k.plot.bar(ax=left, rot=0, colormap="Set2", width=0.8, legend=False)
    left.set(ylabel="mixes", title="Mixes per number of instruments")
    holding.plot.barh(ax=right, stacked=True, colormap="Set2", width=0.75)
    right.set(xlabel="mixes", title="Mixes holding each instrument")
    right.invert_yaxis()
    right.legend(title="split", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def balance(train: pd.DataFrame, seed: int = SEED) -> plt.Figure:
    """Training clips per instrument before and after sign-flip balancing (`splits`)."""
    return balance_counts(train["instrument"].value_counts(),
                          balance_train(train, seed)["instrument"].value_counts())


def class_examples(split: CachedSplit) -> plt.Figure:
    """Waveform and log-mel spectrogram of the first clip of each instrument in a split."""
    picks = split.first_of_each_class()
    return examples(split.waves[picks], [split.classes[int(split.labels[i])] for i in picks])


def stage_curves(run: RunLayout | str | Path, stage: str, score: str = "accuracy",
                 *, names: list[str] | None = None) -> plt.Figure:
    """Learning curves of every trained model of `stage` (or of `names`), from their histories."""
    run = as_layout(run)
    folders = [run.model(stage, n) for n in names] if names else run.trained(stage)
    fig = learning_curves({f.name: pd.read_csv(f.history_csv) for f in folders}, score=score)
    fig.suptitle(stage, y=1.03)
    return fig


def confusions(tables: dict[str, pd.DataFrame], share: str = "share of each true class"
               ) -> plt.Figure:
    """Several count tables in one figure, a row each: counts, and each row as shares."""
    n_cols = max(t.shape[1] for t in tables.values())
    n_rows = sum(t.shape[0] for t in tables.values())
    heights = [t.shape[0] + 2 for t in tables.values()]  # rows plus room for the labels
    fig, axes = plt.subplots(len(tables), 2, squeeze=False, height_ratios=heights,
                             figsize=(2 * (1.1 * n_cols + 2.5), 0.55 * n_rows + 1.9 * len(tables)))
    for (title, counts), row in zip(tables.items(), axes):
        _count_and_share(counts.astype(int), title, share, row)
    fig.tight_layout()
    return fig


def clip_confusions(evaluations: dict) -> plt.Figure:
    """The confusion matrices of Stage-1 evaluations (`analysis.evaluate_clips`)."""
    classes = next(iter(evaluations.values())).classes
    return _class_confusions({model: confusion(ev.targets.argmax(1), ev.pred.argmax(1),
                                               len(classes))
                              for model, ev in evaluations.items()}, classes)


def combination_confusions(ev, title: str) -> plt.Figure:
    """The 2020 project's pair matrix for every number of instruments present (+ *Other* for
    a wrong count), and the count matrix, for one evaluation."""
    tables = {f"{title}, {k} playing": combination_confusion(ev.targets, ev.pred, k,
                                                             classes=ev.classes)
              for k in sorted(set(ev.targets.sum(1).int().tolist()))}
    tables[f"{title}: how many named"] = count_confusion(ev.targets, ev.pred)
    return confusions(tables, "share of each row")


def instrument_scores(ev, title: str) -> plt.Figure:
    """Precision, recall and F1 per instrument of one evaluation, as grouped horizontal bars
    (readable for eleven instruments, where a pair matrix has 55 rows)."""
    table = per_label(ev.targets, ev.pred, ev.classes).rename(index=CLASS_NAMES)
    long = (table[["precision", "recall", "f1"]].rename_axis("instrument").reset_index()
            .melt(id_vars="instrument", var_name="score", value_name="value"))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(table) + 1.5))
    sns.barplot(long, y="instrument", x="value", hue="score", palette="deep", ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.2f", fontsize=7, padding=1)
    ax.set(xlim=(0, 1.12), xlabel="", ylabel="", title=f"{title}: per instrument")
    ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False, fontsize=8)
    return fig


def named_when_playing(ev, title: str) -> plt.Figure:
    """Rows: an instrument that plays; columns: how often each instrument was named in those
    items (the diagonal is recall; off it, what it is taken for or heard beside), with the
    count table beside the shares."""
    y, p = ev.targets.float(), ev.pred.float()
    names = [CLASS_NAMES[c] for c in ev.classes]
    counts = pd.DataFrame((y.T @ p).int().numpy(), index=names, columns=names)
    counts.index.name, counts.columns.name = "playing", "named"
    playing = pd.Series(y.sum(0).numpy(), index=names).replace(0, 1)
    shares = counts.div(playing, axis=0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * (0.75 * len(names) + 2.5), 0.6 * len(names) + 2))
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", cbar=False, ax=axes[0])
    sns.heatmap(shares, annot=True, fmt=".0%", cmap="Blues", vmin=0, vmax=1, cbar=False,
                ax=axes[1], annot_kws={"fontsize": 7})
    for ax, what in zip(axes, ["items", "share of the items where it plays"]):
        ax.set(title=f"{title}: named when playing ({what})")
        ax.tick_params(axis="x", rotation=45)
        ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def multilabel_figures(ev, title: str) -> dict[str, plt.Figure]:
    """The figures that read best for this many instruments: the pair matrices up to
    `MATRIX_CLASSES`, else per-instrument precision/recall/F1 and the named-when-playing
    heatmap. Keys name each figure (for `save`)."""
    if len(ev.classes) <= MATRIX_CLASSES:
        return {"combinations": combination_confusions(ev, title)}
    return {"instruments": instrument_scores(ev, title),
            "named_when_playing": named_when_playing(ev, title)}


def timeline(prediction, thresholds: dict[str, float], clip_seconds: float = 3.0,
             *, playing: list[str] | None = None) -> plt.Figure:
    """What a model heard in one file, window by window (`predict.Prediction` with its
    timeline): a row per instrument with its probability over time (each window drawn at its
    middle), the probability it had to reach to be named (dashed) and the file's average (the
    label; green: named). Windows left out of the answer (the noise floor) are grey crosses;
    silent ones are gaps. The title is the verdict `irmas-predict` prints; the instruments
    `playing`, when known, are shaded."""
    line = prediction.timeline
    classes = list(prediction.probabilities)
    times = [start + clip_seconds / 2 for start in line.starts]
    fig, axes = plt.subplots(len(classes), 1, figsize=(9, 0.75 * len(classes) + 1.2),
                             sharex=True, squeeze=False)
    for ax, (i, code) in zip(axes[:, 0], enumerate(classes)):
        heard = [(t, p[i] if p is not None else float("nan"), on)
                 for t, p, on in zip(times, line.probabilities, line.counted)]
        ax.plot([t for t, _, _ in heard], [p if on else float("nan") for _, p, on in heard],
                "-o", ms=2.5, lw=1.2, color=PALETTE.get(code, "C0"))
        left_out = [(t, p) for t, p, on in heard if not on and p == p]
        if left_out:
            ax.plot(*zip(*left_out), "x", ms=3, color="0.6")
        ax.axhline(thresholds[code], ls="--", lw=0.9, color="0.3")
        named = code in prediction.present
        ax.text(1.01, 0.5, f"{CLASS_NAMES.get(code, code)} {prediction.probabilities[code]:.0%}",
                transform=ax.transAxes, va="center", fontsize=9,
                color="#1a7f37" if named else "0.35", fontweight="bold" if named else "normal")
        ax.set(ylim=(-0.05, 1.05), yticks=[0, 1], ylabel="")
        if playing is not None and code in playing:
            ax.set_facecolor("#eef6ee")
            ax.text(0.005, 0.9, "playing", transform=ax.transAxes, fontsize=8, va="top",
                    color="#1a7f37")
        ax.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("seconds (middle of each 3 s window)")
    fig.suptitle(textwrap.fill(prediction.line(), 110), fontsize=9, x=0.02, ha="left")
    fig.tight_layout()
    return fig
