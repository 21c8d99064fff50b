import itertools

import pytest
import soundfile as sf
import torch

from helpers.core.config import CLASSES
from helpers.data import cache, mixing

LABELS = torch.tensor([0] * 9 + [1] * 12 + [2] * 7 + [3] * 8)


def test_pairs_are_balanced_distinct_and_evenly_used():
    plan = mixing.plan_mixes(LABELS, uses_per_clip=3, seed=0, classes=CLASSES)
    assert (plan.k == 2).all()
    assert len(plan) == round(len(LABELS) * 3 / 2)
    combos = [tuple(t.nonzero().flatten().tolist()) for t in plan.targets]
    counts = {c: combos.count(c) for c in itertools.combinations(range(4), 2)}
    assert max(counts.values()) - min(counts.values()) <= 1  # the 6 pairs equally often
    uses = torch.bincount(plan.sources[plan.sources >= 0], minlength=len(LABELS))
    for c in range(4):  # within a class, clip uses differ by at most one
        class_uses = uses[c == LABELS]
        assert class_uses.max() - class_uses.min() <= 1


def test_labels_match_the_sources():
    plan = mixing.plan_mixes(LABELS, k_weights={1: 1, 2: 1, 3: 1, 4: 1}, seed=3, classes=CLASSES)
    assert set(plan.k.tolist()) == {1, 2, 3, 4}
    for sources, target, gains in zip(plan.sources, plan.targets, plan.gains):
        used = sources[sources >= 0]
        assert sorted(LABELS[used].tolist()) == target.nonzero().flatten().tolist()
        assert len(set(LABELS[used].tolist())) == len(used), "k different instruments"
        assert (gains[sources < 0] == 0).all()
        assert ((gains[sources >= 0] >= 10 ** (-6 / 20) - 1e-6)
                & (gains[sources >= 0] <= 10 ** (6 / 20) + 1e-6)).all()


def test_same_seed_same_mixes_other_seed_other_mixes():
    a, b = (mixing.plan_mixes(LABELS, seed=5, classes=CLASSES) for _ in range(2))
    assert torch.equal(a.sources, b.sources) and torch.equal(a.gains, b.gains)
    assert not torch.equal(a.sources, mixing.plan_mixes(LABELS, seed=6, classes=CLASSES).sources)


def test_bad_requests_are_explained():
    with pytest.raises(ValueError, match="k_weights"):
        mixing.plan_mixes(LABELS, k_weights={5: 1}, classes=CLASSES)
    with pytest.raises(ValueError, match="no clips of \\['vio'\\]"):
        mixing.plan_mixes(LABELS[LABELS < 3], classes=CLASSES)


def test_mix_is_the_normalised_weighted_sum():
    waves = torch.randn(3, 2, 100).half()
    sources = torch.tensor([[0, 2, -1, -1]])
    gains = torch.tensor([[1.0, 0.5, 0.0, 0.0]])
    expected = waves[0].float() + 0.5 * waves[2].float()
    expected = expected / (2 * expected.abs().max())
    assert torch.allclose(mixing.mix(waves, sources, gains)[0], expected, atol=1e-6)


def test_no_val_or_test_clip_in_a_training_mix(demo_set, tmp_path):
    """Mixes index their own split's cache, so their source files are that split's clips."""
    root, manifest = demo_set
    files = {}
    for split in ("train", "val", "test"):
        cached = cache.load_split(cache.build_split(manifest, root, split,
                                                    target=tmp_path / f"{split}.pt",
                                                    progress=False, classes=CLASSES))
        plan = mixing.plan_mixes(cached.labels, seed=1, classes=CLASSES)
        used = plan.sources[plan.sources >= 0].unique().tolist()
        files[split] = {cached.paths[i] for i in used}
        for i in range(len(plan)):  # the labels are those of the files
            codes = {cached.paths[s].split("/")[1] for s in plan.sources[i].tolist() if s >= 0}
            assert codes == set(mixing.instruments(plan, i))
    assert files["train"].isdisjoint(files["val"] | files["test"])
    recordings = {s: {f.rsplit("]", 1)[1].split("__")[0] for f in fs} for s, fs in files.items()}
    assert recordings["train"].isdisjoint(recordings["test"])


def test_export_writes_listenable_wavs(tmp_path):
    waves = (torch.rand(4, 2, 4410) - 0.5).half()
    plan = mixing.plan_mixes(torch.tensor([0, 1, 2, 3]), uses_per_clip=1, seed=0, classes=CLASSES)
    paths = mixing.export_wavs(waves, plan, tmp_path)
    assert len(paths) == len(plan)
    data, sr = sf.read(paths[0])
    assert data.shape == (4410, 2) and sr == 44_100 and abs(data).max() <= 0.5 + 1e-3
    codes = paths[0].stem.split("_", 1)[1].split("+")
    assert set(codes) <= set(CLASSES) and len(codes) == 2


def test_plans_round_trip(tmp_path):
    plan = mixing.plan_mixes(LABELS, seed=0, classes=CLASSES)
    path = mixing.save_plan(tmp_path / "p.pt", plan, {"seed": 0})
    loaded, meta = mixing.load_plan(path)
    assert torch.equal(loaded.sources, plan.sources) and meta == {"seed": 0}
    with pytest.raises(FileNotFoundError, match="04_generate_mixes"):
        mixing.load_plan(tmp_path / "none.pt")


def test_dynamic_mixes_are_fresh_each_epoch_deterministic_and_of_the_split_only():
    labels = torch.arange(40) % 4
    waves = torch.randn(40, 2, 64)
    batches = mixing.DynamicMixBatches(waves, labels, 8, uses_per_clip=2,
                                       k_weights={1: 1, 2: 2, 3: 1, 4: 1}, seed=3, classes=CLASSES)
    plans = []
    for epoch in (1, 2, 1):
        batches.set_epoch(epoch)
        plans.append(batches.plan)
        assert len(batches.plan) == batches.size, "the epoch's length never changes"
        seen = sum(len(x) for x, _ in batches)
        assert seen == len(batches.plan)
    assert not torch.equal(plans[0].sources, plans[1].sources), "fresh mixes each epoch"
    assert torch.equal(plans[0].sources, plans[2].sources), "the same epoch: the same mixes"
    assert set(plans[1].k.tolist()) == {1, 2, 3, 4}
    sources, gains = plans[1].sources, plans[1].gains
    assert ((sources == -1) | ((sources >= 0) & (sources < 40))).all(), (
        "rows of this split's cache, or -1 for an empty slot")
    assert gains[sources == -1].eq(0).all() and gains[sources >= 0].gt(0).all()
    for i in range(len(plans[1])):
        rows = [s for s in plans[1].sources[i].tolist() if s >= 0]
        assert set(labels[rows].tolist()) == set(plans[1].targets[i].nonzero().flatten().tolist())
