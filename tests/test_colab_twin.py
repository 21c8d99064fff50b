"""The Colab twin (`make test-colab`, `tools/colab-twin`): Run all, notebooks 01 -> 06 with
`source = "irmas"`, on Colab's package versions, the project installed non-editable, the
archives fetched by Colab's gdown from a local server, then `irmas-predict` on the result.
Elsewhere (`make test`) it is skipped: its venv and versions are the point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import gdown
import pytest
from conftest import TINY_PARAMS
from irmas_shaped import pick, render, serve_archives
from served import serve

import helpers
from helpers import notebooks
from helpers.core import results
from helpers.core.config import CLASSES, IRMAS_TEST_SPLIT
from helpers.core.layout import RunLayout
from helpers.data import dataset, irmas

CLONE = os.environ.get("COLAB_TWIN_REPO")
pytestmark = pytest.mark.skipif(CLONE is None, reason="the Colab twin runs it: make test-colab")
# Per instrument and split, as many recordings as the tiny demo set has.
RECORDINGS = {"train": 4, "val": 1, "test": 1}


def _pinned(package: str) -> str:
    constraints = Path(CLONE) / "tools" / "colab-constraints.txt"
    return next(line.split("==")[1] for line in constraints.read_text().splitlines()
                if line.startswith(f"{package}=="))


def test_run_all_on_irmas_with_colabs_versions(tmp_path, monkeypatch):
    assert gdown.__version__ == _pinned("gdown"), "the download goes through Colab's gdown"
    assert "site-packages" in helpers.__file__, "installed, not imported from a source tree"
    source = tmp_path / "irmas-source"
    rows = render(pick(irmas.read_manifest(irmas.packaged_manifest()), CLASSES, RECORDINGS),
                  source)
    served = tmp_path / "zenodo"
    run, data = tmp_path / "drive" / "runs" / "irmas", tmp_path / "drive" / "data" / "irmas"
    with serve(served) as url:
        monkeypatch.setenv(irmas.MIRROR_ENV, str(serve_archives(rows, source, served, url)))
        params = {**TINY_PARAMS, "source": "irmas", "data_dir": str(data)}
        notebooks.run_all(run, params, folder=Path(CLONE) / "notebooks")
    layout = RunLayout(run)
    manifest, data_dir, recorded = dataset.load_dataset(layout)
    assert recorded == "irmas" and data_dir == data
    assert set(manifest["path"]) == set(irmas.select(rows, CLASSES)["path"])
    assert not list((data / "archives").glob("*.zip")), "each archive deleted once unpacked"
    assert (data / ".IRMAS-TestingData-Part3.complete").is_file()
    trained = results.load(layout.model("stage1", "musicnn-finetune").metrics)
    assert trained.environment["python"] == ".".join(map(str, sys.version_info[:3])), (
        "the notebooks ran on the twin's Python")
    analysed = json.loads(layout.analysis.read_text())
    assert analysed["source"] == "irmas" and analysed["excerpts"]
    assert layout.report.read_text().count("|") > 10

    excerpt = data / manifest.loc[manifest["split"] == IRMAS_TEST_SPLIT, "path"].iloc[0]
    predict = Path(sys.executable).with_name("irmas-predict")
    done = subprocess.run(
        [str(predict), "--checkpoint", str(layout.model("stage2", "transfer-musicnn").best),
         str(excerpt)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert excerpt.name in done.stdout and "%" in done.stdout, done.stdout
