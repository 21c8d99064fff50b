"""Stage 2 for real on a tiny run folder: caches, a Stage-1 checkpoint, mixes, the head."""

import pandas as pd
import pytest
import torch
from conftest import cached_run
from torch import nn

from helpers.core import metrics, results
from helpers.core.config import CLASSES, SPLITS, STAGE1, STAGE2, TrainingConfig
from helpers.core.layout import RunLayout
from helpers.data import cache, mix_plans, mixing
from helpers.evaluate import analysis, predict
from helpers.models import checkpoints, embed, networks, registry
from helpers.train import loop, recipe, sources


def test_transfer_head_is_the_2020_projects():
    head = networks.TransferHead(n_outputs=len(CLASSES))
    assert networks.count_parameters(head, trainable_only=True) == 30_754
    assert [m.out_features for m in head.modules() if isinstance(m, nn.Linear)] == [100, 50, 4]
    assert head.layers[0].p == 0.2
    assert not any(isinstance(m, (nn.ReLU, nn.Sigmoid)) for m in head.modules())


@pytest.fixture(scope="module")
def run(demo_set, tmp_path_factory):
    run_dir = cached_run(demo_set, tmp_path_factory.mktemp("run"))
    torch.manual_seed(0)
    extractor = networks.Wave1DCNN(n_outputs=len(CLASSES)).train()
    with torch.no_grad():  # move BatchNorm statistics away from their defaults
        extractor(cache.load_split(run_dir / "cache" / "train.pt").waves[:4].float())
    checkpoints.save_checkpoint(RunLayout(run_dir).model("stage1", "wave1d").best, extractor,
                                checkpoints.model_meta("wave1d", classes=CLASSES))
    mix_plans.build_mixes(run_dir, uses_per_clip=1, random_seed=1)
    return run_dir


def test_head_trains_on_features_extracted_once_with_a_frozen_eval_extractor(run):
    layout = RunLayout(run)
    ckpt = layout.model("stage1", "wave1d").best
    before = ckpt.read_bytes()
    extractor, _ = checkpoints.load_model(ckpt)
    state = {k: v.clone() for k, v in extractor.state_dict().items()}
    config = TrainingConfig(epochs=4, lr=3e-3, progress=False, device="cpu")
    result = recipe.train(run, STAGE2, "transfer", config=config)
    assert result.parameters == 30_754
    history = pd.read_csv(layout.model("stage2", "transfer").history_csv)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0], "the head learns"
    assert ckpt.read_bytes() == before, "the Stage-1 checkpoint is untouched"
    head = layout.model("stage2", "transfer")
    stored = torch.load(head.features("val"), weights_only=True)
    waves, plan = mix_plans.load_mixes(run)["val"]
    feats, _ = embed.extract(extractor.eval().features, mixing.MixBatches(waves, plan, 8),
                             torch.device("cpu"), progress=False)
    assert torch.allclose(feats, stored["features"], atol=1e-5), "eval-mode features"
    for key, value in extractor.state_dict().items():  # weights and BatchNorm statistics
        assert torch.equal(value, state[key]), key
    mtime = head.features("train").stat().st_mtime_ns
    recipe.train(run, STAGE2, "transfer", config=TrainingConfig(epochs=5, progress=False,
                                                                device="cpu"))
    assert head.features("train").stat().st_mtime_ns == mtime, "features are not recomputed"
    tested = analysis.evaluate_mixes(run, "cpu")["transfer"].scores()
    assert tested["exact_match"] == pytest.approx(
        results.load(head.metrics).test["threshold"]["exact_match"])


def _files(paths) -> dict:
    """Identity of each file: atomic writes (temp file + rename) give a rewrite a new inode."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def _all_rewritten(before: dict) -> bool:
    return all(_files([p])[p] != identity for p, identity in before.items())


@pytest.mark.slow
def test_one_staleness_rule_rebuilds_exactly_what_depends_on_a_change(run):
    """Caches -> mix plans -> transfer features: change one input, see only its dependents
    rebuilt."""
    layout = RunLayout(run)
    head = layout.model("stage2", "transfer")
    config = TrainingConfig(epochs=1, progress=False, device="cpu", resume=False, overwrite=True)
    recipe.train(run, STAGE2, "transfer", config=config)
    caches = _files(layout.cache(s) for s in SPLITS)
    plans = _files(layout.mixes(s) for s in SPLITS)
    features = _files(head.features(s) for s in SPLITS)

    mix_plans.build_mixes(run, uses_per_clip=1, random_seed=1)  # same settings: nothing to do
    _wave1d_features(run)
    assert _files(plans) == plans and _files(features) == features

    torch.manual_seed(1)  # a new Stage-1 checkpoint: features only
    checkpoints.save_checkpoint(layout.model("stage1", "wave1d").best,
                                networks.Wave1DCNN(n_outputs=len(CLASSES)),
                                checkpoints.model_meta("wave1d", classes=CLASSES))
    new = _wave1d_features(run)
    assert _files(plans) == plans and _all_rewritten(features)
    extractor, _ = checkpoints.load_model(layout.model("stage1", "wave1d").best)
    waves, plan = mix_plans.load_mixes(run)["val"]
    feats, _ = embed.extract(extractor.eval().features, mixing.MixBatches(waves, plan, 8),
                             torch.device("cpu"), progress=False)
    assert torch.allclose(new["val"][0], feats, atol=1e-5), "recomputed with the new weights"

    features = _files(head.features(s) for s in SPLITS)  # other mix settings: plans, features
    mix_plans.build_mixes(run, uses_per_clip=1, gain_db=3.0, random_seed=1)
    _wave1d_features(run)
    assert _files(caches) == caches
    assert _all_rewritten(plans) and _all_rewritten(features)
    mix_plans.build_mixes(run, uses_per_clip=1, random_seed=1)  # back as the fixture had it


def test_mixes_from_another_cache_are_refused(run, tmp_path):
    other = mixing.plan_mixes(torch.tensor([0, 1, 2, 3]), uses_per_clip=1, classes=CLASSES)
    _, meta = mixing.load_plan(run / "mixes" / "val.pt")
    original = (run / "mixes" / "val.pt").read_bytes()
    mixing.save_plan(run / "mixes" / "val.pt", other, {**meta, "cache_key": "something else"})
    try:
        with pytest.raises(ValueError, match="04_generate_mixes"):
            mix_plans.load_mixes(run)
    finally:
        (run / "mixes" / "val.pt").write_bytes(original)


def test_multilabel_metrics_tell_nothing_from_something():
    targets = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1.0]])
    nothing = metrics.multilabel_scores(torch.zeros_like(targets), targets, classes=CLASSES)
    assert nothing["per_label_accuracy"] == 0.5  # the 2020 project's number flatters "nothing"
    assert nothing["exact_match"] == 0 and nothing["micro_f1"] == 0
    assert nothing["count_accuracy"] == 0
    logits = torch.tensor([[3, 2, -1, -2], [-2, 1, -0.5, -3], [-1, -1, 2, 1.0]])
    s = metrics.multilabel_summary(logits, targets, classes=CLASSES)
    assert s["threshold"]["exact_match"] == 2 / 3  # row 2 misses instrument 2 at p=0.5
    assert s["top_k"]["exact_match"] == 1.0  # ... but ranks it second: right when k is known
    assert s["lrap"] == 1.0
    assert metrics.micro_f1_from_logits(logits, targets) == pytest.approx(2 * 5 / (2 * 5 + 1))


def test_fine_tuning_starts_from_the_stage1_weights(demo_set, tmp_path):
    run = cached_run(demo_set, tmp_path / "run")
    layout = RunLayout(run)
    mix_plans.build_mixes(run, uses_per_clip=1, random_seed=1)
    config = TrainingConfig(epochs=1, progress=False, device="cpu")
    recipe.train(run, STAGE1, "mel", config=config)
    start, _ = checkpoints.load_model(layout.model("stage1", "mel").best)
    frozen = config.with_model("mel-finetune", lr=0.0)  # a step of size 0: weights stay put
    recipe.train(run, STAGE2, "mel-finetune", config=frozen)
    tuned, meta = checkpoints.load_model(layout.model("stage2", "mel-finetune").best)
    assert meta["training"]["lr"] == 0.0
    conv = [k for k, v in start.state_dict().items() if v.dtype.is_floating_point
            and "running" not in k]
    for key in conv:
        assert torch.equal(tuned.state_dict()[key], start.state_dict()[key]), key
    torch.manual_seed(config.random_seed)
    scratch = networks.build("mel", n_outputs=len(CLASSES)).state_dict()
    assert not all(torch.equal(scratch[k], start.state_dict()[k]) for k in conv)


def _wave1d_features(run) -> dict:
    """The Stage-1 wave1d's features of the mixes, as the 2020 transfer head reads them."""
    layout = RunLayout(run)
    return sources.stage1_features(layout, "wave1d", layout.model(STAGE2, "transfer"),
                                   device=torch.device("cpu"), progress=False)


def test_damaged_plans_and_features_are_named_and_made_again(run, capsys):
    layout = RunLayout(run)
    recipe.train(run, STAGE2, "transfer", config=TrainingConfig(epochs=1, progress=False,
                                                                device="cpu",
                                              resume=False, overwrite=True))
    features = layout.model("stage2", "transfer").features("val")
    features.write_bytes(features.read_bytes()[:1000])
    _wave1d_features(run)
    assert f"recomputing {features}: damaged" in capsys.readouterr().out
    plan = layout.mixes("val")
    whole = plan.read_bytes()
    plan.write_bytes(whole[:500])
    with pytest.raises(ValueError, match=f"{plan}.*damaged.*04_generate_mixes"):
        mix_plans.load_mixes(run)
    mix_plans.build_mixes(run, uses_per_clip=1, random_seed=1)
    assert "replanning" in capsys.readouterr().out and plan.read_bytes() == whole


@pytest.mark.slow
def test_the_recipe_trains_on_fresh_mixes_and_stores_thresholds_tuned_on_validation(
        demo_set, tmp_path):
    run = cached_run(demo_set, tmp_path / "run")
    layout = RunLayout(run)
    mix_plans.build_mixes(run, uses_per_clip=1, k_weights={1: 1, 2: 1}, random_seed=1)
    fixed = mixing.load_plan(layout.mixes("train"))[0]
    config = TrainingConfig(epochs=2, progress=False, device="cpu")
    result = recipe.train(run, STAGE2, "mel", config=config)
    assert result.training["dynamic_mixing"] and result.training["eq_db"] == 6.0
    assert result.training["mix_under"] == result.training["label_smoothing"] == 0.0, (
        "Stage-1 knobs did not run on mixes, and the record says so")
    assert torch.equal(mixing.load_plan(layout.mixes("train"))[0].sources, fixed.sources), (
        "the stored plan stays as notebook 04 made it")
    dynamic = mix_plans.dynamic_batches(layout, cache.load_split(layout.cache("train")),
                                     registry.resolve(config, STAGE2, "mel").config)
    dynamic.set_epoch(1)
    assert len(dynamic.plan) == len(fixed) and not torch.equal(dynamic.plan.sources,
                                                                fixed.sources)
    _, meta = checkpoints.load_model(layout.model("stage2", "mel").best)
    thresholds = meta["thresholds"]
    assert len(thresholds) == 4 and all(0.05 <= t <= 0.95 for t in thresholds)
    assert result.test["thresholds"] == thresholds and "tuned" in result.test
    # the naming rule is the best exact match on the validation mixes, not on the test ones
    model, _ = checkpoints.load_model(layout.model("stage2", "mel").best)
    waves, plan = mix_plans.load_mixes(run)["val"]
    logits, targets = loop.predict(model, mixing.MixBatches(waves, plan, 64))
    rule = metrics.choose_decoding(torch.sigmoid(logits), targets)
    assert thresholds == rule["thresholds"]
    assert meta["decoding"] == result.test["decoding"] == {
        k: rule[k] for k in ("rule", "kind", "val_exact")}
    assert set(rule["val_exact"]) == {"per-instrument thresholds", "one shared threshold",
                                      "count, then which"}
    predictor = predict.Predictor(layout.model("stage2", "mel").best)
    assert predictor.threshold == thresholds and predictor.count == (rule["kind"] == "count")
    assert predict.Predictor(layout.model("stage2", "mel").best, threshold=0.3).threshold == 0.3


def test_tuned_thresholds_maximise_validation_f1_per_class():
    targets = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 0]]).float()
    probs = torch.tensor([[0.32, 0.1], [0.31, 0.2], [0.1, 0.9], [0.2, 0.6]])
    low, high = metrics.tune_thresholds(probs, targets)
    assert 0.2 < low <= 0.31 and 0.6 < high <= 0.9
    assert metrics.tune_thresholds(probs, torch.zeros(4, 2)) == [0.5, 0.5], "no positives"


def test_the_transfer_head_on_the_stronger_extractor_keeps_the_2020_sizes(run):
    layout = RunLayout(run)
    torch.manual_seed(0)
    checkpoints.save_checkpoint(layout.model("stage1", "mel").best, networks.build("mel",
                                                                                 n_outputs=len(CLASSES)),
                                checkpoints.model_meta("mel", classes=CLASSES))
    config = TrainingConfig(epochs=2, lr=3e-3, progress=False, device="cpu")
    result = recipe.train(run, STAGE2, "transfer-mel", config=config)
    assert result.model == "transfer-mel" and result.parameters == 158_954
    head, meta = checkpoints.load_model(layout.model("stage2", "transfer-mel").best)
    assert meta["extractor"] == "mel" and len(meta["thresholds"]) == 4
    assert [m.out_features for m in head.modules() if isinstance(m, nn.Linear)] == [100, 50, 4]
    stored = torch.load(layout.model("stage2", "transfer-mel").features("val"), weights_only=True)
    assert stored["features"].shape[1] == 1_536
    tested = analysis.evaluate_mixes(run, "cpu")
    assert "transfer-mel" in tested
    assert tested["transfer-mel"].scores()["exact_match"] == pytest.approx(
        result.test["threshold"]["exact_match"])


def test_no_instrument_windows_are_a_share_of_each_training_batch_and_resume_the_same():
    waves = torch.randn(8, 2, 1000) * 0.1
    plan = mixing.plan_mixes(torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), uses_per_clip=4,
                             classes=CLASSES)
    batches = mixing.MixBatches(waves, plan, 8, shuffle=True, seed=3, nothing=0.25)
    batches.set_epoch(2)
    first = list(batches)
    assert all((y.sum(1) == 0).sum() == 2 for _, y in first), "2 of 8 name nothing"
    assert all(y.sum(1)[2:].min() >= 1 for _, y in first), "the rest are mixes"
    batches.set_epoch(2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, batches)), "a resumed epoch"
    empty = first[0][0][:2]
    assert set(empty.abs().amax(dim=(1, 2)).tolist()) <= {0.0, 0.5}, "normalised like clips"


@pytest.mark.slow
def test_a_stage2_model_trained_with_no_instrument_windows_names_nothing_in_hiss_and_hum(
        demo_set, tmp_path):
    """The tiny demo set, MelCNN, a few epochs: tape hiss and mains hum name no instrument,
    the test mixes still name theirs."""
    import numpy as np
    import soundfile as sf

    run = cached_run(demo_set, tmp_path / "run")
    mix_plans.build_mixes(run, uses_per_clip=4, random_seed=1)
    config = TrainingConfig.plain(epochs=12, lr=3e-3, nothing=0.25, progress=False,
                                  device="cpu")
    result = recipe.train(run, STAGE2, "mel", config=config)
    best = RunLayout(run).model("stage2", "mel").best
    assert checkpoints.load_model(best)[1]["names_nothing"] is True
    predictor = predict.Predictor(best)
    rng = np.random.default_rng(0)
    t = np.arange(10 * 44_100) / 44_100
    files = {"hiss": 10 ** (-55 / 20) * rng.standard_normal((len(t), 2)),
             "hum": 0.01 * np.sin(2 * np.pi * 50 * t)[:, None].repeat(2, 1)}
    for name, data in files.items():
        path = tmp_path / f"{name}.wav"
        sf.write(path, data.astype(np.float32), 44_100)
        heard = predictor(path)
        assert heard.present == [] and not heard.silent, (name, heard.probabilities)
        assert "no instrument named (most likely" in heard.line()
    assert result.test["threshold"]["micro_f1"] > 0.5, "it still hears the instruments"
