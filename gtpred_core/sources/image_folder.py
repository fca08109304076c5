"""An image folder given by its path: gtpred reads it itself, with its ordered pipeline."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from ..folder import ImageFolder, index_image_folder
from .adapter import DataSource


class ImageFolderSource(DataSource):
    """A class-folder tree. Never shuffled or augmented: gtpred lists it in a fixed order and
    evaluates it with ``evaluate_folder`` (class order, preprocessing and skipped files included)."""

    kind = "folder"
    description = "an image folder"

    def __init__(self, source: str | Path) -> None:
        super().__init__(source)
        self.root = Path(source)

    @cached_property
    def folder(self) -> ImageFolder:
        return index_image_folder(self.root)

    def stored_name(self) -> str:
        return str(self.root)

    def n_samples(self) -> int:
        return len(self.folder.files)

    def class_names(self) -> tuple[str, ...]:
        return ()  # the folder assigns no indices: the class order is chosen when it is evaluated

    def labels_repeat(self, batch_size: int) -> bool:
        return True  # the same sorted file list every time
