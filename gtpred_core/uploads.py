"""Let users hand us files safely: uploaded zips, typed server paths, and scratch folders.

Everything a user names is untrusted. A zip entry may try to write outside its folder
(``../x``, ``/etc/x``, ``C:\\x``, a symlink), expand to fill the disk, or lie in its header;
a typed path may try to leave the data root. Each refusal is an ``UploadError`` naming the
entry or path, the problem, and the fix.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from .errors import UploadError
from .folder import IMAGE_EXTENSIONS, SKIPPED_FOLDER_NAMES
from .settings import get_settings

#: Longest file-name component and whole path Linux accepts, in bytes.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096

#: Entries smaller than this are never refused for their ratio: tiny files of repeated bytes
#: compress 1000:1 and are harmless; a bomb is stopped once it passes this many bytes.
RATIO_CHECK_MIN_BYTES = 1 << 20

_CHUNK_BYTES = 1 << 16
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
_REZIP_FIX = "Re-create the zip from the image folder with a standard tool (e.g. `zip -r val.zip val`)."


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool


def _entry_error(name: str, problem: str, fix: str = _REZIP_FIX) -> UploadError:
    return UploadError(f"The zip entry {name!r} {problem}.", fix, name)


def _check_name_lengths(parts: list[str] | tuple[str, ...], whole: str) -> str | None:
    """Why the name is too long for the file system, or None."""
    for part in parts:
        if len(os.fsencode(part)) > MAX_NAME_BYTES:
            return f"has a name component longer than {MAX_NAME_BYTES} bytes"
    if len(os.fsencode(whole)) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    return None


def _safe_parts(name: str) -> tuple[str, ...]:
    """The entry's path components, or UploadError if it could land outside the folder."""
    if "\x00" in name:
        raise _entry_error(name, "contains a NUL byte")
    if _DRIVE_LETTER.match(name):
        raise _entry_error(name, "starts with a Windows drive letter")
    if "\\" in name:
        # Windows tools would treat it as a separator (``..\\x``); refuse rather than guess.
        raise _entry_error(name, "contains a backslash")
    if name.startswith("/"):
        raise _entry_error(name, "is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _entry_error(name, "contains a '..' component")
    if not parts:
        raise _entry_error(name, "has an empty name")
    too_long = _check_name_lengths(parts, name)
    if too_long:
        raise _entry_error(name, too_long)
    return tuple(parts)


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
    entries: list[_Entry] = []
    seen: dict[str, bool] = {}  # normalised name -> is a directory
    declared_total = 0
    for info in infos:
        name = info.filename
        parts = _safe_parts(name)
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
            declared_total += info.file_size
            if declared_total > max_total_bytes:
                raise _too_big(name, max_total_bytes)
            if _ratio_exceeded(info.file_size, info.compress_size, max_ratio):
                raise _too_compressed(name, max_ratio)
        entries.append(_Entry(info, parts, is_dir))
    for entry in entries:
        for depth in range(1, len(entry.parts)):
            if seen.get("/".join(entry.parts[:depth])) is False:
                raise _entry_error(
                    entry.info.filename, "is inside a path that another entry holds as a file"
                )
    return entries


def _ratio_exceeded(uncompressed: int, compressed: int, max_ratio: float) -> bool:
    return uncompressed > RATIO_CHECK_MIN_BYTES and uncompressed > max_ratio * max(compressed, 1)


def _too_big(name: str, max_total_bytes: int) -> UploadError:
    return _entry_error(
        name,
        f"takes the unpacked zip past the limit of {max_total_bytes:,} bytes",
        "Upload a smaller folder, or raise GTPRED_MAX_UPLOAD_MB on the server.",
    )


def _too_compressed(name: str, max_ratio: float) -> UploadError:
    return _entry_error(
        name,
        f"expands more than {max_ratio:g} times its compressed size (a zip bomb?)",
        "Upload the real image files; raise GTPRED_MAX_ZIP_RATIO on the server if they are genuine.",
    )


def _is_inside(path: str, folder: str) -> bool:
    """True if ``path`` is ``folder`` or below it; both must already be real absolute paths."""
    return os.path.commonpath([path, folder]) == folder


def _copy_capped(
    src: IO[bytes],
    dst: IO[bytes],
    *,
    name: str,
    written_before: int,
    max_total_bytes: int,
    compressed_size: int,
    max_ratio: float,
) -> int:
    """Stream ``src`` into ``dst``, counting real bytes; refuse before writing past either cap.

    ``written_before`` is what earlier entries wrote. Returns the bytes this entry wrote.
    """
    written = 0
    while chunk := src.read(_CHUNK_BYTES):
        if written_before + written + len(chunk) > max_total_bytes:
            raise _too_big(name, max_total_bytes)
        written += len(chunk)
        if _ratio_exceeded(written, compressed_size, max_ratio):
            raise _too_compressed(name, max_ratio)
        dst.write(chunk)
    return written


def _extract_entries(
    zf: zipfile.ZipFile,
    entries: list[_Entry],
    dest: str,
    *,
    max_total_bytes: int,
    max_ratio: float,
) -> None:
    total = 0
    for entry in entries:
        if entry.parts[0] in SKIPPED_FOLDER_NAMES:
            continue  # macOS resource forks: never content, so never written
        name = entry.info.filename
        target = os.path.join(dest, *entry.parts)
        # Names were vetted above and we never create links, so this cannot fail; it stays as
        # the last word in case a future change lets a link or odd name through.
        if not _is_inside(os.path.realpath(target), dest):
            raise _entry_error(name, "would be written outside the upload folder")
        try:
            if entry.is_dir:
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(entry.info) as src, open(target, "xb") as dst:  # "x": never overwrite
                total += _copy_capped(
                    src,
                    dst,
                    name=name,
                    written_before=total,
                    max_total_bytes=max_total_bytes,
                    compressed_size=entry.info.compress_size,
                    max_ratio=max_ratio,
                )
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise _entry_error(name, f"is corrupt ({err})") from err
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
    backslashes, links, encryption, duplicates, the entry count, declared sizes), then each
    entry is streamed with the total size and per-entry ratio counted on the bytes actually
    written, because headers can lie. ``__MACOSX/`` litter is skipped. The folder returned holds
    the class folders (``class_folder_root``): wrapper folders such as ``val/`` in
    ``val/cats/...`` are descended, a lone class folder is kept as a class. On any refusal ``dest`` is emptied again and
    UploadError says which entry and why. ``dest`` is created if missing and must be empty.
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
                f"The upload is not a readable zip file ({err}).", "Upload a .zip of the image folder."
            ) from err
        raise
    return class_folder_root(Path(dest_real))


def _path_error(user_path: str, problem: str, fix: str) -> UploadError:
    return UploadError(f"The path {user_path!r} {problem}.", fix, user_path)


_RELATIVE_FIX = "Type a folder path relative to the data root, e.g. val/cats."


def resolve_inside_root(user_path: str, root: str | Path) -> Path:
    """The real path of ``user_path`` (relative to ``root``, or absolute inside it), links followed.

    Refused with UploadError: anything that resolves outside the root (``..``, absolute paths,
    links pointing out), ``~`` (we never expand it, and a folder really named ``~`` is not
    worth the confusion), NUL bytes, backslashes, over-long names, and paths that do not
    exist -- the caller gets a real path, never a guess. Containment is checked before
    existence, so the answer never tells whether a path outside the root exists. ``""`` is the
    root. Surrounding whitespace is stripped (typed paths pick it up by accident).
    ``%2e%2e`` is just a folder name: nothing here URL-decodes. The returned path may be a
    file or a folder; the caller checks which it needs.
    """
    user_path = user_path.strip()
    root_real = os.path.realpath(root)
    if not os.path.isdir(root_real):
        raise UploadError(
            f"The data root {str(root)!r} is not a folder.",
            "Set GTPRED_DATA_ROOT to the folder that holds the image folders.",
            root,
        )
    if "\x00" in user_path:
        raise _path_error(user_path, "contains a NUL byte", _RELATIVE_FIX)
    if user_path.startswith("~"):
        raise _path_error(user_path, "starts with '~'; home folders are not expanded", _RELATIVE_FIX)
    if "\\" in user_path:
        raise _path_error(user_path, "contains a backslash", "Separate folders with '/', e.g. val/cats.")
    try:
        too_long = _check_name_lengths(user_path.split("/"), user_path)
    except UnicodeEncodeError:
        too_long = "is not valid text for a file name"
    if too_long:
        raise _path_error(user_path, too_long, "Use a shorter path.")
    resolved = os.path.realpath(os.path.join(root_real, user_path))
    if not _is_inside(resolved, root_real):
        raise _path_error(
            user_path,
            "leads outside the data root",
            f"Pick a folder inside the data root ({root_real}); links out of it are not followed.",
        )
    if not os.path.exists(resolved):
        raise _path_error(user_path, "does not exist under the data root", "Check the spelling, or browse to it.")
    return Path(resolved)


def _is_folder_inside(entry: os.DirEntry[str], root_real: str) -> bool:
    """A folder (links followed) that stays inside the root; a link loop is no folder."""
    try:
        return entry.is_dir() and _is_inside(os.path.realpath(entry.path), root_real)
    except OSError:
        return False


def list_subfolders(root: str | Path, rel: str = "") -> list[str]:
    """Sorted visible sub-folders of ``root/rel`` for a folder browser, as ``/`` paths from root.

    ``rel`` is vetted by ``resolve_inside_root``. Dot-folders, ``__MACOSX`` and links that
    lead out of the root are left out. Paths start from ``rel``'s real location, so browsing
    through a link inside the root lists its target's path; each is a valid ``rel`` again.
    """
    base = resolve_inside_root(rel, root)
    root_real = os.path.realpath(root)
    if not base.is_dir():
        raise _path_error(rel, "is a file, not a folder", "Pick a folder.")
    prefix = Path(os.path.relpath(base, root_real)).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    try:
        children = sorted(
            entry.name for entry in os.scandir(base)
            if not entry.name.startswith(".")
            and entry.name not in SKIPPED_FOLDER_NAMES
            and _is_folder_inside(entry, root_real)
        )
    except OSError as err:
        raise _path_error(rel, f"cannot be read ({err.strerror})", "Check the folder's permissions.") from err
    return [prefix + name for name in children]


def _scratch_area() -> Path:
    return get_settings().cache_dir / "scratch"


def scratch_dir(prefix: str) -> Path:
    """A fresh private (0700) folder under ``GTPRED_CACHE_DIR/scratch`` for one upload.

    Kept under the cache dir, not /tmp, so the server's operator decides where uploads land
    and ``remove_scratch`` can prove it only deletes there.
    """
    if not prefix or "/" in prefix or "\x00" in prefix or prefix.startswith("."):
        raise ValueError(f"prefix must be a plain name without '/', got {prefix!r}")
    area = _scratch_area()
    area.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Path(os.path.realpath(tempfile.mkdtemp(prefix=prefix, dir=area)))  # mkdtemp: mode 0700


def remove_scratch(path: str | Path) -> None:
    """Delete a folder made by ``scratch_dir``; refuse (ValueError) anything outside the scratch area.

    The path is resolved first, so a link inside the area pointing elsewhere is refused too.
    A path that is already gone is fine: cleanup may run twice.
    """
    area = os.path.realpath(_scratch_area())
    if os.path.islink(path):
        raise ValueError(f"refusing to remove {path}: it is a link, not a scratch folder")
    target = os.path.realpath(path)
    if target == area or not _is_inside(target, area):
        raise ValueError(f"refusing to remove {path}: it is not inside the scratch area {area}")
    if not os.path.lexists(target):
        return
    if os.path.isdir(target):
        shutil.rmtree(target)
    else:
        os.unlink(target)


def prune_scratch(max_age_s: float) -> list[Path]:
    """Remove scratch folders not used for ``max_age_s`` seconds; return what was removed.

    Streamlit tells the app nothing when a session ends, so uploads are freed by age instead:
    a folder's modification time is its last use (callers touch it when they reuse an upload).
    """
    area = _scratch_area()
    if not area.is_dir():
        return []
    cutoff = time.time() - max_age_s
    removed = []
    for entry in os.scandir(area):
        if entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
            remove_scratch(entry.path)
            removed.append(Path(entry.path))
    return removed


def scratch_folder_of(path: str | Path) -> Path:
    """The scratch folder (a direct child of the scratch area) that holds ``path``."""
    area = Path(os.path.realpath(_scratch_area()))
    relative = Path(os.path.realpath(path)).relative_to(area)
    return area / relative.parts[0]
