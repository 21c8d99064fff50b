"""Colab set-up in one call: Google Drive (also for the Hugging Face cache), the musicnn
weights, and FluidSynth with its soundfonts for the demo set.

Every notebook's set-up cell clones the repository, installs it and calls `setup`; a stock
Colab runtime has neither FluidSynth nor a General-MIDI soundfont, so notebook 01, the only one
that renders, has `setup` install them with apt (Colab runs as root) when it renders the demo
set. The cell only calls it on Colab, so the same notebooks run headless anywhere; called
explicitly elsewhere, `setup` checks (and as root installs) the same.
"""

from __future__ import annotations

import ctypes.util
import importlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import torch

from helpers.core.config import DRIVE_HOME, DRIVE_MOUNT, TrainingConfig, in_colab
from helpers.demo.synth import locate_soundfont
from helpers.models import musicnn, registry
from helpers.train import loop

# apt package -> the file it provides that the demo renderer needs.
DEMO_PACKAGES: dict[str, str] = {
    "libfluidsynth3": "libfluidsynth.so.3",
    "fluid-soundfont-gm": "FluidR3_GM.sf2",
    "timgm6mb-soundfont": "TimGM6mb.sf2",
}
GPU_HINT = "Runtime > Change runtime type > T4 GPU"
# The AudioSet transformer's weights (~350 MB) stay on Drive, not on the runtime's disk.
HF_CACHE_ON_DRIVE = DRIVE_HOME / "huggingface"


class SetupError(RuntimeError):
    """The runtime cannot be prepared; the message says what is missing and what to do."""


def missing_demo_packages() -> list[str]:
    """The apt packages of `DEMO_PACKAGES` whose files this machine lacks (found by what they
    provide, so a soundfont copied by hand or a library built from source counts as present)."""
    missing = []
    for package, provides in DEMO_PACKAGES.items():
        if provides.endswith(".sf2"):
            present = locate_soundfont(provides) is not None
        else:
            present = ctypes.util.find_library("fluidsynth") is not None
        if not present:
            missing.append(package)
    return missing


def install_commands(packages: list[str]) -> list[list[str]]:
    """The apt-get commands that install `packages` without questions."""
    return [["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]]


def install_packages(packages: list[str]) -> None:
    """Install `packages` with apt-get as root; a `SetupError` names them when that cannot be."""
    if not packages:
        return
    names = " ".join(packages)
    fallback = ('or set source = "irmas" in the parameters cell to use the real IRMAS data, '
                "which needs no FluidSynth")
    if os.geteuid() != 0:
        raise SetupError(f"the demo set needs {names}, and only root can install them: run "
                         f"`sudo apt-get install {names}`, {fallback}")
    print(f"installing {names} (apt-get) for the demo renderer ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in install_commands(packages):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise SetupError(f"`{' '.join(command)}` failed ({why}); the demo set needs {names}. "
                             f"Check the runtime's network and run this cell again, {fallback}")


def ensure_demo_packages() -> list[str]:
    """Install whatever the demo renderer lacks; returns what was installed (often nothing)."""
    missing = missing_demo_packages()
    install_packages(missing)
    still = missing_demo_packages()
    if still:
        raise SetupError(f"after apt-get install, still missing: {' '.join(still)}")
    return missing


def ensure_musicnn() -> bool:
    """Install the musicnn wheel (it carries the backbone's weights) when it is missing, without
    its declared dependencies (numpy < 1.17 and TensorFlow, which `helpers.models.musicnn` does not
    need); True when it was installed now."""
    if importlib.util.find_spec("musicnn") is not None:
        return False
    print(f"installing the musicnn weights ({musicnn.INSTALL}) ...", flush=True)
    command = [sys.executable, "-m", *musicnn.INSTALL.split(), "-q"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SetupError(f"`{musicnn.INSTALL}` failed ({why}); check the runtime's network "
                         "and run this cell again")
    importlib.invalidate_caches()
    return True


def mount_drive() -> None:
    """Mount Google Drive at /content/drive, or say how to go on without it."""
    from google.colab import drive

    try:
        drive.mount(str(DRIVE_MOUNT))
    except Exception as err:  # Colab raises ValueError, MessageError, TimeoutError, ...
        raise SetupError(
            f"Google Drive did not mount ({err}). Run this cell again and allow access, or set "
            "mount_drive = False in the parameters cell to keep data and runs on this runtime's "
            "disk only (lost when it disconnects)."
        ) from err


def keep_hf_cache_on_drive() -> Path | None:
    """Point the Hugging Face cache (`HF_HOME`) at Drive when Drive is mounted and nothing else
    was chosen, so a new runtime does not download the AST weights again; where it now is."""
    if "HF_HOME" in os.environ or not (DRIVE_MOUNT / "MyDrive").is_dir():
        return None
    HF_CACHE_ON_DRIVE.mkdir(parents=True, exist_ok=True)
    os.environ["HF_HOME"] = str(HF_CACHE_ON_DRIVE)
    return HF_CACHE_ON_DRIVE


def setup(mount: bool = True, renders: bool = False) -> None:
    """Prepare this runtime: Drive (on Colab, when `mount`) and the Hugging Face cache on it,
    FluidSynth and soundfonts when this notebook `renders` the demo set (only notebook 01
    does, so only it pays for apt), and one line on the device training will use."""
    if mount and in_colab():
        mount_drive()
        if keep_hf_cache_on_drive():
            print(f"Hugging Face cache (AST weights): {HF_CACHE_ON_DRIVE}")
    if ensure_musicnn():
        print("musicnn: installed (its weights come with it)")
    if renders:
        installed = ensure_demo_packages()
        print(f"demo renderer: installed {' '.join(installed)}" if installed
              else "demo renderer: FluidSynth and both soundfonts present")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}")
    else:
        print(f"No GPU: running on the CPU with smaller defaults ({GPU_HINT} for full size).")


def for_runtime(config: TrainingConfig, cpu_colab: bool | None = None) -> TrainingConfig:
    """`config`, with each model's epochs capped at its `cpu_epochs` (`registry.SPECS`: Wave1DCNN
    costs ~0.4 s per clip and step on a CPU, so its 30 full-size epochs would take many hours)
    on a Colab runtime without a GPU (`cpu_colab`, detected when None), saying so; unchanged
    anywhere else."""
    if cpu_colab is None:
        cpu_colab = in_colab() and not torch.cuda.is_available()
    capped_epochs = registry.cpu_capped(config) if cpu_colab else {}
    if not capped_epochs:
        return config
    capped = config
    for name, (_, cap) in capped_epochs.items():
        capped = capped.with_model(name, epochs=cap)
    now = {n: cap for n, (_, cap) in capped_epochs.items()}
    wanted = {n: asked for n, (asked, _) in capped_epochs.items()}
    print(f"No GPU on this Colab runtime: epochs {now} instead of {wanted} "
          f"({GPU_HINT} for the full run).")
    return capped


def warn_without_gpu(models: Iterable[str], device: str | None = None) -> str | None:
    """Say so (and return the line) when `models` include one that wants a GPU (the AudioSet
    transformer's, `registry.ModelSpec.wants_gpu`) and training would run on the CPU
    (`device`, read as `loop.pick_device` does), where it takes hours; None otherwise."""
    slow = registry.wants_gpu(list(models))
    if not slow or loop.pick_device(device).type != "cpu":
        return None
    line = (f"{', '.join(slow)}: the AudioSet transformer on a CPU takes hours an epoch; "
            f"choose a GPU ({GPU_HINT}) or the musicnn models (transfer-musicnn, "
            "musicnn-finetune), which run on a CPU")
    print(line)
    return line
