import pandas as pd
import pytest
from conftest import REPO, shared_irmas

from helpers.core.config import ALL_CLASSES, CLASSES, IRMAS_TEST_SPLIT, SPLITS
from helpers.data import irmas, splits


def test_parses_both_training_name_forms():
    a = irmas.parse_training_name("IRMAS-TrainingData/gac/[gac][cla]0516__1.wav")
    assert a == irmas.TrainingName("gac", "cla", "", "0516", 1)
    b = irmas.parse_training_name("165__[vio][nod][cla]2179__2.wav")
    assert b == irmas.TrainingName("vio", "cla", "nod", "2179", 2)
    c = irmas.parse_training_name("001__[pia][---][jaz_blu]1234__3.wav")
    assert (c.drums, c.genre) == ("---", "jaz_blu")


@pytest.mark.parametrize("bad", ["gac_0516.wav", "[xyz][cla]0516__1.wav", "[gac][rock]0516__1.wav",
                                 "[gac][cla]0516__1.mp3"])
def test_rejects_other_names_and_says_which(bad):
    with pytest.raises(ValueError, match="not an IRMAS training file name"):
        irmas.parse_training_name(bad)


def test_parses_test_names():
    assert irmas.parse_test_name("Part1/(02) dont kill the whale-11.wav") == (
        "(02) dont kill the whale", 11)


def test_archives_are_zenodo_with_md5():
    assert set(irmas.ARCHIVES) == {"train", "test1", "test2", "test3"}
    for archive in irmas.ARCHIVES.values():
        assert archive.url.startswith("https://zenodo.org/records/1290750/files/")
        assert len(archive.md5) == 32


@pytest.fixture(scope="module")
def built():
    if not (shared_irmas() / "training_files.csv").is_file():
        pytest.skip(f"IRMAS file lists not found at {shared_irmas()}")
    return irmas.build_manifest(shared_irmas())


def test_committed_manifest_equals_a_fresh_build(built, tmp_path):
    fresh = irmas.write_manifest(built, tmp_path / irmas.MANIFEST_NAME)
    committed = REPO / "helpers" / irmas.MANIFEST_NAME
    assert committed.read_bytes() == fresh.read_bytes(), (
        "helpers/data_manifest.csv is stale: rebuild it with `make manifest`")


def test_top_level_manifest_is_the_packaged_one_byte_for_byte():
    packaged, top = irmas.manifest_copies()
    assert packaged == irmas.packaged_manifest() == REPO / "helpers" / irmas.MANIFEST_NAME
    assert top == REPO / irmas.MANIFEST_NAME
    assert top.read_bytes() == packaged.read_bytes(), (
        "data_manifest.csv differs from helpers/data_manifest.csv: run `make manifest`")


def test_manifest_counts(built):
    train = built[built["split"].isin(SPLITS)]
    assert train["instrument"].value_counts().to_dict() == {
        "voi": 778, "gel": 760, "pia": 721, "org": 682, "gac": 637, "sax": 626, "vio": 580,
        "tru": 577, "cla": 505, "flu": 451, "cel": 388}
    assert train["recording"].nunique() == 2261
    assert (train["md5"] == "").sum() == 45
    test = built[built["split"] == IRMAS_TEST_SPLIT]
    assert len(test) == 2874
    assert test["instruments"].str.split().map(lambda c: set(c) <= set(ALL_CLASSES)).all()


def test_the_seeds_four_select_their_clips_and_excerpts(built):
    four = irmas.select(built, CLASSES)
    train = four[four["split"].isin(SPLITS)]
    assert train["instrument"].value_counts().to_dict() == {
        "pia": 721, "gac": 637, "vio": 580, "tru": 577}
    assert train["recording"].nunique() == 849
    test = four[four["split"] == IRMAS_TEST_SPLIT]
    assert len(test) == 737
    assert (test["instruments"].str.split().str.len() == 2).sum() == 155
    assert test["instruments"].str.split().map(lambda c: set(c) <= set(CLASSES)).all()
    assert len(irmas.select(built, ALL_CLASSES)) == len(built)


@pytest.mark.parametrize("classes", [CLASSES, ("cel",), ("cla", "flu", "sax", "voi"),
                                     ALL_CLASSES])
def test_any_subset_keeps_each_clip_s_split_and_60_20_20(built, classes):
    chosen = irmas.select(built, classes)
    chosen = chosen[chosen["split"].isin(SPLITS)]
    assert set(chosen["instrument"]) == set(classes)
    same = built.set_index("path").loc[chosen["path"], "split"]
    assert (same.to_numpy() == chosen["split"].to_numpy()).all()
    share = pd.crosstab(chosen["instrument"], chosen["split"], normalize="index")
    assert ((share - pd.Series({"test": 0.2, "train": 0.6, "val": 0.2})).abs() <= 0.02).all().all()


def test_split_is_grouped_stratified_and_deterministic(built):
    train = built[built["split"].isin(SPLITS)]
    assert splits.straddling(train) == []
    share = pd.crosstab(train["instrument"], train["split"], normalize="index")
    assert ((share["train"] - 0.6).abs() < 0.03).all()
    assert ((share[["val", "test"]] - 0.2).abs() < 0.03).all().all()
    again = irmas.build_manifest(shared_irmas())
    pd.testing.assert_frame_equal(built, again)
    other_seed = irmas.build_manifest(shared_irmas(), seed=7)
    assert not other_seed["split"].equals(built["split"])


def test_verify_finds_missing_and_corrupt_files(demo_set, tmp_path):
    root, manifest = demo_set
    assert irmas.verify(manifest, root, progress=False).empty
    rows = manifest.head(2)
    copy = tmp_path / rows["path"].iloc[0]
    copy.parent.mkdir(parents=True)
    copy.write_bytes((root / rows["path"].iloc[0]).read_bytes()[:-10] + b"0123456789")
    problems = irmas.verify(rows, tmp_path, progress=False)
    assert list(problems["path"]) == list(rows["path"])
    assert problems["problem"].iloc[0].startswith("md5 ")
    assert problems["problem"].iloc[1] == "missing"


def test_files_without_md5_are_reported_unverified_never_passed(demo_set, tmp_path):
    root, manifest = demo_set
    rows = manifest[manifest["split"] == "train"].head(3).assign(md5="")
    for path in rows["path"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes((root / path).read_bytes())
    report = irmas.check_files(rows, tmp_path)
    assert list(report["path"]) == list(rows["path"])
    assert report["problem"].str.startswith("unverified: no known md5").all()
    assert report["problem"].str.contains("readable audio, 3.0 s").all()
    (tmp_path / rows["path"].iloc[1]).write_bytes(b"RIFF not really a wave file")
    with pytest.raises(RuntimeError, match="not readable audio"):
        irmas.check_files(rows, tmp_path)


def test_read_manifest_names_the_notebook_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_download"):
        irmas.read_manifest(tmp_path / "nothing.csv")
