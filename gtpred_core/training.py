"""Training-time tools: per-epoch validation predictions, paired prediction of a user's own data
source, an audit of a data source for the mistakes that silently mis-pair predictions, and saved
checkpoints evaluated as one training.

Every source is read through its adapter (``gtpred_core.sources.data_source``): an image folder
path (gtpred's ordered pipeline), ``(x, y)`` arrays, a ``tf.data.Dataset`` of ``(x, y)`` batches,
a ``keras.utils.PyDataset``, a legacy ``DirectoryIterator`` (``flow_from_directory``), and — for
``predict_pairs`` and the audit — a plain Python generator with a ``steps`` count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from .class_order import keras_order, natural_order
from .errors import GtpredError, SourceShufflesError
from .evaluation import outputs_to_probabilities
from .folder import index_image_folder
from .inference import DecodeCache, ProgressCallback, decoding_once
from .model import LoadedModel, from_keras_model, load_model, resolve_head
from .run import Run, RunInfo, assemble_run
from .sources import data_source
from .sources.adapter import BatchSource, labels_to_indices
from .sources.audit import AuditFinding, DataSourceAudit, Evidence, FindingKind
from .sources.image_folder import ImageFolderSource




# ----------------------------------------------------------------------------- paired prediction
def _as_loaded(model: Any) -> LoadedModel:
    """A path, a LoadedModel or a live Keras model, as a LoadedModel."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model)
    return from_keras_model(model, getattr(model, "name", "model"))


def _forward(model: LoadedModel) -> Callable[[Any], np.ndarray]:
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(x):
        return model.call(x)

    return lambda x: np.asarray(forward(tf.convert_to_tensor(x, dtype=tf.float32)))


def predict_pairs(
    model: Any,
    source: Any,
    steps: int | None = None,
    *,
    class_names: Sequence[str] | None = None,
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    head: str = "auto",
) -> Run:
    """Predict each batch of ``source`` once and keep that batch's targets beside it.

    Pairs stay right even when the source shuffles, because a prediction never leaves its
    batch's labels. Returns a Run (paths where the source knows them, else ``sample_000000``...).
    ``model`` is a Keras model or a path to one; an image folder goes through ``evaluate_folder``.
    """
    model = _as_loaded(model)
    adapter = data_source(source)
    if isinstance(adapter, ImageFolderSource):
        from .evaluation import evaluate_folder

        return evaluate_folder(model, adapter.root, batch_size=batch_size, progress=progress)
    return _pair_batches(model, adapter, steps, class_names, batch_size, progress, head)


def _pair_batches(
    model: LoadedModel,
    source: BatchSource,
    steps: int | None,
    class_names: Sequence[str] | None,
    batch_size: int,
    progress: ProgressCallback | None,
    head: str = "auto",
) -> Run:
    forward = _forward(model)
    outputs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    paths: list[str] = []
    total = source.n_samples() if steps is None else None
    started = time.perf_counter()
    for batch in source.batches(steps, batch_size):
        out = forward(batch.x)
        first = len(paths)
        outputs.append(out)
        labels.append(labels_to_indices(batch.y))
        paths.extend(batch.paths or [f"sample_{first + i:06d}" for i in range(len(out))])
        if progress is not None:
            progress(len(paths), total or len(paths))
    raw = np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)
    # the head the model's graph says (the same rule as every evaluation); its outputs only decide
    # when the graph cannot tell (a SavedModel)
    probabilities, used_head = outputs_to_probabilities(raw, resolve_head(model, head))
    names = tuple(class_names or source.class_names() or (str(i) for i in range(max(probabilities.shape[1], 2))))
    return assemble_run(
        class_names=names,
        paths=paths,
        y_true=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        y_pred=probabilities.argmax(axis=1),
        probabilities=probabilities,
        info=RunInfo(model=model.name, images=source.kind, head=used_head, batch_size=batch_size, seconds=round(time.perf_counter() - started, 3)),
    )


# ----------------------------------------------------------------------------- the audit
def audit_data_source(source: Any, steps: int | None = None, *, workers: int = 1) -> DataSourceAudit:
    """Check what a data source will really feed ``predict``/``evaluate``, each finding with its fix.

    Looks for (``FindingKind``, in this order): shuffling; ``steps`` x batch size that drops or
    repeats samples; random augmentation; classes indexed in a string sort that differs from
    natural order; a plain generator shared by several workers.
    """
    adapter = data_source(source)
    n_samples, batch_size = adapter.n_samples(), adapter.batch_size()
    findings: list[AuditFinding] = []
    shuffling = adapter.shuffling()
    if shuffling is not None:
        findings.append(FindingKind.SHUFFLE_ON.found(shuffling))
    findings.extend(_steps_findings(steps, n_samples, batch_size))
    augmentation = adapter.augmentation()
    if augmentation is not None:
        findings.append(FindingKind.AUGMENTATION_ON.found(augmentation))
    names = adapter.class_names()
    if names and keras_order(names) != natural_order(names) and names == keras_order(names):
        findings.append(FindingKind.CLASS_ORDER_STRING_SORT.found(Evidence(f"the source indexes {', '.join(names[:4])}, ... in that order")))
    if workers > 1 and not adapter.keeps_order_with_workers:
        findings.append(FindingKind.GENERATOR_WITH_WORKERS.found(Evidence(f"{adapter.description} shared by {workers} workers")))
    return DataSourceAudit(adapter.kind, n_samples, batch_size, tuple(findings))


def _steps_findings(steps: int | None, n_samples: int | None, batch_size: int | None) -> list[AuditFinding]:
    if steps is None or n_samples is None or not batch_size:
        return []
    needed, seen = -(-n_samples // batch_size), steps * batch_size
    if steps < needed:
        return [
            FindingKind.STEPS_DROP_SAMPLES.found(
                Evidence(
                    f"steps={steps} x batch size {batch_size} = {seen} < {n_samples} samples, so the last "
                    f"{n_samples - seen} sample(s) are never predicted",
                    f"steps={needed}",
                )
            )
        ]
    if steps > needed:
        return [
            FindingKind.STEPS_REPEAT_SAMPLES.found(
                Evidence(f"steps={steps} covers {seen} samples but there are only {n_samples}", f"steps={needed}")
            )
        ]
    return []


# ----------------------------------------------------------------------------- the callback
class PredictionRecorder(keras.callbacks.Callback):
    """Record the validation set's ``y_true``, ``y_pred`` and probabilities at the end of epochs.

    No patching of Keras: at the end of every ``every``-th epoch the model predicts
    ``validation_data`` in a fixed order (an image folder is decoded on the first recorded epoch
    and replayed from memory afterwards, see ``DecodeCache``); each epoch's Run (with the epoch's logs) is kept in
    ``self.epochs`` and, when ``store`` is given, stored as one training run. A source that
    shuffles is refused up front, because its predictions could not be paired with files.
    """

    def __init__(
        self,
        validation_data: Any,
        every: int = 1,
        *,
        store: Any = None,
        name: str | None = None,
        class_names: Sequence[str] | None = None,
        class_order: str = "keras",
        preprocess: str = "none",
        batch_size: int = 32,
        out_file: str | Path | None = None,
    ) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.validation_data = validation_data
        self.every = every
        self.store = store
        self.name = name
        self.class_names = tuple(class_names) if class_names else None
        self.class_order = class_order
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.out_file = Path(out_file) if out_file else None
        self.epochs: list[tuple[int, dict[str, float], Run]] = []
        self.seconds_per_record: list[float] = []
        self.training_id: int | None = None
        #: An image folder's decoded images, kept from the first recorded epoch (up to
        #: ``GTPRED_DECODE_CACHE_MB``) so later epochs only run the model.
        self.decoded = DecodeCache()
        self._source = data_source(validation_data)
        self._check_order_is_fixed()

    def _check_order_is_fixed(self) -> None:
        source = self._source
        if not source.repeatable:
            raise SourceShufflesError(
                f"{source.description.capitalize()} cannot be read twice in the same order.",
                "Pass an image folder, (x, y) arrays, a tf.data.Dataset or a PyDataset.",
            )
        shuffling = source.shuffling()
        if shuffling is not None:
            raise SourceShufflesError(
                f"The validation data shuffles ({shuffling.facts}): each epoch would see the images in a "
                "new order, so recorded predictions could not be paired with files and labels.",
                f"Build it with {shuffling.fix_here}.",
            )
        if not source.labels_repeat(self.batch_size):
            raise SourceShufflesError(
                "The validation labels differ between two passes over the data: the source shuffles, so "
                "recorded predictions could not be paired with files.",
                "Make the validation source deterministic (no shuffling in __getitem__ or on_epoch_end).",
            )

    def _predict(self) -> Run:
        model = from_keras_model(self.model, self.model.name)
        if isinstance(self._source, ImageFolderSource):
            from .evaluation import evaluate_folder

            with decoding_once(self.decoded):  # the first recorded epoch decodes, later ones replay
                return evaluate_folder(
                    model, self._source.folder, class_order=self.class_order, preprocess=self.preprocess, batch_size=self.batch_size
                )
        return _pair_batches(model, self._source, None, self.class_names, self.batch_size, None)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.store is not None:
            name = self.name or f"{self.model.name} training"
            self.training_id = self.store.start_training(name, self._source.stored_name())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        started = time.perf_counter()
        run = self._predict()
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.epochs.append((epoch + 1, logs, run))
        if self.store is not None:
            self.store.save(run, name=f"epoch {epoch + 1}", training_id=self.training_id, epoch=epoch + 1, logs=logs)
        if self.out_file is not None:
            self._write_file(self.out_file)
        self.seconds_per_record.append(time.perf_counter() - started)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.store is not None and self.training_id is not None:
            self.store.finish_training(self.training_id)

    def _write_file(self, out_file: Path) -> None:
        """All recorded epochs as one ``.npz``: paths, y_true, and per-epoch y_pred/probabilities."""
        epochs = [e for e, _, _ in self.epochs]
        runs = [r for _, _, r in self.epochs]
        np.savez_compressed(
            out_file,
            epochs=np.array(epochs),
            paths=np.array(runs[0].paths),
            class_names=np.array(runs[0].class_names),
            y_true=runs[0].y_true,
            y_pred=np.stack([r.y_pred for r in runs]),
            probabilities=np.stack([r.probabilities for r in runs]),
        )


# ----------------------------------------------------------------------------- checkpoints
def evaluate_checkpoints(
    checkpoints: Sequence[str | Path],
    images: str | Path,
    *,
    store: Any = None,
    name: str | None = None,
    class_order: str = "keras",
    preprocess: str = "none",
    batch_size: int = 32,
    progress: Callable[[int, int, int], None] | None = None,
) -> tuple[int | None, list[Run]]:
    """Evaluate every checkpoint on the same ordered file list, one epoch per checkpoint.

    The folder is decoded once for all of them (``evaluate_models``). Checkpoints are taken in natural order of their file names (``ckpt_2`` before ``ckpt_10``);
    with a ``store``, they are kept as one training run. Returns (training id or None, runs).
    """
    from .class_order import natural_sort_key, resolve_class_order
    from .sweep import evaluate_models

    ordered = sorted((Path(c) for c in checkpoints), key=lambda p: natural_sort_key(p.name))
    if not ordered:
        raise GtpredError("No checkpoint files matched.", "Check the --models pattern, e.g. 'ckpt/*.keras'.")
    folder = index_image_folder(images)
    order = resolve_class_order(class_order, folder.class_names, folder.counts)
    training_id = store.start_training(name or f"checkpoints in {ordered[0].parent.name or '.'}", str(folder.root)) if store else None
    # one decode for all: the checkpoints share the architecture, so each batch feeds every one
    runs = evaluate_models(
        ordered,
        folder,
        class_order=order,
        preprocess=preprocess,
        batch_size=batch_size,
        progress=(lambda index, done, total: progress(index + 1, done, total)) if progress else None,
    )
    if store is not None:
        for epoch, (checkpoint, run) in enumerate(zip(ordered, runs), start=1):
            store.save(run, name=checkpoint.name, training_id=training_id, epoch=epoch, logs={"checkpoint": checkpoint.name})
        store.finish_training(training_id)
    return training_id, runs
