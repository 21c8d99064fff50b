"""The download path for real: zips served over HTTP by http.server on 127.0.0.1."""

import functools
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import gdown
import pandas as pd
import pytest
from conftest import write_wav

from helpers import download, irmas

CLIP = "IRMAS-TrainingData/gac/[gac][cla]0001__1.wav"


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; `/cut/<file>` announces the whole file but sends half of it."""

    hits: list[str] = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        Handler.hits.append(self.path)
        if self.path.startswith("/cut/"):
            body = Path(self.directory, self.path[5:]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.hits = []
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


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


def test_truncated_transfer_fails_cleanly(server, tmp_path):
    served, url = server
    archive = _zip(served / "IRMAS-TrainingData.zip", {CLIP: _clip_bytes(tmp_path) * 20})
    with pytest.raises(gdown.exceptions.DownloadError) as err:
        download.fetch(archive, tmp_path / "archives", url=f"{url}/cut/{archive.filename}",
                       retries=0, quiet=True)
    assert archive.filename in str(err.value) and "incomplete" in str(err.value)
    assert not (tmp_path / "archives" / archive.filename).exists()
    # the next run, with the server fixed, starts over and succeeds
    download.fetch(archive, tmp_path / "archives", url=f"{url}/{archive.filename}", quiet=True)
    assert irmas.md5sum(tmp_path / "archives" / archive.filename) == archive.md5


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


def test_download_irmas_skips_what_is_verified_and_can_drop_archives(server, tmp_path,
                                                                     monkeypatch):
    served, url = server
    wav = _clip_bytes(tmp_path)
    archive = _zip(served / "IRMAS-TrainingData.zip", {CLIP: wav})
    monkeypatch.setattr(irmas, "ZENODO", f"{url}/{{}}")  # the local server plays Zenodo
    monkeypatch.setitem(download.ARCHIVES, "train", archive)
    manifest = _manifest(CLIP, hashlib.md5(wav).hexdigest())
    data = tmp_path / "data"
    rows = download.download_irmas(data, manifest, parts=("train",), keep_archives=False)
    assert rows["path"].tolist() == [CLIP] and (data / CLIP).read_bytes() == wav
    assert not (data / "archives" / archive.filename).exists(), "keep_archives=False"
    hits = len(Handler.hits)
    download.download_irmas(data, manifest, parts=("train",), keep_archives=False)
    assert len(Handler.hits) == hits, "a verified, unpacked part is not fetched again"


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
