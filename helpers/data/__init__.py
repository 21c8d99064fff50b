"""Audio in and out, IRMAS and its download, splits, caches, batches, mixes, augmentation and
no-instrument windows."""
