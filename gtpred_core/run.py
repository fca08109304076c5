"""The evaluated run: one frozen object that the CLI, the app and the store all speak.

Relabelling a run under another class order is a pure function of it: the predicted output
indices stay, the names attached to them move, and metrics and checks are recomputed. No
inference runs again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .calibration import calibration
from .diagnostics import RunWarning, WarningCode, check_class_order, check_prediction_collapse
from .errors import ClassOrderError
from .inference import SkippedFile
from .leakage import LeakedPair
from .metrics import Metrics, compute_metrics
from .model import Head
from .suspects import suspect_labels_summary

if TYPE_CHECKING:  # pandas is imported where a table is built: ``import gtpred_core`` stays cheap
    import pandas as pd

#: Columns of a table of files (mispredictions, a confusion cell's files, never right).
FILE_COLUMNS = ("index", "file", "true", "predicted", "confidence")

#: Warning codes that depend on how outputs are named, recomputed by ``Run.relabel``.
PREDICTION_WARNING_CODES = frozenset({WarningCode.CLASS_ORDER_MISMATCH, WarningCode.PREDICTION_COLLAPSE})


class RunStatus(StrEnum):
    """Where a run stands (equal to its string, as stored): a run is ``running`` while it is
    written into the store, then ``complete``, ``cancelled`` (the part done) or ``failed``."""

    RUNNING = "running"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class RunInfo:
    """What was evaluated and how: enough to repeat the run or to tell two runs apart."""

    model: str = ""
    model_bytes: int | None = None
    model_sha256: str | None = None
    images: str = ""
    images_fingerprint: str | None = None
    class_order_source: str = "keras"
    preprocess: str = "none"
    batch_size: int = 32
    head: Head | str = Head.SOFTMAX  # a Head; a plain string only if written by a newer gtpred
    input_size: tuple[int, int] = (0, 0)
    channels: int = 3
    rescales_itself: bool | None = None
    folder_classes: tuple[str, ...] = ()
    class_counts: tuple[int, ...] = ()
    status: RunStatus | str = RunStatus.COMPLETE  # likewise
    n_files: int = 0
    seconds: float = 0.0
    created_at: str = ""
    gtpred_version: str = ""
    relabelled_from: int | None = None  # the stored run whose predictions this re-reads (no inference)
    train_images: str | None = None  # the training folder searched for leaked copies, if any

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["folder_classes"] = list(self.folder_classes)
        data["class_counts"] = list(self.class_counts)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunInfo":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("input_size", "folder_classes", "class_counts"):
            if key in known:
                known[key] = tuple(known[key])
        for key, kind in (("head", Head), ("status", RunStatus)):
            if known.get(key) in kind._value2member_map_:
                known[key] = kind(known[key])
        return cls(**known)


@dataclass(frozen=True, eq=False)
class Run:
    """Predictions paired with files and true labels, plus metrics and warnings.

    ``class_names[k]`` is the class that output ``k`` stands for (the order in use);
    ``paths[i]`` (relative to ``info.images``, ``/``-separated), ``y_true[i]``, ``y_pred[i]``
    and ``probabilities[i]`` all describe the same file. ``skipped`` files were attempted but
    could not be evaluated; ``ignored`` files are not images. ``embedding`` (N, 2), when asked
    for, places each file on the 2-D map (``embedding_method`` says what was mapped);
    ``leakage`` lists evaluated files also found in ``info.train_images`` (None: not searched).
    """

    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    y_true: np.ndarray
    y_pred: np.ndarray
    probabilities: np.ndarray
    metrics: Metrics
    warnings: tuple[RunWarning, ...] = ()
    suggested_class_order: tuple[str, ...] | None = None
    skipped: tuple[SkippedFile, ...] = ()
    ignored: tuple[str, ...] = ()
    info: RunInfo = field(default_factory=RunInfo)
    embedding: np.ndarray | None = None
    embedding_method: str | None = None
    leakage: tuple[LeakedPair, ...] | None = None

    # ----- per-file views, all aligned with ``paths``
    @property
    def n_images(self) -> int:
        return len(self.paths)

    @property
    def true_labels(self) -> list[str]:
        return [self.class_names[i] for i in self.y_true]

    @property
    def pred_labels(self) -> list[str]:
        return [self.class_names[i] for i in self.y_pred]

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self.y_pred)), self.y_pred]

    @property
    def correct(self) -> np.ndarray:
        return self.y_true == self.y_pred

    @property
    def accuracy(self) -> float | None:
        return self.metrics.accuracy

    def warning_codes(self) -> list[str]:
        return [w.code for w in self.warnings]

    def top_k(self, index: int, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes for file ``index``, most probable first."""
        row = self.probabilities[index]
        best = np.argsort(-row, kind="stable")[:k]
        return [(self.class_names[j], float(row[j])) for j in best]

    # ----- relabelling
    def relabel(self, order: Sequence[str], source: str = "suggested") -> "Run":
        """This run with output ``k`` read as ``order[k]``: new metrics, same predictions."""
        order = tuple(order)
        if sorted(order) != sorted(self.class_names):
            missing = sorted(set(self.class_names) - set(order))
            extra = sorted(set(order) - set(self.class_names))
            raise ClassOrderError(
                "The new class order must name the same classes as the run "
                f"(missing: {', '.join(missing) or 'none'}; unknown: {', '.join(extra) or 'none'}).",
                "Pass a permutation of the run's class names.",
                missing_in_folder=tuple(extra),
                missing_in_order=tuple(missing),
            )
        position = {name: i for i, name in enumerate(order)}
        y_true = np.array([position[self.class_names[i]] for i in self.y_true], dtype=np.int64)
        context = tuple(w for w in self.warnings if w.code not in PREDICTION_WARNING_CODES)
        return assemble_run(
            class_names=order,
            paths=self.paths,
            y_true=y_true,
            y_pred=self.y_pred,
            probabilities=self.probabilities,
            context_warnings=context,
            skipped=self.skipped,
            ignored=self.ignored,
            info=replace(self.info, class_order_source=source),
            embedding=self.embedding,
            embedding_method=self.embedding_method,
            leakage=self.leakage,
        )

    # ----- serialisation
    def summary(self) -> dict[str, Any]:
        """The ``summary.json`` document: numbers and findings, no per-file rows."""
        metrics = self.metrics.to_dict()
        suspects, suspects_note = suspect_labels_summary(
            self.paths, self.y_true, self.probabilities, self.class_names, self.warning_codes()
        )
        return {
            "n_images": self.n_images,
            "accuracy": metrics["accuracy"],
            "accuracy_ci": metrics["accuracy_ci"],
            "top5_accuracy": metrics["top5_accuracy"],
            "top5_accuracy_ci": metrics["top5_accuracy_ci"],
            "class_names": list(self.class_names),
            "per_class": metrics["per_class"],
            "macro_avg": metrics["macro"],
            "weighted_avg": metrics["weighted"],
            "confusion_matrix": metrics["confusion_matrix"],
            "warnings": [asdict(w) for w in self.warnings],
            "suggested_class_order": list(self.suggested_class_order)
            if self.suggested_class_order
            else None,
            "skipped": [asdict(s) for s in self.skipped],
            "ignored": list(self.ignored),
            "run": self.info.to_dict(),
            "calibration": calibration(self.probabilities, self.y_true).to_dict(),
            "suspect_labels": suspects,
            "suspect_labels_note": suspects_note,
            "embedding_method": self.embedding_method,
            "leakage": [p.to_dict() for p in self.leakage] if self.leakage is not None else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready; ``Run.from_dict`` restores it bit for bit."""
        data = self.summary()
        data.update(
            paths=list(self.paths),
            y_true=self.y_true.tolist(),
            y_pred=self.y_pred.tolist(),
            probabilities=self.probabilities.tolist(),
            metrics=self.metrics.to_dict(),
            embedding=self.embedding.tolist() if self.embedding is not None else None,
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Run":
        n_classes = len(data["class_names"])
        return cls(
            class_names=tuple(data["class_names"]),
            paths=tuple(data["paths"]),
            y_true=np.asarray(data["y_true"], dtype=np.int64),
            y_pred=np.asarray(data["y_pred"], dtype=np.int64),
            probabilities=np.asarray(data["probabilities"], dtype=np.float32).reshape(-1, n_classes),
            metrics=Metrics.from_dict(data["metrics"]),
            warnings=tuple(RunWarning(**w) for w in data["warnings"]),
            suggested_class_order=tuple(data["suggested_class_order"])
            if data.get("suggested_class_order")
            else None,
            skipped=tuple(SkippedFile(**s) for s in data["skipped"]),
            ignored=tuple(data["ignored"]),
            info=RunInfo.from_dict(data.get("run", {})),
            embedding=np.asarray(data["embedding"], dtype=np.float32).reshape(-1, 2)
            if data.get("embedding") is not None
            else None,
            embedding_method=data.get("embedding_method"),
            leakage=tuple(LeakedPair(**p) for p in data["leakage"]) if data.get("leakage") is not None else None,
        )

    # ----- queries: the tables the app, reports and notebooks draw (rows = true, columns = predicted)
    @cached_property
    def _positions(self) -> dict[str, int]:
        return {path: i for i, path in enumerate(self.paths)}

    def file_position(self, rel_path: str) -> int | None:
        """The position of ``rel_path`` in the run, or None when the run has no such file."""
        return self._positions.get(rel_path)

    def image_path(self, rel_path: str) -> Path:
        """Where file ``rel_path`` (one of ``paths``) lies: under the evaluated folder."""
        return Path(self.info.images) / rel_path

    def per_class_table(self) -> "pd.DataFrame":
        """One row per class, in the order in use: precision and recall each with its 95%
        interval as text (``88.1–96.0%``), F1, support, and ``few_images`` (an interval wider
        than 20 points, or none: too few images to trust that class's figures)."""
        import pandas as pd

        from .metrics import interval_text

        return pd.DataFrame(
            [
                {
                    "class": c.label,
                    "precision": c.precision,
                    "precision_ci": interval_text(c.precision_ci),
                    "recall": c.recall,
                    "recall_ci": interval_text(c.recall_ci),
                    "f1": c.f1,
                    "support": c.support,
                    "few_images": c.few_images,
                }
                for c in self.metrics.per_class
            ],
            columns=["class", "precision", "precision_ci", "recall", "recall_ci", "f1", "support", "few_images"],
        )

    def confusion_cells(self) -> "pd.DataFrame":
        """The confusion matrix in long form: one row per (true, predicted) cell.

        ``share`` is the row-normalised share: of the images of class ``true``, the fraction
        predicted as ``predicted`` (0 for a class with no images).
        """
        import pandas as pd

        names = list(self.class_names)
        matrix = np.asarray(self.metrics.confusion_matrix, dtype=np.int64).reshape(len(names), len(names))
        row_totals = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, row_totals, out=np.zeros(matrix.shape, dtype=float), where=row_totals > 0)
        true_idx, pred_idx = np.indices(matrix.shape)
        return pd.DataFrame(
            {
                "true": [names[i] for i in true_idx.ravel()],
                "predicted": [names[j] for j in pred_idx.ravel()],
                "count": matrix.ravel(),
                "share": share.ravel(),
            }
        )

    def files_table(self, rows: Sequence[int] | np.ndarray) -> "pd.DataFrame":
        """Files ``rows`` of the run as ``FILE_COLUMNS``, most confident first (ties: file order).

        ``index`` is the file's position in the run.
        """
        import pandas as pd

        rows = np.asarray(rows, dtype=np.int64)
        confidence = self.confidence[rows]
        order = np.argsort(-confidence, kind="stable")
        rows, confidence = rows[order], confidence[order]
        names = np.asarray(self.class_names, dtype=object)
        paths = np.asarray(self.paths, dtype=object)
        empty = np.array([], dtype=object)
        return pd.DataFrame(
            {
                "index": rows,
                "file": paths[rows] if len(rows) else empty,
                "true": names[self.y_true[rows]] if len(rows) else empty,
                "predicted": names[self.y_pred[rows]] if len(rows) else empty,
                "confidence": confidence.astype(float),
            },
            columns=list(FILE_COLUMNS),
        )

    def cell_files(self, true: str, predicted: str) -> "pd.DataFrame":
        """The files of one confusion-matrix cell (true class ``true``, predicted ``predicted``)."""
        t, p = self.class_names.index(true), self.class_names.index(predicted)
        return self.files_table(np.flatnonzero((self.y_true == t) & (self.y_pred == p)))

    def mispredictions(
        self, true_classes: Iterable[str] = (), predicted_classes: Iterable[str] = ()
    ) -> "pd.DataFrame":
        """Every wrong prediction, most confident first; optionally only some true/predicted
        classes (an empty filter means "all classes")."""
        keep = ~self.correct
        true_classes, predicted_classes = list(true_classes), list(predicted_classes)
        if true_classes:
            keep &= np.isin(self.y_true, [self.class_names.index(c) for c in true_classes])
        if predicted_classes:
            keep &= np.isin(self.y_pred, [self.class_names.index(c) for c in predicted_classes])
        return self.files_table(np.flatnonzero(keep))

    def top_k_table(self, index: int, k: int = 5) -> "pd.DataFrame":
        """The ``k`` most probable classes for file ``index``, flagged true/predicted."""
        import pandas as pd

        true_name = self.class_names[int(self.y_true[index])]
        pred_name = self.class_names[int(self.y_pred[index])]
        rows = self.top_k(index, k=min(k, len(self.class_names)))
        return pd.DataFrame(
            {
                "class": [name for name, _ in rows],
                "probability": [p for _, p in rows],
                "is_true": [name == true_name for name, _ in rows],
                "is_predicted": [name == pred_name for name, _ in rows],
            }
        )

    def confidence_histogram(self, bins: int = 20) -> "pd.DataFrame":
        """Counts of right and wrong predictions per confidence bin (``bin_start``..``bin_end``)."""
        import pandas as pd

        edges = np.linspace(0.0, 1.0, bins + 1)
        confidence = np.clip(self.confidence.astype(float), 0.0, 1.0)
        frames = []
        for outcome, mask in (("right", self.correct), ("wrong", ~self.correct)):
            counts, _ = np.histogram(confidence[mask], bins=edges)
            frames.append(
                pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "outcome": outcome, "count": counts})
            )
        return pd.concat(frames, ignore_index=True)

    def class_mapping(self) -> "pd.DataFrame":
        """``class_order.class_mapping_table`` for the evaluated folder and the order in use:
        which output index each class folder gets under Keras', natural and the run's order."""
        from .class_order import class_mapping_table

        folder_classes = self.info.folder_classes or tuple(sorted(self.class_names))
        if self.info.class_counts:
            counts = dict(zip(folder_classes, self.info.class_counts))
        else:
            counts = {c: int(np.sum(self.y_true == self.class_names.index(c))) for c in folder_classes if c in self.class_names}
        return class_mapping_table(folder_classes, counts, self.class_names)

    # ----- confusions at scale (1,000 classes): counted from y_true/y_pred, never N x N Python ints
    def confusion_counts(self) -> np.ndarray:
        """The confusion matrix as an (n_classes, n_classes) int64 array: rows = true, columns = predicted.

        Counted with one ``np.bincount`` over the files (about 1 ms for 100,000 files and 1,000
        classes), so pages need not rebuild ``metrics.confusion_matrix``'s nested tuples.
        """
        n = len(self.class_names)
        flat = np.asarray(self.y_true, dtype=np.int64) * n + np.asarray(self.y_pred, dtype=np.int64)
        return np.bincount(flat, minlength=n * n).reshape(n, n)

    def top_confusions(self, limit: int = 20) -> list[tuple[str, str, int]]:
        """The most frequent mistakes as (true class, predicted class, files), most first.

        Ties keep class order (true, then predicted), so the list is stable between reruns.
        """
        n = len(self.class_names)
        wrong = np.asarray(self.y_true) != np.asarray(self.y_pred)
        flat = np.asarray(self.y_true, dtype=np.int64)[wrong] * n + np.asarray(self.y_pred, dtype=np.int64)[wrong]
        cells, counts = np.unique(flat, return_counts=True)  # cells come sorted: class order
        best = np.argsort(-counts, kind="stable")[: max(0, limit)]
        return [(self.class_names[c // n], self.class_names[c % n], int(k)) for c, k in zip(cells[best], counts[best])]

    def confusion_among(self, classes: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
        """The confusion matrix restricted to ``classes`` (rows = true, columns = predicted).

        Returns (column names, counts): the chosen classes in the order given, then ``"(other)"``,
        the files of a chosen true class predicted as any class not chosen, so each row still
        sums to that class's files. Unknown names raise ``ValueError`` naming them.
        """
        position = {name: i for i, name in enumerate(self.class_names)}
        unknown = [c for c in classes if c not in position]
        if unknown:
            raise ValueError(f"Unknown class name(s): {', '.join(unknown)}. Choose among the run's class_names.")
        if len(set(classes)) != len(classes):
            raise ValueError("A class is chosen twice. Choose each class once.")
        chosen = np.array([position[c] for c in classes], dtype=np.int64)
        column = np.full(len(self.class_names), len(chosen), dtype=np.int64)  # not chosen -> "(other)"
        column[chosen] = np.arange(len(chosen))
        row = np.full(len(self.class_names), -1, dtype=np.int64)
        row[chosen] = np.arange(len(chosen))
        rows = row[np.asarray(self.y_true, dtype=np.int64)]
        keep = rows >= 0
        k = len(chosen) + 1
        flat = rows[keep] * k + column[np.asarray(self.y_pred, dtype=np.int64)[keep]]
        matrix = np.bincount(flat, minlength=len(chosen) * k).reshape(len(chosen), k)
        return (*(str(c) for c in classes), "(other)"), matrix


def _as_array(values: Any, dtype: type) -> np.ndarray:
    """``values`` as an array of ``dtype``, the same object when it already is one (so a
    relabelled run shares its predictions; ``np.asarray`` copies e.g. unpickled arrays)."""
    if isinstance(values, np.ndarray) and values.dtype == dtype:
        return values
    return np.asarray(values, dtype=dtype)


def assemble_run(
    *,
    class_names: Sequence[str],
    paths: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    probabilities: np.ndarray,
    context_warnings: Sequence[RunWarning] = (),
    skipped: Sequence[SkippedFile] = (),
    ignored: Sequence[str] = (),
    info: RunInfo | None = None,
    embedding: np.ndarray | None = None,
    embedding_method: str | None = None,
    leakage: Sequence[LeakedPair] | None = None,
) -> Run:
    """Build a Run from paired predictions: computes metrics and the prediction checks."""
    info = info or RunInfo()
    y_true = _as_array(y_true, np.int64)
    y_pred = _as_array(y_pred, np.int64)
    probabilities = _as_array(probabilities, np.float32)
    if not (len(paths) == len(y_true) == len(y_pred) == len(probabilities)):
        raise ValueError(
            f"paths ({len(paths)}), y_true ({len(y_true)}), y_pred ({len(y_pred)}) and "
            f"probabilities ({len(probabilities)}) must have one entry per file"
        )
    if embedding is not None:
        embedding = _as_array(embedding, np.float32)
        if embedding.shape != (len(paths), 2):
            raise ValueError(f"embedding must hold one (x, y) per file: shape {(len(paths), 2)}, got {embedding.shape}")
    metrics = compute_metrics(y_true, y_pred, probabilities, class_names)
    confusion = np.asarray(metrics.confusion_matrix)
    mismatch, suggestion = check_class_order(confusion, class_names, metrics.accuracy)
    collapse = check_prediction_collapse(
        y_true,
        y_pred,
        class_names,
        preprocess=info.preprocess,
        rescales_itself=info.rescales_itself,
    )
    return Run(
        class_names=tuple(class_names),
        paths=tuple(paths),
        y_true=y_true,
        y_pred=y_pred,
        probabilities=probabilities,
        metrics=metrics,
        warnings=tuple(mismatch + collapse) + tuple(context_warnings),
        suggested_class_order=suggestion,
        skipped=tuple(skipped),
        ignored=tuple(ignored),
        info=info,
        embedding=embedding,
        embedding_method=embedding_method if embedding is not None else None,
        leakage=tuple(leakage) if leakage is not None else None,
    )
