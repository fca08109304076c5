"""The errors gtpred raises on purpose, each carrying its facts and the fix.

    GtpredError                 base: ``message`` (what is wrong) + ``fix`` (what to do)
    ├── FolderError             the image folder cannot be evaluated (missing, no class folders)
    ├── ClassOrderError         a class-order spec or labels file does not fit the folder
    ├── ModelError              the model file cannot be loaded or used
    │   └── OutputWidthError    the model's output width does not match the number of classes
    ├── PreprocessError         the preprocessing choice does not fit the model's input
    ├── UploadError             an uploaded file or a typed server path is refused
    └── InvariantError          a check of our own ordering promise failed (a bug: report it)

The CLI and the app turn these into one clear line each; anything else is a bug and is logged.
"""

from __future__ import annotations

from pathlib import Path


class GtpredError(Exception):
    """A problem the user can fix; ``str(err)`` is the whole sentence to show."""

    def __init__(self, message: str, fix: str = "", path: str | Path | None = None) -> None:
        self.message = message
        self.fix = fix
        self.path = str(path) if path is not None else None
        super().__init__(f"{message} {fix}".strip())


class FolderError(GtpredError):
    """The image folder is missing, unreadable or has no class folders."""


class ClassOrderError(GtpredError):
    """A class order (keras/natural/labels file) does not fit the folder's classes."""

    def __init__(
        self,
        message: str,
        fix: str = "",
        path: str | Path | None = None,
        missing_in_folder: tuple[str, ...] = (),
        missing_in_order: tuple[str, ...] = (),
    ) -> None:
        self.missing_in_folder = missing_in_folder
        self.missing_in_order = missing_in_order
        super().__init__(message, fix, path)


class ModelError(GtpredError):
    """The model cannot be loaded, is refused (unsafe), or has an unusable input/output."""


class OutputWidthError(ModelError):
    """The classes the model's output head means differ from the folder's classes."""

    def __init__(
        self,
        output_width: int,
        n_classes: int,
        path: str | Path | None = None,
        implied_classes: int | None = None,
        head: str | None = None,
    ) -> None:
        self.output_width = output_width
        self.n_classes = n_classes
        self.implied_classes = output_width if implied_classes is None else implied_classes
        self.head = None if head is None else str(head)
        meaning = ""
        if self.implied_classes != output_width:
            meaning = f" (a {self.head or 'one-unit'} head: {self.implied_classes} classes)"
        super().__init__(
            f"The model outputs {output_width} values per image{meaning} but the folder has "
            f"{n_classes} {'class' if n_classes == 1 else 'classes'}.",
            "Choose the image folder the model was trained for (one sub-folder per class), "
            "or the model trained for these classes.",
            path,
        )


class PreprocessError(GtpredError):
    """The preprocessing mode is unknown or does not fit the model's channels."""


class UploadError(GtpredError):
    """An uploaded file or a typed server path is refused (unsafe, too big, or outside the root)."""


class InvariantError(GtpredError):
    """An internal ordering/count check failed: results would be mis-paired, so we stop."""
