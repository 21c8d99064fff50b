"""IRMAS facts: archives, file names, labels and the data manifest.

`data_manifest.csv` is the one source of truth for which clips exist, their labels, their
recording (the group that must stay in one split), their split and their md5. It is built from
lists of the IRMAS archives' files (`make manifest LISTS=...`) and committed inside the package
(so an installed wheel finds it from any folder), with an identical copy at the top of the
repository; the demo set writes one of the same form.
"""

from __future__ import annotations

import csv
import json
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from helpers.core.atomic import atomic_write
from helpers.core.config import ALL_CLASSES, IRMAS_TEST_SPLIT, SEED
from helpers.core.freshness import file_digest
from helpers.data.splits import grouped_split

GENRES: tuple[str, ...] = ("cla", "cou_fol", "jaz_blu", "lat_sou", "pop_roc")
DRUMS: tuple[str, ...] = ("dru", "nod", "---")
TRAIN_DIR = "IRMAS-TrainingData"
MANIFEST_NAME = "data_manifest.csv"
MANIFEST_COLUMNS = (
    "path", "instrument", "genre", "drums", "recording", "excerpt", "split", "md5", "instruments",
)
ZENODO = "https://zenodo.org/records/1290750/files/{}?download=1"


@dataclass(frozen=True)
class Archive:
    """One IRMAS zip: its file name, its md5 and where it is published (`{}`: the name)."""

    filename: str
    md5: str
    source: str = ZENODO

    @property
    def url(self) -> str:
        return self.source.format(self.filename)

    @property
    def folder(self) -> str:
        """Top folder of the paths the archive unpacks to (as in the manifest)."""
        return self.filename.removesuffix(".zip")


ARCHIVES: dict[str, Archive] = {
    "train": Archive("IRMAS-TrainingData.zip", "4fd9f5ed5a18d8e2687e6360b5f60afe"),
    "test1": Archive("IRMAS-TestingData-Part1.zip", "5a2e65520dcedada565dff2050bb2a56"),
    "test2": Archive("IRMAS-TestingData-Part2.zip", "afb0c8ea92f34ee653693106be95c895"),
    "test3": Archive("IRMAS-TestingData-Part3.zip", "9b3fb2d0c89cdc98037121c25bd5b556"),
}
# A JSON file describing IRMAS re-packed elsewhere: {"url": "http://host/{}", "md5": {archive
# name: md5}, "manifest": "path of its data_manifest.csv"}. The Colab twin's local server
# (`make test-colab`) uses it; so can a lab that serves its own re-packed copy.
MIRROR_ENV = "IRMAS_MIRROR"


def _mirror() -> dict | None:
    where = os.environ.get(MIRROR_ENV)
    if not where:
        return None
    try:
        mirror = json.loads(Path(where).read_text())
        return {"url": str(mirror["url"]), "md5": dict(mirror["md5"]),
                "manifest": Path(where).parent / mirror["manifest"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"${MIRROR_ENV}={where}: not a readable mirror description ({err}); "
                         f"unset {MIRROR_ENV} to download IRMAS from Zenodo") from err


def archives() -> dict[str, Archive]:
    """The four archives as they will be fetched: Zenodo's, or those of `$IRMAS_MIRROR`."""
    mirror = _mirror()
    if mirror is None:
        return dict(ARCHIVES)
    return {part: Archive(a.filename, mirror["md5"].get(a.filename, a.md5), mirror["url"])
            for part, a in ARCHIVES.items()}


def irmas_manifest() -> Path:
    """The manifest of the IRMAS files the archives hold: the packaged one, or that of
    `$IRMAS_MIRROR` (whose files differ)."""
    mirror = _mirror()
    return packaged_manifest() if mirror is None else mirror["manifest"]


_TRAIN_NAME = re.compile(
    r"^(?:(?P<prefix>\d+)__)?\[(?P<instrument>[a-z]{3})\](?:\[(?P<drums>dru|nod|---)\])?"
    r"\[(?P<genre>[a-z_]+)\](?P<recording>\d+)__(?P<excerpt>\d+)\.wav$"
)
_TEST_NAME = re.compile(r"^(?P<song>.+)-(?P<index>\d+)\.(?:wav|txt)$")


@dataclass(frozen=True)
class TrainingName:
    instrument: str
    genre: str
    drums: str  # "dru", "nod", "---" or "" when the name has no drum tag
    recording: str  # NNNN: the source recording; its excerpts belong together
    excerpt: int  # k: the k-th excerpt of that recording


def parse_training_name(name: str) -> TrainingName:
    """Parse `[gac][cla]0516__1.wav` or `008__[cel][nod][cla]0058__1.wav` (path or bare name)."""
    base = Path(name).name
    m = _TRAIN_NAME.match(base)
    if not m or m["instrument"] not in ALL_CLASSES or m["genre"] not in GENRES:
        raise ValueError(
            f"{name!r} is not an IRMAS training file name "
            "(expected like '[gac][cla]0516__1.wav' or '008__[cel][nod][cla]0058__1.wav')"
        )
    return TrainingName(
        m["instrument"], m["genre"], m["drums"] or "", m["recording"], int(m["excerpt"])
    )


def parse_test_name(name: str) -> tuple[str, int]:
    """Split a test excerpt name `<song>-<n>.wav` into the song and the excerpt number."""
    m = _TEST_NAME.match(Path(name).name)
    if not m:
        raise ValueError(f"{name!r} is not an IRMAS test file name (expected '<song>-<n>.wav')")
    return m["song"], int(m["index"])


def make_manifest(
    train: Iterable[tuple[str, str]],
    test: Iterable[tuple[str, str, str]] = (),
    seed: int = SEED,
) -> pd.DataFrame:
    """Manifest rows for training clips `(path, md5)` and test excerpts `(path, md5, codes)`.

    Training rows of all classes get one grouped, stratified split (so a clip's split never
    depends on which instruments a run chooses); test excerpts get split `irmas_test`. Paths
    are relative to the data folder, with `/` separators.
    """
    rows = []
    for path, md5 in train:
        name = parse_training_name(path)
        rows.append({
            "path": path, "instrument": name.instrument, "genre": name.genre,
            "drums": name.drums, "recording": name.recording, "excerpt": name.excerpt,
            "md5": md5, "instruments": name.instrument,
        })
    train_df = pd.DataFrame(rows, columns=[c for c in MANIFEST_COLUMNS if c != "split"])
    train_df["split"] = grouped_split(train_df["instrument"], train_df["recording"], seed)
    test_rows = []
    for path, md5, codes in test:
        song, index = parse_test_name(path)
        test_rows.append({
            "path": path, "instrument": "", "genre": "", "drums": "", "recording": song,
            "excerpt": index, "split": IRMAS_TEST_SPLIT, "md5": md5, "instruments": codes,
        })
    df = pd.concat([train_df, pd.DataFrame(test_rows, columns=MANIFEST_COLUMNS)],
                   ignore_index=True)
    return df[list(MANIFEST_COLUMNS)].sort_values("path", ignore_index=True)


def build_manifest(lists: str | Path, seed: int = SEED) -> pd.DataFrame:
    """Build the IRMAS manifest from IRMAS's file lists in the folder `lists`: every training
    file with its md5 (`training_files.csv`), every archive file (`irmas_index.csv`) and each
    test excerpt's instruments (`test_labels.csv`)."""
    lists = Path(lists)
    with open(lists / "training_files.csv", newline="") as f:
        train = [(r["path"], r["md5"]) for r in csv.DictReader(f)]
    with open(lists / "irmas_index.csv", newline="") as f:
        wavs = {
            unicodedata.normalize("NFC", Path(r["path"]).stem): (r["path"], r["md5"])
            for r in csv.DictReader(f)
            if not r["path"].startswith(TRAIN_DIR) and r["path"].endswith(".wav")
        }
    test = []
    with open(lists / "test_labels.csv", newline="") as f:
        for r in csv.DictReader(f):
            path, md5 = wavs[unicodedata.normalize("NFC", r["excerpt"])]
            test.append((path, md5, " ".join(r["instruments"].split())))
    return make_manifest(train, test, seed)


def select(manifest: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
    """The rows of a run on `classes`: their training clips, and the test excerpts that hold
    only those instruments (for all eleven: every excerpt, IRMAS's official test set)."""
    codes = set(classes)
    labels = manifest["instruments"].str.split().map(set)
    keep = labels.map(lambda held: bool(held) and held <= codes)
    return manifest[keep].reset_index(drop=True)


def write_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a manifest CSV (written to a temp file, then renamed, so it is never half there)."""
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n"))


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest with every column as text (keeps leading zeros of recording ids)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no manifest here. Run notebooks/01_download.ipynb first (it writes the "
            "manifest of the data it fetched or rendered)."
        )
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(MANIFEST_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path}: not a data manifest, columns {sorted(missing)} are missing")
    df["excerpt"] = df["excerpt"].astype(int)
    return df


def packaged_manifest() -> Path:
    """The committed IRMAS manifest, shipped inside the package (found from any folder)."""
    path = Path(str(resources.files("helpers") / MANIFEST_NAME))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: this install of helpers is broken; reinstall it with "
            "`pip install .` from a clone of the repository."
        )
    return path


def manifest_copies() -> tuple[Path, Path]:
    """The packaged manifest and its copy at the top of a clone (the project card's place)."""
    package = Path(__file__).resolve().parents[1]  # helpers/
    return package / MANIFEST_NAME, package.parent / MANIFEST_NAME


def md5sum(path: str | Path) -> str:
    return file_digest(path, "md5")


UNVERIFIED = "unverified"


def file_problem(file: Path, md5: str) -> str | None:
    """What is wrong with one manifest file (None: nothing). A file with no known md5 (45 IRMAS
    training files) cannot be verified: its size and audio header are checked instead, and it
    is reported as "unverified ..." rather than passed or failed silently."""
    if not file.is_file():
        return "missing"
    if md5:
        actual = md5sum(file)
        return None if actual == md5 else f"md5 {actual}, expected {md5}"
    try:
        info = sf.info(str(file))
    except (RuntimeError, sf.LibsndfileError) as err:
        return f"no known md5 and not readable audio ({err})"
    if info.frames == 0:
        return "no known md5 and no audio in it (0 frames)"
    return (f"{UNVERIFIED}: no known md5; {file.stat().st_size:,} bytes, readable audio, "
            f"{info.frames / info.samplerate:.1f} s")


def verify(manifest: pd.DataFrame, root: str | Path, progress: bool = True) -> pd.DataFrame:
    """Check every manifest file under `root`: present, and matching its md5 where one is known.

    Returns the rows that are not verified (path, problem): problems, and files with no known
    md5 (problem "unverified: ..."); an empty frame means every file matched its md5.
    """
    root = Path(root)
    problems = []
    for path, md5 in tqdm(
        list(zip(manifest["path"], manifest["md5"])), desc="verify", disable=not progress
    ):
        if (problem := file_problem(root / path, md5)) is not None:
            problems.append((path, problem))
    return pd.DataFrame(problems, columns=["path", "problem"])


def is_unverified(problems: pd.DataFrame) -> pd.Series:
    """Which rows of `verify`'s answer are unverifiable files rather than problems."""
    return problems["problem"].str.startswith(UNVERIFIED)


def check_files(manifest: pd.DataFrame, root: str | Path) -> pd.DataFrame:
    """`verify`, raising with the first problems and what to do when any file is missing or
    differs from the manifest; returns the files that could only be checked for size and
    readable audio (no known md5), after saying how many there are."""
    report = verify(manifest, root)
    unverified = is_unverified(report)
    problems = report[~unverified]
    if len(problems):
        shown = "; ".join(f"{p} ({why})" for p, why in problems.head(5).itertuples(index=False))
        raise RuntimeError(
            f"{len(problems)} file(s) under {root} are missing or differ from the manifest, "
            f"e.g. {shown}. Delete that folder's archives and run notebooks/01_download.ipynb "
            "again.")
    if unverified.any():
        print(f"{int(unverified.sum())} file(s) have no known md5 and are unverified (size and "
              "readable audio checked): see the table this returns")
    return report[unverified].reset_index(drop=True)


def excerpt_label_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Test excerpts per instrument combination (the labels of IRMAS's test files)."""
    test = manifest[manifest["split"] == IRMAS_TEST_SPLIT]
    return test["instruments"].value_counts().rename("excerpts").to_frame()


def main(argv: list[str] | None = None) -> None:
    """`python -m helpers.data.irmas --lists DIR`: rebuild the manifest inside the package and its
    identical copy at the top of the repository from IRMAS's file lists in DIR."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--lists", required=True, type=Path,
                        help="folder of training_files.csv, irmas_index.csv, test_labels.csv")
    parser.add_argument("--out", nargs="+", default=[str(p) for p in manifest_copies()],
                        help="files to write (default: the packaged one and the top-level copy)")
    args = parser.parse_args(argv)
    df = build_manifest(args.lists)
    for out in args.out:
        write_manifest(df, out)
        print(f"wrote {out}: {len(df)} rows, {df['split'].value_counts().to_dict()}")


if __name__ == "__main__":
    main()
