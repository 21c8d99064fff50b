"""Fetch, verify and unpack the IRMAS archives; safe to re-run after any interruption.

gdown fetches into a hidden `.part` file beside the archive; an interrupted transfer keeps the
bytes it received and the next run asks the server for the rest (an HTTP range request), so a
3 GB download that dies at 2 GB costs one more gigabyte, not three. The archive is published
under its own name only when its md5 matches, so an archive on disk is always whole. Unpacking
goes into a hidden staging folder that is checked against the manifest and only then renamed
into place and stamped complete; the archive is then deleted unless it is asked to stay. Before
anything is fetched, the free space where it goes is compared with what the parts need.

Works with every gdown from 5.2.2 (Colab's) to the newest: it uses only `gdown.download`'s
`url`/`id`/`output`/`quiet`/`resume`, which both have, and does its own retries.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import gdown
import pandas as pd
import requests
from tqdm.auto import tqdm

from helpers.data.irmas import (
    TRAIN_DIR,
    UNVERIFIED,
    Archive,
    archives,
    file_problem,
    irmas_manifest,
    md5sum,
    read_manifest,
)

ARCHIVE_DIR = "archives"  # under the data folder, unless download_irmas is told otherwise
# An IRMAS training clip as a WAV: 132,299 frames of 16-bit stereo and a 44-byte header.
TRAINING_WAV_BYTES = 132_299 * 4 + 44
# gdown < 6 has no DownloadError; both have FileURLRetrievalError (a Drive link it cannot use).
GDOWN_ERRORS: tuple[type[Exception], ...] = tuple(
    {getattr(gdown.exceptions, name) for name in ("DownloadError", "FileURLRetrievalError")
     if hasattr(gdown.exceptions, name)})


class ChecksumError(RuntimeError):
    """A file whose md5 differs from the published one; the message says what to do."""


class DownloadFailed(OSError):
    """A transfer that did not complete; what arrived is kept for the next run to continue."""


class NotEnoughSpace(OSError):
    """The target folder has less free space than the download and its extraction need."""


class NotAnArchiveError(ValueError):
    """A file handed over as an archive that is not a zip (e.g. an HTML error page)."""


class UnsafeArchiveError(ValueError):
    """An archive member whose path would land outside the target folder (zip-slip)."""


def _partials(archive_dir: Path, filename: str) -> list[Path]:
    """gdown's `.part` files of one download (named after its output with a random middle)."""
    return sorted(archive_dir.glob(f".{filename}.incoming*.part"))


def partial_bytes(archive: Archive, archive_dir: str | Path) -> int:
    """How many bytes of `archive` an interrupted download left in `archive_dir`."""
    return sum(p.stat().st_size for p in _partials(Path(archive_dir), archive.filename))


def fetch(
    archive: Archive,
    archive_dir: str | Path,
    drive_id: str | None = None,
    *, url: str | None = None,
    retries: int = 3,
    quiet: bool = False,
) -> Path:
    """Download `archive` into `archive_dir` unless a copy with the right md5 is already there.

    An interrupted transfer continues where it stopped, here on each of `retries` new
    attempts and on the next call; a continued transfer whose md5 is wrong (a server that
    ignored the range request) starts over once before `ChecksumError` is raised.
    `drive_id` fetches your own copy on Google Drive instead of Zenodo; `url` any other mirror.
    """
    archive_dir = Path(archive_dir)
    path = archive_dir / archive.filename
    archive_dir.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        if md5sum(path) == archive.md5:
            return path
        path.unlink()  # not the archive (an older copy, or a file put there by hand)
    incoming = archive_dir / f".{archive.filename}.incoming"
    source = {"id": drive_id} if drive_id else {"url": url or archive.url}
    restarted = False
    attempt = 0
    while True:
        resumed = bool(_partials(archive_dir, archive.filename))
        try:
            gdown.download(output=str(incoming), quiet=quiet, resume=True, **source)
        except (requests.RequestException, *GDOWN_ERRORS) as err:
            if resumed:  # the kept bytes may be what the server refuses to continue
                _discard(archive_dir, archive.filename)
            if attempt < retries:
                attempt += 1
                continue
            kept = partial_bytes(archive, archive_dir)
            raise DownloadFailed(
                f"{archive.filename}: download incomplete after {attempt + 1} attempt(s) "
                f"({err}). " + (f"The {kept:,} bytes received are kept in {archive_dir}; run "
                                "the download again and it continues from there."
                                if kept else "Run the download again.")) from err
        if not incoming.is_file():  # gdown < 6 returns None instead of raising on some errors
            raise DownloadFailed(f"{archive.filename}: gdown gave no file; remove the .part "
                                 f"files in {archive_dir} and run the download again")
        actual = md5sum(incoming)
        if actual == archive.md5:
            return incoming.replace(path)
        incoming.unlink()
        if resumed and not restarted:
            restarted = True
            continue
        raise ChecksumError(
            f"{archive.filename}: md5 {actual} but expected {archive.md5}. The download is "
            "corrupt or is not this archive; nothing was kept. Run the download again, and if "
            "it persists check the Drive id or mirror URL points at the original archive from "
            f"{archive.url}.")


def _discard(archive_dir: Path, filename: str) -> None:
    for part in _partials(archive_dir, filename):
        part.unlink(missing_ok=True)


def remote_size(url: str, timeout: float = 30) -> int | None:
    """The archive's size as its server announces it (HTTP HEAD), None when it does not say."""
    try:
        head = requests.head(url, allow_redirects=True, timeout=timeout)
        return int(head.headers["Content-Length"]) if head.ok else None
    except (requests.RequestException, KeyError, ValueError):
        return None


def extracted_estimate(archive: Archive, manifest: pd.DataFrame, size: int | None) -> int:
    """What unpacking `archive` writes: its training clips at their WAV size (every
    instrument's: an archive unpacks whole), and at least the archive's own size (WAV audio
    hardly compresses)."""
    inside = manifest["path"].str.split("/").str[0] == archive.folder
    clips = int((inside & manifest["path"].str.endswith(".wav")).sum())
    per_clip = TRAINING_WAV_BYTES if archive.folder == TRAIN_DIR else 0
    return max(clips * per_clip, size or 0)


def check_space(folder: Path, needed: int, what: str) -> None:
    """Raise `NotEnoughSpace`, saying how much is missing, when `folder` (or the nearest
    folder above it that exists) has less than `needed` bytes free."""
    free = shutil.disk_usage(_existing(folder)).free
    if free < needed:
        raise NotEnoughSpace(
            f"{folder}: {what} needs {needed / 1e9:.2f} GB free, there are {free / 1e9:.2f} GB: "
            f"{(needed - free) / 1e9:.2f} GB missing. Free space there (a free Google Drive "
            "holds 15 GB), fetch fewer parts (irmas_parts), or point home/data_dir elsewhere.")


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
    *, progress: bool = True,
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
            check_space(target, sum(m.file_size for m in zf.infolist()),
                        f"unpacking {zip_path.name}")
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
    *, archive_dir: str | Path | None = None,
    drive_ids: dict[str, str] | None = None,
    keep_archives: bool = False,
    retries: int = 3,
) -> pd.DataFrame:
    """Fetch and unpack the IRMAS `parts` (keys of `irmas.ARCHIVES`) into `data_dir`.

    Returns the manifest rows of the fetched parts. First checks that the free space holds
    what the parts still need (`NotEnoughSpace` says how much is missing). Archives go to
    `archive_dir` (default `data_dir/archives`; on Drive in Colab, so a transfer that dies
    continues on the next run) and each is deleted once its extraction is verified, unless
    `keep_archives`. `drive_ids` maps a part to a Google Drive file id of your own copy.
    """
    data_dir = Path(data_dir)
    archive_dir = Path(archive_dir) if archive_dir else data_dir / ARCHIVE_DIR
    drive_ids = drive_ids or {}
    known = archives()
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise ValueError(f"irmas_parts: unknown {unknown}; choose from {sorted(known)}")
    todo = [p for p in parts if not (data_dir / f".{Path(known[p].filename).stem}.complete"
                                     ).is_file() or _missing(data_dir, [known[p].folder], manifest)]
    if todo:
        _check_download_space(data_dir, archive_dir, {p: known[p] for p in todo}, drive_ids,
                              keep_archives)
    for part in todo:
        archive = known[part]
        zip_path = fetch(archive, archive_dir, drive_id=drive_ids.get(part), retries=retries)
        extract(zip_path, data_dir, manifest, folders={archive.folder})
        if not keep_archives:
            zip_path.unlink()
    folders = [known[part].folder for part in parts]
    return manifest[manifest["path"].str.split("/").str[0].isin(folders)]


def _check_download_space(data_dir: Path, archive_dir: Path, pending: dict[str, Archive],
                          drive_ids: dict[str, str], keep_archives: bool) -> None:
    """Say what the `pending` parts need and stop before fetching when it does not fit: at
    the worst moment, every extraction plus every archive when they are kept, else the largest
    one (each is deleted once its extraction is verified)."""
    everything = read_manifest(irmas_manifest())  # an archive unpacks every instrument
    fetching, unpacking, largest = 0, 0, 0
    for part, archive in pending.items():
        zip_path = archive_dir / archive.filename
        size = (zip_path.stat().st_size if zip_path.is_file() else
                None if part in drive_ids else remote_size(archive.url))
        to_fetch = 0 if zip_path.is_file() else max(
            (size or 0) - partial_bytes(archive, archive_dir), 0)
        fetching += to_fetch
        largest = max(largest, to_fetch)
        unpacking += extracted_estimate(archive, everything, size)
    names = ", ".join(a.filename for a in pending.values())
    kept = "kept" if keep_archives else "deleted once unpacked"
    print(f"IRMAS: {names}: {fetching / 1e9:.2f} GB to download, about "
          f"{unpacking / 1e9:.2f} GB unpacked into {data_dir}; archives {kept}", flush=True)
    held = fetching if keep_archives else largest
    if _same_disk(data_dir, archive_dir):
        check_space(data_dir, unpacking + held, "downloading and unpacking " + names)
    else:
        check_space(archive_dir, held, "downloading " + names)
        check_space(data_dir, unpacking, "unpacking " + names)


def _existing(folder: Path) -> Path:
    """`folder`, or the nearest folder above it that exists (where it will be made)."""
    while not folder.exists():
        folder = folder.parent
    return folder


def _same_disk(a: Path, b: Path) -> bool:
    return _existing(a).stat().st_dev == _existing(b).stat().st_dev
