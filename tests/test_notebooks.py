"""Execute the notebooks for real (papermill), in order, with tiny parameters."""

import json

import nbformat
import pytest
import torch
from conftest import REPO, TINY_PARAMS

from helpers import notebooks
from helpers.core import results
from helpers.core.config import IRMAS_TEST_SPLIT
from helpers.core.layout import RunLayout
from helpers.data import cache, dataset
from helpers.evaluate import report, showcase
from helpers.models import checkpoints


def test_notebooks_in_git_carry_no_outputs():
    for path in notebooks.notebook_paths(REPO / "notebooks"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


def test_every_cell_has_an_id():
    for path in notebooks.notebook_paths(REPO / "notebooks"):
        cells = json.loads(path.read_text())["cells"]
        ids = [cell.get("id") for cell in cells]
        assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: cells without a unique id"


def test_each_notebook_has_one_parameters_cell_first():
    for path in notebooks.notebook_paths(REPO / "notebooks"):
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and code[0] is tagged[0], path.name


@pytest.mark.notebooks
def test_all_notebooks_run_end_to_end(notebook_run):
    run, _ = notebook_run
    layout = RunLayout(run)
    written = sorted(layout.notebooks.glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in notebooks.notebook_paths()]
    for name in ["01_clips_by_genre", "01_clips_by_drums", "02_balance", "02_examples",
                 "03_learning_curves", "03_confusions", "04_mix_counts", "05_learning_curves",
                 "06_learning_curves_stage1", "06_stage1_confusions", "06_stage1_f1",
                 "06_stage2_combinations", "06_stage2_f1", "06_excerpts_combinations",
                 "06_excerpts_f1"]:
        assert layout.figure(name).stat().st_size > 10_000, name
    pictures = showcase.notebook_pictures(run, run.parent / "docs")
    assert [p.name for p in pictures] == [f"0{i}.png" for i in range(1, 7)]
    drawn_excerpt = showcase.timeline(run, run.parent / "timeline.png")
    assert drawn_excerpt.read_bytes()[:4] == b"\x89PNG" and drawn_excerpt.stat().st_size > 10_000
    manifest = dataset.load_dataset(run)[0]
    excerpts = manifest[manifest["split"] == IRMAS_TEST_SPLIT]
    drawn = sorted(layout.figure("x").parent.glob("06_timeline_*.png"))
    assert len(drawn) == min(6, len(excerpts)) and all(p.stat().st_size > 10_000 for p in drawn)
    for split in ["train", "val", "test"]:
        assert cache.load_split(layout.cache(split)).waves.dtype == torch.float16
    tiny = TINY_PARAMS["epochs"]
    for model in ["mel", "wave1d", "transfer-musicnn", "musicnn-finetune"]:
        result = results.load(layout.model("stage1", model).metrics)
        assert result.epochs_run == tiny[model] and result.training["epochs"] == tiny[model]
        meta = checkpoints.load_checkpoint(layout.model("stage1", model).best)["meta"]
        assert meta["training"]["epochs"] == tiny[model], "the checkpoint names its settings"
    assert {r.model for r in map(results.load, layout.metrics_files("stage1"))} == {
        "mel", "wave1d", "transfer-musicnn", "musicnn-finetune"}
    frozen = checkpoints.load_checkpoint(layout.model("stage2", "transfer-musicnn").best)
    assert frozen["meta"]["backbone"]["checkpoint"] == "MTT_musicnn"
    assert not any(k.startswith("backbone.") for k in frozen["state_dict"]), "head only"
    assert results.load(layout.baseline("forest")).model == "forest"
    assert len(list(layout.mix_wavs.glob("*_*+*.wav"))) == 12  # 6 pairs x 2
    for variant in ["mel", "wave1d", "transfer", "wave1d-finetune", "transfer-musicnn",
                    "musicnn-finetune"]:
        result = results.load(layout.model("stage2", variant).metrics)
        assert result.epochs_run == tiny[variant]
    analysed = json.loads(layout.analysis.read_text())
    assert analysed["source"] == "demo"
    assert set(analysed["excerpts"]) == {
        f"{stage}/{model}" for stage in ("stage1", "stage2")
        for model in ("mel", "wave1d", "transfer-musicnn", "musicnn-finetune")} | {
        "stage2/wave1d-finetune"}
    assert all(set(s) >= report.EXCERPT_FIELDS
               and s["items"] == analysed["excerpts"]["stage2/mel"]["items"] > 0
               for s in analysed["excerpts"].values()), "every model scored on every excerpt"


def test_notebook_code_cells_define_nothing():
    for path in notebooks.notebook_paths(REPO / "notebooks"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                for line in cell.source.splitlines():
                    assert not line.lstrip().startswith(("def ", "class ", "lambda")), (
                        f"{path.name}: logic belongs in helpers: {line}")


def test_a_notebook_run_out_of_order_says_what_to_run(tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError, match="01_download"):
        notebooks.run_all(tmp_path / "run", {"source": "demo"}, only=["02"])


def test_settings_from_the_command_line_are_python_literals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parsed = notebooks.parse_settings(["epochs={'mel': 2, 'wave1d': 1}", "source=demo",
                                       "lr=3e-4", "from_scratch=['mel']", "data_dir=data/x",
                                       "note=a=b"])
    assert parsed == {"epochs": {"mel": 2, "wave1d": 1}, "source": "demo", "lr": 3e-4,
                      "from_scratch": ["mel"], "data_dir": str(tmp_path / "data" / "x"),
                      "note": "a=b"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        notebooks.parse_settings(["epochs"])
    with pytest.raises(SystemExit) as err:
        notebooks.main(["--run-dir", str(tmp_path), "--set", "=3"])
    assert err.value.code == 2
