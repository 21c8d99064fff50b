"""Notebook 06's helpers on a tiny run trained for real: evaluations, browser, README report."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import cached_run

from helpers.core import results
from helpers.core.config import CLASSES, STAGE1, STAGE2, TrainingConfig
from helpers.core.layout import RunLayout
from helpers.data import cache, dataset, mix_plans
from helpers.data.batches import ClipBatches
from helpers.evaluate import analysis, predict, report, widgets
from helpers.models import checkpoints, networks
from helpers.train import loop, recipe, sources


@pytest.fixture(scope="module")
def run(demo_set, tmp_path_factory):
    run_dir = cached_run(demo_set, tmp_path_factory.mktemp("run"))
    config = TrainingConfig(epochs=1, device="cpu", progress=False)
    recipe.train(run_dir, STAGE1, "mel", config=config)
    mix_plans.build_mixes(run_dir, uses_per_clip=1, random_seed=1)
    recipe.train(run_dir, STAGE2, "mel", config=config)
    return run_dir


def _metrics(run_dir, stage):
    return results.load(RunLayout(run_dir).model(stage, "mel").metrics)


@pytest.mark.slow
def test_clip_and_mix_evaluations_agree_with_what_training_reported(run):
    clips = analysis.evaluate_clips(run, "cpu")["mel"]
    assert clips.items == cache.load_split(run / "cache" / "test.pt").paths
    assert (clips.pred.sum(1) == 1).all() and torch.equal(clips.pred.argmax(1),
                                                           clips.probs.argmax(1))
    assert clips.scores()["exact_match"] == pytest.approx(_metrics(run, "stage1").test_accuracy)
    mixes = analysis.evaluate_mixes(run, "cpu")["mel"]
    reported = _metrics(run, "stage2").test["threshold"]
    for key in ("exact_match", "micro_f1", "macro_f1"):
        assert mixes.scores()[key] == pytest.approx(reported[key])
    assert mixes.audio(0).shape == (2, 132_299)


def test_select_filters_by_playing_named_and_outcome(run):
    ev = analysis.evaluate_mixes(run, "cpu")["mel"]
    everything = ev.select()
    assert everything == list(range(len(ev)))
    assert sorted(ev.select(outcome="right") + ev.select(outcome="wrong")) == everything
    playing = int(ev.targets[0].nonzero()[0])
    named = ev.pred[0].nonzero().flatten().tolist()
    chosen = ev.select(true=ev.classes[playing],
                       named=ev.classes[named[0]] if named else None)
    assert 0 in chosen, "the first mix matches its own instruments"
    for i in chosen:
        assert ev.targets[i, playing] == 1 and (not named or ev.pred[i, named[0]] == 1)
    assert len(ev.select(true="pia")) == int(ev.targets[:, 1].sum())


def test_whole_excerpts_are_heard_through_windows(run, demo_set):
    root, manifest = demo_set
    excerpts = manifest[manifest["split"] == "irmas_test"]
    result = analysis.evaluate_excerpts(run, hop_seconds=1.5, device="cpu", progress=False)
    assert set(result) == {"stage1/mel", "stage2/mel"}
    ev = result["stage2/mel"]
    assert ev.items == excerpts["path"].tolist()
    assert ev.targets.sum(1).tolist() == [len(s.split()) for s in excerpts["instruments"]]
    assert (ev.pred.sum(1) >= 1).all(), "a recording holds some instrument"
    assert ev.audio(0).shape[1] > 5 * 44_100
    scores = analysis.scores_table(result)
    right = float(ev.right().float().mean())
    assert scores.loc["stage2/mel", "exact match"] == pytest.approx(right)
    assert scores.loc["stage2/mel", "items"] == len(excerpts)
    # notebook 06's timelines: mistakes first, up to half, then right ones; all when fewer
    for count in (2, len(excerpts) + 1):
        drawn = analysis.timelines(run, ev, count=count, device="cpu")
        wrong = int((~ev.right()).sum())
        assert len(drawn) == min(count, len(excerpts))
        shown = [ev.items.index(h.path) for h, _, _ in drawn]
        assert int((~ev.right())[shown].sum()) == min(
            wrong, max(count // 2, count - (len(excerpts) - wrong)), len(drawn))
        assert all(h.timeline is not None for h, _, _ in drawn)


def test_missing_excerpt_files_are_named(run, demo_set, tmp_path):
    root, manifest = demo_set
    moved = tmp_path / "run"
    dataset.save_dataset(moved, "irmas", tmp_path / "empty", manifest=manifest, classes=CLASSES)
    with pytest.raises(FileNotFoundError, match="01_download.*test1"):
        analysis.excerpt_rows(moved)


def test_unreadable_excerpts_are_skipped_with_a_warning(run, demo_set, tmp_path):
    root, manifest = demo_set
    excerpts = manifest.loc[manifest["split"] == "irmas_test", "path"].tolist()
    data = tmp_path / "data"
    for path in excerpts:
        (data / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / path, data / path)
    (data / excerpts[0]).write_bytes(b"<html>not audio</html>")
    other = tmp_path / "run"
    dataset.save_dataset(other, "demo", data, manifest=manifest, classes=CLASSES)
    for stage in ("stage1", "stage2"):
        (other / stage).symlink_to(run / stage)
    with pytest.warns(UserWarning, match="skipped.*" + re.escape(Path(excerpts[0]).name)):
        result = analysis.evaluate_excerpts(other, device="cpu", progress=False)
    assert result["stage1/mel"].items == excerpts[1:]


def test_save_and_report_regenerate_the_readme_block(run, tmp_path, capsys):
    sections = {"clips": analysis.evaluate_clips(run, "cpu"),
                "mixes": analysis.evaluate_mixes(run, "cpu"),
                "excerpts": analysis.evaluate_excerpts(run, device="cpu", progress=False)}
    saved = analysis.save(run, sections, hop_seconds=1.5)
    data = json.loads(saved.read_text())
    for section, evaluations in sections.items():
        for name, ev in evaluations.items():
            assert data[section][name]["exact_match"] == pytest.approx(ev.scores()["exact_match"])
            assert data[section][name]["items"] == len(ev)
        assert len(pd.read_csv(saved.parent / f"{section}.csv")) == sum(
            len(ev) for ev in evaluations.values())
    block = report.results_markdown(run)
    table = analysis.scores_table(sections["mixes"])
    html = report.styled(table).to_html()
    assert report.markdown(table.reset_index()).split("\n")[2].split(" | ")[2] in html, (
        "a notebook shows the numbers as the README does")
    assert "**not** IRMAS numbers" in block and data["environment"]["torch"] in block
    assert "| mel | demo (this run) |" in block and "2020 report" in block
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold numbers\n{report.END}\nrest\n")
    assert report.main(["--run-dir", str(run), "--write", str(readme)]) == 0
    text = readme.read_text()
    assert "old numbers" not in text and "Whole test excerpts" in text
    assert text.startswith("intro\n") and text.endswith("rest\n")
    readme.write_text("no markers")
    assert report.main(["--run-dir", str(run), "--write", str(readme)]) == 1
    assert "results:start" in capsys.readouterr().err


def test_prediction_browser_filters_plays_and_shows_probabilities(run):
    ev = analysis.evaluate_clips(run, "cpu")["mel"]
    browser = widgets.prediction_browser(ev)
    (true, named), (outcome, pick) = (row.children for row in browser.children[:2])
    heading, (player, panel) = browser.children[2], browser.children[3].children
    assert player.value[:4] == b"RIFF"
    first = ev.select()[0]
    bars = [row.children[0] for row in panel.children]
    assert [b.value for b in bars] == pytest.approx(ev.probs[first].tolist())
    assert true.label == named.label == "any", "a filter that matches all says so"
    true.value = "vio"
    i = ev.select(true="vio")[0]
    assert ev.items[i] in heading.value and [b.value for b in bars] == pytest.approx(
        ev.probs[i].tolist())
    styles = {b.bar_style for b in bars}
    assert styles <= {"success", "danger", "warning", ""} and styles != {""}
    named.value = "vio"
    outcome.value = "wrong"
    assert ev.select("vio", "vio", "wrong") == [], "one instrument named: violin named is right"
    assert "no item matches" in heading.value and player.layout.display == "none"


def test_report_without_excerpts_writes_the_rest_and_says_what_is_missing(run, tmp_path):
    sections = {"clips": analysis.evaluate_clips(run, "cpu")}
    other = tmp_path / "run"
    shutil.copytree(run, other)
    analysis.save(other, sections, hop_seconds=1.5, evaluate_excerpts=False)  # as notebook 06
    block = report.results_markdown(other)
    assert "#### Stage 1" in block and "| mel | demo (this run) |" in block
    assert "evaluate_excerpts = False" in block
    analysis.save(other, sections, hop_seconds=1.5)  # excerpts neither scored nor said skipped
    with pytest.raises(ValueError, match="holds no excerpt scores and does not say"):
        report.results_markdown(other)


def _broken(run, tmp_path, where: str, content) -> Path:
    other = tmp_path / "run"
    shutil.copytree(run, other)
    if where.startswith("analysis"):
        analysis.save(other, {"excerpts": analysis.evaluate_excerpts(other, device="cpu",
                                                                     progress=False)},
                      hop_seconds=1.5)
    target = other / where
    if content is None:
        target.unlink()
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        data = json.loads(target.read_text())
        content(data)
        target.write_text(json.dumps(data))
    return other


def _set(*keys, value):
    def edit(data):
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value
    return edit


@pytest.mark.parametrize("where,content,message", [
    ("stage1/mel/metrics.json", None, "missing: .*stage1/mel/metrics.json"),
    ("stage2/mel/metrics.json", None, "missing: .*stage2/mel/metrics.json"),
    ("stage1/mel/metrics.json", _set("test", "accuracy", value=7.5), "test.accuracy is 7.5"),
    ("stage1/mel/metrics.json", _set("test", value={}), "lack 'accuracy'"),
    ("stage2/mel/metrics.json", _set("test", "top_k", value=[]), "lack 'top_k'"),
    ("stage1/mel/metrics.json", _set("val_score", value="high"), "val_score is 'high'"),
    ("stage1/mel/metrics.json", b"\xff\xfe binary", "not valid JSON"),
    ("analysis/metrics.json", _set("excerpts", value=[1, 2]), "excerpt scores are not"),
    ("analysis/metrics.json", _set("settings", value=None), "not the record notebook 06"),
])
def test_report_never_drops_or_invents_a_row(run, tmp_path, capsys, where, content, message):
    other = _broken(run, tmp_path, where, content)
    readme = tmp_path / "README.md"
    readme.write_text(f"{report.START}\nold\n{report.END}\n")
    assert report.main(["--run-dir", str(other), "--write", str(readme)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err) and "Traceback" not in err
    assert "\nold\n" in readme.read_text(), "the README is left as it was"


def test_write_keeps_the_symlink_and_mode_and_refuses_two_blocks(run, tmp_path, capsys):
    real = tmp_path / "docs" / "README.md"
    real.parent.mkdir()
    real.write_text(f"a\n{report.START}\nstale numbers\n{report.END}\nb\n")
    real.chmod(0o640)
    link = tmp_path / "README.md"
    link.symlink_to(real)
    assert report.main(["--run-dir", str(run), "--write", str(link)]) == 0
    assert link.is_symlink() and "stale numbers" not in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640
    twice = real.read_text() + f"{report.START}\nkeep\n{report.END}\n"
    real.write_text(twice)
    assert report.main(["--run-dir", str(run), "--write", str(link)]) == 1
    assert "exactly one" in capsys.readouterr().err and real.read_text() == twice


@pytest.mark.parametrize("where", ["stage1/mel/metrics.json", "analysis/metrics.json"])
def test_report_names_a_broken_record(run, tmp_path, capsys, where):
    other = tmp_path / "run"
    shutil.copytree(run, other)
    analysis.save(other, {"clips": analysis.evaluate_clips(other, "cpu")}, hop_seconds=1.5)
    (other / where).write_text('{"model": "mel\x01"')
    assert report.main(["--run-dir", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(other / where) in err and "Traceback" not in err


def test_the_model_shown_is_chosen_on_validation_never_on_test(tmp_path):
    """A model with the better test score but the worse validation score is not the one shown."""
    run = RunLayout(tmp_path)
    y = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    right, wrong = y.clone(), y.flip(0)
    evaluations = {name: analysis.Evaluation(name, ["a", "b"], y, y, pred, lambda i: None,
                                             classes=CLASSES)
                   for name, pred in (("good-on-test", right), ("good-on-val", wrong))}
    for name, val in (("good-on-test", 0.5), ("good-on-val", 0.9)):
        results.save(run.model("stage2", name).metrics, results.TrainResult(
            model=name, stage="stage2", parameters=1, val_metric="micro F1", val_score=val,
            test={}, epochs_run=1, best_epoch=1, seconds_per_epoch=1.0, training={},
            environment={}, checkpoint="", extra={}))
    assert evaluations["good-on-test"].scores()["exact_match"] == 1.0
    assert analysis.best(evaluations, run, "stage2") == "good-on-val"
    staged = {f"stage2/{k}": v for k, v in evaluations.items()}
    staged["stage1/mel"] = evaluations["good-on-test"]  # a Stage-1 model never outranks Stage 2
    assert analysis.best(staged, run) == "stage2/good-on-val"
    # a head on the pretrained backbone comes first, whatever its in-font validation score
    head = run.model("stage2", "transfer-musicnn")
    checkpoints.save_checkpoint(head.best, networks.build("musicnn", n_outputs=len(CLASSES)),
                                checkpoints.model_meta("musicnn", task="multi", classes=CLASSES))
    results.save(head.metrics, results.load(run.model("stage2", "good-on-test").metrics))
    staged["stage2/transfer-musicnn"] = evaluations["good-on-test"]
    assert analysis.best(staged, run) == "stage2/transfer-musicnn"


def test_stage1_confidence_floor_is_chosen_on_validation_and_marks_low_answers(run, tmp_path):
    best = RunLayout(run).model("stage1", "mel").best
    model, meta = checkpoints.load_model(best)
    cached = cache.load_caches(run)
    val = ClipBatches(cached["val"].waves, cached["val"].labels, sources.AUDIO_EVAL_BATCH)
    logits, _ = loop.predict(model, val)
    top = logits.softmax(dim=1).amax(dim=1)
    assert meta["confidence_floor"] == pytest.approx(float(torch.quantile(top, 0.01)))
    assert _metrics(run, "stage1").test["confidence_floor"] == meta["confidence_floor"]
    predictor = predict.Predictor(best)
    path = tmp_path / "clip.wav"
    sf.write(path, cached["test"].waves[0].float().T.numpy(), 44_100)
    result = predictor(path)
    assert result.low_confidence == (max(result.probabilities.values())
                                     < meta["confidence_floor"])
    low = dataclasses.replace(result, low_confidence=True)
    assert "low confidence: under what 99% of validation clips reach" in low.line()


def test_the_readme_figure_is_drawn_from_the_runs_it_shows(run, tmp_path, capsys):
    from helpers.evaluate import showcase

    accuracy = tmp_path / "accuracy"
    accuracy.mkdir()
    rows = [{"model": name, "train": "FluidR3_GM.sf2", "test": "TimGM6mb.sf2 (all clips)",
             "across": across, "accuracy": acc, "accuracy_95": [acc - 0.02, acc + 0.02]}
            for name, across, acc in [("recipe", True, 0.65), ("recipe", False, 0.98),
                                      ("musicnn MTT_musicnn pool, frozen + linear head", True,
                                       0.78)]]
    (accuracy / "results.json").write_text(json.dumps({"rows": rows}))
    assert [r["accuracy"] for r in showcase.across_rows(accuracy / "results.json")] == [0.78,
                                                                                       0.65]
    out = showcase.overview(accuracy, run, tmp_path / "docs" / "overview.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 20_000
    (accuracy / "results.json").write_text(json.dumps({"rows": rows[1:2]}))
    assert showcase.main(["--accuracy", str(accuracy), "--demo", str(run), "--out",
                          str(tmp_path / "docs")]) == 1
    assert "no Stage-1 rows across soundfonts" in capsys.readouterr().err
