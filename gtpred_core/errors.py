"""Every error gtpred raises on purpose, in one tree, each carrying its facts and the fix.

    GtpredError                   base: message (what is wrong), fix (what to do), path (which
    │                             file/folder, if any), received / expected (when it applies)
    ├── FolderError               the image folder cannot be evaluated (missing, no class folders)
    │   └── LabelsCsvError        a labels CSV cannot be used: columns (what it has)
    ├── ClassOrderError           a class order does not fit the folder: missing_in_folder,
    │                             missing_in_order
    ├── ModelError                the model file cannot be loaded or used (refused, not a model)
    │   └── OutputWidthError      the classes the model's head means are not the folder's:
    │                             output_width, implied_classes, head, n_classes
    ├── PreprocessError           the preprocessing choice does not fit the model's input
    ├── UploadError               an uploaded file or a typed server path is refused
    ├── StoreError                the run store cannot be opened or written, or a run is not in it
    │   ├── RunDeletedError       the run was deleted: run_id, deleted_at, restorable
    │   └── RunNameError          a run name the store refuses (too long, control characters): name
    ├── ComparisonError           two runs cannot be compared: only_in_a, only_in_b
    ├── SourceShufflesError       a validation source shuffles: predictions could not be paired
    ├── BackendError              an inference backend cannot run
    │   └── RayMissingError       the Ray backend was asked for but Ray is not installed
    ├── WorkerError               the inference worker died, ran out of memory or time: limit
    │   └── UnexpectedWorkerError a bug in the worker: error_type, log_ref (the traceback is in
    │                             the worker's log under that reference)
    └── InvariantError            a check of our own ordering promise failed (a bug: report it)

The CLI and the app turn these into one clear line each; anything else is a bug and is logged
with its traceback. Each error pickles with all its fields, so one raised in the worker process
arrives in the caller as the same class with the same facts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _rebuild(cls: type[GtpredError], args: tuple, state: dict[str, Any]) -> GtpredError:
    """Unpickle an error without calling its ``__init__`` (whose signature varies by class)."""
    err = Exception.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class GtpredError(Exception):
    """A problem the user can fix; ``str(err)`` is the whole sentence to show.

    ``received`` / ``expected`` state the facts (what was given, what fits) for callers that
    show or test them separately; ``message`` already says them in words.
    """

    def __init__(
        self,
        message: str,
        fix: str = "",
        path: str | Path | None = None,
        *,
        received: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.message = message
        self.fix = fix
        self.path = str(path) if path is not None else None
        self.received = received
        self.expected = expected
        super().__init__(f"{message} {fix}".strip())

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class FolderError(GtpredError):
    """The image folder is missing, unreadable or has no class folders."""


class LabelsCsvError(FolderError):
    """A labels CSV cannot be used: unreadable, no file or label column (``columns``: what it
    has), or no rows."""

    def __init__(self, message: str, fix: str = "", path: str | Path | None = None, columns: tuple[str, ...] = ()) -> None:
        self.columns = columns
        super().__init__(message, fix, path)


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
        self.missing_in_folder = tuple(missing_in_folder)
        self.missing_in_order = tuple(missing_in_order)
        super().__init__(message, fix, path)


class ModelError(GtpredError):
    """The model cannot be loaded, is refused (unsafe, not a model), or has an unusable input/output."""


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
            meaning = f": a {self.head or 'one-unit'} head means {self.implied_classes} classes"
        folder_classes = f"{n_classes} {'class' if n_classes == 1 else 'classes'}"
        super().__init__(
            f"The model outputs {output_width} values per image but the folder has "
            f"{folder_classes}{meaning}.",
            "Choose the image folder the model was trained for (one sub-folder per class), "
            "or the model trained for these classes.",
            path,
            received=f"{folder_classes} in the folder",
            expected=f"{self.implied_classes} classes",
        )


class PreprocessError(GtpredError):
    """The preprocessing mode is unknown or does not fit the model's channels."""


class UploadError(GtpredError):
    """An uploaded file or a typed server path is refused (unsafe, too big, or outside the root)."""


class StoreError(GtpredError):
    """The run store cannot be opened or written, or a run is not in it (``path``: the store)."""


class ComparisonError(GtpredError):
    """Two runs cannot be compared (different classes, or no file in common)."""

    def __init__(
        self,
        message: str,
        fix: str = "",
        path: str | Path | None = None,
        *,
        only_in_a: tuple[str, ...] = (),
        only_in_b: tuple[str, ...] = (),
    ) -> None:
        self.only_in_a = tuple(only_in_a)
        self.only_in_b = tuple(only_in_b)
        super().__init__(message, fix, path)


class SourceShufflesError(GtpredError):
    """A validation source shuffles, so per-epoch predictions could not be paired with files."""


class BackendError(GtpredError):
    """An inference backend is unknown or cannot run here."""


class RayMissingError(BackendError):
    """The Ray backend was asked for but Ray is not installed."""


class WorkerError(GtpredError):
    """The worker process died, ran out of memory, or ran past its time limit (``limit``)."""

    def __init__(self, message: str, fix: str = "", path: str | Path | None = None, *, limit: str | None = None) -> None:
        self.limit = limit
        super().__init__(message, fix, path)


class UnexpectedWorkerError(WorkerError):
    """A bug met in the worker: the traceback is in the worker's log under ``log_ref``."""

    def __init__(self, error_type: str, log_ref: str) -> None:
        self.error_type = error_type
        self.log_ref = log_ref
        super().__init__(
            f"The evaluation stopped on an unexpected error ({error_type}); it was logged on the "
            f"server as {log_ref}.",
            f"Try again; if it happens again, tell the server's admin the reference {log_ref}.",
        )


class InvariantError(GtpredError):
    """An internal ordering/count check failed: results would be mis-paired, so we stop."""


class RunDeletedError(StoreError):
    """The run was deleted: hidden from every list, restorable by the server's admin until it
    is purged (then only a tombstone remains and ``restorable`` is False)."""

    def __init__(self, run_id: int, deleted_at: str, restorable: bool, path: str | Path | None = None) -> None:
        self.run_id = run_id
        self.deleted_at = deleted_at
        self.restorable = restorable
        when = deleted_at.replace("T", " ")[:16] + " UTC" if deleted_at else "an unknown date"
        if restorable:
            message = f"Run {run_id} was deleted on {when}."
            fix = f"The server's admin can restore it with: python -m gtpred_core runs restore {run_id}"
        else:
            message = f"Run {run_id} was deleted on {when} and has since been purged: its predictions are gone."
            fix = "It cannot be restored; evaluate the model again to get its results back."
        super().__init__(message, fix, path)


class RunNameError(StoreError):
    """A run name that cannot be stored: too long, or holding control or escape characters."""

    def __init__(self, message: str, fix: str, name: str) -> None:
        self.name = name
        super().__init__(message, fix)
