"""What others reported: the 2020 project's figures and published IRMAS results, as data.

Every table and benchmark that sets this project beside them reads from here (`report`), so
a figure is typed once, with where it came from.
"""

from __future__ import annotations

from typing import Any

# Everything the 2020 project reported on IRMAS (its leaky split), in one record: every table
# and benchmark that sets this project beside it reads from here. Its 1D CNN is `wave1d` here.
PROJECT_2020: dict[str, dict[str, dict[str, float]]] = {
    "stage1": {
        "forest": {"val": 0.433, "test": 0.403},
        "wave1d": {"val": 0.7257, "test": 0.7066, "parameters": 81_166, "epochs": 30,
                   "seconds_per_epoch": 93.0},
    },
    "stage2": {  # per-label accuracy, the only Stage-2 score it reported
        "wave1d": {"val": 0.6905, "test": 0.6974, "parameters": 81_166, "epochs": 30,
                   "seconds_per_epoch": 93.0},
        "transfer": {"val": 0.6821, "test": 0.6416, "parameters": 30_754,
                     "seconds_per_epoch": 0.33},
    },
}

# Published results on IRMAS's official test set (eleven instruments, 2,874 excerpts), for the
# table a run on all eleven is set beside; `protocol` says what makes each one not quite ours.
PUBLISHED_IRMAS: tuple[dict[str, Any], ...] = (
    {"method": "Bosch et al. (SVM on features, source separation)", "year": 2012,
     "micro_f1": 0.503, "macro_f1": 0.432,
     "protocol": "the data set's paper; features and thresholds of its own"},
    {"method": "Han, Kim & Lee (CNN from scratch, 1 s sliding windows)", "year": 2017,
     "micro_f1": 0.602, "macro_f1": 0.503,
     "protocol": "window outputs averaged and normalised per excerpt, a threshold chosen "
                 "in the paper's own experiments"},
    {"method": "Zhong et al. (pre-trained on isolated notes, with mixing)", "year": 2023,
     "micro_f1": 0.674, "macro_f1": None,
     "protocol": "its code picks the threshold on the test set (optimistic)"},
    {"method": "PaSST fine-tune (AudioSet pre-training, on-the-fly mixing)", "year": 2025,
     "micro_f1": 0.688, "macro_f1": 0.617,
     "protocol": "a transformer pre-trained on 2 M AudioSet clips"},
)
