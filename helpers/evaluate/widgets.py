"""Inline audio browsers (ipywidgets): pick a mix and hear it and its sources; browse a model's
test predictions by true and named instrument, right or wrong, with its probabilities."""

from __future__ import annotations

import io
import math

import ipywidgets as widgets
import numpy as np
import soundfile as sf
import torch
from IPython.display import Audio, display

from helpers.core.config import CLASS_NAMES, SAMPLE_RATE
from helpers.data.cache import CachedSplit
from helpers.data.mixing import MixPlan, by_combination, mix
from helpers.evaluate.analysis import Evaluation

ANY = "any"


def combination_names(row: torch.Tensor, classes: tuple[str, ...]) -> str:
    """`piano + trumpet` for a multi-hot row over `classes`; `nothing` when empty."""
    names = [CLASS_NAMES[c] for c, on in zip(classes, row.tolist()) if on > 0]
    return " + ".join(names) or "nothing"


def combination(plan: MixPlan, i: int) -> str:
    """`acoustic guitar + piano`: the instruments of mix `i`."""
    return combination_names(plan.targets[i], plan.classes)


def play(wave: torch.Tensor) -> Audio:
    return Audio(wave.float().cpu().numpy(), rate=SAMPLE_RATE, normalize=False)


def show_mix(waves: torch.Tensor, plan: MixPlan, i: int, *, paths: list[str]) -> None:
    """Display mix `i` and each of its sources with its gain."""
    print(f"mix {i}: {combination(plan, i)}")
    display(play(mix(waves, plan.sources[i:i + 1], plan.gains[i:i + 1])[0]))
    for src, gain in zip(plan.sources[i].tolist(), plan.gains[i].tolist()):
        if src >= 0:
            print(f"  source {paths[src].rsplit('/', 1)[-1]}  ({20 * math.log10(gain):+.1f} dB)")
            display(play(waves[src]))


def show_each_combination(waves: torch.Tensor, plan: MixPlan, paths: list[str],
                          *, most: int = 6) -> None:
    """Display the first mix of each instrument combination (for where widgets don't show):
    all of them up to `most` (four instruments make 6 pairs), else `most` spread over the
    sorted combinations (eleven make 55 pairs; the player above reaches every one)."""
    groups = list(by_combination(plan).values())
    if len(groups) > most:
        print(f"{most} of {len(groups)} combinations; pick any in the player above")
        groups = [groups[i] for i in np.linspace(0, len(groups) - 1, most).round().astype(int)]
    for group in groups:
        show_mix(waves, plan, group[0], paths=paths)


def class_players(split: CachedSplit) -> widgets.VBox:
    """A player for the first clip of each instrument in a split, named by its file."""
    rows = []
    for i in split.first_of_each_class():
        label = widgets.Label(f"{CLASS_NAMES[split.classes[int(split.labels[i])]]}: "
                              f"{split.paths[i].rsplit('/', 1)[-1]}")
        player = widgets.Audio(value=wav_bytes(split.waves[i]), format="wav", autoplay=False,
                               loop=False)
        rows.append(widgets.HBox([label, player]))
    return widgets.VBox(rows)


def wav_bytes(wave: torch.Tensor) -> bytes:
    """16-bit WAV of a `[2, N]` waveform, for an `ipywidgets.Audio` player."""
    buffer = io.BytesIO()
    sf.write(buffer, wave.float().cpu().numpy().T, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def mix_player(waves: torch.Tensor, plan: MixPlan, paths: list[str]) -> widgets.VBox:
    """A dropdown of instrument combinations and a slider over its mixes; plays the mix and
    its sources. Players are `ipywidgets.Audio` (binary widget state), which stays fast where
    audio displayed inside an `Output` widget does not (headless execution)."""
    by_combo = {combination(plan, group[0]): group for group in by_combination(plan).values()}
    combo = widgets.Dropdown(options=list(by_combo), description="instruments")
    pick = widgets.IntSlider(min=0, max=len(by_combo[combo.value]) - 1, description="mix")
    labels = [widgets.Label() for _ in range(plan.sources.shape[1] + 1)]
    players = [widgets.Audio(format="wav", autoplay=False, loop=False) for _ in labels]
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
    return widgets.VBox([widgets.HBox([combo, pick]), *rows]).add_class("mix-player")


def _bar_style(playing: bool, named: bool) -> str:
    """Green: heard and named; red: named but not playing; orange: playing but missed."""
    if named:
        return "success" if playing else "danger"
    return "warning" if playing else ""


def prediction_browser(ev: Evaluation) -> widgets.VBox:
    """Filter a model's test items by true instrument, named instrument and right/wrong; hear
    the chosen one and see the model's probability for each instrument beside the player
    (green: named and playing, red: named but not playing, orange: playing but missed)."""
    # "any" is a real value: ipywidgets shows a dropdown whose value is None as blank.
    choices = [("any", ANY)] + [(CLASS_NAMES[c], c) for c in ev.classes]
    true = widgets.Dropdown(options=choices, value=ANY, description="playing")
    named = widgets.Dropdown(options=choices, value=ANY, description="named")
    outcome = widgets.ToggleButtons(options=["all", "right", "wrong"], value="all")
    pick = widgets.IntSlider(min=0, max=0, description="item")
    heading = widgets.HTML()
    player = widgets.Audio(format="wav", autoplay=False, loop=False)
    bars = [widgets.FloatProgress(min=0, max=1, description=CLASS_NAMES[c],
                                  style={"description_width": "110px"}) for c in ev.classes]
    values = [widgets.Label() for _ in ev.classes]
    panel = widgets.VBox([widgets.HBox([b, v]) for b, v in zip(bars, values)])

    def refresh(_=None) -> None:
        found = ev.select(None if true.value == ANY else true.value,
                          None if named.value == ANY else named.value, outcome.value)
        pick.max = max(len(found) - 1, 0)
        panel.layout.display = player.layout.display = "" if found else "none"
        if not found:
            heading.value = "<b>no item matches these filters</b>"
            return
        i = found[min(pick.value, pick.max)]
        verdict = "right" if ev.right()[i] else "wrong"
        heading.value = (f"<b>{ev.items[i]}</b> ({len(found)} match) · playing: "
                         f"{combination_names(ev.targets[i], ev.classes)} · named: "
                         f"{combination_names(ev.pred[i], ev.classes)} · <b>{verdict}</b>")
        player.value = wav_bytes(ev.audio(i))
        for bar, value, p, y, n in zip(bars, values, ev.probs[i].tolist(),
                                       ev.targets[i].tolist(), ev.pred[i].tolist()):
            bar.value, value.value = p, f"{p:.0%}"
            bar.bar_style = _bar_style(y > 0, n > 0)

    for control in (true, named, outcome, pick):
        control.observe(refresh, names="value")
    refresh()
    return widgets.VBox([widgets.HBox([true, named]), widgets.HBox([outcome, pick]), heading,
                         widgets.HBox([player, panel])]).add_class("prediction-browser")
