"""The music of the demo set: harmony, how each instrument is played, and the band under it.

A `Score` is a list of timed MIDI events; `Song` is the harmony every part of one recording
follows; the players (`PLAYERS`) write a lead's part in the style of its instrument (strummed
or picked guitar, piano hands with pedal, a monophonic line), and `band` the quieter bass, pad
and drums under it. Nothing here knows a soundfont: `helpers.demo.synth` renders a score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.core.config import SAMPLE_RATE

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (1, 4, 0, 0), (5, 3, 0, 4), (0, 3, 1, 4))
TEMPI = {"cla": (60, 110), "cou_fol": (85, 140), "jaz_blu": (70, 160), "lat_sou": (90, 130),
         "pop_roc": (85, 140)}
# Clips per class in IRMAS; the demo keeps these proportions so balancing has work to do.


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


class Score:
    """A list of timed MIDI events; `render` plays them through FluidSynth."""

    def __init__(self) -> None:
        self.events: list[tuple[float, int, str, tuple]] = []

    def note(self, chan: int, key: int, start: float, *, dur: float, vel: int) -> None:
        key = int(np.clip(key, 0, 127))
        vel = int(np.clip(vel, 1, 127))
        self.events.append((start, 1, "noteon", (chan, key, vel)))
        self.events.append((start + max(dur, 0.03), 0, "noteoff", (chan, key)))

    def cc(self, chan: int, ctrl: int, value: int, *, at: float = 0.0) -> None:
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
        score.note(chan, key, start, dur=dur * song.beat * legato,
                   vel=vel + accent + rng.integers(-8, 9))
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
                    score.note(chan, key, start + i * gap, dur=1.6 * song.beat,
                               vel=vel + accent - 3 * i + rng.integers(-6, 7))
            elif pattern == "arpeggio":
                key = shape[[0, 2, 3, 4, 5, 4, 3, 2][eighth] % len(shape)]
                score.note(chan, key, start, dur=1.2 * song.beat, vel=vel + rng.integers(-8, 9))
            else:
                key = shape[0] if eighth in (0, 4) else shape[1] if eighth in (2, 6) else shape[-1]
                score.note(chan, key, start, dur=0.9 * song.beat, vel=vel + rng.integers(-8, 9))


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
        score.cc(chan, 64, 0, at=start - 0.01)
        score.cc(chan, 64, 100, at=start + 0.02)
        score.note(chan, _fit(chord[0], left, left + 11), start, dur=4 * song.beat, vel=vel)
        upper = sorted(_fit(pc, right, right + 11) for pc in chord)
        if pattern == "block":
            for b in range(4):
                for key in upper:
                    score.note(chan, key, song.time(bar * 4 + b), dur=0.9 * song.beat,
                               vel=vel - 5 + rng.integers(-8, 9))
        elif pattern == "arpeggio":
            run = upper + [k + 12 for k in upper]
            for e in range(8):
                score.note(chan, run[e % len(run)], song.time(bar * 4 + e / 2), dur=song.beat,
                           vel=vel - 8 + rng.integers(-8, 9))
        else:
            for key in upper:
                score.note(chan, key - 12 if key > 64 else key, start, dur=3.8 * song.beat,
                           vel=vel - 20)
    if pattern == "melody":
        _line(score, song, chan, Voice(voice.programs, 65, 91, "line"), bars, rng)


PLAYERS = {"strum": _strum, "keys": _keys, "line": _line}


def band(score: Score, song: Song, bars: int, *, drums: bool, rng) -> None:
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
            score.note(BASS, key, song.time(bar * 4 + b * length), dur=0.9 * length * song.beat,
                       vel=rng.integers(70, 100))
        if rng.random() < 0.8:
            for pc in chord:
                score.note(PAD, _fit(pc, 52, 66), song.time(bar * 4), dur=4 * song.beat,
                           vel=rng.integers(40, 70))
        if drums:
            for e in range(8):
                at = song.time(bar * 4 + e / 2)
                score.note(DRUMS, 42, at, dur=0.1, vel=rng.integers(50, 90))
                if e in (0, 4) or (e == 7 and rng.random() < 0.3):
                    score.note(DRUMS, 36, at, dur=0.1, vel=rng.integers(85, 115))
                if e in (2, 6):
                    score.note(DRUMS, 38, at, dur=0.1, vel=rng.integers(80, 110))
