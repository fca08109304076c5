"""Checks that catch silent mistakes in a finished run: a wrong class order, a collapsed model.

Each check returns plain-language RunWarnings; none changes the run. The accuracy reported is
always the one under the order in use: a better order is suggested, never swapped in silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Sequence

import numpy as np

from .class_order import keras_order, natural_order


class WarningCode(StrEnum):
    """The stable codes of run warnings (equal to their strings, as stored and in summary.json)."""

    CLASS_ORDER_MISMATCH = "class-order-mismatch"
    PREDICTION_COLLAPSE = "prediction-collapse"
    LOGITS_OUTPUT = "logits-output"
    EMPTY_CLASS = "empty-class"
    SKIPPED_FILES = "skipped-files"
    IGNORED_FILES = "ignored-files"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RunWarning:
    """A finding a user needs to read: a stable ``code`` and a plain ``message``.

    A code read back from storage becomes its ``WarningCode``; one this version does not know
    (written by a newer gtpred) stays a plain string.
    """

    code: WarningCode | str
    message: str

    def __post_init__(self) -> None:
        if not isinstance(self.code, WarningCode) and self.code in WarningCode._value2member_map_:
            object.__setattr__(self, "code", WarningCode(self.code))


#: A better order must explain at least this much more accuracy (absolute) to be suggested...
MISMATCH_MIN_GAIN = 0.10
#: ...and at least this many more images.
MISMATCH_MIN_IMAGES = 5
#: A collapse: at least this share of predictions on one class...
COLLAPSE_MIN_SHARE = 0.5
#: ...exceeding that class's true share by at least this much.
COLLAPSE_MIN_EXCESS = 0.3


@dataclass(frozen=True)
class OrderSuggestion:
    order: tuple[str, ...]
    accuracy: float
    is_natural: bool
    is_keras: bool


def best_class_order(
    confusion: np.ndarray, class_names: Sequence[str]
) -> tuple[tuple[str, ...], int]:
    """The one-to-one relabelling of output indices that explains the most predictions.

    ``confusion[i, j]`` counts images of class ``class_names[i]`` predicted as output ``j``. An
    optimal assignment pairs each true class with one output; output ``j`` is then named after
    the class assigned to it. Ties keep the current name (a tiny bonus on the diagonal).
    """
    from scipy.optimize import linear_sum_assignment

    n = len(class_names)
    scores = confusion.astype(float) + np.eye(n) * 1e-6
    rows, cols = linear_sum_assignment(scores, maximize=True)
    order = [""] * n
    for true_class, output in zip(rows, cols):
        order[output] = class_names[true_class]
    explained = int(confusion[rows, cols].sum())
    return tuple(order), explained


def suggest_class_order(
    confusion: np.ndarray, class_names: Sequence[str]
) -> OrderSuggestion | None:
    """A clearly better class order, or None. Prefers the natural or Keras order when either
    explains as much as the optimal assignment, since those are the usual causes."""
    total = int(confusion.sum())
    if total == 0 or len(class_names) < 2:
        return None
    current = int(np.trace(confusion))
    order, explained = best_class_order(confusion, class_names)
    for candidate in (natural_order(class_names), keras_order(class_names)):
        if tuple(candidate) != tuple(class_names):
            candidate_explained = _explained_by(confusion, class_names, candidate)
            if candidate_explained >= explained:
                order, explained = tuple(candidate), candidate_explained
    gain = explained - current
    if gain < MISMATCH_MIN_IMAGES or gain / total < MISMATCH_MIN_GAIN:
        return None
    return OrderSuggestion(
        order=order,
        accuracy=explained / total,
        is_natural=order == natural_order(class_names),
        is_keras=order == keras_order(class_names),
    )


def _explained_by(confusion: np.ndarray, class_names: Sequence[str], order: Sequence[str]) -> int:
    """Correct predictions if output ``j`` meant ``order[j]`` instead of ``class_names[j]``."""
    position = {name: i for i, name in enumerate(class_names)}
    return int(sum(confusion[position[name], j] for j, name in enumerate(order)))


def check_class_order(
    confusion: np.ndarray, class_names: Sequence[str], accuracy: float | None
) -> tuple[list[RunWarning], tuple[str, ...] | None]:
    suggestion = suggest_class_order(confusion, class_names)
    if suggestion is None:
        return [], None
    if suggestion.is_natural:
        cause = (
            "The natural order (Class_2 before Class_10) explains the predictions: the model "
            "was most likely trained with classes in natural order, while the folders sort as "
            "strings. Evaluate with the natural class order (--class-order natural)."
        )
    elif suggestion.is_keras:
        cause = (
            "Keras' folder order (plain string sort) explains the predictions. Evaluate with "
            "Keras' folder order (--class-order keras)."
        )
    else:
        moved = sum(a != b for a, b in zip(suggestion.order, class_names))
        cause = (
            f"A different assignment of {moved} class names to the model's outputs explains "
            "the predictions. Evaluate with the labels file or class_indices JSON saved at "
            "training time as the class order (--class-order FILE)."
        )
    current = f"{accuracy:.1%}" if accuracy is not None else "n/a"
    message = (
        f"The class order looks wrong: accuracy is {current} under the order in use, but "
        f"{suggestion.accuracy:.1%} if the model's outputs are read in another order. {cause}"
    )
    return [RunWarning(WarningCode.CLASS_ORDER_MISMATCH, message)], suggestion.order


def check_prediction_collapse(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str],
    *,
    preprocess: str,
    rescales_itself: bool | None,
) -> list[RunWarning]:
    """Warn when most predictions fall on one class that the truth does not support."""
    n = len(y_pred)
    if n < 10 or len(class_names) < 2:
        return []
    predicted_share = np.bincount(y_pred, minlength=len(class_names)) / n
    dominant = int(np.argmax(predicted_share))
    true_share = float(np.mean(y_true == dominant))
    share = float(predicted_share[dominant])
    if share < COLLAPSE_MIN_SHARE or share - true_share < COLLAPSE_MIN_EXCESS:
        return []
    causes = []
    if rescales_itself and preprocess != "none":
        causes.append(
            f"the model has its own Rescaling/Normalization layer and --preprocess {preprocess} "
            "scales the pixels a second time (try preprocessing none: --preprocess none)"
        )
    elif rescales_itself is False and preprocess == "none":
        causes.append(
            "the model has no Rescaling layer but receives 0..255 pixels (try preprocessing "
            "rescale: --preprocess rescale, or the preprocessing used in training)"
        )
    causes += [
        "preprocessing applied twice or not at all",
        "a wrong input size or colour mode",
        "untrained or badly trained weights",
    ]
    return [
        RunWarning(
            WarningCode.PREDICTION_COLLAPSE,
            f"{share:.0%} of predictions are '{class_names[dominant]}', which is only "
            f"{true_share:.0%} of the images: the model is predicting nearly one class for "
            f"everything. Likely causes: {'; '.join(causes)}.",
        )
    ]
