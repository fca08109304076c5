"""Index an image folder laid out one sub-folder per class, exactly as Keras would.

No image is opened here: indexing 100,000 files costs one directory walk, not one decode each.
Only regular files inside the folder are indexed: a named pipe would hang the reader, a link to
``/dev/zero`` would fill memory, and a link out of the folder would read what the folder's owner
never offered. Those are listed as ignored, each with its reason, and never opened.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import FolderError

#: What ``keras.utils.image_dataset_from_directory`` accepts (compared lower-cased).
IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

#: Folders that hold no class even though they are directories (macOS zip litter).
SKIPPED_FOLDER_NAMES: frozenset[str] = frozenset({"__MACOSX"})


@dataclass(frozen=True)
class ImageFolder:
    """An indexed folder: classes in Keras' order and every image file, in evaluation order.

    ``files`` lists class after class (in ``class_names`` order), each class's files in the
    order Keras lists them; ``labels[i]`` is the index into ``class_names`` of ``files[i]``.
    Paths are relative to ``root`` and ``/``-separated on every platform.
    """

    root: Path
    class_names: tuple[str, ...]
    files: tuple[str, ...]
    labels: tuple[int, ...]
    ignored: tuple[str, ...]
    #: Why an ignored file was not indexed, when it is not simply a non-image (a named pipe, a
    #: link out of the folder, a file a labels CSV names that is not there).
    ignored_reasons: Mapping[str, str] = field(default_factory=dict)
    #: Where files and labels came from: "" for class sub-folders, else e.g. "labels.csv".
    source: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """Image count per class, in class order (0 for an empty class folder)."""
        counts = dict.fromkeys(self.class_names, 0)
        for label in self.labels:
            counts[self.class_names[label]] += 1
        return counts

    @property
    def empty_classes(self) -> tuple[str, ...]:
        return tuple(name for name, n in self.counts.items() if n == 0)

    def absolute_paths(self) -> list[str]:
        prefix = os.path.join(str(self.root), "")  # joined as strings: 10x faster than Path
        return [prefix + rel for rel in self.files]

    def why_ignored(self, rel: str) -> str:
        return self.ignored_reasons.get(rel, NOT_AN_IMAGE)

    def describe_ignored(self) -> str:
        """One sentence for the run's warning: how many files were not evaluated, and why."""
        by_reason: dict[str, list[str]] = {}
        for rel in self.ignored:
            by_reason.setdefault(self.why_ignored(rel), []).append(rel)
        parts = [f"{reason}: {len(files)} (first: {files[0]})" for reason, files in by_reason.items()]
        return f"{len(self.ignored)} file(s) were not evaluated. {'; '.join(parts)}."


#: The reason of an ignored file that is simply not an image.
NOT_AN_IMAGE = "not an image Keras would load (.bmp .gif .jpeg .jpg .png)"
#: The reason of a file (or a link) that resolves outside the folder being indexed.
OUTSIDE_ROOT = "a link to a place outside the image folder (not read)"


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def is_inside(real_path: str, real_root: str) -> bool:
    """Whether a resolved path is ``real_root`` or under it (both from ``os.path.realpath``)."""
    return real_path == real_root or real_path.startswith(os.path.join(real_root, ""))


def refusal(path: str, real_root: str) -> str | None:
    """Why ``path`` must not be read, or None: it must resolve (links followed) inside
    ``real_root`` to a regular file. Never opens the file: ``stat`` only, so a named pipe
    cannot block and a device cannot be read."""
    real = os.path.realpath(path)
    if not is_inside(real, real_root):
        return OUTSIDE_ROOT
    try:
        mode = os.stat(real).st_mode
    except OSError as err:
        return "a broken link (its target is missing)" if os.path.islink(path) else f"cannot be read: {err.strerror}"
    if not stat.S_ISREG(mode):
        return f"{_kind_of(mode)}, not a regular file (not read)"
    return None


def read_refusal(path: str, max_bytes: int | None) -> str | None:
    """Why ``path`` must not be read right now, or None: not a regular file (links followed)
    or larger than ``max_bytes``. The last check before a read: a file swapped for a named pipe
    or a link to a device after indexing is caught here, before any byte is read."""
    try:
        info = os.stat(path)
    except OSError as err:
        return f"cannot be read: {err.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"{_kind_of(info.st_mode)}, not a regular file (not read)"
    if max_bytes is not None and info.st_size > max_bytes:
        return (
            f"{info.st_size / 2**20:,.0f} MB, over the per-image limit of {max_bytes / 2**20:,.0f} MB "
            "(GTPRED_MAX_IMAGE_MB; not read)"
        )
    return None


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_FOLDER_NAMES


def list_class_folders(root: Path) -> list[str]:
    """Class folder names sorted with plain ``sorted()``: Keras' order (``Class_10`` < ``Class_2``)."""
    return sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not _is_hidden(entry.name)
    )


def _walk_class_folder(
    root: Path, class_name: str, real_root: str
) -> tuple[list[str], list[str], dict[str, str]]:
    """Images, ignored files and the reasons of refused ones under one class folder, in Keras'
    walk order.

    Keras walks the class folder recursively, sorts the walked directories by path and the
    files within each; we do the same so that our file order equals ``file_paths`` of
    ``image_dataset_from_directory(shuffle=False)``. Hidden files are ignored (a macOS
    ``._x.jpg`` would otherwise fail to decode); hidden sub-folders are not entered, nor linked
    ones (as ``os.walk`` without ``followlinks``). An image name that is a link, or not a regular
    file, is checked with ``refusal``: one ``stat`` for those only, none for plain files.
    """
    images: list[str] = []
    ignored: list[str] = []
    reasons: dict[str, str] = {}
    class_dir = str(root / class_name)
    if not is_inside(os.path.realpath(class_dir), real_root):
        # A linked class folder pointing out of the root: never walked (it could be ``/``). The
        # class stays, empty, so the output indices stay those Keras gives.
        return images, [f"{class_name}/"], {f"{class_name}/": OUTSIDE_ROOT}
    walked: list[tuple[str, list[os.DirEntry]]] = []
    pending = [class_dir]
    while pending:
        dirpath = pending.pop()
        try:
            entries = list(os.scandir(dirpath))
        except OSError:
            continue  # os.walk skips an unreadable folder the same way
        files = []
        for entry in entries:
            if entry.is_dir():  # follows links, as os.walk sorts them
                if not entry.is_symlink() and not _is_hidden(entry.name):
                    pending.append(entry.path)
            else:
                files.append(entry)
        walked.append((dirpath, files))
    for dirpath, entries in sorted(walked, key=lambda item: item[0]):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for entry in sorted(entries, key=lambda e: e.name):
            rel = f"{rel_dir}/{entry.name}"
            if not is_image_file(entry.name) or entry.name.startswith("."):
                ignored.append(rel)
                continue
            plain = entry.is_file(follow_symlinks=False)  # no syscall: the walk's own d_type
            reason = None if plain else refusal(entry.path, real_root)
            if reason is None:
                images.append(rel)
            else:
                ignored.append(rel)
                reasons[rel] = reason
    return images, ignored, reasons


def index_image_folder(root: str | Path) -> ImageFolder:
    """Index ``root``: one class per visible sub-folder, every image file in evaluation order.

    Raises FolderError when the folder is missing or has no class sub-folders. Empty class
    folders are kept as classes, as Keras keeps them. Non-image files are listed as ignored.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FolderError(f"Image folder not found: {root}.", "Check the path.", root)
    if not root.is_dir():
        raise FolderError(
            f"{root} is a file, not a folder.",
            "Point at a folder holding one sub-folder per class.",
            root,
        )
    try:
        class_names = list_class_folders(root)
    except OSError as err:
        raise FolderError(f"Cannot read the folder {root}: {err.strerror}.", "", root) from err
    if not class_names:
        raise FolderError(
            f"No class folders in {root}.",
            "Lay the images out one sub-folder per class, e.g. cats/a.jpg and dogs/b.jpg.",
            root,
        )
    files: list[str] = []
    labels: list[int] = []
    reasons: dict[str, str] = {}
    ignored = sorted(entry.name for entry in os.scandir(root) if entry.is_file())
    real_root = os.path.realpath(root)
    for index, name in enumerate(class_names):
        images, not_images, refused = _walk_class_folder(root, name, real_root)
        files.extend(images)
        labels.extend([index] * len(images))
        ignored.extend(not_images)
        reasons.update(refused)
    return ImageFolder(
        root=root,
        class_names=tuple(class_names),
        files=tuple(files),
        labels=tuple(labels),
        ignored=tuple(ignored),
        ignored_reasons=reasons,
    )
