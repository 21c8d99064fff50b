"""The download path for real: zips served over HTTP by http.server on 127.0.0.1."""

import hashlib
import json
import shutil
import zipfile

import pandas as pd
import pytest
from conftest import write_wav
from served import Handler, serve

from helpers.data import download, irmas

CLIP = "IRMAS-TrainingData/gac/[gac][cla]0001__1.wav"


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    with serve(served) as url:
        yield served, url


def _zip(path, members: dict[str, bytes]) -> irmas.Archive:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return irmas.Archive(path.name, hashlib.md5(path.read_bytes()).hexdigest())


def _clip_bytes(tmp_path) -> bytes:
    return write_wav(tmp_path / "clip.wav", 0.5).read_bytes()


def _manifest(path: str, md5: str) -> pd.DataFrame:
    return pd.DataFrame({"path": [path], "md5": [md5]})


def test_good_archive_is_fetched_verified_extracted_and_not_fetched_twice(server, tmp_path):
    served, url = server
    wav = _clip_bytes(tmp_path)
    members = {CLIP: wav, "IRMAS-TrainingData/README": b"x"}
    archive = _zip(served / "IRMAS-TrainingData.zip", members)
    zip_path = download.fetch(archive, tmp_path / "archives", url=f"{url}/{archive.filename}",
                              quiet=True)
    assert irmas.md5sum(zip_path) == archive.md5
    data = tmp_path / "data"
    manifest = _manifest(CLIP, hashlib.md5(wav).hexdigest())
    assert download.extract(zip_path, data, manifest, progress=False) == ["IRMAS-TrainingData"]
    assert (data / CLIP).read_bytes() == wav
    assert irmas.verify(manifest, data, progress=False).empty
    assert not list(data.glob(".*partial"))
    hits = len(Handler.hits)
    download.fetch(archive, tmp_path / "archives", url=f"{url}/{archive.filename}", quiet=True)
    download.extract(zip_path, data, manifest, progress=False)
    assert len(Handler.hits) == hits, "a verified archive is not downloaded again"


def test_wrong_checksum_names_file_sums_and_fix_and_keeps_nothing(server, tmp_path):
    served, url = server
    real = _zip(served / "IRMAS-TrainingData.zip", {CLIP: b"data"})
    claimed = irmas.Archive(real.filename, "0" * 32)
    with pytest.raises(download.ChecksumError) as err:
        download.fetch(claimed, tmp_path / "archives", url=f"{url}/{real.filename}", quiet=True)
    message = str(err.value)
    assert real.filename in message and real.md5 in message and "0" * 32 in message
    assert "again" in message
    assert not (tmp_path / "archives" / real.filename).exists()
    assert not [p for p in (tmp_path / "archives").iterdir()], "no partial download left"


def test_an_interrupted_transfer_continues_where_it_stopped(server, tmp_path):
    served, url = server
    archive = _zip(served / "IRMAS-TrainingData.zip", {CLIP: _clip_bytes(tmp_path) * 20})
    size = (served / archive.filename).stat().st_size
    archives = tmp_path / "archives"
    with pytest.raises(download.DownloadFailed) as err:
        download.fetch(archive, archives, url=f"{url}/cut/{archive.filename}", retries=0,
                       quiet=True)
    assert archive.filename in str(err.value) and "incomplete" in str(err.value)
    assert "continues" in str(err.value)
    assert not (archives / archive.filename).exists(), "no half archive under its own name"
    kept = download.partial_bytes(archive, archives)
    assert 0 < kept < size
    # the next run, with the server fixed, asks only for the rest
    Handler.hits = []
    download.fetch(archive, archives, url=f"{url}/{archive.filename}", quiet=True)
    assert irmas.md5sum(archives / archive.filename) == archive.md5
    assert (f"/{archive.filename}", f"bytes={kept}-") in Handler.hits
    assert download.partial_bytes(archive, archives) == 0


def test_a_server_that_ignores_ranges_costs_one_fresh_transfer(server, tmp_path):
    served, url = server
    archive = _zip(served / "IRMAS-TrainingData.zip", {CLIP: _clip_bytes(tmp_path) * 20})
    archives = tmp_path / "archives"
    with pytest.raises(download.DownloadFailed):
        download.fetch(archive, archives, url=f"{url}/cut/{archive.filename}", retries=0,
                       quiet=True)
    download.fetch(archive, archives, url=f"{url}/norange/{archive.filename}", quiet=True)
    assert irmas.md5sum(archives / archive.filename) == archive.md5
    assert download.partial_bytes(archive, archives) == 0


def test_retries_continue_the_same_transfer(server, tmp_path):
    served, url = server
    archive = _zip(served / "IRMAS-TrainingData.zip", {CLIP: _clip_bytes(tmp_path) * 20})
    with pytest.raises(download.DownloadFailed, match="after 3 attempt"):
        download.fetch(archive, tmp_path / "archives", url=f"{url}/cut/{archive.filename}",
                       retries=2, quiet=True)
    assert [r for _, r in Handler.hits][0] is None and any(r for _, r in Handler.hits[1:])


def test_not_enough_free_space_stops_before_fetching_and_says_how_much(server, tmp_path,
                                                                        monkeypatch):
    served, url = server
    wav = _clip_bytes(tmp_path)
    archive = _zip(served / "IRMAS-TrainingData.zip", {CLIP: wav})
    # The server announces an archive of a petabyte: more than any disk here holds.
    monkeypatch.setitem(irmas.ARCHIVES, "train", irmas.Archive(archive.filename, archive.md5,
                                                               f"{url}/huge/{{}}"))
    with pytest.raises(download.NotEnoughSpace, match=r"needs 2000000\.\d+ GB free.*missing"):
        download.download_irmas(tmp_path / "data", _manifest(CLIP, ""), parts=("train",))
    assert [hit for hit in Handler.hits if not hit[0].startswith("HEAD")] == [], "nothing fetched"
    download.check_space(tmp_path / "not" / "made" / "yet", 1, "a byte")  # the nearest folder


def test_download_irmas_deletes_each_archive_once_unpacked_unless_kept(server, tmp_path,
                                                                       monkeypatch, capsys):
    served, url = server
    wav = _clip_bytes(tmp_path)
    archive = _zip(served / "IRMAS-TrainingData.zip", {CLIP: wav})
    monkeypatch.setitem(irmas.ARCHIVES, "train", irmas.Archive(archive.filename, archive.md5,
                                                               f"{url}/{{}}"))
    manifest = _manifest(CLIP, hashlib.md5(wav).hexdigest())
    data = tmp_path / "data"
    rows = download.download_irmas(data, manifest, parts=("train",))
    assert rows["path"].tolist() == [CLIP] and (data / CLIP).read_bytes() == wav
    assert not (data / "archives" / archive.filename).exists(), "deleted once unpacked"
    assert "GB to download" in capsys.readouterr().out
    hits = len(Handler.hits)
    download.download_irmas(data, manifest, parts=("train",))
    assert len(Handler.hits) == hits, "a verified, unpacked part is not fetched again"
    kept = tmp_path / "kept"
    download.download_irmas(kept, manifest, parts=("train",), keep_archives=True)
    assert irmas.md5sum(kept / "archives" / archive.filename) == archive.md5
    with pytest.raises(ValueError, match="unknown.*test9"):
        download.download_irmas(data, manifest, parts=("test9",))


def test_a_mirror_description_replaces_urls_md5s_and_manifest(tmp_path, monkeypatch):
    manifest = tmp_path / "mirror" / "data_manifest.csv"
    manifest.parent.mkdir()
    description = tmp_path / "mirror" / "mirror.json"
    description.write_text(json.dumps({"url": "http://127.0.0.1:9/{}", "manifest":
                                       "data_manifest.csv",
                                       "md5": {"IRMAS-TrainingData.zip": "1" * 32}}))
    monkeypatch.setenv(irmas.MIRROR_ENV, str(description))
    known = irmas.archives()
    assert known["train"].url == "http://127.0.0.1:9/IRMAS-TrainingData.zip"
    assert known["train"].md5 == "1" * 32
    assert known["test1"].md5 == irmas.ARCHIVES["test1"].md5
    assert irmas.irmas_manifest() == manifest
    description.write_text("{")
    with pytest.raises(ValueError, match=irmas.MIRROR_ENV):
        irmas.archives()
    monkeypatch.delenv(irmas.MIRROR_ENV)
    assert irmas.archives() == irmas.ARCHIVES
    assert irmas.irmas_manifest() == irmas.packaged_manifest()


@pytest.mark.parametrize(
    "evil", ["../evil.txt", "IRMAS-TrainingData/../../evil.txt", "/tmp/evil.txt"])
def test_zip_slip_is_refused_before_anything_is_written(tmp_path, evil):
    archive = tmp_path / "IRMAS-TrainingData.zip"
    _zip(archive, {CLIP: b"ok", evil: b"pwned"})
    data = tmp_path / "data"
    with pytest.raises(download.UnsafeArchiveError, match="outside"):
        download.extract(archive, data, progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert list(data.iterdir()) == []


def test_extracted_file_with_wrong_md5_leaves_no_tree(tmp_path):
    archive = tmp_path / "IRMAS-TrainingData.zip"
    _zip(archive, {CLIP: b"corrupted audio"})
    data = tmp_path / "data"
    with pytest.raises(download.ChecksumError, match=r"\[gac\]\[cla\]0001__1.wav.*expected"):
        download.extract(archive, data, _manifest(CLIP, "f" * 32), progress=False)
    assert list(data.iterdir()) == [], "nothing that looks complete is left"


def test_file_missing_from_archive_is_reported(tmp_path):
    archive = tmp_path / "IRMAS-TrainingData.zip"
    _zip(archive, {CLIP: b"x"})
    other = "IRMAS-TrainingData/pia/[pia][cla]0002__1.wav"
    with pytest.raises(download.ChecksumError, match="not in IRMAS-TrainingData.zip"):
        download.extract(archive, tmp_path / "data", _manifest(other, ""), progress=False)


def test_interrupted_extraction_is_redone(tmp_path):
    archive = tmp_path / "IRMAS-TrainingData.zip"
    _zip(archive, {CLIP: b"x"})
    data = tmp_path / "data"
    (data / ".IRMAS-TrainingData.partial" / "junk").mkdir(parents=True)  # a killed earlier run
    (data / "IRMAS-TrainingData").mkdir()  # an unstamped, possibly half copy
    (data / "IRMAS-TrainingData" / "stale").write_text("old")
    download.extract(archive, data, progress=False)
    assert (data / CLIP).read_bytes() == b"x"
    assert not (data / "IRMAS-TrainingData" / "stale").exists()
    assert sorted(p.name for p in data.iterdir()) == [
        ".IRMAS-TrainingData.complete", "IRMAS-TrainingData"]


def test_a_kept_stamp_does_not_vouch_for_a_deleted_folder(tmp_path, capsys):
    wav = _clip_bytes(tmp_path)
    archive = _zip(tmp_path / "IRMAS-TrainingData.zip", {CLIP: wav})
    data = tmp_path / "data"
    manifest = _manifest(CLIP, hashlib.md5(wav).hexdigest())
    download.extract(tmp_path / archive.filename, data, manifest, progress=False)
    shutil.rmtree(data / "IRMAS-TrainingData")  # the stamp .IRMAS-TrainingData.complete stays
    download.extract(tmp_path / archive.filename, data, manifest, progress=False)
    assert (data / CLIP).read_bytes() == wav and "again" in capsys.readouterr().out


def test_an_archive_may_not_replace_the_archives_folder(tmp_path):
    data = tmp_path / "data"
    (data / "archives").mkdir(parents=True)
    (data / "archives" / "IRMAS-TrainingData.zip").write_bytes(b"3 GB of care")
    evil = _zip(tmp_path / "evil.zip", {"archives/readme.txt": b"gone", CLIP: b"x"})
    with pytest.raises(download.UnsafeArchiveError, match="archives"):
        download.extract(tmp_path / evil.filename, data, progress=False)
    assert (data / "archives" / "IRMAS-TrainingData.zip").read_bytes() == b"3 GB of care"
    other = _zip(tmp_path / "IRMAS-TestingData-Part1.zip", {CLIP: b"x"})
    with pytest.raises(download.UnsafeArchiveError, match="IRMAS-TrainingData"):
        download.extract(tmp_path / other.filename, data, progress=False,
                         folders={"IRMAS-TestingData-Part1"})


def test_a_web_page_instead_of_a_zip_is_named(tmp_path):
    page = tmp_path / "IRMAS-TrainingData.zip"
    page.write_bytes(b"<!DOCTYPE html><html>Too many requests</html>")
    with pytest.raises(download.NotAnArchiveError, match="not a zip archive.*html"):
        download.extract(page, tmp_path / "data", progress=False)
    assert not [p for p in (tmp_path / "data").iterdir()], "nothing left behind"
