"""Calibration: does a 90% confidence mean 90% right? Pure functions of a run's probabilities.

Defined on the top-1 confidence with 15 equal-width bins (i/15, (i+1)/15] (a confidence of 0
falls in the first bin):

* ECE = Σ_b (n_b / N) · |accuracy_b − confidence_b|, MCE = the largest such gap over non-empty bins;
* Brier = mean over images of Σ_k (p_k − [y = k])²;
* NLL = mean of −ln max(p_true, 1e-12).

The temperature what-if (``temperature_what_if``) answers "would softening or sharpening the
probabilities fix it?" without touching the model: probabilities become logits through ``log``
(softmax(log p) = p, so this loses nothing), a temperature T is fitted by NLL on one half of the
images and ECE is reported on the other half before and after. Dividing logits by T > 0 never
changes the arg-max, so accuracy is unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .run import Run

N_BINS = 15
#: p_true is clipped here before the log, so a confident miss costs ln(1e12) ≈ 27.6, not infinity.
NLL_FLOOR = 1e-12


@dataclass(frozen=True)
class CalibrationBin:
    """Images whose top-1 confidence is in (lower, upper]; ``confidence`` and ``accuracy`` are
    their means (None when the bin is empty)."""

    lower: float
    upper: float
    count: int
    confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class Calibration:
    ece: float | None
    mce: float | None
    brier: float | None
    nll: float | None
    bins: tuple[CalibrationBin, ...]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bins"] = [asdict(b) for b in self.bins]
        return data


def bin_index(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """The bin of each confidence: bin i holds (i/n, (i+1)/n]; 0 goes to bin 0."""
    inner_edges = np.arange(1, n_bins) / n_bins  # the same floats as CalibrationBin.upper
    return np.searchsorted(inner_edges, np.asarray(confidence, dtype=np.float64), side="left")


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> tuple[CalibrationBin, ...]:
    """Count, mean confidence and accuracy per bin: the data of a reliability diagram."""
    index = bin_index(confidence, n_bins)
    bins = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        bins.append(
            CalibrationBin(
                lower=b / n_bins,
                upper=(b + 1) / n_bins,
                count=count,
                confidence=float(np.mean(confidence[members])) if count else None,
                accuracy=float(np.mean(correct[members])) if count else None,
            )
        )
    return tuple(bins)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float | None:
    """ECE of top-1 confidences; None with no images."""
    if len(confidence) == 0:
        return None
    bins = reliability_bins(np.asarray(confidence, np.float64), np.asarray(correct, bool), n_bins)
    return float(sum(b.count / len(confidence) * _gap(b) for b in bins if b.count))


def _gap(b: CalibrationBin) -> float:
    """|accuracy − confidence| of a non-empty bin."""
    assert b.accuracy is not None and b.confidence is not None
    return abs(b.accuracy - b.confidence)


def calibration(probabilities: np.ndarray, y_true: np.ndarray, n_bins: int = N_BINS) -> Calibration:
    """ECE, MCE, Brier score, NLL and the reliability bins of a run's probabilities."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    n = len(y_true)
    if n == 0:
        return Calibration(None, None, None, None, reliability_bins(np.zeros(0), np.zeros(0, bool), n_bins))
    rows = np.arange(n)
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities[rows, predicted]
    correct = predicted == y_true
    bins = reliability_bins(confidence, correct, n_bins)
    gaps = [_gap(b) for b in bins if b.count]
    one_hot = np.zeros_like(probabilities)
    one_hot[rows, y_true] = 1.0
    return Calibration(
        ece=float(sum(b.count / n * _gap(b) for b in bins if b.count)),
        mce=float(max(gaps)),
        brier=float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1))),
        nll=float(np.mean(-np.log(np.maximum(probabilities[rows, y_true], NLL_FLOOR)))),
        bins=bins,
    )


@dataclass(frozen=True)
class TemperatureWhatIf:
    """T fitted on the ``fit`` half, ECE measured on the ``check`` half before and after."""

    temperature: float
    n_fit: int
    n_check: int
    ece_before: float | None
    ece_after: float | None
    accuracy: float | None  # on the check half; the same before and after

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, deterministic split: even rows fit, odd rows check (rows are in sorted-path
    order, so both halves cover every class folder)."""
    rows = np.arange(n)
    return rows[0::2], rows[1::2]


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the probabilities a temperature-scaled model would give."""
    logits = np.log(np.maximum(np.asarray(probabilities, np.float64), NLL_FLOOR)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, y_true: np.ndarray) -> float:
    """The T > 0 that minimises the NLL of softmax(log p / T) (bounded search over log T)."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(y_true))

    def nll(log_t: float) -> float:
        scaled = apply_temperature(probabilities, float(np.exp(log_t)))
        return float(np.mean(-np.log(np.maximum(scaled[rows, y_true], NLL_FLOOR))))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def temperature_what_if(probabilities: np.ndarray, y_true: np.ndarray) -> TemperatureWhatIf:
    """Fit T on one half of the images, report ECE on the other half before and after."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    fit, check = split_halves(len(y_true))
    if len(fit) == 0 or len(check) == 0:
        return TemperatureWhatIf(1.0, len(fit), len(check), None, None, None)
    temperature = fit_temperature(probabilities[fit], y_true[fit])
    before = probabilities[check]
    after = apply_temperature(before, temperature)

    def ece(p: np.ndarray) -> float | None:
        predicted = p.argmax(axis=1)
        return expected_calibration_error(p[np.arange(len(p)), predicted], predicted == y_true[check])

    return TemperatureWhatIf(
        temperature=temperature,
        n_fit=len(fit),
        n_check=len(check),
        ece_before=ece(before),
        ece_after=ece(after),
        accuracy=float(np.mean(before.argmax(axis=1) == y_true[check])),
    )


# ----- what the Calibration screen asks ------------------------------------------------------------
@dataclass(frozen=True)
class ClassCalibration:
    """Calibration of the predictions *of* one class (the images predicted as ``label``): "when
    the model says this class, is it right as often as it is sure?". ``gap`` = ``confidence`` −
    ``accuracy`` (positive: over-confident); ``ece`` over those images, in the same 15 bins.
    Numbers are None when no image is predicted as the class."""

    label: str
    n_predicted: int
    confidence: float | None
    accuracy: float | None
    gap: float | None
    ece: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_class_calibration(
    probabilities: np.ndarray, y_true: np.ndarray, class_names: Sequence[str], n_bins: int = N_BINS
) -> tuple[ClassCalibration, ...]:
    """``ClassCalibration`` of every class, in the order in use (a class never predicted keeps
    its row, with no numbers)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    predicted = probabilities.argmax(axis=1) if len(y_true) else np.zeros(0, np.int64)
    confidence = probabilities[np.arange(len(y_true)), predicted] if len(y_true) else np.zeros(0)
    correct = predicted == y_true
    rows = []
    for k, name in enumerate(class_names):
        mine = predicted == k
        n = int(mine.sum())
        if n == 0:
            rows.append(ClassCalibration(name, 0, None, None, None, None))
            continue
        mean_confidence, accuracy = float(confidence[mine].mean()), float(correct[mine].mean())
        rows.append(
            ClassCalibration(
                name, n, mean_confidence, accuracy, mean_confidence - accuracy,
                expected_calibration_error(confidence[mine], correct[mine], n_bins),
            )
        )
    return tuple(rows)


#: Columns of ``bin_files``: a run's file table plus whether the prediction is right.
BIN_FILE_COLUMNS = ("index", "file", "true", "predicted", "confidence", "right")


def bin_files(run: "Run", bin_number: int, only_wrong: bool = False, n_bins: int = N_BINS) -> "pd.DataFrame":
    """The files whose top-1 confidence falls in bin ``bin_number`` ((i/n, (i+1)/n]) as
    ``BIN_FILE_COLUMNS``, most confident first; ``only_wrong`` keeps the mistakes (in a high
    bin: the confident and wrong)."""
    if not 0 <= bin_number < n_bins:
        raise ValueError(f"bin_number must be between 0 and {n_bins - 1}, got {bin_number}")
    members = bin_index(run.confidence, n_bins) == bin_number
    if only_wrong:
        members &= ~run.correct
    table = run.files_table(np.flatnonzero(members))
    return table.assign(right=(table["true"] == table["predicted"]).astype(bool))[list(BIN_FILE_COLUMNS)]


def what_if_sentence(what_if: TemperatureWhatIf) -> str:
    """The temperature what-if in plain words: what softening (or sharpening) the probabilities
    would do to the calibration error on images it was not fitted on, and that accuracy stays."""
    if what_if.ece_before is None or what_if.ece_after is None or what_if.accuracy is None:
        return "Too few images to try a temperature: it needs two halves of at least one image each."
    t = what_if.temperature
    how = f"{'Softening' if t > 1 else 'Sharpening'} the model's probabilities with a temperature T = {t:.2f} (fitted on {what_if.n_fit:,} images)"
    before, after = 100 * what_if.ece_before, 100 * what_if.ece_after
    if after < before:
        effect = f"would bring the calibration error on the other {what_if.n_check:,} images from {before:.1f} to {after:.1f} points."
    else:
        effect = f"would not lower the calibration error on the other {what_if.n_check:,} images ({before:.1f} points before, {after:.1f} after)."
    return (
        f"{how} {effect} Accuracy stays {what_if.accuracy:.1%}: a temperature never changes which "
        f"class is predicted. To use it, divide the model's logits by {t:.2f} before the softmax."
    )
