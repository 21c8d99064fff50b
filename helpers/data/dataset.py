"""The run folder: what one notebook leaves for the next, and the errors when it is missing.

Notebook 01 records which data set it prepared; later notebooks read it from here, so each
notebook needs only the run folder and says which notebook to run first when something is absent.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import pandas as pd
import torch

from helpers.core import config
from helpers.core.atomic import atomic_write
from helpers.core.layout import RunLayout, as_layout
from helpers.data import irmas


def environment(device: str = "cpu") -> dict:
    """Where a figure was measured (machine, cores, torch, device, date), for provenance."""
    gpu = torch.cuda.get_device_name() if str(device).startswith("cuda") else None
    return {"device": gpu or "CPU", "cpu": _cpu_model(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.date.today().isoformat()}


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def write_json(path: str | Path, data: dict) -> Path:
    """Write JSON atomically (temp file + rename)."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str)))


def read_json(path: str | Path, producer: str) -> dict:
    """Read an artefact, or say which notebook writes it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run notebooks/{producer}.ipynb first.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); run notebooks/{producer}.ipynb "
                         "again to rewrite it") from err


def save_dataset(run: RunLayout | str | Path, source: str, data_dir: str | Path,
                 *, manifest: pd.DataFrame, classes: tuple[str, ...]) -> None:
    """Record the prepared data set (its source, folder, instruments and manifest) in the run
    folder."""
    run = as_layout(run)
    irmas.write_manifest(manifest, run.manifest)
    info = {"source": source, "data_dir": str(Path(data_dir).resolve()), "clips": len(manifest),
            "instruments": list(classes)}
    write_json(run.dataset, info)


def instruments(run: RunLayout | str | Path, requested: str | list[str] | None = None
                ) -> tuple[str, ...]:
    """The instruments notebook 01 chose for this run. `requested` (a later notebook's
    `instruments` parameter; None: whatever the run has) must name the same set, or the run
    would mix two meanings of its outputs."""
    run = as_layout(run)
    info = read_json(run.dataset, "01_download")
    if "instruments" not in info:
        raise ValueError(f"{run.dataset}: does not name the run's instruments; run "
                         "notebooks/01_download.ipynb again")
    recorded = tuple(info["instruments"])
    wanted = recorded if requested is None else config.instruments(requested)
    if wanted != recorded:
        raise ValueError(
            f"instruments={requested!r} ({', '.join(wanted)}), but this "
            f"run was prepared for {', '.join(recorded)}: set instruments = None (or that set), "
            "or run notebooks/01_download.ipynb with the new set into another run folder")
    return recorded


def describe(run: RunLayout | str | Path, source: str | None = None,
             requested: str | list[str] | None = None) -> str:
    """One line on what notebook 01 prepared for this run (data set, instruments, folder) and
    how to change it. A later notebook's `source` or `instruments` parameter (None: whatever the
    run has) must name the same, or its outputs would mix two data sets."""
    run = as_layout(run)
    info = read_json(run.dataset, "01_download")
    classes = instruments(run, requested)
    if source is not None and config.source(source) != info["source"]:
        raise ValueError(
            f"source={source!r}, but {run.root} holds a run on {info['source']!r}: set source = "
            f"None (or {info['source']!r}), or run notebooks/01_download.ipynb with "
            f"source={source!r} (its run folder is {config.run_dir(source)})")
    name = "IRMAS" if info["source"] == "irmas" else "the demo set (synthetic, not IRMAS)"
    return (f"data: {name}, {info['clips']} files in {info['data_dir']}; instruments: "
            f"{', '.join(classes)} (chosen in notebook 01: change source or instruments there "
            f"and run it again)")


def load_dataset(run: RunLayout | str | Path) -> tuple[pd.DataFrame, Path, str]:
    """The manifest, data folder and source that notebook 01 prepared for this run."""
    run = as_layout(run)
    info = read_json(run.dataset, "01_download")
    return irmas.read_manifest(run.manifest), Path(info["data_dir"]), info["source"]
