"""Paths typed or browsed by a user, confined to the data root (``GTPRED_DATA_ROOT``).

A typed path may try to leave the root (``..``, absolute paths, ``~``, links pointing out) or
carry bytes no file name should hold. ``resolve_inside_root`` returns a real path inside the
root or raises an ``UploadError`` naming the path, the problem and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..errors import UploadError
from ..folder import SKIPPED_FOLDER_NAMES

#: Longest file-name component and whole path Linux accepts, in bytes.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096

_RELATIVE_FIX = "Type a folder path relative to the data root, e.g. val/cats."


def name_too_long(parts: Sequence[str], whole: str) -> str | None:
    """Why the name is too long for the file system, or None (shared with zip entry checks)."""
    for part in parts:
        if len(os.fsencode(part)) > MAX_NAME_BYTES:
            return f"has a name component longer than {MAX_NAME_BYTES} bytes"
    if len(os.fsencode(whole)) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    return None


def is_inside(path: str, folder: str) -> bool:
    """True if ``path`` is ``folder`` or below it; both must already be real absolute paths."""
    return os.path.commonpath([path, folder]) == folder


def path_for_users(path: str | Path, root: str | Path | None) -> str:
    """``path`` as people using the server may see it: relative to the data root ``root`` when
    inside it (``val/cats``), else its own name (an upload in the scratch area, the demo). The
    server's layout (``/srv/...``, the cache folder) is never part of it; logs keep full paths."""
    if root is not None:
        real, root_real = os.path.realpath(path), os.path.realpath(root)
        if os.path.isdir(root_real) and is_inside(real, root_real) and real != root_real:
            return Path(os.path.relpath(real, root_real)).as_posix()
    return Path(str(path)).name


def _path_error(user_path: str, problem: str, fix: str) -> UploadError:
    return UploadError(f"The path {user_path!r} {problem}.", fix, user_path)


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
            "The server's data root is not a folder.",  # its path stays in err.path, never shown
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
        too_long = name_too_long(user_path.split("/"), user_path)
    except UnicodeEncodeError:
        too_long = "is not valid text for a file name"
    if too_long:
        raise _path_error(user_path, too_long, "Use a shorter path.")
    resolved = os.path.realpath(os.path.join(root_real, user_path))
    if not is_inside(resolved, root_real):
        raise _path_error(
            user_path,
            "leads outside the data root",
            "Pick a folder inside the data root; links out of it are not followed.",
        )
    if not os.path.exists(resolved):
        raise _path_error(user_path, "does not exist under the data root", "Check the spelling, or browse to it.")
    return Path(resolved)


def _is_folder_inside(entry: os.DirEntry[str], root_real: str) -> bool:
    """A folder (links followed) that stays inside the root; a link loop is no folder."""
    try:
        return entry.is_dir() and is_inside(os.path.realpath(entry.path), root_real)
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
