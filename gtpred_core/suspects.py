"""Suspect labels: images whose folder label is probably wrong, found from the run's probabilities.

A self-confidence ranking cut by confident learning's count, in numpy. Candidates are the images
whose most probable class is not their folder's; the lower the probability of the folder label
(self-confidence), the more suspect. How many to keep is confident learning's estimate of the
number of wrong labels (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating
Uncertainty in Dataset Labels"): class ``j``'s threshold ``t_j`` is the mean p_j over the images
labelled ``j``; an image is confidently class ``j`` when ``p_j >= t_j``; the calibrated confident
joint's off-diagonal mass is the count. On digits with 5% of labels flipped this found more of the
planted errors than cleanlab 2.9's ``find_label_issues`` (default and ``confident_learning``),
at a similar precision (``bench/suspect_labels.py``; figures in the commit), so gtpred keeps it
and needs no new dependency.

These are review candidates, not proof: a suspect may be a hard image the model gets wrong.
They mean something only under the right class order: a run with the ``class-order-mismatch``
warning gets no suspects (read every label as wrong otherwise).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .run import Run

#: Under this warning every prediction is read under the wrong names: suspects would be noise.
ORDER_WARNING = "class-order-mismatch"
WAITING_FOR_ORDER = (
    "Suspect labels wait for the right class order: this run's predictions do not fit the class "
    "order in use (see the class-order warning). Evaluate again with the suggested order."
)


@dataclass(frozen=True)
class SuspectLabel:
    """One image whose folder label the model confidently disagrees with.

    ``score`` = 1 - p(folder label): 1.0 is the most suspect."""

    path: str
    given_label: str
    suggested_label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_class_thresholds(given: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``t_j``: mean p_j over the images labelled ``j``; +inf for a class with no images (no
    image can be confidently of a class whose typical confidence is unknown)."""
    n_classes = probabilities.shape[1]
    counts = np.bincount(given, minlength=n_classes).astype(float)
    sums = np.zeros(n_classes)
    np.add.at(sums, given, probabilities[np.arange(len(given)), given])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.inf)


def estimate_label_error_count(given: np.ndarray, probabilities: np.ndarray) -> int:
    """How many labels are wrong, estimated by confident learning's calibrated confident joint.

    Image ``i`` counts in cell ``(given_i, j)`` when it is confidently class ``j`` (``p_j >=
    t_j``, the most probable such ``j``); each row is then rescaled to the number of images
    with that label, and the off-diagonal mass is the estimate.
    """
    given = np.asarray(given, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_classes = probabilities.shape[1]
    passing = probabilities >= per_class_thresholds(given, probabilities)[None, :]
    confident = np.where(passing, probabilities, -np.inf).argmax(axis=1)
    counted = passing.any(axis=1)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (given[counted], confident[counted]), 1.0)
    row_totals = joint.sum(axis=1, keepdims=True)
    labelled = np.bincount(given, minlength=n_classes).astype(float)[:, None]
    calibrated = np.where(row_totals > 0, joint / np.maximum(row_totals, 1.0) * labelled, 0.0)
    return int(round(calibrated.sum() - np.trace(calibrated)))


def find_label_issues(given: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose label is suspect (most suspect first) and the class suggested for each.

    ``given[i]`` is image ``i``'s folder class, ``probabilities[i]`` the model's held-out
    probabilities for it (rows sum to 1). Candidates are the images whose most probable class is
    not their label, ranked by p(label), lowest first; the list is cut at confident learning's
    estimate of how many labels are wrong.
    """
    given = np.asarray(given, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(given) == 0 or probabilities.shape[1] < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    top = probabilities.argmax(axis=1)
    candidates = np.flatnonzero(top != given)
    p_given = probabilities[candidates, given[candidates]]
    ranked = candidates[np.lexsort((candidates, p_given))]  # lowest p(label) first; ties by row
    rows = ranked[: estimate_label_error_count(given, probabilities)]
    return rows, top[rows]


def suspect_labels(
    paths: Sequence[str],
    given: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
) -> list[SuspectLabel]:
    """The suspects of a run as records, most suspect first."""
    rows, suggested = find_label_issues(given, probabilities)
    given = np.asarray(given)
    return [
        SuspectLabel(
            path=paths[int(i)],
            given_label=class_names[int(given[i])],
            suggested_label=class_names[int(j)],
            score=float(1.0 - probabilities[i, given[i]]),
        )
        for i, j in zip(rows, suggested)
    ]


def suspect_labels_summary(
    paths: Sequence[str],
    given: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    warning_codes: Sequence[str],
) -> tuple[list[dict[str, Any]], str | None]:
    """``summary.json``'s ``suspect_labels`` and a note: empty, with the reason, when the class
    order looks wrong."""
    if ORDER_WARNING in warning_codes:
        return [], WAITING_FOR_ORDER
    return [s.to_dict() for s in suspect_labels(paths, given, probabilities, class_names)], None


#: Columns of ``suspect_table``: the run's row, the file, its folder label, the model's suggestion,
#: and the probability the model gives each.
SUSPECT_COLUMNS = ("index", "file", "given", "suggested", "p_given", "p_suggested")


def suspect_table(run: "Run") -> tuple["pd.DataFrame", str | None]:
    """The run's suspect labels as ``SUSPECT_COLUMNS``, most suspect first, and the note saying
    why there are none when the class order looks wrong (then the table is empty)."""
    import pandas as pd

    if ORDER_WARNING in run.warning_codes():
        return pd.DataFrame(columns=list(SUSPECT_COLUMNS)), WAITING_FOR_ORDER
    rows, suggested = find_label_issues(run.y_true, run.probabilities)
    given = run.y_true[rows]
    names = run.class_names
    table = pd.DataFrame(
        {
            "index": rows.astype(np.int64),
            "file": [run.paths[int(i)] for i in rows],
            "given": [names[int(k)] for k in given],
            "suggested": [names[int(k)] for k in suggested],
            "p_given": run.probabilities[rows, given].astype(float),
            "p_suggested": run.probabilities[rows, suggested].astype(float),
        },
        columns=list(SUSPECT_COLUMNS),
    )
    return table, None
