"""Classification metrics, delegated to scikit-learn. Confusion matrix: rows = true, columns = predicted."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Averages:
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class Metrics:
    """Everything computed from (y_true, y_pred, probabilities); ``accuracy`` is None with no images."""

    n_images: int
    accuracy: float | None
    top5_accuracy: float | None
    per_class: tuple[ClassMetrics, ...]
    macro: Averages
    weighted: Averages
    confusion_matrix: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["confusion_matrix"] = [list(row) for row in self.confusion_matrix]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Metrics":
        return cls(
            n_images=int(data["n_images"]),
            accuracy=data["accuracy"],
            top5_accuracy=data["top5_accuracy"],
            per_class=tuple(ClassMetrics(**c) for c in data["per_class"]),
            macro=Averages(**data["macro"]),
            weighted=Averages(**data["weighted"]),
            confusion_matrix=tuple(tuple(int(v) for v in row) for row in data["confusion_matrix"]),
        )


def compute_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> Metrics:
    """Accuracy, top-5 (more than 5 classes only), per-class P/R/F1/support, averages, confusion."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    labels = list(range(len(class_names)))
    n = int(len(y_true))
    matrix = confusion_matrix(y_true, y_pred, labels=labels) if n else np.zeros((len(labels),) * 2, int)
    if n == 0:
        zero = Averages(0.0, 0.0, 0.0)
        per_class = tuple(ClassMetrics(name, 0.0, 0.0, 0.0, 0) for name in class_names)
        return Metrics(0, None, None, per_class, zero, zero, _as_tuples(matrix))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    averages = {
        average: Averages(
            *map(
                float,
                precision_recall_fscore_support(
                    y_true, y_pred, labels=labels, average=average, zero_division=0
                )[:3],
            )
        )
        for average in ("macro", "weighted")
    }
    top5 = None
    if len(class_names) > 5:
        top5 = float(top_k_accuracy_score(y_true, probabilities, k=5, labels=labels))
    return Metrics(
        n_images=n,
        accuracy=float(accuracy_score(y_true, y_pred)),
        top5_accuracy=top5,
        per_class=tuple(
            ClassMetrics(name, float(p), float(r), float(f), int(s))
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        ),
        macro=averages["macro"],
        weighted=averages["weighted"],
        confusion_matrix=_as_tuples(matrix),
    )


def _as_tuples(matrix: np.ndarray) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in row) for row in matrix)
