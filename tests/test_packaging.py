"""The package as users install it: a real wheel, installed elsewhere, used from another folder."""

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO

from helpers.data import irmas

pytestmark = pytest.mark.slow  # minutes: left out of make test-fast


def _build_wheel(tmp_path):
    """Build from a copy of the sources, so the build leaves nothing in the working tree."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "helpers", src / "helpers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(src)], check=True)
    (wheel,) = (tmp_path / "dist").glob("irmas_instruments-*.whl")
    return wheel


def test_wheel_ships_the_manifest_and_the_command(tmp_path):
    wheel = _build_wheel(tmp_path)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import helpers, helpers.data.irmas as i; print(helpers.__file__); "
            "print(len(i.read_manifest(i.packaged_manifest())))")
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, check=True,
                          capture_output=True, text=True)
    where, rows = done.stdout.split()
    assert where.startswith(str(target)), f"imported {where}, not the installed wheel"
    committed = pd.read_csv(irmas.packaged_manifest(), dtype=str)
    assert int(rows) == len(committed) > 3_000
    helped = subprocess.run([str(target / "bin" / "irmas-predict"), "--help"], cwd=elsewhere,
                            env=env, capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    assert "--checkpoint" in helped.stdout
