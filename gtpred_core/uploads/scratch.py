"""The scratch area: private folders for uploads, under ``GTPRED_CACHE_DIR/scratch``.

Kept under the cache dir, not /tmp, so the server's operator decides where uploads land and
``remove_scratch`` can prove it only deletes there. Streamlit tells the app nothing when a
session ends, so folders are freed by age (``prune_scratch``); a folder's modification time is
its last use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from ..settings import get_settings
from .server_paths import is_inside


def scratch_area() -> Path:
    """The folder that holds every scratch folder (it may not exist yet)."""
    return get_settings().cache_dir / "scratch"


def scratch_dir(prefix: str) -> Path:
    """A fresh private (0700) folder under ``GTPRED_CACHE_DIR/scratch`` for one upload."""
    if not prefix or "/" in prefix or "\x00" in prefix or prefix.startswith("."):
        raise ValueError(f"prefix must be a plain name without '/', got {prefix!r}")
    area = scratch_area()
    area.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Path(os.path.realpath(tempfile.mkdtemp(prefix=prefix, dir=area)))  # mkdtemp: mode 0700


def remove_scratch(path: str | Path) -> None:
    """Delete a folder made by ``scratch_dir``; refuse (ValueError) anything outside the scratch area.

    The path is resolved first, so a link inside the area pointing elsewhere is refused too.
    A path that is already gone is fine: cleanup may run twice.
    """
    area = os.path.realpath(scratch_area())
    if os.path.islink(path):
        raise ValueError(f"refusing to remove {path}: it is a link, not a scratch folder")
    target = os.path.realpath(path)
    if target == area or not is_inside(target, area):
        raise ValueError(f"refusing to remove {path}: it is not inside the scratch area {area}")
    if not os.path.lexists(target):
        return
    if os.path.isdir(target):
        shutil.rmtree(target)
    else:
        os.unlink(target)


_CLAIMED_PREFIX = ".pruning-"  # scratch_dir prefixes never start with a dot


def claim_stale_scratch(max_age_s: float) -> list[tuple[Path, Path]]:
    """Rename scratch folders unused for ``max_age_s`` seconds out of reach; return
    (original path, claimed path) pairs for ``remove_scratch`` to delete.

    A rename is instant, so a caller can do it under the lock that guards reuse (a reused
    folder is touched under that lock) and delete the big trees after releasing it.
    Leftovers of an earlier claim (a crash mid-delete) are claimed again.
    """
    area = scratch_area()
    if not area.is_dir():
        return []
    cutoff = time.time() - max_age_s
    claimed = []
    for entry in os.scandir(area):
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name.startswith(_CLAIMED_PREFIX):
            claimed.append((Path(entry.path), Path(entry.path)))
        elif entry.stat(follow_symlinks=False).st_mtime < cutoff:
            target = Path(tempfile.mkdtemp(prefix=_CLAIMED_PREFIX, dir=area))
            os.replace(entry.path, target)  # replaces the empty placeholder atomically
            claimed.append((Path(entry.path), target))
    return claimed


def prune_scratch(max_age_s: float) -> list[Path]:
    """Remove scratch folders not used for ``max_age_s`` seconds; return what was removed.

    Callers touch a folder (``os.utime``) when they reuse an upload, so in-use folders stay.
    """
    removed = []
    for original, claimed in claim_stale_scratch(max_age_s):
        remove_scratch(claimed)
        if original != claimed:
            removed.append(original)
    return removed


def scratch_folder_of(path: str | Path) -> Path:
    """The scratch folder (a direct child of the scratch area) that holds ``path``."""
    area = Path(os.path.realpath(scratch_area()))
    relative = Path(os.path.realpath(path)).relative_to(area)
    return area / relative.parts[0]
