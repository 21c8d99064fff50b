"""Render an offline demo data set in the exact IRMAS layout with FluidSynth.

IRMAS cannot be downloaded everywhere (CI, offline laptops), so everything downstream also
runs on this set. Like IRMAS, each clip has one *predominant* instrument over a quieter band
(bass, pad, drums on `[dru]` clips); recordings differ in key, tempo, genre, General-MIDI
program variant, soundfont, register, velocity, articulation, reverb, chorus and pan, and the
three excerpts of a recording come from one continuous rendering, as IRMAS excerpts do.
The music is `helpers.demo.compose`'s, the sound `helpers.demo.synth`'s; this module writes the
data set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from helpers.core import config
from helpers.core.atomic import atomic_write
from helpers.core.config import ALL_CLASSES, CLASSES, SAMPLE_RATE, SEED
from helpers.data import irmas
from helpers.demo.compose import LEAD_CHANNELS
from helpers.demo.synth import TIMBRES, Renderer, soundfont_paths

EXCERPT_SECONDS = 3.0
EXCERPTS_PER_RECORDING = 3
TEST_DIR = "IRMAS-TestingData-Part1/Part1"
PARAMS_FILE = "demo.json"

IRMAS_COUNTS = {"cel": 388, "cla": 505, "flu": 451, "gac": 637, "gel": 760, "org": 682,
                "pia": 721, "sax": 626, "tru": 577, "vio": 580, "voi": 778}
# Each instrument's number in the render's random streams and recording ids: the seed's four
# keep the numbers they had before the other seven existed, so their sets render as before.
STREAM = {c: i for i, c in enumerate((*CLASSES, *(c for c in ALL_CLASSES if c not in CLASSES)))}
DRUM_CHANCE = {"cla": 0.0, "cou_fol": 0.4, "jaz_blu": 0.5, "lat_sou": 0.8, "pop_roc": 0.8}


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
    *, seed: int = SEED,
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
    renderer = Renderer(soundfont_paths(soundfonts) if soundfonts else None)
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
        audio, _ = renderer.recording([code], genre, drums, seconds=10.5, rng=rng,
                                      timbre_rng=_timbre_rng(timbre, seed, class_index, rec))
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
                                      seconds=float(lengths.sum()) + 0.5, rng=rng,
                                      timbre_rng=_timbre_rng(timbre, seed, 99, song_index))
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
