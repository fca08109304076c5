"""Evaluate a model on an image folder: request → index → class order → head → ordered inference → Run."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .class_order import ClassOrder, resolve_class_order
from .diagnostics import RunWarning, WarningCode
from .errors import FolderError
from .fingerprints import file_list_fingerprint, file_sha256, size_in_bytes
from .folder import ImageFolder, index_image_folder
from .inference import ProgressCallback, RawPredictions, SkippedFile, predict_files
from .model import Head, LoadedModel, load_model, resolve_head
from .model import check_model_fits as check_model_fits  # its home moved to model.py; kept here
from .request import BACKENDS as BACKENDS  # its home is request.py; kept here for the pages
from .request import EvaluationRequest
from .run import Run, RunInfo, RunStatus, assemble_run


def detect_head(outputs: np.ndarray) -> Head:
    """Which head produced these raw outputs: the fallback when the model's graph cannot tell.

    Softmax rows are in 0..1 and sum to 1; other N-way rows are logits. One column is a sigmoid
    unit for class 1, or its logit when values fall outside 0..1. Evaluation calls it on the
    first batch only, on every path, so streamed and final probabilities are the same.
    """
    in_unit_range = bool(np.all((outputs >= 0) & (outputs <= 1))) if outputs.size else True
    if outputs.shape[1] == 1:
        return Head.SIGMOID if in_unit_range else Head.SIGMOID_LOGIT
    sums_to_one = bool(np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3)) if outputs.size else True
    return Head.SOFTMAX if in_unit_range and sums_to_one else Head.LOGITS


def probabilities_for_head(outputs: np.ndarray, head: str) -> np.ndarray:
    """Class probabilities from raw outputs; a sigmoid unit p becomes the columns (1 - p, p),
    so argmax is the 0.5 threshold."""
    outputs = outputs.astype(np.float32, copy=False)
    if head in ("sigmoid", "sigmoid-logit"):
        p = outputs[:, 0] if head == "sigmoid" else 1 / (1 + np.exp(-outputs[:, 0].astype(np.float64)))
        return np.stack([1 - p, p], axis=1).astype(np.float32)
    if head == "softmax":
        return outputs
    shifted = outputs.astype(np.float64) - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def outputs_to_probabilities(outputs: np.ndarray, head: Head | None = None) -> tuple[np.ndarray, Head]:
    """Class probabilities from raw outputs, and the head used (``head``, else read from them)."""
    head = head or detect_head(outputs)
    return probabilities_for_head(outputs, head), head


class RunSink(Protocol):
    """Receives a run as it is made (``RunStore.writer()`` is one): start, rows, then the end.

    ``start``/``finish`` return the stored id, or None from a guarded writer whose store failed.
    """

    def start(self, info: RunInfo, class_names: Sequence[str]) -> int | None: ...

    def add_rows(self, paths: Sequence[str], y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray) -> None: ...

    def finish(self, run: Run) -> int | None: ...

    def fail(self) -> None: ...


def _context_warnings(
    folder: ImageFolder, head: str, skipped: list[SkippedFile], completed: bool, n_seen: int
) -> list[RunWarning]:
    warnings: list[RunWarning] = []
    if head in (Head.LOGITS, Head.SIGMOID_LOGIT):
        warnings.append(
            RunWarning(
                WarningCode.LOGITS_OUTPUT,
                "The model outputs logits, not probabilities (its last layer has no softmax/"
                "sigmoid). gtpred applied one to get confidences; predicted classes are "
                "unchanged. If you trained with from_logits=True this is expected.",
            )
        )
    for name in folder.empty_classes:
        warnings.append(
            RunWarning(
                WarningCode.EMPTY_CLASS,
                f"The class folder '{name}' holds no images. It is kept as a class, as Keras "
                "keeps it, so output indices stay as in training; its metrics are zero.",
            )
        )
    if skipped:
        warnings.append(
            RunWarning(
                WarningCode.SKIPPED_FILES,
                f"{len(skipped)} image file(s) could not be evaluated and are left out of every "
                f"number (first: {skipped[0].path}: {skipped[0].reason}).",
            )
        )
    if folder.ignored:
        warnings.append(
            RunWarning(
                WarningCode.IGNORED_FILES,
                folder.describe_ignored(),
            )
        )
    if not completed:
        warnings.append(
            RunWarning(
                WarningCode.CANCELLED,
                f"The run was cancelled after {n_seen} of {len(folder.files)} images; the "
                "numbers cover only those.",
            )
        )
    return warnings


def _checked_train_images(train_images: Path | None) -> Path | None:
    """The training folder to search for leaked copies, checked before anything runs."""
    if train_images is None:
        return None
    if not train_images.is_dir():
        raise FolderError(
            f"The training folder {train_images.name} (searched for copies of the evaluated images) "
            + ("is not a folder." if train_images.exists() else "does not exist."),
            "Give the folder the model was trained on (--train-images), or leave it out.",
            train_images,
        )
    return train_images.resolve()


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
    sink: RunSink | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    head: str = "auto",
    embeddings: bool = False,
    train_images: str | Path | None = None,
) -> Run:
    """The library's one call: ``evaluate`` on an ``EvaluationRequest`` made of these arguments.

    ``class_order`` is ``"keras"`` (folder sort, the default), ``"natural"``, a labels file
    path, or a ClassOrder. ``head="logit"`` says the outputs are raw scores (needed for a
    one-unit output without a sigmoid); "auto" reads the head from the model. See ``evaluate``
    for ``progress``, ``cancel``, ``sink`` and the backends.
    """
    request = EvaluationRequest(
        model=model if isinstance(model, LoadedModel) else Path(model),
        images=images if isinstance(images, ImageFolder) else Path(images),
        class_order=class_order,
        preprocess=preprocess,
        batch_size=batch_size,
        image_size=image_size,
        head=head,
        backend=backend,
        ray_address=ray_address,
        embeddings=embeddings,
        train_images=Path(train_images) if train_images is not None else None,
    )
    return evaluate(request, progress=progress, cancel=cancel, sink=sink)


def evaluate(
    request: EvaluationRequest,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    sink: RunSink | None = None,
) -> Run:
    """Predict every image of ``request.images`` once, in folder order, and return the paired Run.

    ``progress(done, total)`` is called after each batch; setting ``cancel`` stops after the
    current batch and returns the part done, status "cancelled". ``sink`` (e.g.
    ``RunStore.writer()``; by default ``request.open_sink()``, a guarded writer into
    ``request.store_path`` if any) receives the paired rows batch by batch, so a crash loses at
    most the chunk in flight and a cancelled run keeps what was done. ``backend="ray"`` runs
    inference on Ray Data (``ray_address`` joins a cluster); the result is the same, in the same
    order. The model, class order and head are all checked before anything is stored.
    """
    evaluation = PreparedEvaluation(request, sink)
    try:
        if request.backend == "ray":
            from .ray_backend import predict_files_on_ray

            raw = predict_files_on_ray(
                evaluation.model, evaluation.folder.absolute_paths(), request, progress=progress, cancel=cancel,
                on_batch=evaluation.on_batch,
            )  # fmt: skip
        else:
            raw = predict_files(
                evaluation.model,
                evaluation.folder.absolute_paths(),
                image_size=request.image_size,
                preprocess=request.preprocess,
                batch_size=request.batch_size,
                progress=progress,
                cancel=cancel,
                on_batch=evaluation.on_batch,
                with_features=evaluation.with_features,
            )
    except BaseException:
        evaluation.fail()
        raise
    return evaluation.finish(raw)


class PreparedEvaluation:
    """One evaluation between its checks and its Run: ``evaluate`` runs one, ``evaluate_models``
    several on one ordered pass (the same code on each side of the prediction, so each Run is
    the one evaluating that model alone gives).

    Making one indexes the folder (unless given), resolves the class order, loads the model and
    checks that it fits, and starts the sink: everything that can refuse does so before any image
    is read.
    """

    def __init__(self, request: EvaluationRequest, sink: RunSink | None = None) -> None:
        from . import __version__

        self.started = time.perf_counter()
        self.request = request
        images, class_order = request.images, request.class_order
        folder = images if isinstance(images, ImageFolder) else index_image_folder(images)
        order = (
            class_order
            if isinstance(class_order, ClassOrder)
            else resolve_class_order(class_order, folder.class_names, folder.counts)
        )
        self.train_root = _checked_train_images(request.train_images)
        loaded = request.model if isinstance(request.model, LoadedModel) else load_model(request.model)
        decided_head = resolve_head(loaded, request.head)  # None: the graph cannot tell (a SavedModel)
        check_model_fits(loaded, len(order.names), decided_head)
        self.folder, self.order, self.model = folder, order, loaded
        self.sink = sink if sink is not None else request.open_sink()
        size = request.image_size or loaded.input_size
        self.info = RunInfo(
            model=str(loaded.path),
            model_bytes=size_in_bytes(loaded.path) if loaded.path.exists() else None,
            model_sha256=file_sha256(loaded.path) if loaded.path.exists() else None,
            images_fingerprint=file_list_fingerprint(folder.files),
            images=str(folder.root),
            class_order_source=order.source,
            preprocess=request.preprocess,
            batch_size=request.batch_size,
            input_size=(int(size[0] or 0), int(size[1] or 0)),  # 0: any size (predict_files refuses)
            channels=loaded.channels,
            rescales_itself=loaded.rescales_itself,
            folder_classes=folder.class_names,
            class_counts=tuple(folder.counts.values()),
            n_files=len(folder.files),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            gtpred_version=__version__,
            train_images=str(self.train_root) if self.train_root is not None else None,
        )
        #: Penultimate features need a Keras model's layers; otherwise the map uses the probabilities.
        self.with_features = request.embeddings and loaded.keras_model is not None
        position = {name: i for i, name in enumerate(order.names)}
        self.true_index = np.array([position[folder.class_names[label]] for label in folder.labels], dtype=np.int64)
        # The model's head, or (when its graph cannot tell) the first batch's: the same on every path,
        # so a run streamed into a sink and one returned alone have the same probabilities.
        self.heads: list[Head] = [decided_head] if decided_head is not None else []
        #: What the prediction should call with each batch (None: nothing to do per batch).
        self.on_batch = self._pair_batch if self.sink is not None or not self.heads else None
        if self.sink is not None:
            self.sink.start(self.info, order.names)

    def _pair_batch(self, indices: np.ndarray, outputs: np.ndarray) -> None:
        if not self.heads:
            self.heads.append(detect_head(outputs[: self.request.batch_size]))
        if self.sink is None:
            return
        batch_probabilities = probabilities_for_head(outputs, self.heads[0])
        self.sink.add_rows(
            [self.folder.files[i] for i in indices],
            self.true_index[indices],
            batch_probabilities.argmax(axis=1).astype(np.int64),
            batch_probabilities,
        )

    def fail(self) -> None:
        """The prediction failed: the sink drops what it began."""
        if self.sink is not None:
            self.sink.fail()

    def finish(self, raw: RawPredictions) -> Run:
        """The Run of this model's predictions (and the sink's end)."""
        request, folder, order = self.request, self.folder, self.order
        final_head = self.heads[0] if self.heads else detect_head(raw.outputs)  # no batch came: nothing to read
        probabilities = probabilities_for_head(raw.outputs, final_head)
        y_true = self.true_index[raw.indices]
        y_pred = probabilities.argmax(axis=1).astype(np.int64) if len(raw.indices) else np.zeros(0, np.int64)
        skipped = [SkippedFile(folder.files[i], reason) for i, reason in raw.skipped]
        paths = [folder.files[i] for i in raw.indices]
        embedding, embedding_method = None, None
        if request.embeddings:
            from .embeddings import METHOD_PENULTIMATE, METHOD_PROBABILITIES, embedding_map

            features = raw.features if self.with_features and raw.features is not None else probabilities
            embedding = embedding_map(features)
            embedding_method = METHOD_PENULTIMATE if self.with_features else METHOD_PROBABILITIES
        leakage = None
        if self.train_root is not None:
            from .leakage import find_leakage

            leakage = find_leakage(folder.root, paths, self.train_root)
        info = replace(
            self.info,
            head=final_head,
            status=RunStatus.COMPLETE if raw.completed else RunStatus.CANCELLED,
            seconds=round(time.perf_counter() - self.started, 3),
        )
        run = assemble_run(
            class_names=order.names,
            paths=paths,
            y_true=y_true,
            y_pred=y_pred,
            probabilities=probabilities,
            context_warnings=_context_warnings(folder, final_head, skipped, raw.completed, raw.n_seen),
            skipped=skipped,
            ignored=folder.ignored,
            info=info,
            embedding=embedding,
            embedding_method=embedding_method,
            leakage=leakage,
        )
        if self.sink is not None:
            self.sink.finish(run)
        return run
