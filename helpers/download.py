"""Fetch, verify and unpack the IRMAS archives; safe to re-run after any interruption.

gdown fetches into a hidden temp file and publishes the archive only when its md5 matches, so
an archive on disk is always whole. Unpacking goes into a hidden staging folder that is checked
against the manifest and only then renamed into place and stamped complete.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import gdown
import pandas as pd
from tqdm.auto import tqdm

from helpers.irmas import ARCHIVES, UNVERIFIED, Archive, file_problem

ARCHIVE_DIR = "archives"  # under the data folder, unless download_irmas is told otherwise


class ChecksumError(RuntimeError):
    """A file whose md5 differs from the published one; the message says what to do."""


class NotAnArchiveError(ValueError):
    """A file handed over as an archive that is not a zip (e.g. an HTML error page)."""


class UnsafeArchiveError(ValueError):
    """An archive member whose path would land outside the target folder (zip-slip)."""


def fetch(
    archive: Archive,
    archive_dir: str | Path,
    drive_id: str | None = None,
    url: str | None = None,
    retries: int = 3,
    quiet: bool = False,
) -> Path:
    """Download `archive` into `archive_dir` unless a copy with the right md5 is already there.

    `drive_id` fetches your own copy on Google Drive instead of Zenodo; `url` any other mirror.
    """
    path = Path(archive_dir) / archive.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    source = {"id": drive_id} if drive_id else {"url": url or archive.url}
    try:
        gdown.cached_download(
            path=str(path), hash=f"md5:{archive.md5}", quiet=quiet, retries=retries, **source
        )
    except AssertionError as err:  # gdown's hash mismatch; the bad download is already gone
        actual = re.search(r"actual: (?:md5:)?(\w+)", str(err))
        raise ChecksumError(
            f"{archive.filename}: md5 {actual[1] if actual else '?'} but expected {archive.md5}. "
            "The download is corrupt or is not this archive; nothing was kept. Run the download "
            "again, and if it persists check the Drive id or mirror URL points at the original "
            f"archive from {archive.url}."
        ) from err
    except gdown.exceptions.DownloadError as err:
        raise gdown.exceptions.DownloadError(
            f"{archive.filename}: download failed ({err}). Nothing partial was kept as the "
            "archive; run the download again."
        ) from err
    return path


def _check_members(zf: zipfile.ZipFile, target: Path) -> None:
    root = target.resolve()
    for name in zf.namelist():
        dest = (root / name).resolve()
        if name.startswith(("/", "\\")) or not dest.is_relative_to(root):
            raise UnsafeArchiveError(
                f"{zf.filename}: member {name!r} would be written outside {target}; "
                "refusing to extract this archive (it is not an original IRMAS archive)."
            )


def extract(
    zip_path: str | Path,
    target: str | Path,
    manifest: pd.DataFrame | None = None,
    progress: bool = True,
    folders: set[str] | None = None,
) -> list[str]:
    """Unpack `zip_path` into `target`, verify against `manifest`, and return its top folders.

    `folders` are the top-level folders the archive may hold (an IRMAS archive: its own);
    hidden names and the archive folder are refused in any case. An archive unpacked before
    is skipped while its folders (and the manifest's files in them) are still there.

    Nothing appears under `target` until every member was unpacked and every manifest file
    inside the archive matched its md5; a failed or interrupted run leaves only a hidden staging
    folder that the next run removes.
    """
    zip_path, target = Path(zip_path), Path(target)
    stamp = target / f".{zip_path.stem}.complete"
    if stamp.is_file():
        tops = stamp.read_text().split("\n")
        missing = _missing(target, tops, manifest)
        if not missing:
            return tops
        print(f"unpacking {zip_path.name} again: {missing} is gone since it was unpacked",
              flush=True)
        stamp.unlink()
    staging = target / f".{zip_path.stem}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        try:
            zf = zipfile.ZipFile(zip_path)
        except zipfile.BadZipFile as err:
            head = zip_path.read_bytes()[:16]
            raise NotAnArchiveError(
                f"{zip_path}: not a zip archive (it starts with {head!r}; a web page instead of "
                "the file?). Delete it and download it again.") from err
        with zf:
            _check_members(zf, staging)
            for member in tqdm(zf.infolist(), desc=f"unzip {zip_path.name}",
                               disable=not progress):
                zf.extract(member, staging)
        tops = sorted(p.name for p in staging.iterdir())
        foreign = [t for t in tops if t.startswith(".") or t == ARCHIVE_DIR
                   or (folders is not None and t not in folders)]
        if foreign:
            raise UnsafeArchiveError(
                f"{zip_path}: its top-level {foreign} would replace folders that are not its own "
                f"(expected {sorted(folders) if folders is not None else 'data folders'}); "
                "refusing it (it is not an original IRMAS archive).")
        if manifest is not None:
            inside = manifest[manifest["path"].str.split("/").str[0].isin(tops)]
            _verify_extracted(inside, staging, zip_path.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for name in tops:
        shutil.rmtree(target / name, ignore_errors=True)  # an older, unstamped copy
        (staging / name).rename(target / name)
    staging.rmdir()
    stamp.write_text("\n".join(tops))
    return tops


def _missing(target: Path, tops: list[str], manifest: pd.DataFrame | None) -> str | None:
    """The first folder or manifest file of an unpacked archive that is no longer there."""
    for top in tops:
        if not (target / top).is_dir():
            return str(target / top)
    if manifest is not None:
        inside = manifest[manifest["path"].str.split("/").str[0].isin(tops)]
        for path in inside["path"]:
            if not (target / path).is_file():
                return str(target / path)
    return None


def _verify_extracted(rows: pd.DataFrame, root: Path, archive_name: str) -> None:
    for path, expected in zip(rows["path"], rows["md5"]):
        problem = file_problem(root / path, expected)
        if problem == "missing":
            raise ChecksumError(
                f"{path}: listed in the manifest but not in {archive_name}. Delete the archive "
                "and download it again."
            )
        if problem is not None and not problem.startswith(UNVERIFIED):
            raise ChecksumError(
                f"{path}: {problem}. Delete {archive_name} and download it again; nothing was "
                "unpacked."
            )


def download_irmas(
    data_dir: str | Path,
    manifest: pd.DataFrame,
    parts: tuple[str, ...] = ("train", "test1", "test2", "test3"),
    archive_dir: str | Path | None = None,
    drive_ids: dict[str, str] | None = None,
    keep_archives: bool = True,
) -> pd.DataFrame:
    """Fetch and unpack the IRMAS `parts` (keys of `ARCHIVES`) into `data_dir`.

    Returns the manifest rows of the fetched parts.
    Archives go to `archive_dir` (default `data_dir/archives`; put it on Drive in Colab so a
    3 GB download survives a disconnect). `drive_ids` maps a part to a Google Drive file id.
    """
    data_dir = Path(data_dir)
    archive_dir = Path(archive_dir) if archive_dir else data_dir / ARCHIVE_DIR
    drive_ids = drive_ids or {}
    for part in parts:
        archive = ARCHIVES[part]
        stamp = data_dir / f".{Path(archive.filename).stem}.complete"
        if stamp.is_file() and not _missing(data_dir, [archive.folder], manifest):
            continue
        zip_path = fetch(archive, archive_dir, drive_id=drive_ids.get(part))
        extract(zip_path, data_dir, manifest, folders={archive.folder})
        if not keep_archives:
            zip_path.unlink()
    folders = [ARCHIVES[part].folder for part in parts]
    return manifest[manifest["path"].str.split("/").str[0].isin(folders)]
