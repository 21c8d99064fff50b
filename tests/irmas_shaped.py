"""IRMAS-shaped archives for the Colab twin: the four real archive names, their real inner
layout and file names (taken from the packaged manifest), holding audio of the demo renderer,
so download -> unzip -> verify -> train runs offline on the path a Colab user takes. Only two
things differ from Zenodo's, and an `$IRMAS_MIRROR` description hands both over: the URL (a
local server) and the md5s (of this audio, in the archives and in a manifest of their files)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from helpers.core.config import ALL_CLASSES, IRMAS_TEST_SPLIT, SAMPLE_RATE, SPLITS
from helpers.data import irmas
from helpers.demo.synth import Renderer

TEST_SECONDS = 6.0


def pick(manifest: pd.DataFrame, classes: tuple[str, ...], recordings: dict[str, int],
         excerpts: int = 3, others: int = 1) -> pd.DataFrame:
    """Real rows of the manifest: per instrument of `classes` and split, the first
    `recordings[split]` recordings (up to `excerpts` clips each); one recording of every other
    IRMAS instrument (an archive holds them all); per test archive, one excerpt of one
    instrument and one of two, among `classes`."""
    train = manifest[manifest["split"] != IRMAS_TEST_SPLIT]
    chosen = []
    for code in ALL_CLASSES:
        own = train[train["instrument"] == code]
        for split in SPLITS:
            n = recordings[split] if code in classes else (others if split == "train" else 0)
            keep = sorted(own.loc[own["split"] == split, "recording"].unique())[:n]
            rows = own[own["recording"].isin(keep)]
            chosen.append(rows.groupby("recording").head(excerpts))
    test = irmas.select(manifest[manifest["split"] == IRMAS_TEST_SPLIT], classes)
    count = test["instruments"].str.split().str.len()
    part = test["path"].str.split("/").str[0]
    for folder in sorted(part.unique()):
        for k in (1, 2):
            chosen.append(test[(part == folder) & (count == k)].head(1))
    return pd.concat(chosen, ignore_index=True)


def render(rows: pd.DataFrame, root: Path, seed: int = 1) -> pd.DataFrame:
    """Write the audio of `rows` under `root` (training clips of one recording cut from one
    rendering, as IRMAS's are; test excerpts of their labelled instruments, with IRMAS's `.txt`
    beside each) and return the rows with these files' md5s."""
    renderer = Renderer()
    out = rows.copy()
    for (code, recording), group in rows[rows["split"] != IRMAS_TEST_SPLIT].groupby(
            ["instrument", "recording"]):
        name = irmas.parse_training_name(group["path"].iloc[0])
        rng = np.random.default_rng([seed, ALL_CLASSES.index(code), int(recording)])
        audio, _ = renderer.recording([code], name.genre, name.drums == "dru", seconds=10.5,
                                      rng=rng)
        for path in group["path"]:
            k = irmas.parse_training_name(path).excerpt - 1
            start = int((0.4 + (k % 3) * 3.2) * SAMPLE_RATE)
            _write(root / path, audio[start:start + int(3 * SAMPLE_RATE)])
    test = rows[rows["split"] == IRMAS_TEST_SPLIT]
    for number, row in enumerate(test.itertuples(index=False)):
        leads = row.instruments.split()
        rng = np.random.default_rng([seed, 99, number])
        audio, _ = renderer.recording(leads, "pop_roc", False, seconds=TEST_SECONDS + 0.5, rng=rng)
        _write(root / row.path, audio[:int(TEST_SECONDS * SAMPLE_RATE)])
        (root / row.path).with_suffix(".txt").write_text("".join(f"{c}\t\n" for c in leads))
    out["md5"] = [irmas.md5sum(root / path) for path in out["path"]]
    return out


def _write(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")


def serve_archives(rows: pd.DataFrame, root: Path, served: Path, url: str) -> Path:
    """Zip `root`'s files into the four archives under `served` (every file of an archive's
    folder, `.txt` labels included) and write the mirror description beside them; its path."""
    served.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for archive in irmas.ARCHIVES.values():
        with zipfile.ZipFile(served / archive.filename, "w") as zf:
            for file in sorted((root / archive.folder).rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(root).as_posix())
        md5[archive.filename] = irmas.md5sum(served / archive.filename)
    irmas.write_manifest(rows, served / irmas.MANIFEST_NAME)
    description = served / "mirror.json"
    description.write_text(json.dumps({"url": f"{url}/{{}}", "md5": md5,
                                       "manifest": irmas.MANIFEST_NAME}))
    return description
