import numpy as np
import pytest
import torch

from helpers.core import metrics
from helpers.core.config import CLASSES


def test_single_label_summary_matches_hand_counts():
    targets = torch.tensor([0, 0, 1, 2, 3, 3])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 2, 3, 0]), 4).float()
    s = metrics.single_label_summary(logits, targets, classes=CLASSES)
    assert s["accuracy"] == 4 / 6
    assert np.array_equal(s["confusion"], [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                                           [1, 0, 0, 1]])
    assert s["f1"]["tru"] == 1.0 and abs(s["f1"]["gac"] - 0.5) < 1e-9


def test_per_class_keeps_absent_classes():
    table = metrics.per_class([0, 0], [0, 1], classes=CLASSES)
    assert list(table.index) == ["gac", "pia", "tru", "vio", "macro"]
    assert table.loc["vio", "support"] == 0


def _hot(*rows: str) -> torch.Tensor:
    return torch.tensor([[float(c in r.split("+")) for c in ("gac", "pia", "tru", "vio")]
                         for r in rows])


def test_pair_matrix_has_six_pairs_and_other_for_a_wrong_count():
    targets = _hot("gac+pia", "gac+pia", "tru+vio", "pia+tru", "gac")
    pred = _hot("gac+pia", "gac", "tru+vio", "gac+pia+tru", "gac+tru")
    table = metrics.combination_confusion(targets, pred, k=2, classes=CLASSES)
    assert list(table.index) == ["gac+pia", "gac+tru", "gac+vio", "pia+tru", "pia+vio",
                                 "tru+vio"]
    assert list(table.columns) == [*table.index, "Other"]
    assert table.to_numpy().sum() == 4, "the one-instrument row is not a pair"
    assert table.loc["gac+pia", "gac+pia"] == 1 and table.loc["gac+pia", "Other"] == 1
    assert table.loc["pia+tru", "Other"] == 1 and table.loc["tru+vio", "tru+vio"] == 1
    singles = metrics.combination_confusion(targets, pred, k=1, classes=CLASSES)
    assert singles.shape == (4, 5) and singles.loc["gac", "Other"] == 1


def test_count_confusion_counts_instruments_named():
    targets = _hot("gac+pia", "gac+pia", "tru", "pia+tru+vio")
    pred = _hot("gac+pia", "", "tru+vio", "pia")
    table = metrics.count_confusion(targets, pred)
    assert list(table.index) == [1, 2, 3] and list(table.columns) == [0, 1, 2, 3, 4]
    assert table.loc[2, 2] == 1 and table.loc[2, 0] == 1
    assert table.loc[1, 2] == 1 and table.loc[3, 1] == 1


def test_bootstrap_resamples_recordings_not_clips():
    correct = np.array([1.0] * 30 + [0.0] * 30)

    def accuracy(idx):
        return float(correct[idx].mean())

    by_clip = metrics.bootstrap_interval(accuracy, np.arange(60), n_boot=500)
    by_recording = metrics.bootstrap_interval(accuracy, np.repeat(np.arange(6), 10), n_boot=500)
    assert by_clip[0] < 0.5 < by_clip[1] and by_recording[0] < 0.5 < by_recording[1]
    assert by_recording[1] - by_recording[0] > 1.5 * (by_clip[1] - by_clip[0]), (
        "10 clips of one recording are one draw, not ten")
    assert metrics.bootstrap_interval(accuracy, np.arange(60), seed=3) == (
        metrics.bootstrap_interval(accuracy, np.arange(60), seed=3))


def test_count_aware_decoding_names_the_expected_number_of_the_most_probable():
    probs = torch.tensor([[0.9, 0.6, 0.1, 0.1], [0.3, 0.2, 0.4, 0.05], [0.15, 0.1, 0.1, 0.05]])
    # sums 1.7, 0.95, 0.4: two, one, none
    assert metrics.count_thresholds(probs).squeeze(1).tolist()[:2] == pytest.approx([0.6, 0.4])
    named = metrics.decode(probs, {"kind": "count"})
    assert named.tolist() == [[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert metrics.decode(probs, {"kind": "count"}, at_least_one=True)[2].tolist() == [1, 0, 0, 0]
    fixed = metrics.decode(probs, {"kind": "thresholds", "thresholds": [0.5, 0.5, 0.35, 0.5]})
    assert fixed.tolist() == [[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_the_naming_rule_is_the_best_exact_match_on_validation():
    # per-instrument and shared thresholds get 5 of 6 of these right, the count rule all 6
    probs = torch.tensor([[0.66, 0.0, 0.13], [0.06, 0.48, 0.95], [0.7, 0.0, 0.91],
                          [0.33, 0.91, 0.8], [0.86, 0.73, 0.5], [0.7, 0.37, 0.51]])
    targets = torch.tensor([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 1.]])
    rule = metrics.choose_decoding(probs, targets)
    assert rule["rule"] == "count, then which" and rule["kind"] == "count"
    assert rule["val_exact"] == pytest.approx({"per-instrument thresholds": 5 / 6,
                                               "one shared threshold": 5 / 6,
                                               "count, then which": 1.0})
    clean = torch.tensor([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1]])
    chosen = metrics.choose_decoding(clean, torch.tensor([[1, 0, 0], [0, 1, 0.]]))
    assert chosen["rule"] == "per-instrument thresholds", "ties go to the first rule"
    assert len(chosen["thresholds"]) == 3
