import numpy as np
import torch

from helpers import metrics


def test_single_label_summary_matches_hand_counts():
    targets = torch.tensor([0, 0, 1, 2, 3, 3])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 2, 3, 0]), 4).float()
    s = metrics.single_label_summary(logits, targets)
    assert s["accuracy"] == 4 / 6
    assert np.array_equal(s["confusion"], [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                                           [1, 0, 0, 1]])
    assert s["f1"]["tru"] == 1.0 and abs(s["f1"]["gac"] - 0.5) < 1e-9


def test_per_class_keeps_absent_classes():
    table = metrics.per_class([0, 0], [0, 1])
    assert list(table.index) == ["gac", "pia", "tru", "vio", "macro"]
    assert table.loc["vio", "support"] == 0
