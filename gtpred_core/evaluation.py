"""Evaluate a model on an image folder: index → class order → ordered inference → Run."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .class_order import ClassOrder, resolve_class_order
from .diagnostics import RunWarning
from .errors import OutputWidthError
from .fingerprints import file_list_fingerprint, file_sha256, size_in_bytes
from .folder import ImageFolder, index_image_folder
from .inference import ProgressCallback, SkippedFile, predict_files
from .model import LoadedModel, load_model
from .run import Run, RunInfo, assemble_run


def check_model_fits(model: LoadedModel, n_classes: int) -> None:
    """Refuse an output width that cannot mean these classes (1 sigmoid unit means 2 classes)."""
    if model.output_width == n_classes or (model.output_width == 1 and n_classes == 2):
        return
    raise OutputWidthError(model.output_width, n_classes, model.path)


def outputs_to_probabilities(outputs: np.ndarray) -> tuple[np.ndarray, str]:
    """Class probabilities from raw outputs, and which head produced them.

    Softmax rows (in 0..1, summing to 1) pass through; other N-way rows are logits and get a
    softmax. One column is a sigmoid unit for class 1 (a logit if outside 0..1) and becomes
    the two columns (1 - p, p), so argmax is the 0.5 threshold.
    """
    outputs = outputs.astype(np.float32, copy=False)
    in_unit_range = bool(np.all((outputs >= 0) & (outputs <= 1))) if outputs.size else True
    if outputs.shape[1] == 1:
        head = "sigmoid" if in_unit_range else "sigmoid-logit"
        p = outputs[:, 0] if in_unit_range else 1 / (1 + np.exp(-outputs[:, 0].astype(np.float64)))
        return np.stack([1 - p, p], axis=1).astype(np.float32), head
    sums_to_one = bool(np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3)) if outputs.size else True
    if in_unit_range and sums_to_one:
        return outputs, "softmax"
    shifted = outputs.astype(np.float64) - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32), "logits"


def _context_warnings(
    folder: ImageFolder, head: str, skipped: list[SkippedFile], completed: bool, n_seen: int
) -> list[RunWarning]:
    warnings: list[RunWarning] = []
    if head in ("logits", "sigmoid-logit"):
        warnings.append(
            RunWarning(
                "logits-output",
                "The model outputs logits, not probabilities (its last layer has no softmax/"
                "sigmoid). gtpred applied one to get confidences; predicted classes are "
                "unchanged. If you trained with from_logits=True this is expected.",
            )
        )
    for name in folder.empty_classes:
        warnings.append(
            RunWarning(
                "empty-class",
                f"The class folder '{name}' holds no images. It is kept as a class, as Keras "
                "keeps it, so output indices stay as in training; its metrics are zero.",
            )
        )
    if skipped:
        warnings.append(
            RunWarning(
                "skipped-files",
                f"{len(skipped)} image file(s) could not be evaluated and are left out of every "
                f"number (first: {skipped[0].path}: {skipped[0].reason}).",
            )
        )
    if folder.ignored:
        warnings.append(
            RunWarning(
                "ignored-files",
                f"{len(folder.ignored)} file(s) are not images Keras would load (.bmp .gif "
                f".jpeg .jpg .png) and were not evaluated (first: {folder.ignored[0]}).",
            )
        )
    if not completed:
        warnings.append(
            RunWarning(
                "cancelled",
                f"The run was cancelled after {n_seen} of {len(folder.files)} images; the "
                "numbers cover only those.",
            )
        )
    return warnings


def evaluate_folder(
    model: str | Path | LoadedModel,
    images: str | Path | ImageFolder,
    *,
    class_order: str | Path | ClassOrder = "keras",
    preprocess: str = "none",
    batch_size: int = 32,
    image_size: tuple[int, int] | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Run:
    """Predict every image of ``images`` once, in folder order, and return the paired Run.

    ``class_order`` is ``"keras"`` (folder sort, the default), ``"natural"``, a labels file
    path, or a ClassOrder. ``progress(done, total)`` is called after each batch; setting
    ``cancel`` stops after the current batch and returns the part done, status "cancelled".
    """
    from . import __version__

    started = time.perf_counter()
    folder = images if isinstance(images, ImageFolder) else index_image_folder(images)
    order = (
        class_order
        if isinstance(class_order, ClassOrder)
        else resolve_class_order(class_order, folder.class_names, folder.counts)
    )
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    check_model_fits(loaded, len(order.names))
    raw = predict_files(
        loaded,
        folder.absolute_paths(),
        image_size=image_size,
        preprocess=preprocess,
        batch_size=batch_size,
        progress=progress,
        cancel=cancel,
    )
    probabilities, head = outputs_to_probabilities(raw.outputs)
    position = {name: i for i, name in enumerate(order.names)}
    y_true = np.array([position[folder.class_names[folder.labels[i]]] for i in raw.indices], dtype=np.int64)
    y_pred = probabilities.argmax(axis=1).astype(np.int64) if len(raw.indices) else np.zeros(0, np.int64)
    skipped = [SkippedFile(folder.files[i], reason) for i, reason in raw.skipped]
    size = image_size or loaded.input_size
    paths = [folder.files[i] for i in raw.indices]
    info = RunInfo(
        model=str(loaded.path),
        model_bytes=size_in_bytes(loaded.path) if loaded.path.exists() else None,
        model_sha256=file_sha256(loaded.path) if loaded.path.exists() else None,
        images_fingerprint=file_list_fingerprint(folder.files),
        images=str(folder.root),
        class_order_source=order.source,
        preprocess=preprocess,
        batch_size=batch_size,
        head=head,
        input_size=(int(size[0]), int(size[1])),
        channels=loaded.channels,
        rescales_itself=loaded.rescales_itself,
        folder_classes=folder.class_names,
        class_counts=tuple(folder.counts.values()),
        status="complete" if raw.completed else "cancelled",
        n_files=len(folder.files),
        seconds=round(time.perf_counter() - started, 3),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        gtpred_version=__version__,
    )
    return assemble_run(
        class_names=order.names,
        paths=paths,
        y_true=y_true,
        y_pred=y_pred,
        probabilities=probabilities,
        context_warnings=_context_warnings(folder, head, skipped, raw.completed, raw.n_seen),
        skipped=skipped,
        ignored=folder.ignored,
        info=info,
    )
