"""Shared fixtures: a tiny demo set rendered once per test session, real files on disk."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from filelock import FileLock

from helpers import notebooks
from helpers.core.config import CLASSES, SPLITS
from helpers.core.layout import RunLayout
from helpers.data import cache, dataset
from helpers.demo import render_set
from helpers.models import checkpoints, networks

REPO = Path(__file__).resolve().parent.parent
# `make test` runs two pytest-xdist workers, a test file each at a time (module fixtures are
# built once): one torch thread each, inherited by the kernels and commands they start, so two
# workers share the two cores instead of fighting over them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
# The files that take minutes go first, so neither worker is left with one at the end; the
# browser tests go last: they wait for the notebook run another worker may still be building.
LONGEST_FIRST = ["test_benchmarks.py", "test_notebooks.py", "test_notebooks_eleven.py",
                 "test_instruments.py", "test_audioset.py", "test_stage2.py", "test_backbones.py",
                 "test_recordings.py", "test_predict.py"]
LAST = ["test_browser.py"]
TINY = {"recordings_per_class": 6, "test_songs": 2}
TINY_PARAMS = {
    "source": "demo",
    "mount_drive": False,
    "demo_recordings_per_class": TINY["recordings_per_class"],
    "demo_test_songs": TINY["test_songs"],
    "epochs": {"mel": 2, "wave1d": 1, "wave1d-finetune": 1, "transfer": 2,
               "transfer-musicnn": 3, "musicnn-finetune": 1},
}

# IRMAS's eleven: cello, the smallest class, needs 5 recordings for a grouped 60/20/20 split.
ELEVEN_PARAMS = {
    "instruments": "all", "demo_recordings_per_class": 10, "demo_test_songs": 3,
    "models_to_train": ["mel", "transfer-musicnn"], "forest_baseline": False,
    "stage2_models": ["transfer-musicnn", "mel", "transfer-mel"],
    "epochs": {"mel": 1, "transfer": 1},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        if name in LAST:
            return len(LONGEST_FIRST) + 1 + LAST.index(name)
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's own order stays


def shared_irmas() -> Path:
    """The IRMAS file lists: `$IRMAS_SHARED`, else `../shared/irmas` beside the repo."""
    return Path(os.environ.get("IRMAS_SHARED", REPO.parent / "shared" / "irmas"))


@pytest.fixture(scope="session")
def demo_set(tmp_path_factory):
    """(root, manifest) of a tiny demo set: 5-6 recordings x 3 clips per class, 2 test songs."""
    root = tmp_path_factory.mktemp("demo")
    return root, render_set.render_demo(root, **TINY, progress=False)


def once_per_run(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """Folder `name`, built by `build(folder)` once for the whole test run: under pytest-xdist
    the first worker to ask builds it while a second one waits for it (a file lock), so a
    fixture that takes minutes is not built twice."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this run
    folder, done = base / name, base / f"{name}.done"
    with FileLock(base / f"{name}.lock"):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            done.touch()
    return folder


def _notebooks(params: dict) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        notebooks.run_all(folder / "run", {**params, "data_dir": str(folder / "data")})
    return build


@pytest.fixture(scope="session")
def notebook_run(tmp_path_factory):
    """(run folder, data folder): notebooks 01-06 executed once, in order, tiny parameters."""
    folder = once_per_run(tmp_path_factory, "notebooks", _notebooks(TINY_PARAMS))
    return folder / "run", folder / "data"


@pytest.fixture(scope="session")
def notebook_run_eleven(tmp_path_factory):
    """(run folder, data folder): notebooks 01-06 on all eleven instruments, MelCNN only."""
    folder = once_per_run(tmp_path_factory, "notebooks_eleven",
                          _notebooks({**TINY_PARAMS, **ELEVEN_PARAMS}))
    return folder / "run", folder / "data"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """An untrained Stage-2 MelCNN checkpoint: what the predict and checkpoint tests load."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "best.pt"
    return checkpoints.save_checkpoint(path, networks.build("mel", n_outputs=len(CLASSES)),
                                       checkpoints.model_meta("mel", task="multi", classes=CLASSES))


def cached_run(demo_set, run_dir: Path) -> Path:
    """A run folder as notebooks 01 and 02 leave it: the tiny demo set recorded, splits cached."""
    root, manifest = demo_set
    dataset.save_dataset(run_dir, "demo", root, manifest=manifest, classes=CLASSES)
    for split in SPLITS:
        cache.build_split(manifest, root, split, target=RunLayout(run_dir).cache(split),
                          progress=False,
                          classes=CLASSES)
    return run_dir


def write_wav(path: Path, seconds: float = 1.0, sr: int = 44_100, channels: int = 2,
              subtype: str = "PCM_16", seed: int = 0) -> Path:
    """A real audio file of coloured noise and a tone."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None]
    data = (tone + 0.05 * rng.standard_normal((n, channels))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, subtype=subtype)
    return path


BAD_KINDS = ["empty", "truncated", "header only", "corrupt", "not audio", "nan"]


def bad_audio_files(tmp_path: Path) -> dict[str, Path]:
    """Real files that must be refused: one per kind in `BAD_KINDS`."""
    good = write_wav(tmp_path / "good.wav", 1.0).read_bytes()
    files = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "header only": good[:44],
        "corrupt": good[:20] + b"\xff" * 16 + good[36:],  # the format chunk overwritten
        "not audio": b"<html>404 not found</html>" * 20,
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.wav"
        paths[name].write_bytes(data)
    paths["nan"] = tmp_path / "nan.wav"
    sf.write(paths["nan"], np.full((1000, 2), np.nan, np.float32), 44_100, subtype="FLOAT")
    return paths
