"""A training as gtpred sees it: one evaluated Run per epoch (or checkpoint), with its Keras logs.

``TrainingHistory`` holds the epochs together, so an epoch's number, its logs and its run can
never drift apart (as three parallel lists could), and answers the questions asked of a training:
the curves, per-class recall by epoch, which images were never right, one image across epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .diagnostics import WarningCode
from .run import FILE_COLUMNS, Run

if TYPE_CHECKING:
    import pandas as pd

    from .store import RunStore

COLLAPSE_CODE = WarningCode.PREDICTION_COLLAPSE


@dataclass(frozen=True, eq=False)
class EpochRun:
    """One recorded epoch: its number, the Keras logs of that epoch, and the evaluated run."""

    epoch: int
    logs: Mapping[str, Any]
    run: Run
    run_id: int | None = None  # the run's id in the run store, when it was loaded from one


@dataclass(frozen=True)
class BestEpoch:
    """The best epoch by evaluated accuracy and the next best; ``p_value`` is McNemar's exact
    test between their runs on the ``n_common`` files both evaluated (None with one epoch, or
    when the two cannot be compared: ``note`` says why)."""

    epoch: int
    accuracy: float
    runner_up: int | None = None
    runner_up_accuracy: float | None = None
    p_value: float | None = None
    n_common: int = 0
    alpha: float = 0.05
    note: str = ""

    @property
    def distinguishable(self) -> bool | None:
        """True when the best epoch beats the next best by more than chance; None untested."""
        return None if self.p_value is None else self.p_value < self.alpha

    def sentence(self) -> str:
        """The best epoch in plain words, saying when the next best is as good as far as these
        images can tell."""
        from .compare import p_value_text

        lead = f"Best epoch: {self.epoch} ({self.accuracy:.1%} accuracy)."
        if self.runner_up is None:
            return lead + " It is the only epoch with an accuracy."
        other = f"epoch {self.runner_up} ({self.runner_up_accuracy:.1%})"
        if self.p_value is None:
            return f"{lead} Whether it beats {other} could not be tested: {self.note}"
        p = p_value_text(self.p_value)
        p = f"p {p}" if p.startswith("<") else f"p = {p}"
        test = f"McNemar {p} on the {self.n_common:,} images both epochs evaluated"
        if self.distinguishable:
            return f"{lead} It beats the next best, {other}, by more than chance ({test})."
        return (
            f"{lead} It is not distinguishable from the next best, {other}: the difference could "
            f"be chance ({test}), so either epoch would do."
        )


@dataclass(frozen=True, eq=False)
class TrainingHistory:
    """The epochs of one training, in order (``entries`` as the store lists them)."""

    entries: tuple[EpochRun, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))

    @classmethod
    def load(cls, store: "RunStore", training_id: int) -> "TrainingHistory":
        """The training ``training_id`` of ``store``, every epoch's run loaded."""
        return cls(
            tuple(
                EpochRun(e.epoch, e.logs, store.load(e.run_id), run_id=e.run_id)
                for e in store.training_epochs(training_id)
            )
        )

    # ----- the epochs
    def __len__(self) -> int:
        return len(self.entries)

    @property
    def epochs(self) -> list[int]:
        return [e.epoch for e in self.entries]

    @property
    def runs(self) -> list[Run]:
        return [e.run for e in self.entries]

    @property
    def last(self) -> EpochRun:
        return self.entries[-1]

    def at(self, epoch: int) -> EpochRun:
        """The entry of ``epoch`` (the first one recorded when an epoch was recorded twice)."""
        for entry in self.entries:
            if entry.epoch == epoch:
                return entry
        raise KeyError(f"epoch {epoch} was not recorded (recorded: {', '.join(map(str, self.epochs)) or 'none'})")

    # ----- the training as a whole
    def collapsed_epochs(self) -> list[int]:
        """The epochs whose predictions collapse onto one class (the run's own warning)."""
        return [e.epoch for e in self.entries if COLLAPSE_CODE in e.run.warning_codes()]

    def epoch_table(self) -> "pd.DataFrame":
        """One row per epoch: evaluated accuracy and top-5, images, whether predictions collapsed
        onto one class, then the epoch's Keras logs (as ``log_<name>``)."""
        import pandas as pd

        rows = []
        for e in self.entries:
            row = {
                "epoch": e.epoch,
                "accuracy": e.run.accuracy,
                "top5": e.run.metrics.top5_accuracy,
                "n_images": e.run.n_images,
                "collapsed": COLLAPSE_CODE in e.run.warning_codes(),
            }
            row.update({f"log_{k}": v for k, v in e.logs.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def curves(self) -> "pd.DataFrame":
        """Per-epoch numbers in long form (``epoch``, ``kind``, ``series``, ``value``) for line charts.

        ``kind`` is "accuracy" or "loss". The accuracy gtpred measured on the stored predictions is
        series "evaluated accuracy"; numeric Keras log entries follow under their own names (``loss``,
        ``val_loss`` as loss; names containing "acc" as accuracy; others are left out).
        """
        import pandas as pd

        rows = []
        for e in self.entries:
            if e.run.accuracy is not None:
                rows.append({"epoch": e.epoch, "kind": "accuracy", "series": "evaluated accuracy", "value": float(e.run.accuracy)})
            for key, value in e.logs.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                kind = "loss" if "loss" in key else "accuracy" if "acc" in key else None
                if kind is not None:
                    rows.append({"epoch": e.epoch, "kind": kind, "series": key, "value": float(value)})
        return pd.DataFrame(rows, columns=["epoch", "kind", "series", "value"])

    def accuracy_band(self) -> "pd.DataFrame":
        """Evaluated accuracy per epoch with its 95% Wilson interval (``epoch``, ``accuracy``,
        ``low``, ``high``, ``n_images``): the band drawn around the accuracy curve."""
        import pandas as pd

        rows = [
            {
                "epoch": e.epoch,
                "accuracy": float(e.run.accuracy),
                "low": e.run.metrics.accuracy_ci.low,
                "high": e.run.metrics.accuracy_ci.high,
                "n_images": e.run.n_images,
            }
            for e in self.entries
            if e.run.accuracy is not None and e.run.metrics.accuracy_ci is not None
        ]
        return pd.DataFrame(rows, columns=["epoch", "accuracy", "low", "high", "n_images"])

    def best_epoch(self, alpha: float = 0.05) -> "BestEpoch | None":
        """The epoch with the highest evaluated accuracy (the earliest on a tie), and whether it is
        distinguishable from the next best: McNemar's exact test on the two epochs' runs, file by
        file. None when no epoch has an accuracy."""
        from .compare import ComparisonError, compare_runs

        scored = [(e, float(e.run.accuracy)) for e in self.entries if e.run.accuracy is not None]
        if not scored:
            return None
        ranked = sorted(scored, key=lambda pair: -pair[1])  # stable: the earliest first on a tie
        (best, accuracy) = ranked[0]
        if len(ranked) == 1:
            return BestEpoch(best.epoch, accuracy, alpha=alpha)
        (runner_up, runner_up_accuracy) = ranked[1]
        try:
            comparison = compare_runs(runner_up.run, best.run)
        except ComparisonError as err:
            return BestEpoch(best.epoch, accuracy, runner_up.epoch, runner_up_accuracy, alpha=alpha, note=err.message)
        return BestEpoch(
            best.epoch,
            accuracy,
            runner_up.epoch,
            runner_up_accuracy,
            p_value=comparison.mcnemar.p_value,
            n_common=comparison.n_common,
            alpha=alpha,
        )

    def recall_by_epoch(self) -> "pd.DataFrame":
        """Per-class recall at each epoch in long form (``epoch``, ``class``, ``recall``)."""
        import pandas as pd

        return pd.DataFrame(
            [{"epoch": e.epoch, "class": c.label, "recall": c.recall} for e in self.entries for c in e.run.metrics.per_class],
            columns=["epoch", "class", "recall"],
        )

    def never_right(self) -> "pd.DataFrame":
        """Files predicted wrong at every epoch (of those every epoch evaluated), with the last
        epoch's prediction, as ``FILE_COLUMNS``; most confident last mistake first."""
        if not self.entries:
            import pandas as pd

            return pd.DataFrame(columns=list(FILE_COLUMNS))
        last = self.last.run
        wrong = {p for p, ok in zip(last.paths, last.correct) if not ok}
        for run in self.runs[:-1]:
            wrong &= {p for p, ok in zip(run.paths, run.correct) if not ok}
        return last.files_table(np.array([i for i, p in enumerate(last.paths) if p in wrong], dtype=np.int64))

    # ----- one file across the epochs
    def file_by_epoch(self, rel_path: str) -> "pd.DataFrame":
        """One file at each epoch: the predicted class, its confidence, the true class's
        probability and whether it was right (epochs whose run lacks the file are left out)."""
        import pandas as pd

        rows = []
        for e in self.entries:
            i = e.run.file_position(rel_path)
            if i is None:
                continue
            t, p = int(e.run.y_true[i]), int(e.run.y_pred[i])
            rows.append(
                {
                    "epoch": e.epoch,
                    "predicted": e.run.class_names[p],
                    "confidence": float(e.run.probabilities[i, p]),
                    "p_true": float(e.run.probabilities[i, t]),
                    "right": t == p,
                }
            )
        return pd.DataFrame(rows, columns=["epoch", "predicted", "confidence", "p_true", "right"])

    def file_probabilities(self, rel_path: str, k: int = 3) -> "pd.DataFrame":
        """One file's probabilities at each epoch in long form (``epoch``, ``class``,
        ``probability``, ``is_true``), for the true class and every class in some epoch's top ``k``."""
        import pandas as pd

        found = [(e, e.run.file_position(rel_path)) for e in self.entries]
        paired = [(e.epoch, e.run, i) for e, i in found if i is not None]
        shown: list[str] = []
        for _, run, i in paired:
            for name in [run.class_names[int(run.y_true[i])], *(name for name, _ in run.top_k(i, k))]:
                if name not in shown:
                    shown.append(name)
        rows = []
        for epoch, run, i in paired:
            true_name = run.class_names[int(run.y_true[i])]
            for name in shown:
                rows.append(
                    {
                        "epoch": epoch,
                        "class": name,
                        "probability": float(run.probabilities[i, run.class_names.index(name)]),
                        "is_true": name == true_name,
                    }
                )
        return pd.DataFrame(rows, columns=["epoch", "class", "probability", "is_true"])
