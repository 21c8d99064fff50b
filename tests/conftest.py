"""Shared fixtures: a tiny demo set rendered once per test session, real files on disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers import cache, checkpoints, demo, models, notebooks, runs
from helpers.config import CLASSES, SPLITS
from helpers.layout import RunLayout

REPO = Path(__file__).resolve().parent.parent
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
    "from_scratch": ["mel"], "pretrained": ["transfer-musicnn"],
    "finetune": [], "transfer_from": ["mel"], "epochs": {"mel": 1, "transfer": 1},
}


def shared_irmas() -> Path:
    """The IRMAS file lists: `$IRMAS_SHARED`, else `../shared/irmas` beside the repo."""
    return Path(os.environ.get("IRMAS_SHARED", REPO.parent / "shared" / "irmas"))


@pytest.fixture(scope="session")
def demo_set(tmp_path_factory):
    """(root, manifest) of a tiny demo set: 5-6 recordings x 3 clips per class, 2 test songs."""
    root = tmp_path_factory.mktemp("demo")
    return root, demo.render_demo(root, **TINY, progress=False)


@pytest.fixture(scope="session")
def notebook_run(tmp_path_factory):
    """(run folder, data folder): notebooks 01-06 executed once, in order, tiny parameters."""
    tmp = tmp_path_factory.mktemp("notebooks")
    run, data = tmp / "run", tmp / "data"
    notebooks.run_all(run, {**TINY_PARAMS, "data_dir": str(data)})
    return run, data


@pytest.fixture(scope="session")
def notebook_run_eleven(tmp_path_factory):
    """(run folder, data folder): notebooks 01-06 on all eleven instruments, MelCNN only."""
    tmp = tmp_path_factory.mktemp("notebooks_eleven")
    run, data = tmp / "run", tmp / "data"
    notebooks.run_all(run, {**TINY_PARAMS, **ELEVEN_PARAMS, "data_dir": str(data)})
    return run, data


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """An untrained Stage-2 MelCNN checkpoint: what the predict and checkpoint tests load."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "best.pt"
    return checkpoints.save_checkpoint(path, models.build("mel", n_outputs=len(CLASSES)),
                                       checkpoints.model_meta("mel", task="multi", classes=CLASSES))


def cached_run(demo_set, run_dir: Path) -> Path:
    """A run folder as notebooks 01 and 02 leave it: the tiny demo set recorded, splits cached."""
    root, manifest = demo_set
    runs.save_dataset(run_dir, "demo", root, manifest, classes=CLASSES)
    for split in SPLITS:
        cache.build_split(manifest, root, split, RunLayout(run_dir).cache(split), progress=False,
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
