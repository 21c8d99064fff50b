"""Notebooks 01-06 executed for real on all eleven IRMAS instruments (MelCNN and the musicnn
head, tiny parameters): a file of its own, so a second test worker runs it beside the
four-instrument run of `test_notebooks.py`."""

import json

import pytest

from helpers.core import results
from helpers.core.config import ALL_CLASSES
from helpers.core.layout import RunLayout


@pytest.mark.notebooks
def test_all_notebooks_run_on_all_eleven_instruments(notebook_run_eleven):
    layout = RunLayout(notebook_run_eleven[0])
    assert json.loads(layout.dataset.read_text())["instruments"] == list(ALL_CLASSES)
    for name in ["03_confusions", "06_stage1_confusions", "06_stage2_instruments",
                 "06_stage2_named_when_playing", "06_excerpts_instruments",
                 "06_excerpts_named_when_playing", "06_excerpts_f1"]:
        assert layout.figure(name).stat().st_size > 10_000, name
    assert not layout.figure("06_stage2_combinations").exists()
    assert results.load(layout.model("stage2", "transfer-mel").metrics).parameters == 159_311
    analysed = json.loads(layout.analysis.read_text())
    assert all(list(s["f1"]) == list(ALL_CLASSES) and "lrap" in s
               for s in analysed["excerpts"].values())
