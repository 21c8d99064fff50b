"""One training recipe for both stages: batch sources, the fit loop, calibration, the log-mel
baselines."""
