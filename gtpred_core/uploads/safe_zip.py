"""Uploaded zips, unpacked safely: nothing outside the folder, nothing bigger than the caps.

Every entry is untrusted. It may try to write outside its folder (``../x``, ``/etc/x``,
``C:\\x``, a symlink, a NUL byte that hides the rest of its name), expand to fill the disk (one
big entry, or many small ones), nest folders deep enough to break the file system calls, or lie
in its header about its sizes. Each refusal is an ``UploadError`` naming the entry, the problem
and the fix.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Sequence

from ..errors import UploadError
from ..folder import IMAGE_EXTENSIONS, SKIPPED_FOLDER_NAMES
from .server_paths import MAX_NAME_BYTES, MAX_PATH_BYTES, is_inside, name_too_long

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "RATIO_CHECK_MIN_BYTES",
    "check_entry_name",
    "check_entry_names",
    "class_folder_root",
    "extract_zip_safely",
]

#: Below this many bytes (one entry, or all entries so far) the compression ratio is not
#: checked: tiny files of repeated bytes compress 1000:1 and are harmless; a bomb is stopped
#: once it passes this many bytes, whether it is one entry or many small ones.
RATIO_CHECK_MIN_BYTES = 1 << 20

#: Most folder levels an entry may sit under. Image sets nest two or three deep; 2,000 nested
#: folders fit in 4 KB of names and make ``os.makedirs`` recurse until Python gives up.
MAX_DEPTH = 64

_CHUNK_BYTES = 1 << 16
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
_LOCAL_HEADER_BYTES = 30  # fixed part of a local file header (APPNOTE 4.3.7)
_SHOWN_NAME_CHARS = 160
_REZIP_FIX = "Re-create the zip from the image folder with a standard tool (e.g. `zip -r val.zip val`)."


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool


def _shown(name: str) -> str:
    """The entry name as quoted in a message: whole when short, its two ends when very long."""
    if len(name) <= _SHOWN_NAME_CHARS:
        return repr(name)
    return f"{name[:100]!r}…{name[-40:]!r} ({len(name):,} characters)"


def _entry_error(name: str, problem: str, fix: str = _REZIP_FIX) -> UploadError:
    return UploadError(f"The zip entry {_shown(name)} {problem}.", fix, name)


def check_entry_name(name: str) -> tuple[str, ...]:
    """The entry's path components (NFC-normalised), or UploadError if it could land outside
    the folder or cannot be written.

    ``name`` must be the raw name (``ZipInfo.orig_filename``): ``zipfile`` cuts a name at its
    first NUL byte, which would hide the rest from this check. Names are normalised to NFC so
    ``é`` typed on macOS (``e`` + combining accent) and elsewhere (one character) is one folder.
    """
    if "\x00" in name:
        raise _entry_error(name, "contains a NUL byte")
    if _DRIVE_LETTER.match(name):
        raise _entry_error(name, "starts with a Windows drive letter")
    if "\\" in name:
        # Windows tools would treat it as a separator (``..\\x``); refuse rather than guess.
        raise _entry_error(name, "contains a backslash")
    if name.startswith("/"):
        raise _entry_error(name, "is an absolute path")
    parts = [unicodedata.normalize("NFC", part) for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _entry_error(name, "contains a '..' component")
    if not parts:
        raise _entry_error(name, "has an empty name")
    if len(parts) > MAX_DEPTH:
        raise _entry_error(
            name,
            f"is nested {len(parts):,} folders deep; at most {MAX_DEPTH} levels are allowed",
            "Zip the image folder itself: one sub-folder per class, the images inside.",
        )
    too_long = name_too_long(parts, "/".join(parts))
    if too_long:
        raise _entry_error(name, too_long)
    return tuple(parts)


def _raw_name_bytes(info: zipfile.ZipInfo) -> int:
    """Length in bytes of the name as stored in the archive's headers."""
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    return len(info.orig_filename.encode(encoding, errors="replace"))


def _check_entries(
    zf: zipfile.ZipFile, *, max_total_bytes: int, max_files: int, max_ratio: float
) -> list[_Entry]:
    """Refuse the whole zip before writing a byte if any header already shows a problem.

    The declared sizes checked here only make honest oversized zips fail fast; the
    streaming copy enforces the same caps again on the bytes actually written.
    """
    infos = zf.infolist()
    if len(infos) > max_files:
        raise UploadError(
            f"The zip holds {len(infos):,} entries; at most {max_files:,} are allowed.",
            "Upload a smaller folder, or raise GTPRED_MAX_ZIP_FILES on the server.",
        )
    data_end = _data_end(zf)
    entries: list[_Entry] = []
    seen: dict[str, bool] = {}  # normalised name -> is a directory
    data_starts: dict[int, str] = {}
    declared_total = 0
    compressed_total = 0
    for info in infos:
        name = info.orig_filename
        parts = check_entry_name(name)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _entry_error(name, "is a symbolic link", "Zip the files themselves, not links to them.")
        if info.flag_bits & 0x1:
            raise _entry_error(name, "is encrypted", "Upload a zip made without a password.")
        key = "/".join(parts)
        if key in seen:
            raise _entry_error(name, "appears twice in the zip")
        is_dir = info.is_dir() or stat.S_ISDIR(mode)
        seen[key] = is_dir
        if not is_dir:
            room = data_end - info.header_offset - _LOCAL_HEADER_BYTES - _raw_name_bytes(info)
            if info.compress_size > room:
                raise _entry_error(
                    name,
                    f"declares {info.compress_size:,} compressed bytes, but the zip holds only "
                    f"{max(room, 0):,} bytes after its header: its size fields are false",
                )
            if info.header_offset in data_starts:
                raise _entry_error(
                    name,
                    f"shares its data with the entry {_shown(data_starts[info.header_offset])} "
                    "(overlapping entries are a zip-bomb trick)",
                )
            data_starts[info.header_offset] = name
            declared_total += info.file_size
            compressed_total += info.compress_size
            if declared_total > max_total_bytes:
                raise _too_big(name, max_total_bytes)
            if _ratio_exceeded(info.file_size, info.compress_size, max_ratio):
                raise _too_compressed(name, max_ratio)
            if _ratio_exceeded(declared_total, min(compressed_total, data_end), max_ratio):
                raise _too_compressed_together(name, max_ratio)
        entries.append(_Entry(info, parts, is_dir))
    for entry in entries:
        for depth in range(1, len(entry.parts)):
            if seen.get("/".join(entry.parts[:depth])) is False:
                raise _entry_error(
                    entry.info.orig_filename, "is inside a path that another entry holds as a file"
                )
    return entries


def _data_end(zf: zipfile.ZipFile) -> int:
    """Where entry data must end: the start of the central directory (all bytes before it are
    headers and data, so no entry's compressed size can be larger)."""
    start_dir = getattr(zf, "start_dir", None)  # set by zipfile when it reads the directory
    if isinstance(start_dir, int):
        return start_dir
    return max((i.header_offset + i.compress_size + 1024 for i in zf.infolist()), default=0)


def _ratio_exceeded(uncompressed: int, compressed: int, max_ratio: float) -> bool:
    return uncompressed > RATIO_CHECK_MIN_BYTES and uncompressed > max_ratio * max(compressed, 1)


def _too_big(name: str, max_total_bytes: int) -> UploadError:
    return _entry_error(
        name,
        f"takes the unpacked zip past the limit of {max_total_bytes:,} bytes",
        "Upload a smaller folder, or raise GTPRED_MAX_UPLOAD_MB on the server.",
    )


_RATIO_FIX = "Upload the real image files; raise GTPRED_MAX_ZIP_RATIO on the server if they are genuine."


def _too_compressed(name: str, max_ratio: float) -> UploadError:
    return _entry_error(name, f"expands more than {max_ratio:g} times its compressed size (a zip bomb?)", _RATIO_FIX)


def _too_compressed_together(name: str, max_ratio: float) -> UploadError:
    return _entry_error(
        name,
        f"takes the entries so far past {max_ratio:g} times their compressed size "
        "(many small, highly compressed files: a zip bomb?)",
        _RATIO_FIX,
    )


def _copy_capped(
    src: IO[bytes],
    dst: IO[bytes],
    *,
    name: str,
    written_before: int,
    max_total_bytes: int,
    compressed_size: int,
    max_ratio: float,
    compressed_before: int = 0,
) -> int:
    """Stream ``src`` into ``dst``, counting real bytes; refuse before writing past any cap.

    ``written_before`` / ``compressed_before`` are what earlier entries wrote / took in the
    archive: the ratio is checked per entry and on the running totals. Returns the bytes this
    entry wrote.
    """
    written = 0
    while chunk := src.read(_CHUNK_BYTES):
        if written_before + written + len(chunk) > max_total_bytes:
            raise _too_big(name, max_total_bytes)
        written += len(chunk)
        if _ratio_exceeded(written, compressed_size, max_ratio):
            raise _too_compressed(name, max_ratio)
        if _ratio_exceeded(written_before + written, compressed_before + compressed_size, max_ratio):
            raise _too_compressed_together(name, max_ratio)
        dst.write(chunk)
    return written


def _corrupt(name: str, info: zipfile.ZipInfo, err: BaseException) -> UploadError:
    """Say what is wrong with an entry whose data cannot be read back."""
    text = str(err)
    if isinstance(err, EOFError):
        problem = (
            f"is corrupt: its data ends before the {info.compress_size:,} compressed bytes its "
            "header declares (the zip was cut short or its size fields are false)"
        )
    elif "CRC" in text:
        problem = (
            "is corrupt: its data does not match the checksum (CRC-32) in its header "
            "(the zip was damaged in transfer, or its size fields are false)"
        )
    elif isinstance(err, zlib.error):
        problem = f"is corrupt: its compressed data cannot be inflated ({text or 'no detail'})"
    else:
        problem = f"is corrupt: {text or type(err).__name__}"
    return _entry_error(name, problem)


def _extract_entries(
    zf: zipfile.ZipFile,
    entries: list[_Entry],
    dest: str,
    *,
    max_total_bytes: int,
    max_ratio: float,
) -> None:
    data_end = _data_end(zf)
    total = 0
    compressed = 0  # never counted past the archive's data, whatever the headers claim
    for entry in entries:
        if entry.parts[0] in SKIPPED_FOLDER_NAMES:
            continue  # macOS resource forks: never content, so never written
        name = entry.info.orig_filename
        target = os.path.join(dest, *entry.parts)
        # Names were vetted above and we never create links, so this cannot fail; it stays as
        # the last word in case a future change lets a link or odd name through.
        if not is_inside(os.path.realpath(target), dest):
            raise _entry_error(name, "would be written outside the upload folder")
        try:
            if entry.is_dir:
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            before = min(compressed, max(data_end - entry.info.compress_size, 0))
            with zf.open(entry.info) as src, open(target, "xb") as dst:  # "x": never overwrite
                total += _copy_capped(
                    src,
                    dst,
                    name=name,
                    written_before=total,
                    max_total_bytes=max_total_bytes,
                    compressed_size=entry.info.compress_size,
                    max_ratio=max_ratio,
                    compressed_before=before,
                )
            compressed += entry.info.compress_size
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise _corrupt(name, entry.info, err) from err
        except NotImplementedError as err:
            raise _entry_error(
                name, f"uses an unsupported compression method ({err})",
                "Re-create the zip with the standard 'deflate' compression.",
            ) from err
        except OSError as err:
            raise _entry_error(
                name, f"cannot be written ({err.strerror or err})",
                "Check the server's free disk space, or re-create the zip with shorter names."
            ) from err


def _empty_folder(folder: str) -> None:
    for child in os.scandir(folder):
        if child.is_dir(follow_symlinks=False):
            shutil.rmtree(child.path)
        else:
            os.unlink(child.path)


def class_folder_root(path: str | Path) -> Path:
    """The folder holding the class folders inside an extracted upload.

    A zip of ``val/`` holds ``val/cat``, ``val/dog``: descend through single wrapper folders
    that hold no images of their own and contain folders, stopping at the class folders (a
    lone folder without sub-folders is a class folder, so its parent is the root).
    """
    path = Path(path)
    while True:
        entries = [e for e in os.scandir(path) if not e.name.startswith(".") and e.name not in SKIPPED_FOLDER_NAMES]
        dirs = [e for e in entries if e.is_dir(follow_symlinks=False)]
        has_images = any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in entries)
        if len(dirs) != 1 or has_images:
            return path
        inner = Path(dirs[0].path)
        if not any(e.is_dir(follow_symlinks=False) and not e.name.startswith(".") for e in os.scandir(inner)):
            return path  # the single folder is itself a class folder
        path = inner


def extract_zip_safely(
    source: str | Path | BinaryIO,
    dest: str | Path,
    *,
    max_total_bytes: int,
    max_files: int,
    max_ratio: float,
) -> Path:
    """Extract an uploaded zip into the empty folder ``dest``; return the folder of its content.

    Every header is vetted before anything is written (traversal, absolute or drive paths,
    backslashes, NUL bytes in the raw name, depth, links, encryption, duplicates after NFC
    normalisation, the entry count, declared sizes against the archive and the caps), then each
    entry is streamed with the total size and the compression ratio (per entry and over all
    entries so far) counted on the bytes actually written, because headers can lie.
    ``__MACOSX/`` litter is skipped. The folder returned holds the class folders
    (``class_folder_root``). On any refusal ``dest`` is emptied again and UploadError says which
    entry and why. ``dest`` is created if missing and must be empty.
    """
    dest_path = Path(dest)
    dest_path.mkdir(parents=True, exist_ok=True)
    if any(dest_path.iterdir()):
        raise ValueError(f"dest must be an empty folder, got {dest_path} which has files in it")
    dest_real = os.path.realpath(dest_path)
    try:
        with zipfile.ZipFile(source) as zf:
            entries = _check_entries(
                zf, max_total_bytes=max_total_bytes, max_files=max_files, max_ratio=max_ratio
            )
            if not any(not e.is_dir and e.parts[0] not in SKIPPED_FOLDER_NAMES for e in entries):
                raise UploadError("The zip holds no files.", "Zip the image folder itself and upload that.")
            _extract_entries(zf, entries, dest_real, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
    except BaseException as err:
        _empty_folder(dest_real)
        if isinstance(err, (zipfile.BadZipFile, EOFError, zlib.error)):
            raise UploadError(
                f"The upload is not a readable zip file ({err or type(err).__name__}).",
                "Upload a .zip of the image folder.",
            ) from err
        raise
    return class_folder_root(Path(dest_real))


def check_entry_names(names: Sequence[str]) -> None:
    """Vet names before they are bundled into a zip (a folder upload): ``zipfile`` would cut a
    NUL byte silently, so the check must see the names first."""
    for name in names:
        check_entry_name(name)
