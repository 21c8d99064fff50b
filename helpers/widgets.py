"""Inline audio browsers (ipywidgets): pick a mix, hear it and its sources."""

from __future__ import annotations

import io
import math

import ipywidgets as widgets
import soundfile as sf
import torch
from IPython.display import Audio, display

from helpers.config import CLASS_NAMES, SAMPLE_RATE
from helpers.mixing import MixPlan, instruments, mix


def combination(plan: MixPlan, i: int) -> str:
    """`acoustic guitar + piano`: the instruments of mix `i`."""
    return " + ".join(CLASS_NAMES[code] for code in instruments(plan, i))


def play(wave: torch.Tensor) -> Audio:
    return Audio(wave.float().cpu().numpy(), rate=SAMPLE_RATE, normalize=False)


def show_mix(waves: torch.Tensor, plan: MixPlan, i: int, paths: list[str]) -> None:
    """Display mix `i` and each of its sources with its gain."""
    print(f"mix {i}: {combination(plan, i)}")
    display(play(mix(waves, plan.sources[i:i + 1], plan.gains[i:i + 1])[0]))
    for src, gain in zip(plan.sources[i].tolist(), plan.gains[i].tolist()):
        if src >= 0:
            print(f"  source {paths[src].rsplit('/', 1)[-1]}  ({20 * math.log10(gain):+.1f} dB)")
            display(play(waves[src]))


def wav_bytes(wave: torch.Tensor) -> bytes:
    """16-bit WAV of a `[2, N]` waveform, for an `ipywidgets.Audio` player."""
    buffer = io.BytesIO()
    sf.write(buffer, wave.float().cpu().numpy().T, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def mix_player(waves: torch.Tensor, plan: MixPlan, paths: list[str]) -> widgets.VBox:
    """A dropdown of instrument combinations and a slider over its mixes; plays the mix and
    its sources. Players are `ipywidgets.Audio` (binary widget state), which stays fast where
    audio displayed inside an `Output` widget does not (headless execution)."""
    by_combo: dict[str, list[int]] = {}
    for i in range(len(plan)):
        by_combo.setdefault(combination(plan, i), []).append(i)
    combo = widgets.Dropdown(options=sorted(by_combo), description="instruments")
    pick = widgets.IntSlider(min=0, max=len(by_combo[combo.value]) - 1, description="mix")
    labels = [widgets.Label() for _ in range(plan.sources.shape[1] + 1)]
    players = [widgets.Audio(format="wav", autoplay=False) for _ in labels]
    rows = [widgets.HBox([label, player]) for label, player in zip(labels, players)]

    def refresh(_=None) -> None:
        pick.max = len(by_combo[combo.value]) - 1
        i = by_combo[combo.value][min(pick.value, pick.max)]
        labels[0].value = f"mix {i}: {combination(plan, i)}"
        players[0].value = wav_bytes(mix(waves, plan.sources[i:i + 1], plan.gains[i:i + 1])[0])
        for row, label, player, src, gain in zip(rows[1:], labels[1:], players[1:],
                                                 plan.sources[i].tolist(),
                                                 plan.gains[i].tolist()):
            row.layout.display = "" if src >= 0 else "none"
            if src >= 0:
                label.value = f"{paths[src].rsplit('/', 1)[-1]} ({20 * math.log10(gain):+.1f} dB)"
                player.value = wav_bytes(waves[src])

    combo.observe(refresh, names="value")
    pick.observe(refresh, names="value")
    refresh()
    return widgets.VBox([widgets.HBox([combo, pick]), *rows])
