"""Compare two runs on the same images: accuracy and per-class deltas, confusion difference, flips.

Runs are matched file by file through their relative paths, and classes by name, so two runs
with different class orders (say Keras' and natural) still compare correctly.

Whether a difference is more than chance: both runs scored the same images, so the test is
paired. McNemar's exact test looks only at the images the runs disagree on (``b`` only A gets
right, ``c`` only B gets right) and asks whether ``b`` of ``b + c`` is far from half; the 95%
interval for accuracy B − A is Newcombe's square-and-add interval for paired proportions
(Newcombe 1998, "Improved confidence intervals for the difference between binomial proportions
based on paired data", method 10: built from the two Wilson score intervals).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .calibration import calibration
from .errors import ComparisonError
from .metrics import CONFIDENCE_LEVEL, Interval, Metrics, compute_metrics, wilson_interval
from .run import Run
from .suspects import ORDER_WARNING, suspect_labels

if TYPE_CHECKING:
    import pandas as pd

#: Columns of ``RunComparison.flips_table`` (images right in one run and wrong in the other).
FLIP_COLUMNS = ("file", "true", "pred_a", "confidence_a", "pred_b", "confidence_b", "direction", "index_a", "index_b")


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
class McNemar:
    """McNemar's exact test: ``b`` images only A gets right, ``c`` only B gets right;
    ``p_value`` is the two-sided binomial test of ``b`` of ``b + c`` at 1/2 (1.0 when b + c = 0)."""

    b: int
    c: int
    p_value: float
    method: str = "exact"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClassMcNemar:
    """McNemar's exact test on the images of one true class (whether its recall changed)."""

    label: str
    b: int
    c: int
    p_value: float


def mcnemar_exact(b: int, c: int) -> McNemar:
    """Exact two-sided McNemar test: 2 · P(X <= min(b, c)) for X ~ Binomial(b + c, 1/2), capped at 1.

    Exact integer arithmetic up to ``EXACT_INTEGER_LIMIT`` discordant images (C(n, i) updated
    term by term); beyond it, the same sum in log space (lgamma), which stays fast for any n.
    """
    if b < 0 or c < 0:
        raise ValueError(f"b and c count images and cannot be negative (got b={b}, c={c})")
    n, smaller = b + c, min(b, c)
    if n == 0:
        return McNemar(b, c, 1.0)
    if n <= EXACT_INTEGER_LIMIT:
        tail, term = 0, 1  # term = C(n, i)
        for i in range(smaller + 1):
            tail += term
            term = term * (n - i) // (i + 1)
        return McNemar(b, c, min(1.0, 2 * tail / 2**n))
    counts = np.arange(smaller + 1, dtype=np.float64)
    log_terms = math.lgamma(n + 1) - _lgamma(counts + 1) - _lgamma(n - counts + 1) - n * math.log(2)
    top = float(log_terms.max())
    log_tail = top + math.log(float(np.exp(log_terms - top).sum()))
    return McNemar(b, c, min(1.0, 2 * math.exp(log_tail)))


#: Up to this many discordant images the McNemar p-value is summed in exact integers.
EXACT_INTEGER_LIMIT = 5000
_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def paired_difference_interval(
    both: int, only_a: int, only_b: int, neither: int, level: float = CONFIDENCE_LEVEL
) -> Interval | None:
    """Newcombe's interval for accuracy B − A on paired images; None with no images.

    ``both`` images both runs get right, ``only_a`` only A, ``only_b`` only B, ``neither``.
    With p_B, p_A and their Wilson intervals (l_B, u_B), (l_A, u_A), and φ the correlation
    of the paired outcomes (continuity-corrected as in Newcombe's paper: 0 when
    0 <= both·neither − only_a·only_b <= n/2, and 0 when a margin is empty):
    low  = d − sqrt((p_B − l_B)² − 2φ(p_B − l_B)(u_A − p_A) + (u_A − p_A)²),
    high = d + sqrt((u_B − p_B)² − 2φ(u_B − p_B)(p_A − l_A) + (p_A − l_A)²).
    """
    n = both + only_a + only_b + neither
    if n == 0:
        return None
    right_b, right_a = both + only_b, both + only_a
    p_b, p_a = right_b / n, right_a / n
    ci_b, ci_a = wilson_interval(right_b, n, level), wilson_interval(right_a, n, level)
    assert ci_b is not None and ci_a is not None
    margins = (right_b, n - right_b, right_a, n - right_a)
    phi = 0.0
    if min(margins) > 0:
        cross = both * neither - only_a * only_b
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(math.prod(margins))
        elif cross < 0:
            phi = cross / math.sqrt(math.prod(margins))
    d = p_b - p_a
    down_b, up_b = p_b - ci_b.low, ci_b.high - p_b
    down_a, up_a = p_a - ci_a.low, ci_a.high - p_a
    low = d - math.sqrt(max(0.0, down_b**2 - 2 * phi * down_b * up_a + up_a**2))
    high = d + math.sqrt(max(0.0, up_b**2 - 2 * phi * up_b * down_a + down_a**2))
    return Interval(max(-1.0, low), min(1.0, high), level, "newcombe")


#: A difference is called significant when McNemar's p is below this.
SIGNIFICANCE_LEVEL = 0.05


def p_value_text(p: float) -> str:
    """``0.14``, ``0.003``, ``< 0.001``: a p-value with as many digits as it deserves."""
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def points_text(value: float) -> str:
    """A difference of proportions in percentage points, with a true minus sign: ``−0.4``."""
    text = f"{100 * value:.1f}"
    return "0.0" if text in ("-0.0", "0.0") else text.replace("-", "\u2212")


@dataclass(frozen=True)
class Verdict:
    """Is B's accuracy different from A's by more than chance? ``delta`` = accuracy B − A on the
    ``n_images`` both runs evaluated, ``ci`` its interval, ``p_value`` McNemar's exact test."""

    delta: float | None
    ci: Interval | None
    p_value: float
    n_images: int
    alpha: float = SIGNIFICANCE_LEVEL

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def headline(self) -> str:
        """The answer first, no numbers: what a reader who stops here should take away."""
        if self.delta is None or self.n_images == 0:
            return "There are no images both runs evaluated, so they cannot be compared."
        if not self.significant:
            return "The two runs cannot be told apart on these images: the difference could be chance."
        better = "more" if self.delta > 0 else "less"
        return f"Run B is {better} accurate than run A, by more than chance would explain."

    def sentence(self, emphasis: str = "") -> str:
        """``B is 1.2 points better (95% CI −0.4 to 2.8); McNemar p = 0.14: not a significant
        difference on these 797 images.`` The word "not" is wrapped in ``emphasis`` (``"**"``
        for Markdown)."""
        if self.delta is None:
            return self.headline()
        size = points_text(abs(self.delta))
        if size == "0.0":
            lead = "B and A are equally accurate"
        else:
            lead = f"B is {size} points {'better' if self.delta > 0 else 'worse'}"
        ci = f" ({round(100 * self.ci.level)}% CI {points_text(self.ci.low)} to {points_text(self.ci.high)})" if self.ci else ""
        p = p_value_text(self.p_value)
        p = f"p {p}" if p.startswith("<") else f"p = {p}"
        if self.significant:
            finding = f"a significant difference (at the {self.alpha:g} level)"
        else:
            finding = f"{emphasis}not{emphasis} a significant difference"
        return f"{lead}{ci}; McNemar {p}: {finding} on these {self.n_images:,} images."


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
    mcnemar: McNemar = McNemar(0, 0, 1.0)
    delta_ci: Interval | None = None  # accuracy B − A, Newcombe (see paired_difference_interval)
    per_class_mcnemar: tuple[ClassMcNemar, ...] = ()
    ece_a: float | None = None  # calibration error of A, then B, on the common files
    ece_b: float | None = None
    #: Common files suspect in both runs, in A's order of suspicion; None when either run's class
    #: order looks wrong (its suspects wait for the right order).
    suspects_in_common: tuple[str, ...] | None = None
    n_suspects_a: int = 0  # suspects of A, then B, among the common files
    n_suspects_b: int = 0

    @property
    def ece_delta(self) -> float | None:
        """Calibration error B − A on the common files (negative: B is better calibrated)."""
        if self.ece_a is None or self.ece_b is None:
            return None
        return self.ece_b - self.ece_a

    @property
    def accuracy_delta(self) -> float | None:
        if self.metrics_a.accuracy is None or self.metrics_b.accuracy is None:
            return None
        return self.metrics_b.accuracy - self.metrics_a.accuracy

    @property
    def accuracy_a(self) -> float | None:
        """A's accuracy on the common images (not on all of A's)."""
        return self.metrics_a.accuracy

    @property
    def accuracy_b(self) -> float | None:
        return self.metrics_b.accuracy

    def significance(self) -> dict[str, Any]:
        """Is B's difference from A more than chance? The ``runs compare`` JSON document."""
        return {
            "accuracy_a": self.accuracy_a,
            "accuracy_b": self.accuracy_b,
            "accuracy_delta": self.accuracy_delta,
            "n_common": self.n_common,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "mcnemar": self.mcnemar.to_dict(),
            "delta_ci": self.delta_ci.to_dict() if self.delta_ci else None,
            "per_class": [asdict(row) for row in self.per_class_mcnemar],
        }

    @property
    def confusion_delta(self) -> np.ndarray:
        """Confusion of B minus confusion of A (rows = true, columns = predicted)."""
        return np.asarray(self.metrics_b.confusion_matrix) - np.asarray(self.metrics_a.confusion_matrix)

    def per_class_deltas(self) -> list[dict[str, Any]]:
        """Per class (A's order): support, recall in A and B, the B − A deltas, and McNemar's
        ``b`` (images of the class only A gets right), ``c`` (only B) and ``p_value``."""
        tests = {t.label: t for t in self.per_class_mcnemar}
        rows = []
        for a, b in zip(self.metrics_a.per_class, self.metrics_b.per_class):
            test = tests.get(a.label)
            rows.append(
                {
                    "label": a.label,
                    "support": a.support,
                    "recall_a": a.recall,
                    "recall_b": b.recall,
                    "recall_delta": b.recall - a.recall,
                    "precision_delta": b.precision - a.precision,
                    "f1_delta": b.f1 - a.f1,
                    "b": test.b if test else 0,
                    "c": test.c if test else 0,
                    "p_value": test.p_value if test else 1.0,
                }
            )
        return rows

    def verdict(self, alpha: float = SIGNIFICANCE_LEVEL) -> "Verdict":
        """Whether B differs from A by more than chance, in words a non-programmer reads."""
        return Verdict(self.accuracy_delta, self.delta_ci, self.mcnemar.p_value, self.n_common, alpha)

    def flips_in(self, direction: str) -> list[Flip]:
        return [f for f in self.flips if f.direction == direction]

    # ----- tables, ready to draw
    def per_class_table(self) -> "pd.DataFrame":
        """One row per class (A's order): support, recall in A and B, and the B − A deltas."""
        import pandas as pd

        return pd.DataFrame(self.per_class_deltas()).rename(columns={"label": "class"})

    def confusion_delta_cells(self) -> "pd.DataFrame":
        """The confusion difference B − A in long form (rows = true, columns = predicted)."""
        import pandas as pd

        names = list(self.class_names)
        n = len(names)
        count_a = np.asarray(self.metrics_a.confusion_matrix, dtype=np.int64).reshape(n, n)
        count_b = np.asarray(self.metrics_b.confusion_matrix, dtype=np.int64).reshape(n, n)
        true_idx, pred_idx = np.indices((n, n))
        return pd.DataFrame(
            {
                "true": [names[i] for i in true_idx.ravel()],
                "predicted": [names[j] for j in pred_idx.ravel()],
                "count_a": count_a.ravel(),
                "count_b": count_b.ravel(),
                "delta": (count_b - count_a).ravel(),
            }
        )

    def flips_table(self, direction: str | None = None) -> "pd.DataFrame":
        """The flipped images as ``FLIP_COLUMNS`` (``direction`` "right-to-wrong",
        "wrong-to-right", or None for both): right-to-wrong first, then by file."""
        import pandas as pd

        flips = [f for f in self.flips if direction is None or f.direction == direction]
        table = pd.DataFrame(
            [
                {
                    "file": f.path,
                    "true": f.true_label,
                    "pred_a": f.pred_a,
                    "confidence_a": f.confidence_a,
                    "pred_b": f.pred_b,
                    "confidence_b": f.confidence_b,
                    "direction": f.direction,
                    "index_a": f.index_a,
                    "index_b": f.index_b,
                }
                for f in flips
            ],
            columns=list(FLIP_COLUMNS),
        )
        order = table["direction"].map({"right-to-wrong": 0, "wrong-to-right": 1})
        return (
            table.assign(_order=order)
            .sort_values(["_order", "file"], kind="stable")
            .drop(columns="_order")
            .reset_index(drop=True)
        )


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
    only_a, only_b = right_a & ~right_b, right_b & ~right_a
    per_class = []
    for class_index, name in enumerate(names):
        of_class = y_true == class_index
        test = mcnemar_exact(int(np.sum(only_a & of_class)), int(np.sum(only_b & of_class)))
        per_class.append(ClassMcNemar(name, test.b, test.c, test.p_value))
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
        mcnemar=mcnemar_exact(int(only_a.sum()), int(only_b.sum())),
        delta_ci=paired_difference_interval(
            int(np.sum(right_a & right_b)), int(only_a.sum()), int(only_b.sum()), int(np.sum(~right_a & ~right_b))
        ),
        per_class_mcnemar=tuple(per_class),
        ece_a=calibration(prob_a, y_true).ece,
        ece_b=calibration(prob_b, y_true).ece,
        **_suspects_in_common(a, b, {a.paths[i] for i in rows_a}),
    )


def _suspects_in_common(a: Run, b: Run, common: set[str]) -> dict[str, Any]:
    """``RunComparison``'s suspect fields: each run's suspects among the common files, and the
    files suspect in both (the labels two models doubt are the first to review)."""
    if ORDER_WARNING in a.warning_codes() or ORDER_WARNING in b.warning_codes():
        return {"suspects_in_common": None}
    in_a = [s.path for s in suspect_labels(a.paths, a.y_true, a.probabilities, a.class_names) if s.path in common]
    in_b = {s.path for s in suspect_labels(b.paths, b.y_true, b.probabilities, b.class_names) if s.path in common}
    return {
        "suspects_in_common": tuple(p for p in in_a if p in in_b),
        "n_suspects_a": len(in_a),
        "n_suspects_b": len(in_b),
    }
