"""The instrument set is a parameter: IRMAS's eleven end to end on a tiny rendered set, and
clear refusals of unknown codes and of a model trained on another set."""

import shutil

import matplotlib.pyplot as plt
import pytest

from helpers.core import config
from helpers.core.config import (
    ALL_CLASSES,
    CLASSES,
    IRMAS_TEST_SPLIT,
    SPLITS,
    STAGE1,
    STAGE2,
    TrainingConfig,
)
from helpers.core.layout import RunLayout
from helpers.data import cache, dataset, irmas, mix_plans, mixing
from helpers.demo import render_set
from helpers.evaluate import analysis, plots, report, widgets
from helpers.models import checkpoints, networks
from helpers.train import recipe

pytestmark = pytest.mark.slow  # minutes: left out of make test-fast

ELEVEN = {"recordings_per_class": 10, "test_songs": 3, "test_leads": 3}  # cello: 5 recordings


def test_choices_resolve_to_irmas_order_and_unknown_codes_list_the_valid_ones():
    assert config.instruments(None) == config.instruments("default") == CLASSES
    assert config.instruments("all") == ALL_CLASSES and len(ALL_CLASSES) == 11
    assert config.instruments(["voi", "cel"]) == config.instruments("cel voi") == ("cel", "voi")
    with pytest.raises(ValueError, match=r"unknown code\(s\) \['banjo'\]; valid: cel, cla, flu"):
        config.instruments(["pia", "banjo"])
    with pytest.raises(ValueError, match="valid: cel"):
        config.instruments([])


@pytest.fixture(scope="module")
def eleven(tmp_path_factory):
    """A run folder on all eleven instruments: rendered, recorded, cached."""
    tmp = tmp_path_factory.mktemp("eleven")
    data, run = tmp / "data", RunLayout(tmp / "run")
    manifest = render_set.render_demo(data, **ELEVEN, progress=False, instruments=ALL_CLASSES)
    dataset.save_dataset(run, "demo", data, manifest=manifest, classes=ALL_CLASSES)
    cache.build_all(manifest, data, run, progress=False, classes=ALL_CLASSES)
    return run, manifest


def test_the_demo_renders_all_eleven_in_irmas_proportions(eleven):
    _, manifest = eleven
    train = manifest[manifest["split"].isin(SPLITS)]
    per_class = train.groupby("instrument")["recording"].nunique().to_dict()
    assert per_class == render_set.recordings_per_instrument(10, ALL_CLASSES)
    assert per_class["voi"] == 10 and per_class["cel"] == 5
    assert train.groupby("instrument")["split"].nunique().eq(3).all()
    test = manifest[manifest["split"] == IRMAS_TEST_SPLIT]
    held = test["instruments"].str.split()
    assert set(held.str.len()) == {1, 2, 3} and held.map(lambda c: set(c) <= set(ALL_CLASSES)).all()


def test_the_seeds_four_render_as_before_eleven_existed(demo_set, tmp_path):
    root, manifest = demo_set
    again = render_set.render_demo(tmp_path, recordings_per_class=6, test_songs=2, progress=False,
                             instruments=("vio", "gac", "tru", "pia"))
    assert list(again["md5"]) == list(manifest["md5"])
    with pytest.raises(ValueError, match="banjo.*valid: cel"):
        render_set.render_demo(tmp_path / "x", 6, 0, progress=False, instruments=("banjo",))


def test_caches_plans_and_models_take_the_class_list_from_the_run(eleven, capsys):
    run, _ = eleven
    train = cache.load_split(run.cache("train"))
    assert train.classes == ALL_CLASSES and set(train.labels.tolist()) == set(range(11))
    plans = mix_plans.build_mixes(run, uses_per_clip=1.0, k_weights={1: 1, 2: 1, 3: 1})
    assert plans["test"].targets.shape[1] == 11 and plans["test"].classes == ALL_CLASSES
    assert all(len(name.split("_", 1)[1].split("+")) == k for name, k in (
        (mixing.mix_name(plans["test"], i), int(plans["test"].k[i])) for i in range(5)))
    test = cache.load_split(run.cache("test"))
    widgets.show_each_combination(test.waves, plans["test"], test.paths)
    shown = capsys.readouterr().out
    combos = len(mixing.by_combination(plans["test"]))
    assert combos > 6 and f"6 of {combos} combinations" in shown
    assert shown.count("mix ") == 6
    figure = plots.mix_counts(plans)
    assert [ax.get_title() for ax in figure.axes] == ["Mixes per number of instruments",
                                                      "Mixes holding each instrument"]
    assert len(figure.axes[1].get_yticklabels()) == 11
    plt.close(figure)
    head = networks.build("transfer", n_outputs=11)
    assert networks.count_parameters(head) == 31_111  # 30,754 for four


def test_both_stages_train_and_are_analysed_on_eleven(eleven):
    run, _ = eleven
    quick = TrainingConfig(epochs=1, progress=False, batch_size=32)
    first = recipe.train(run, STAGE1, "mel", config=quick)
    assert set(first.test["f1"]) == set(ALL_CLASSES)
    assert len(first.test["confusion"]) == 11
    second = recipe.train(run, STAGE2, "mel-finetune", config=quick)
    assert len(second.test["thresholds"]) == 11
    meta = checkpoints.load_checkpoint(run.model("stage2", "mel-finetune").best)["meta"]
    assert meta["classes"] == list(ALL_CLASSES)
    clips = analysis.evaluate_clips(run)
    mixes = analysis.evaluate_mixes(run)
    excerpts = analysis.evaluate_excerpts(run, progress=False)
    assert clips["mel"].probs.shape[1] == mixes["mel-finetune"].targets.shape[1] == 11
    assert set(analysis.scores_table(excerpts).columns) >= {"micro F1", "macro F1", "LRAP"}
    table = report.beside_published(excerpts, run)
    assert "Han, Kim & Lee" in table["method"].iloc[1] and table["micro F1"].iloc[1] == 0.602
    assert table["data"].iloc[-1].startswith("demo set (synthetic, not IRMAS), 11 instruments")
    analysis.save(run, {"excerpts": excerpts}, hop_seconds=1.5)
    block = report.results_markdown(run)
    assert "instruments: cel, cla, flu, gac, gel, org, pia, sax, tru, vio, voi" in block
    assert "Beside the published IRMAS results" in block and "| 60.2% | 50.3% |" in block
    figures = plots.multilabel_figures(mixes["mel-finetune"], "mel")
    assert set(figures) == {"instruments", "named_when_playing"}
    plt.close("all")


def test_a_model_of_another_instrument_set_is_refused_with_both_lists(eleven, demo_set,
                                                                        tmp_path):
    run, _ = eleven
    four = RunLayout(tmp_path / "four")
    root, manifest = demo_set
    dataset.save_dataset(four, "demo", root, manifest=manifest, classes=CLASSES)
    for split in SPLITS:
        cache.build_split(manifest, root, split, target=four.cache(split), progress=False,
                          classes=CLASSES)
    four.model("stage1", "mel").folder.mkdir(parents=True)
    shutil.copy(run.model("stage1", "mel").best, four.model("stage1", "mel").best)
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"trained on cel, cla, .*voi, but this run is on gac, pia, tru, vio"):
        analysis.evaluate_clips(four)
    with pytest.raises(ValueError, match="prepared for gac, pia, tru, vio"):
        dataset.instruments(four, "all")
    assert dataset.instruments(four) == dataset.instruments(four, "default") == CLASSES


def test_the_packaged_manifest_selects_any_set():
    packaged = irmas.read_manifest(irmas.packaged_manifest())
    everything = irmas.select(packaged, ALL_CLASSES)
    assert len(everything[everything["split"] == IRMAS_TEST_SPLIT]) == 2874
    assert set(everything["instrument"].replace("", None).dropna()) == set(ALL_CLASSES)
