import warnings

import pytest
import torch

from helpers.core.config import CLASSES, CLIP_SAMPLES
from helpers.data import cache


def test_cache_holds_every_clip_of_the_split(demo_set, tmp_path):
    root, manifest = demo_set
    path = cache.build_split(manifest, root, "train", target=tmp_path / "train.pt", progress=False,
                             classes=CLASSES)
    split = cache.load_split(path)
    rows = manifest[manifest["split"] == "train"]
    assert len(split) == len(rows) and split.skipped == []
    assert split.waves.shape == (len(rows), 2, CLIP_SAMPLES)
    assert split.waves.dtype == torch.float16
    assert split.waves.abs().amax(dim=(1, 2)).float().sub(0.5).abs().max() < 1e-3
    assert [CLASSES[i] for i in split.labels] == list(rows.sort_values("path")["instrument"])


def test_cache_is_reused_and_rebuilt_when_the_manifest_changes(demo_set, tmp_path):
    root, manifest = demo_set
    path = cache.build_split(manifest, root, "val", target=tmp_path / "val.pt", progress=False,
                             classes=CLASSES)
    stamp = path.stat().st_mtime_ns
    assert cache.build_split(manifest, root, "val", target=tmp_path / "val.pt", progress=False,
                             classes=CLASSES) == path
    assert path.stat().st_mtime_ns == stamp
    fewer = manifest.drop(manifest[manifest["split"] == "val"].index[:1])
    cache.build_split(fewer, root, "val", target=tmp_path / "val.pt", progress=False,
                      classes=CLASSES)
    assert len(cache.load_split(path)) == (manifest["split"] == "val").sum() - 1
    assert not list(tmp_path.glob(".*tmp*")), "no temp files are left behind"


def test_bad_files_are_skipped_and_reported(demo_set, tmp_path):
    root, manifest = demo_set
    rows = manifest[manifest["split"] == "test"].copy()
    broken = root.parent / "broken"
    for path in rows["path"]:
        (broken / path).parent.mkdir(parents=True, exist_ok=True)
        (broken / path).write_bytes((root / path).read_bytes())
    bad = rows["path"].iloc[1]
    (broken / bad).write_bytes(b"not a wav")
    with pytest.warns(UserWarning, match="could not be decoded"):
        path = cache.build_split(rows, broken, "test", target=tmp_path / "test.pt", progress=False,
                                 classes=CLASSES)
    split = cache.load_split(path)
    assert len(split) == len(rows) - 1 and bad not in split.paths
    assert split.skipped[0][0] == bad and bad in split.skipped[0][1]


def test_balanced_index_flips_copies(demo_set, tmp_path):
    root, manifest = demo_set
    split = cache.load_split(cache.build_split(manifest, root, "train",
                                               target=tmp_path / "train.pt",
                                               progress=False, classes=CLASSES))
    index, sign = split.balanced(seed=1)
    counts = torch.bincount(split.labels[index])
    assert (counts == counts.max()).all()
    assert (sign[: len(split)] == 1).all() and (sign[len(split):] == -1).all()


def test_missing_cache_names_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="02_balance"):
        cache.load_split(tmp_path / "train.pt")


def test_unknown_split_is_an_error(demo_set, tmp_path):
    root, manifest = demo_set
    with warnings.catch_warnings(), pytest.raises(ValueError, match="nope"):
        cache.build_split(manifest, root, "nope", target=tmp_path / "nope.pt", classes=CLASSES)


def _val(demo_set, tmp_path):
    root, manifest = demo_set
    return cache.build_split(manifest, root, "val", target=tmp_path / "val.pt", progress=False,
                             classes=CLASSES)


def test_a_truncated_cache_is_named_on_load_and_rebuilt(demo_set, tmp_path, capsys):
    root, manifest = demo_set
    path = _val(demo_set, tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(cache.CacheError, match=f"{path}.*damaged.*02_balance"):
        cache.load_split(path)
    cache.build_split(manifest, root, "val", target=path, progress=False, classes=CLASSES)
    assert "rebuilding" in capsys.readouterr().out and path.read_bytes() == whole


def test_overwritten_bytes_never_load_as_nan_audio(demo_set, tmp_path):
    path = _val(demo_set, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 4000] = b"\xff" * 4000  # NaN as float16
    path.write_bytes(bytes(data))
    with pytest.raises(cache.CacheError, match="damaged"):
        cache.load_split(path)


def test_a_source_file_replaced_after_caching_is_noticed(demo_set, tmp_path, capsys):
    root, manifest = demo_set
    copy = tmp_path / "data"
    rows = manifest[manifest["split"] == "val"]
    for path in rows["path"]:
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        (copy / path).write_bytes((root / path).read_bytes())
    target = cache.build_split(manifest, copy, "val", target=tmp_path / "val.pt", progress=False,
                               classes=CLASSES)
    first = cache.load_split(target)
    replaced = rows["path"].iloc[0]
    other = rows["path"].iloc[1]
    (copy / replaced).write_bytes((root / other).read_bytes())  # another recording's audio
    cache.build_split(manifest, copy, "val", target=target, progress=False, classes=CLASSES)
    assert "source files" in capsys.readouterr().out
    again = cache.load_split(target)
    i, j = again.paths.index(replaced), again.paths.index(other)
    assert torch.equal(again.waves[i], again.waves[j]) and not torch.equal(
        first.waves[i], again.waves[i])


@pytest.mark.parametrize("stamp", [b"null", b"[]", b"\xff\xfe\x00binary", b'{"key": 3', b""])
def test_a_malformed_stamp_is_a_cache_error_naming_it(demo_set, tmp_path, stamp):
    root, manifest = demo_set
    path = cache.build_split(manifest, root, "val", target=tmp_path / "val.pt", progress=False,
                             classes=CLASSES)
    path.with_suffix(".json").write_bytes(stamp)
    with pytest.raises(cache.CacheError, match=r"val\.json.*malformed|malformed.*val\.json"):
        cache.load_split(path)
    assert cache.recorded_key(path) is None
    cache.build_split(manifest, root, "val", target=path, progress=False,
                      classes=CLASSES)  # rebuilt, not a traceback
    assert len(cache.load_split(path)) == (manifest["split"] == "val").sum()
