"""Index an image folder laid out one sub-folder per class, exactly as Keras would.

No image is opened here: indexing 100,000 files costs one directory walk, not one decode each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


def _walk_class_folder(root: Path, class_name: str) -> tuple[list[str], list[str]]:
    """Images and ignored files under one class folder, in Keras' walk order.

    Keras walks the class folder recursively, sorts the walked directories by path and the
    files within each; we do the same so that our file order equals ``file_paths`` of
    ``image_dataset_from_directory(shuffle=False)``. Hidden files are ignored (a macOS
    ``._x.jpg`` would otherwise fail to decode); hidden sub-folders are not entered.
    """
    images: list[str] = []
    ignored: list[str] = []
    class_dir = root / class_name
    walked = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        walked.append((dirpath, filenames))
    for dirpath, filenames in sorted(walked):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for fname in sorted(filenames):
            rel = f"{rel_dir}/{fname}"
            if is_image_file(fname) and not fname.startswith("."):
                images.append(rel)
            else:
                ignored.append(rel)
    return images, ignored


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
    ignored = sorted(
entry.name for entry in os.scandir(root) if entry.is_file())
    for index, name in enumerate(class_names):
        images, not_images = _walk_class_folder(root, name)
        files.extend(images)
        labels.extend([index] * len(images))
        ignored.extend(not_images)
    return ImageFolder(
        root=root,
        class_names=tuple(class_names),
        files=tuple(files),
        labels=tuple(labels),
        ignored=tuple(ignored),
    )
