"""Figures for the notebooks: seaborn on matplotlib, shown inline and saved as PNG in the run."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torchaudio

from helpers.config import CLASS_NAMES, CLASSES, SAMPLE_RATE
from helpers.mixing import instruments

sns.set_theme(style="whitegrid", context="notebook")
PALETTE = dict(zip(CLASSES, sns.color_palette("deep", len(CLASSES))))


def save(fig: plt.Figure, run_dir: str | Path, name: str) -> Path:
    """Save `fig` as `run_dir/figures/<name>.png` and return the path."""
    path = Path(run_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def clip_counts(manifest: pd.DataFrame, by: str = "genre") -> plt.Figure:
    """Training clips per instrument, stacked by `by` (genre, drums or split)."""
    train = manifest[manifest["instrument"].isin(CLASSES)]
    table = pd.crosstab(train["instrument"].map(CLASS_NAMES), train[by].replace("", "untagged"))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    table.plot.barh(stacked=True, ax=ax, colormap="tab10", width=0.75)
    ax.set(xlabel="clips", ylabel="", title=f"Training clips per instrument, by {by}")
    ax.legend(title=by, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    return fig


def balance_counts(before: pd.Series, after: pd.Series) -> plt.Figure:
    """Clips per instrument in the training split before and after sign-flip balancing."""
    df = pd.DataFrame({"before": before, "after balancing": after}).rename(index=CLASS_NAMES)
    fig, ax = plt.subplots(figsize=(7, 3))
    df.plot.bar(ax=ax, rot=0, color=["#9db4d0", "#34699a"], width=0.8)
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


def count_and_share(counts: pd.DataFrame, title: str = "", share: str = "share of each row"
                    ) -> plt.Figure:
    """A count table as two heatmaps side by side: counts, and each row as shares (recall)."""
    counts = counts.astype(int)
    rows = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    width = 1.1 * counts.shape[1] + 2.5
    fig, axes = plt.subplots(1, 2, figsize=(2 * width, 0.55 * counts.shape[0] + 1.7))
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", cbar=False, ax=axes[0])
    sns.heatmap(rows, annot=True, fmt=".0%", cmap="Blues", vmin=0, vmax=1, cbar=False,
                ax=axes[1])
    for ax, what in zip(axes, ["counts", share]):
        ax.set(xlabel=counts.columns.name or "predicted", ylabel=counts.index.name or "true",
               title=f"{title} ({what})".strip())
        ax.tick_params(axis="y", rotation=0)
        ax.tick_params(axis="x", rotation=30 if max(len(str(c)) for c in counts.columns) > 3
                       else 0)
    fig.tight_layout()
    return fig


def confusion(matrix, labels: list[str], title: str = "") -> plt.Figure:
    """Counts and row-normalised (recall) confusion matrices side by side."""
    counts = pd.DataFrame(matrix, index=labels, columns=labels)
    return count_and_share(counts, title, "share of each true class")


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


def mix_counts(plans: dict) -> plt.Figure:
    """Mixes per instrument combination and split."""
    rows = pd.DataFrame([{"split": split, "instruments": "+".join(instruments(plan, i))}
                         for split, plan in plans.items() for i in range(len(plan))])
    table = pd.crosstab(rows["instruments"], rows["split"])
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(table) + 1.2))
    table[list(plans)].plot.barh(ax=ax, stacked=True, width=0.75, colormap="Set2")
    ax.set(xlabel="mixes", ylabel="", title="Mixes per instrument combination")
    ax.legend(title="split", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    return fig
