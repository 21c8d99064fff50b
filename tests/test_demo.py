import json

import numpy as np
import pytest
import soundfile as sf

from helpers.core.config import CLASSES, IRMAS_TEST_SPLIT, SAMPLE_RATE, SPLITS
from helpers.data import irmas
from helpers.demo import render_set, synth


def test_layout_and_format_are_irmas(demo_set):
    root, manifest = demo_set
    train = manifest[manifest["split"].isin(SPLITS)]
    expected = render_set.recordings_per_instrument(6)
    assert train.groupby("instrument")["recording"].nunique().to_dict() == expected
    assert (train.groupby("recording").size() == 3).all()
    for path in train["path"]:
        name = irmas.parse_training_name(path)
        assert path == f"IRMAS-TrainingData/{name.instrument}/{path.rsplit('/', 1)[1]}"
        info = sf.info(root / path)
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 2, "PCM_16")
        assert info.frames == 3 * SAMPLE_RATE
    assert train["drums"].isin(["dru", "nod"]).any() and (train["drums"] == "").any()
    assert set(train["instrument"]) == set(CLASSES)


def test_test_excerpts_have_labels(demo_set):
    root, manifest = demo_set
    test = manifest[manifest["split"] == IRMAS_TEST_SPLIT]
    assert len(test) == 4
    assert set(test["instruments"].str.split().str.len()) == {1, 2}
    for path, codes in zip(test["path"], test["instruments"]):
        assert path.startswith("IRMAS-TestingData-Part1/Part1/")
        label_file = (root / path.replace(".wav", ".txt")).read_text()
        assert label_file.split() == codes.split(), "IRMAS's form: a code and a tab a line"
        assert 5 <= sf.info(root / path).duration <= 10


def test_clips_are_not_silent_and_excerpts_differ(demo_set):
    root, manifest = demo_set
    first = manifest[manifest["split"].isin(SPLITS)].iloc[:3]
    clips = [sf.read(root / p)[0] for p in first["path"]]
    for clip in clips:
        assert 0.05 < abs(clip).max() < 1.0
    assert not (clips[0] == clips[1]).all()


def test_same_seed_same_files_and_reuse(demo_set, tmp_path):
    root, manifest = demo_set
    again = render_set.render_demo(tmp_path, recordings_per_class=6, test_songs=2, progress=False)
    assert list(again["md5"]) == list(manifest["md5"])
    stamp = (tmp_path / manifest["path"].iloc[0]).stat().st_mtime_ns
    render_set.render_demo(tmp_path, recordings_per_class=6, test_songs=2, progress=False)
    assert (tmp_path / manifest["path"].iloc[0]).stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_other_seed_other_music(tmp_path):
    a = render_set.render_demo(tmp_path / "a", recordings_per_class=6, test_songs=0, seed=1,
                         progress=False)
    b = render_set.render_demo(tmp_path / "b", recordings_per_class=6, test_songs=0, seed=2,
                         progress=False)
    assert set(a["md5"]).isdisjoint(b["md5"])


def test_soundfonts_found_and_missing_ones_named(tmp_path, monkeypatch):
    assert [p.name for p in synth.find_soundfonts()][0] in synth.SOUNDFONT_NAMES
    monkeypatch.setattr(synth, "SOUNDFONT_DIRS", (tmp_path,))
    monkeypatch.setitem(__import__("sys").modules, "pretty_midi", None)
    try:
        synth.find_soundfonts()
    except FileNotFoundError as err:
        assert "apt-get install" in str(err) and "fluid-soundfont-gm" in str(err)
    else:
        raise AssertionError("expected FileNotFoundError")


@pytest.mark.slow
def test_a_set_rendered_with_one_soundfont_only(tmp_path):
    tim = render_set.render_demo(tmp_path / "tim", recordings_per_class=6, test_songs=0,
                           progress=False, soundfonts=["TimGM6mb.sf2"])
    both = render_set.render_demo(tmp_path / "both", recordings_per_class=6, test_songs=0,
                            progress=False)
    assert list(tim["path"]) == list(both["path"]) and set(tim["md5"]) != set(both["md5"])
    with pytest.raises(FileNotFoundError, match="Arachno.sf2.*apt-get install"):
        render_set.render_demo(tmp_path / "x", 6, 0, progress=False, soundfonts=["Arachno.sf2"])


@pytest.mark.slow
def test_random_timbre_plays_the_same_notes_with_other_sounds_and_is_deterministic(tmp_path):
    def render(folder, timbre):
        return render_set.render_demo(tmp_path / folder, recordings_per_class=6, test_songs=1,
                                progress=False, soundfonts=["FluidR3_GM.sf2"], timbre=timbre)

    fixed, rand, again = render("fixed", "fixed"), render("rand", "random"), render("again",
                                                                                    "random")
    assert list(rand["path"]) == list(fixed["path"]) and list(rand["md5"]) == list(again["md5"])
    assert set(rand["md5"]).isdisjoint(fixed["md5"])
    a = sf.read(tmp_path / "fixed" / fixed["path"].iloc[0])[0].mean(1)
    b = sf.read(tmp_path / "rand" / rand["path"].iloc[0])[0].mean(1)
    # the same notes: the two renderings' loudness contours follow each other
    assert np.corrcoef(_contour(a), _contour(b))[0, 1] > 0.3
    params = json.loads((tmp_path / "rand" / render_set.PARAMS_FILE).read_text())
    assert params["timbre"] == "random"
    with pytest.raises(ValueError, match="timbre='wild'.*fixed"):
        render_set.render_demo(tmp_path / "x", 6, 0, progress=False, timbre="wild")


def test_a_set_rendered_before_timbre_was_a_setting_is_reused(tmp_path):
    manifest = render_set.render_demo(tmp_path, recordings_per_class=6, test_songs=0,
                                      progress=False)
    params = json.loads((tmp_path / render_set.PARAMS_FILE).read_text())
    del params["timbre"]
    (tmp_path / render_set.PARAMS_FILE).write_text(json.dumps(params))
    stamp = (tmp_path / manifest["path"].iloc[0]).stat().st_mtime_ns
    render_set.render_demo(tmp_path, recordings_per_class=6, test_songs=0, progress=False)
    assert (tmp_path / manifest["path"].iloc[0]).stat().st_mtime_ns == stamp


def _contour(wave: np.ndarray, frame: int = 2205) -> np.ndarray:
    """RMS per 50 ms frame."""
    return np.sqrt(np.mean(wave[: len(wave) // frame * frame].reshape(-1, frame) ** 2, axis=1))
