"""Classification metrics, delegated to scikit-learn. Confusion matrix: rows = true, columns = predicted.

Every proportion carries its 95% Wilson score interval: 92.3% on 797 images is 90.2-94.0%, and a
reader should see that. Wilson rather than the textbook Wald interval because Wald collapses to a
zero-width interval at 0/n and n/n, and undercovers at small n (Newcombe 1998, "Two-sided
confidence intervals for the single proportion").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

#: The confidence level of every interval gtpred reports.
CONFIDENCE_LEVEL = 0.95
#: A per-class entry whose recall or precision interval is wider than this is flagged ``few_images``.
FEW_IMAGES_WIDTH = 0.20


@dataclass(frozen=True)
class Interval:
    """A confidence interval for a proportion (or a difference of two), with how it was made."""

    low: float
    high: float
    level: float = CONFIDENCE_LEVEL
    method: str = "wilson"

    @property
    def width(self) -> float:
        return self.high - self.low

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Interval | None":
        return None if data is None else cls(**data)


def wilson_interval(successes: int, trials: int, level: float = CONFIDENCE_LEVEL) -> Interval | None:
    """The Wilson score interval for ``successes`` of ``trials``; None with no trials.

    centre = (p + z²/2n) / (1 + z²/n), half-width = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²).
    """
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and trials ({trials}), got {successes}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    n, p = float(trials), successes / trials
    scale = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(low, high, level, "wilson")


@dataclass(frozen=True)
class ClassMetrics:
    """One class's scores. ``recall_ci`` is Wilson on the class's images (support),
    ``precision_ci`` on the images predicted as the class; None when there are none.
    ``few_images``: an interval is missing or wider than ``FEW_IMAGES_WIDTH``."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int
    recall_ci: Interval | None = None
    precision_ci: Interval | None = None
    few_images: bool = True

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recall_ci"] = self.recall_ci.to_dict() if self.recall_ci else None
        data["precision_ci"] = self.precision_ci.to_dict() if self.precision_ci else None
        return data


def class_metrics(
    label: str, precision: float, recall: float, f1: float, support: int, right: int, predicted: int
) -> ClassMetrics:
    """``ClassMetrics`` with intervals: ``right`` images of the class predicted as it, of
    ``support``; ``predicted`` images predicted as the class in all."""
    recall_ci = wilson_interval(right, support)
    precision_ci = wilson_interval(right, predicted)
    few = any(ci is None or ci.width > FEW_IMAGES_WIDTH for ci in (recall_ci, precision_ci))
    return ClassMetrics(label, precision, recall, f1, support, recall_ci, precision_ci, few)


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
    accuracy_ci: Interval | None = None
    top5_accuracy_ci: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["per_class"] = [c.to_dict() for c in self.per_class]
        data["confusion_matrix"] = [list(row) for row in self.confusion_matrix]
        data["accuracy_ci"] = self.accuracy_ci.to_dict() if self.accuracy_ci else None
        data["top5_accuracy_ci"] = self.top5_accuracy_ci.to_dict() if self.top5_accuracy_ci else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Metrics":
        """Restore stored metrics; runs stored before intervals existed get them computed from
        their confusion matrix (and top-5 count), so every loaded run carries them."""
        confusion = tuple(tuple(int(v) for v in row) for row in data["confusion_matrix"])
        matrix = np.asarray(confusion, dtype=np.int64).reshape(len(confusion), -1)
        right, predicted = np.diag(matrix), matrix.sum(axis=0)
        per_class = []
        for k, c in enumerate(data["per_class"]):
            if "recall_ci" in c:
                per_class.append(
                    ClassMetrics(
                        **{**c, "recall_ci": Interval.from_dict(c["recall_ci"]), "precision_ci": Interval.from_dict(c["precision_ci"])}
                    )
                )
            else:
                per_class.append(
                    class_metrics(
                        c["label"], c["precision"], c["recall"], c["f1"], int(c["support"]), int(right[k]), int(predicted[k])
                    )
                )
        n = int(data["n_images"])
        if "accuracy_ci" in data:
            accuracy_ci = Interval.from_dict(data["accuracy_ci"])
            top5_ci = Interval.from_dict(data.get("top5_accuracy_ci"))
        else:
            accuracy_ci = wilson_interval(int(np.trace(matrix)), n)
            top5 = data["top5_accuracy"]
            top5_ci = wilson_interval(int(round(top5 * n)), n) if top5 is not None else None
        return cls(
            n_images=n,
            accuracy=data["accuracy"],
            top5_accuracy=data["top5_accuracy"],
            per_class=tuple(per_class),
            macro=Averages(**data["macro"]),
            weighted=Averages(**data["weighted"]),
            confusion_matrix=confusion,
            accuracy_ci=accuracy_ci,
            top5_accuracy_ci=top5_ci,
        )


def compute_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> Metrics:
    """Accuracy, top-5 (more than 5 classes only), per-class P/R/F1/support, averages, confusion.

    All from one confusion matrix counted with ``np.bincount``: the figures scikit-learn's
    ``precision_recall_fscore_support(..., zero_division=0)`` gives (a test compares them), in
    about 0.3 ms where scikit-learn's input checks took 17 ms for 4,000 images -- serial time at
    the end of every evaluation, while the cores wait.
    """
    k = len(class_names)
    n = int(len(y_true))
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    matrix = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k) if n else np.zeros((k, k), np.int64)
    if n == 0:
        zero = Averages(0.0, 0.0, 0.0)
        per_class = tuple(class_metrics(name, 0.0, 0.0, 0.0, 0, 0, 0) for name in class_names)
        return Metrics(0, None, None, per_class, zero, zero, _as_tuples(matrix))
    right, predicted, support = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    precision = _share(right, predicted)
    recall = _share(right, support)
    f1 = _share(2 * right, predicted + support)  # 2TP / (2TP + FP + FN)
    weights = support / support.sum()
    macro = Averages(float(precision.mean()), float(recall.mean()), float(f1.mean()))
    weighted = Averages(float(precision @ weights), float(recall @ weights), float(f1 @ weights))
    top5, top5_ci = None, None
    if k > 5:
        # The order scikit-learn's top_k_accuracy_score ranks by (stable sort, reversed): the same
        # classes win a tie.
        top = np.argsort(probabilities, axis=1, kind="mergesort")[:, ::-1][:, :5]
        top5_right = int((top == y_true[:, None]).any(axis=1).sum())
        top5, top5_ci = top5_right / n, wilson_interval(top5_right, n)
    return Metrics(
        n_images=n,
        accuracy=float(right.sum() / n),
        top5_accuracy=top5,
        per_class=tuple(
            class_metrics(name, float(precision[c]), float(recall[c]), float(f1[c]), int(support[c]), int(right[c]), int(predicted[c]))
            for c, name in enumerate(class_names)
        ),
        macro=macro,
        weighted=weighted,
        confusion_matrix=_as_tuples(matrix),
        accuracy_ci=wilson_interval(int(right.sum()), n),
        top5_accuracy_ci=top5_ci,
    )


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole per class, 0 where whole is 0 (scikit-learn's ``zero_division=0``)."""
    return np.divide(part, whole, out=np.zeros(len(part), dtype=float), where=whole > 0)


def _as_tuples(matrix: np.ndarray) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in row) for row in matrix)


# ----- intervals as people read them ----------------------------------------------------------------
def interval_text(ci: Interval | None, digits: int = 1) -> str:
    """``90.2–94.0%``: an interval of a proportion in percent; "" without one."""
    if ci is None:
        return ""
    return f"{100 * ci.low:.{digits}f}–{100 * ci.high:.{digits}f}%"


def proportion_text(value: float | None, ci: Interval | None, n: int, unit: str = "images") -> str:
    """``92.3% (95% CI 90.2–94.0%, 797 images)``: a proportion with its interval and what it was
    counted on, as every screen prints it; "n/a" with nothing counted."""
    if value is None:
        return "n/a"
    if ci is None:
        return f"{value:.1%} ({n:,} {unit})"
    return f"{value:.1%} ({round(100 * ci.level)}% CI {interval_text(ci)}, {n:,} {unit})"


def rate_interval(rate: float | None, n: int, level: float = CONFIDENCE_LEVEL) -> Interval | None:
    """The Wilson interval of a stored rate (``k / n`` kept as a float, as the run history keeps
    accuracy): ``k`` is recovered exactly by rounding. None without a rate or images."""
    if rate is None or n <= 0:
        return None
    return wilson_interval(min(n, max(0, round(rate * n))), n, level)
