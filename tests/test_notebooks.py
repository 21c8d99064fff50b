"""Execute the notebooks for real (papermill), in order, with tiny parameters."""

import json

import nbformat
import pytest
from conftest import REPO

from helpers import notebooks


def test_notebooks_in_git_carry_no_outputs():
    for path in notebooks.notebook_paths(REPO / "notebooks"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


def test_each_notebook_has_one_parameters_cell_first():
    for path in notebooks.notebook_paths(REPO / "notebooks"):
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and code[0] is tagged[0], path.name


@pytest.mark.notebooks
def test_all_notebooks_run_end_to_end(notebook_run):
    run, _ = notebook_run
    written = sorted((run / "notebooks").glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in notebooks.notebook_paths()]
    for name in ["01_clips_by_genre", "01_clips_by_drums", "02_balance", "02_examples",
                 "03_learning_curves", "03_confusion_mel", "03_confusion_seed",
                 "04_mix_counts", "05_learning_curves"]:
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000
    for split in ["train", "val", "test"]:
        assert (run / "cache" / f"{split}.pt").is_file()
    scores = json.loads((run / "baseline.json").read_text())
    assert 0 <= scores["val"] <= 1 and 0 <= scores["test"] <= 1
    for model in ["mel", "seed", "forest"]:
        result = json.loads((run / "stage1" / model / "metrics.json").read_text())
        assert 0 <= result["val_accuracy"] <= 1 and 0 <= result["test_accuracy"] <= 1
    assert (run / "stage1" / "seed" / "best.pt").is_file()
    assert len(list((run / "mixes" / "wav").glob("*_*+*.wav"))) == 12  # 6 pairs x 2
    for variant in ["mel", "seed", "transfer", "seed-finetune"]:
        result = json.loads((run / "stage2" / variant / "metrics.json").read_text())
        for scores in (result["test"]["threshold"], result["test"]["top_k"]):
            assert all(0 <= scores[k] <= 1 for k in ("exact_match", "micro_f1", "macro_f1"))
    for name in ["06_learning_curves_stage1", "06_stage1_confusion_seed", "06_stage1_f1",
                 "06_stage2_combinations2_transfer", "06_stage2_counts_mel", "06_stage2_f1",
                 "06_excerpts_combinations1", "06_excerpts_f1"]:
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000, name
    analysed = json.loads((run / "analysis" / "metrics.json").read_text())
    assert len(analysed["excerpts"]["stage2/mel"]) and analysed["source"] == "demo"
    for section in ("clips", "mixes", "excerpts"):
        for scores in analysed[section].values():
            assert all(0 <= scores[k] <= 1 for k in ("exact_match", "micro_f1", "macro_f1"))


def test_a_notebook_run_out_of_order_says_what_to_run(tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError, match="01_download"):
        notebooks.run_all(tmp_path / "run", {"source": "demo"}, only=["02"])
