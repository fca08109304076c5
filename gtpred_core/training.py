"""Training-time tools: per-epoch validation predictions, paired prediction of a user's own data
source, and an audit of a data source for the mistakes that silently mis-pair predictions.

Sources understood everywhere here: an image folder path (gtpred's ordered pipeline), ``(x, y)``
arrays, a ``tf.data.Dataset`` of ``(x, y)`` batches, a ``keras.utils.PyDataset``, a legacy
``DirectoryIterator`` (``flow_from_directory``), and — for ``predict_pairs`` and the audit — a
plain Python generator with a ``steps`` count.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np

from .class_order import keras_order, natural_order
from .errors import GtpredError, SourceShufflesError
from .evaluation import outputs_to_probabilities
from .folder import index_image_folder
from .inference import ProgressCallback
from .model import LoadedModel, from_keras_model, load_model
from .run import Run, RunInfo, assemble_run

#: ImageDataGenerator settings that make every read of the same image different.
_AUGMENTATIONS = (
    "rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range",
    "channel_shift_range", "horizontal_flip", "vertical_flip", "brightness_range",
)


@dataclass(frozen=True)
class AuditFinding:
    code: str
    message: str
    fix: str


@dataclass(frozen=True)
class DataSourceAudit:
    """What a data source will really feed ``predict``/``evaluate``, and what is wrong with it."""

    kind: str
    n_samples: int | None
    batch_size: int | None
    findings: tuple[AuditFinding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]


# ----------------------------------------------------------------------------- source kinds
def source_kind(source: Any) -> str:
    import tensorflow as tf

    if isinstance(source, (str, Path)):
        return "folder"
    if isinstance(source, tuple) and len(source) == 2 and all(hasattr(a, "shape") for a in source):
        return "arrays"
    if isinstance(source, tf.data.Dataset):
        return "tf.data"
    if hasattr(source, "shuffle") and hasattr(source, "index_array") and hasattr(source, "batch_size"):
        return "iterator"  # keras' legacy DirectoryIterator / NumpyArrayIterator
    if isinstance(source, keras.utils.PyDataset):
        return "pydataset"
    if inspect.isgenerator(source) or hasattr(source, "__next__"):
        return "generator"
    raise GtpredError(
        f"gtpred cannot read a data source of type {type(source).__name__}.",
        "Pass an image folder path, (x, y) arrays, a tf.data.Dataset, a keras PyDataset or "
        "a flow_from_directory iterator.",
    )


def _dataset_nodes(dataset: Any) -> list[str]:
    names, stack = [], [dataset]
    while stack:
        node = stack.pop()
        names.append(type(node).__name__)
        stack.extend(node._inputs())
    return names


def _dataset_nodes_objects(dataset: Any) -> list[Any]:
    nodes, stack = [], [dataset]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node._inputs())
    return nodes


def _random_ops_in_pipeline(dataset: Any) -> list[str]:
    """Random op types inside the pipeline's map functions (augmentation such as random flips).

    Stateful random ops replay the same sequence on every new iterator, so reading a batch twice
    cannot reveal them; their presence in the traced map function can.
    """
    found: set[str] = set()
    for node in _dataset_nodes_objects(dataset):
        function = getattr(getattr(node, "_map_func", None), "function", None)
        if function is None:
            continue
        graph = function.graph
        types = {op.type for op in graph.get_operations()}
        for nested in getattr(graph, "_functions", {}).values():
            types |= {n.op for n in nested.definition.node_def}
        found |= {t for t in types if "Random" in t and "Shuffle" not in t}
    return sorted(found)


def _dataset_shuffles(dataset: Any) -> bool:
    return any("Shuffle" in name for name in _dataset_nodes(dataset))


def _labels_to_indices(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1).astype(np.int64)  # one-hot
    y = y.reshape(-1)
    if y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0)):
        return (y > 0.5).astype(np.int64)  # soft binary targets
    return y.astype(np.int64)


def _split_batch(batch: Any) -> tuple[Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise GtpredError(
            "The data source yields batches without labels.",
            "Yield (x, y) batches so predictions can be paired with their true labels.",
        )
    return batch[0], batch[1]


def _batches(source: Any, kind: str, steps: int | None, batch_size: int) -> Iterator[tuple[Any, Any, list[str] | None]]:
    """(x, y, paths-or-None) batches, once through, in the order the source gives them."""
    if kind == "arrays":
        x, y = source
        n = len(x) if steps is None else min(len(x), steps * batch_size)
        for start in range(0, n, batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size], None
    elif kind == "tf.data":
        for k, batch in enumerate(source):
            if steps is not None and k >= steps:
                break
            x, y = _split_batch(batch)
            yield x, y, None
    elif kind == "iterator":
        n_batches = len(source) if steps is None else steps
        for k in range(n_batches):
            x, y = source[k % len(source)]
            order = source.index_array if source.index_array is not None else np.arange(source.n)
            rows = order[(k % len(source)) * source.batch_size :][: len(x)]
            filenames = getattr(source, "filenames", None)
            yield x, y, [filenames[i].replace("\\", "/") for i in rows] if filenames else None
    elif kind == "pydataset":
        n_batches = source.num_batches if steps is None else steps
        if n_batches is None:
            raise GtpredError("This PyDataset has no length.", "Pass steps=N.")
        for k in range(n_batches):
            x, y = _split_batch(source[k])
            yield x, y, None
    elif kind == "generator":
        if steps is None:
            raise GtpredError(
                "A plain generator never says when an epoch ends.",
                "Pass steps=ceil(n_samples / batch_size) so every sample is seen exactly once.",
            )
        for _ in range(steps):
            x, y = _split_batch(next(source))
            yield x, y, None


def _class_names_of(source: Any, kind: str, n_outputs: int) -> tuple[str, ...]:
    indices = getattr(source, "class_indices", None)
    if indices:
        return tuple(name for name, _ in sorted(indices.items(), key=lambda item: item[1]))
    names = getattr(source, "class_names", None)
    if names:
        return tuple(names)
    return tuple(str(i) for i in range(max(n_outputs, 2)))


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
) -> Run:
    """Predict each batch of ``source`` once and keep that batch's targets beside it.

    Pairs stay right even when the source shuffles, because a prediction never leaves its
    batch's labels. Returns a Run (paths where the source knows them, else ``sample_000000``...).
    ``model`` is a Keras model or a path to one.
    """
    model = _as_loaded(model)
    if isinstance(source, (str, Path)):
        from .evaluation import evaluate_folder

        return evaluate_folder(model, source, batch_size=batch_size, progress=progress)
    kind = source_kind(source)
    forward = _forward(model)
    outputs, labels, paths = [], [], []
    total = len(source[0]) if kind == "arrays" else None
    started = time.perf_counter()
    for x, y, batch_paths in _batches(source, kind, steps, batch_size):
        out = forward(x)
        outputs.append(out)
        labels.append(_labels_to_indices(y))
        start = sum(len(o) for o in outputs[:-1])
        paths.extend(batch_paths or [f"sample_{start + i:06d}" for i in range(len(out))])
        if progress is not None:
            progress(len(paths), total or len(paths))
    raw = np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)
    probabilities, head = outputs_to_probabilities(raw)
    names = tuple(class_names) if class_names else _class_names_of(source, kind, probabilities.shape[1])
    return assemble_run(
        class_names=names,
        paths=paths,
        y_true=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        y_pred=probabilities.argmax(axis=1),
        probabilities=probabilities,
        info=RunInfo(model=model.name, images=kind, head=head, batch_size=batch_size, seconds=round(time.perf_counter() - started, 3)),
    )


# ----------------------------------------------------------------------------- the audit
def audit_data_source(source: Any, steps: int | None = None, *, workers: int = 1) -> DataSourceAudit:
    """Check what a data source will really feed ``predict``/``evaluate``, each finding with its fix.

    Looks for: shuffling; ``steps`` x batch size that drops or repeats samples; random
    augmentation (the same batch read twice differs); class folders whose string sort differs
    from natural order; a plain generator shared by several workers.
    """
    kind = source_kind(source)
    findings: list[AuditFinding] = []
    n_samples, batch_size = _size_of(source, kind)
    if kind == "iterator" and source.shuffle:
        findings.append(_shuffle_finding("the iterator was made with shuffle=True", "flow_from_directory(..., shuffle=False)"))
    if kind == "tf.data" and _dataset_shuffles(source):
        findings.append(_shuffle_finding("the tf.data pipeline contains a shuffle", "image_dataset_from_directory(..., shuffle=False), or no .shuffle() in the evaluation pipeline"))
    if steps is not None and n_samples is not None and batch_size:
        seen = steps * batch_size
        if seen < n_samples and (steps < -(-n_samples // batch_size)):
            dropped = n_samples - seen
            findings.append(
                AuditFinding(
                    "steps-drop-samples",
                    f"steps={steps} x batch size {batch_size} = {seen} < {n_samples} samples: the last "
                    f"{dropped} sample(s) are never predicted (steps = n // batch_size drops the partial batch).",
                    f"Use steps=ceil(n / batch_size) = {-(-n_samples // batch_size)}, or leave steps out.",
                )
            )
        elif steps > -(-n_samples // batch_size):
            findings.append(
                AuditFinding(
                    "steps-repeat-samples",
                    f"steps={steps} covers {seen} samples but there are only {n_samples}: the source "
                    "wraps around and the first samples are predicted twice.",
                    f"Use steps=ceil(n / batch_size) = {-(-n_samples // batch_size)}, or leave steps out.",
                )
            )
    augmentation = _augmentation_finding(source, kind)
    if augmentation:
        findings.append(augmentation)
    names = _class_names_of(source, kind, 0) if kind in ("iterator", "tf.data") else ()
    if names and keras_order(names) != natural_order(names) and tuple(names) == keras_order(names):
        findings.append(
            AuditFinding(
                "class-order-string-sort",
                f"The classes are indexed in string order ({', '.join(names[:4])}, ...), which differs from "
                "natural order. If the model was trained with another order, accuracy will look like chance.",
                "Save class_indices (or class_names) with the model and evaluate with that file (--class-order FILE).",
            )
        )
    if kind == "generator" and workers > 1:
        findings.append(
            AuditFinding(
                "generator-with-workers",
                f"A plain Python generator shared by {workers} workers hands out batches in whatever order the "
                "workers finish, and may duplicate them: predictions and labels no longer line up.",
                "Wrap the data in a keras.utils.PyDataset (indexed batches keep their order), or use one worker.",
            )
        )
    return DataSourceAudit(kind, n_samples, batch_size, tuple(findings))


def _size_of(source: Any, kind: str) -> tuple[int | None, int | None]:
    if kind == "iterator":
        return int(source.n), int(source.batch_size)
    if kind == "arrays":
        return len(source[0]), None
    if kind == "tf.data":
        batches = int(source.cardinality())
        first = next(iter(source.take(1)), None)
        if first is None or batches < 0:
            return None, None
        batch = len(first[0])
        paths = getattr(source, "file_paths", None)
        return (len(paths) if paths is not None else None), batch
    return None, None


def _shuffle_finding(why: str, fix: str) -> AuditFinding:
    return AuditFinding(
        "shuffle-on",
        f"Shuffling is on ({why}): predictions come out in a different order than the files and labels "
        "you will pair them with, so accuracy and every per-file result are wrong.",
        f"Use {fix} for evaluation, or use gtpred.predict_pairs, which keeps each batch's labels beside it.",
    )


def _augmentation_finding(source: Any, kind: str) -> AuditFinding | None:
    generator = getattr(source, "image_data_generator", None)
    if kind == "iterator" and generator is not None:
        active = [a for a in _AUGMENTATIONS if getattr(generator, a, None) not in (None, 0, 0.0, False, [1.0, 1.0], (1.0, 1.0))]
        if active:
            return AuditFinding(
                "augmentation-on",
                f"Random augmentation is active at evaluation ({', '.join(active)}): every read of an image differs, "
                "so numbers change from run to run and do not describe the real images.",
                "Evaluate with an ImageDataGenerator that only rescales (no rotation/shift/flip/zoom).",
            )
        return None
    if kind == "tf.data" and _random_ops_in_pipeline(source):
        return AuditFinding(
            "augmentation-on",
            f"The pipeline applies random operations ({', '.join(_random_ops_in_pipeline(source))}): random "
            "augmentation is active, so every read of an image differs.",
            "Apply random layers (RandomFlip, RandomRotation, ...) only to the training pipeline or inside the model.",
        )
    if kind == "tf.data" and not _dataset_shuffles(source):
        first = [np.asarray(b[0]) for b in source.take(1)]
        second = [np.asarray(b[0]) for b in source.take(1)]
        if first and second and not np.array_equal(first[0], second[0]):
            return AuditFinding(
                "augmentation-on",
                "The same first batch read twice gave different pixels: random augmentation is active in the pipeline.",
                "Apply random layers (RandomFlip, RandomRotation, ...) only to the training pipeline or inside the model.",
            )
    return None


# ----------------------------------------------------------------------------- the callback
class PredictionRecorder(keras.callbacks.Callback):
    """Record the validation set's ``y_true``, ``y_pred`` and probabilities at the end of epochs.

    No patching of Keras: at the end of every ``every``-th epoch the model predicts
    ``validation_data`` in a fixed order; each epoch's Run (with the epoch's logs) is kept in
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
        self._kind = source_kind(validation_data)
        self._check_order_is_fixed()

    def _check_order_is_fixed(self) -> None:
        data, kind = self.validation_data, self._kind
        if kind == "iterator" and data.shuffle:
            raise SourceShufflesError(
                "The validation iterator shuffles (shuffle=True): each epoch would see the images in a "
                "new order, so recorded predictions could not be paired with files and labels.",
                "Create it with flow_from_directory(..., shuffle=False).",
            )
        if kind == "tf.data" and _dataset_shuffles(data):
            raise SourceShufflesError(
                "The validation dataset shuffles (its pipeline contains a shuffle): recorded predictions "
                "could not be paired with files and labels.",
                "Build it with image_dataset_from_directory(..., shuffle=False), or drop .shuffle().",
            )
        if kind == "generator":
            raise SourceShufflesError(
                "A plain generator cannot be read twice in the same order.",
                "Pass an image folder, (x, y) arrays, a tf.data.Dataset or a PyDataset.",
            )
        if kind in ("pydataset", "iterator", "tf.data"):
            first = [_labels_to_indices(y) for _, y, _ in _batches(data, kind, None, self.batch_size)]
            second = [_labels_to_indices(y) for _, y, _ in _batches(data, kind, None, self.batch_size)]
            if len(first) != len(second) or any(not np.array_equal(a, b) for a, b in zip(first, second)):
                raise SourceShufflesError(
                    "The validation labels differ between two passes over the data: the source shuffles, so "
                    "recorded predictions could not be paired with files.",
                    "Make the validation source deterministic (no shuffling in __getitem__ or on_epoch_end).",
                )

    def _predict(self) -> Run:
        if self._kind == "folder":
            from .evaluation import evaluate_folder

            return evaluate_folder(
                from_keras_model(self.model, self.model.name),
                self.validation_data,
                class_order=self.class_order,
                preprocess=self.preprocess,
                batch_size=self.batch_size,
            )
        return predict_pairs(self.model, self.validation_data, class_names=self.class_names, batch_size=self.batch_size)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.store is not None:
            source = str(self.validation_data) if self._kind == "folder" else self._kind
            self.training_id = self.store.start_training(self.name or f"{self.model.name} training", source)

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
            self._write_file()
        self.seconds_per_record.append(time.perf_counter() - started)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.store is not None and self.training_id is not None:
            self.store.finish_training(self.training_id)

    def _write_file(self) -> None:
        """All recorded epochs as one ``.npz``: paths, y_true, and per-epoch y_pred/probabilities."""
        epochs = [e for e, _, _ in self.epochs]
        runs = [r for _, _, r in self.epochs]
        np.savez_compressed(
            self.out_file,
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

    Checkpoints are taken in natural order of their file names (``ckpt_2`` before ``ckpt_10``);
    with a ``store``, they are kept as one training run. Returns (training id or None, runs).
    """
    from .class_order import natural_sort_key, resolve_class_order
    from .evaluation import evaluate_folder

    ordered = sorted((Path(c) for c in checkpoints), key=lambda p: natural_sort_key(p.name))
    if not ordered:
        raise GtpredError("No checkpoint files matched.", "Check the --models pattern, e.g. 'ckpt/*.keras'.")
    folder = index_image_folder(images)
    order = resolve_class_order(class_order, folder.class_names, folder.counts)
    training_id = store.start_training(name or f"checkpoints in {ordered[0].parent.name or '.'}", str(folder.root)) if store else None
    runs = []
    for epoch, checkpoint in enumerate(ordered, start=1):
        run = evaluate_folder(
            checkpoint,
            folder,
            class_order=order,
            preprocess=preprocess,
            batch_size=batch_size,
            progress=(lambda done, total, e=epoch: progress(e, done, total)) if progress else None,
        )
        runs.append(run)
        if store is not None:
            store.save(run, name=checkpoint.name, training_id=training_id, epoch=epoch, logs={"checkpoint": checkpoint.name})
    if store is not None:
        store.finish_training(training_id)
    return training_id, runs
