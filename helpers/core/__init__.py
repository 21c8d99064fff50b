"""Constants, the training settings, the run folder, atomic writes, metrics and typed
records; it imports no other layer."""
