"""One staleness rule for every derived artefact (split cache, mix plan, frozen features).

An artefact records a key made from the content it was built from (file checksums, the keys
of the artefacts it was derived from) and the settings it was built with; it is reused while
that key matches and rebuilt when anything it depends on changes, and only then.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def content_key(*parts) -> str:
    """A fingerprint of plain data (lists, dicts, strings, numbers): equal data, equal key."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in blocks: a checkpoint rewritten with other weights
    gets another key (IRMAS publishes md5 sums, hence `algorithm`)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
