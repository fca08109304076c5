"""Compare two runs on the same images: accuracy and per-class deltas, confusion difference, flips.

Runs are matched file by file through their relative paths, and classes by name, so two runs
with different class orders (say Keras' and natural) still compare correctly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ComparisonError
from .metrics import Metrics, compute_metrics
from .run import Run


@dataclass(frozen=True)
class Flip:
    """One image whose correctness changed between run A and run B."""

    path: str
    true_label: str
    pred_a: str
    confidence_a: float
    pred_b: str
    confidence_b: float
    index_a: int  # row of this file in run A (for its probabilities)
    index_b: int
    direction: str  # "right-to-wrong" | "wrong-to-right"


@dataclass(frozen=True)
class RunComparison:
    """B against A on the files both evaluated; every delta is B minus A."""

    class_names: tuple[str, ...]
    same_images: bool
    n_common: int
    only_in_a: int
    only_in_b: int
    metrics_a: Metrics
    metrics_b: Metrics
    flips: tuple[Flip, ...]

    @property
    def accuracy_delta(self) -> float | None:
        if self.metrics_a.accuracy is None or self.metrics_b.accuracy is None:
            return None
        return self.metrics_b.accuracy - self.metrics_a.accuracy

    @property
    def confusion_delta(self) -> np.ndarray:
        """Confusion of B minus confusion of A (rows = true, columns = predicted)."""
        return np.asarray(self.metrics_b.confusion_matrix) - np.asarray(self.metrics_a.confusion_matrix)

    def per_class_deltas(self) -> list[dict[str, float | str | int]]:
        rows = []
        for a, b in zip(self.metrics_a.per_class, self.metrics_b.per_class):
            rows.append(
                {
                    "label": a.label,
                    "support": a.support,
                    "recall_a": a.recall,
                    "recall_b": b.recall,
                    "recall_delta": b.recall - a.recall,
                    "precision_delta": b.precision - a.precision,
                    "f1_delta": b.f1 - a.f1,
                }
            )
        return rows

    def flips_in(self, direction: str) -> list[Flip]:
        return [f for f in self.flips if f.direction == direction]


def compare_runs(a: Run, b: Run) -> RunComparison:
    """Compare ``b`` with ``a`` on their common files, classes matched by name (A's order)."""
    if sorted(a.class_names) != sorted(b.class_names):
        only_a = sorted(set(a.class_names) - set(b.class_names))
        only_b = sorted(set(b.class_names) - set(a.class_names))
        raise ComparisonError(
            "The two runs have different classes "
            f"(only in A: {', '.join(only_a) or 'none'}; only in B: {', '.join(only_b) or 'none'}).",
            "Compare runs of models trained for the same classes.",
        )
    names = a.class_names
    b_to_a = np.array([names.index(n) for n in b.class_names], dtype=np.int64)
    position_b = {path: i for i, path in enumerate(b.paths)}
    rows_a = np.array([i for i, p in enumerate(a.paths) if p in position_b], dtype=np.int64)
    rows_b = np.array([position_b[a.paths[i]] for i in rows_a], dtype=np.int64)
    if len(rows_a) == 0:
        raise ComparisonError(
            "The two runs have no image file in common.",
            "Compare runs evaluated on the same image folder.",
        )
    y_true = a.y_true[rows_a]
    if not np.array_equal(b_to_a[b.y_true[rows_b]], y_true):
        raise ComparisonError(
            "The same file has different true classes in the two runs.",
            "Compare runs on the same image folder.",
        )
    pred_a = a.y_pred[rows_a]
    pred_b = b_to_a[b.y_pred[rows_b]]
    prob_a = a.probabilities[rows_a]
    prob_b = np.empty_like(prob_a)
    prob_b[:, b_to_a] = b.probabilities[rows_b]  # B's columns in A's class order
    right_a, right_b = pred_a == y_true, pred_b == y_true
    flips = []
    for k in np.flatnonzero(right_a != right_b):
        flips.append(
            Flip(
                path=a.paths[rows_a[k]],
                true_label=names[y_true[k]],
                pred_a=names[pred_a[k]],
                confidence_a=float(prob_a[k, pred_a[k]]),
                pred_b=names[pred_b[k]],
                confidence_b=float(prob_b[k, pred_b[k]]),
                index_a=int(rows_a[k]),
                index_b=int(rows_b[k]),
                direction="right-to-wrong" if right_a[k] else "wrong-to-right",
            )
        )
    same = (
        a.info.images_fingerprint is not None
        and a.info.images_fingerprint == b.info.images_fingerprint
        and len(rows_a) == a.n_images == b.n_images
    )
    return RunComparison(
        class_names=names,
        same_images=same,
        n_common=len(rows_a),
        only_in_a=a.n_images - len(rows_a),
        only_in_b=b.n_images - len(rows_a),
        metrics_a=compute_metrics(y_true, pred_a, prob_a, names),
        metrics_b=compute_metrics(y_true, pred_b, prob_b, names),
        flips=tuple(flips),
    )
