"""Project-wide constants and where data and runs live.

Everything else reads its knobs from here, so a clip length or class list is defined once.
"""

from __future__ import annotations

import os
from pathlib import Path

CLASSES: tuple[str, ...] = ("gac", "pia", "tru", "vio")
CLASS_NAMES: dict[str, str] = {
    "gac": "acoustic guitar",
    "pia": "piano",
    "tru": "trumpet",
    "vio": "violin",
}
SAMPLE_RATE = 44_100
# The seed's input length: 3 s at 44.1 kHz minus one sample, as IRMAS excerpts decode.
CLIP_SAMPLES = 132_299
CHANNELS = 2
SEED = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
IRMAS_TEST_SPLIT = "irmas_test"

DRIVE_MOUNT = Path("/content/drive")
DRIVE_HOME = DRIVE_MOUNT / "MyDrive" / "irmas-instruments"
HOME_ENV = "IRMAS_HOME"


def home(override: str | Path | None = None) -> Path:
    """Folder that holds `data/` and `runs/`.

    An explicit `override` wins, then `$IRMAS_HOME`; on Colab with Drive mounted it is a Drive
    folder so data and checkpoints survive a disconnect; otherwise the current directory.
    """
    if override:
        return Path(override).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if (DRIVE_MOUNT / "MyDrive").is_dir():
        return DRIVE_HOME
    return Path.cwd()


def data_dir(source: str, home_dir: str | Path | None = None) -> Path:
    """Where the audio of `source` ("demo" or "irmas") is unpacked."""
    return home(home_dir) / "data" / source


def run_dir(source: str, home_dir: str | Path | None = None) -> Path:
    """Where notebooks of a `source` run write their artefacts."""
    return home(home_dir) / "runs" / source

# What the 2020 seed project reported (validation, test accuracy) on its leaky IRMAS split.
SEED_REPORTED = {
    "stage1": {"forest": (0.433, 0.403), "seed": (0.7257, 0.7066)},
    "stage2": {"seed": (0.6905, 0.6974), "transfer": (0.6821, 0.6416)},
}
