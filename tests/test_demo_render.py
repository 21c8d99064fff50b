"""The demo set renders byte for byte as it did when `tests/fixtures/demo_render.json` was
written (the music, synthesiser and data-set code may be reorganised, never changed in what
they write). A different FluidSynth or soundfont file cannot be held to the same bytes: then
the test says so and skips."""

import ctypes
import hashlib
import json
from pathlib import Path

import pytest
from conftest import REPO

from helpers.demo import render_set, synth

FIXTURE = REPO / "tests" / "fixtures" / "demo_render.json"
SETS = {"fixed": {}, "random": {"timbre": "random"}}  # 6 recordings, 1 test song, four


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _environment() -> dict:
    import fluidsynth

    version = fluidsynth._fl.fluid_version_str
    version.restype = ctypes.c_char_p
    return {"fluidsynth": version().decode(),
            "soundfonts": {p.name: _sha256(p) for p in synth.find_soundfonts()}}


def render(folder: Path) -> dict[str, str]:
    """sha256 of every file of the two small sets, by path under `folder`."""
    out = {}
    for name, knobs in SETS.items():
        render_set.render_demo(folder / name, recordings_per_class=6, test_songs=1, progress=False,
                         **knobs)
        out |= {f"{name}/{p.relative_to(folder / name)}": _sha256(p)
                for p in sorted((folder / name).rglob("*")) if p.is_file()}
    return out


@pytest.mark.slow
def test_the_demo_set_renders_byte_for_byte_as_before(tmp_path):
    recorded = json.loads(FIXTURE.read_text())
    here = _environment()
    if here != recorded["environment"]:
        pytest.skip(f"another synthesiser or soundfont ({here}; the fixture's: "
                    f"{recorded['environment']}): bytes are not comparable")
    files = render(tmp_path)
    assert sorted(files) == sorted(recorded["files"]), "the same files"
    changed = [p for p, h in files.items() if recorded["files"][p] != h]
    assert not changed, f"{len(changed)} of {len(files)} files render differently: {changed[:5]}"


if __name__ == "__main__":  # write the fixture: python tests/test_demo_render.py
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        FIXTURE.write_text(json.dumps({"environment": _environment(), "files": render(
            Path(tmp))}, indent=1, sort_keys=True) + "\n")
