"""Calibration numbers against a case computed by hand, and the temperature what-if."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gtpred_core import assemble_run
from gtpred_core.calibration import (
    N_BINS,
    apply_temperature,
    bin_index,
    calibration,
    split_halves,
    temperature_what_if,
)

# Two classes; rows are p(class 0), p(class 1).
PROBABILITIES = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.88, 0.12]])
Y_TRUE = np.array([0, 1, 1, 1, 1])


def test_bins_are_open_below_closed_above_and_zero_goes_first():
    # (i/15, (i+1)/15]: 0.8 = 12/15 is the top of bin 11, 0.6 = 9/15 the top of bin 8
    assert bin_index(np.array([0.0, 1 / 15, 0.8, 0.6, 0.7, 0.9, 1.0])).tolist() == [0, 0, 11, 8, 10, 13, 14]


def test_a_case_computed_by_hand():
    # top-1 confidence, right?  0.9 yes (bin 13), 0.8 no (bin 11), 0.7 yes (bin 10),
    # 0.6 yes (bin 8), 0.88 no (bin 13).
    # bin 13: confidence (0.9 + 0.88)/2 = 0.89, accuracy 1/2, gap 0.39 (2 images)
    # bin 11: 0.8 vs 0 -> 0.8; bin 10: 0.7 vs 1 -> 0.3; bin 8: 0.6 vs 1 -> 0.4
    # ECE = (2·0.39 + 0.8 + 0.3 + 0.4) / 5 = 2.28 / 5 = 0.456; MCE = 0.8
    # Brier: 0.01+0.01, 0.64+0.64, 0.09+0.09, 0.16+0.16, 0.7744+0.7744 -> 3.3488 / 5 = 0.66976
    # NLL: -(ln 0.9 + ln 0.2 + ln 0.7 + ln 0.6 + ln 0.12) / 5
    c = calibration(PROBABILITIES, Y_TRUE)
    assert c.ece == pytest.approx(0.456)
    assert c.mce == pytest.approx(0.8)
    assert c.brier == pytest.approx(0.66976)
    assert c.nll == pytest.approx(-(math.log(0.9) + math.log(0.2) + math.log(0.7) + math.log(0.6) + math.log(0.12)) / 5)
    assert len(c.bins) == N_BINS and sum(b.count for b in c.bins) == 5
    b13 = c.bins[13]
    assert (b13.lower, b13.upper, b13.count) == pytest.approx((13 / 15, 14 / 15, 2))
    assert (b13.confidence, b13.accuracy) == pytest.approx((0.89, 0.5))
    assert c.bins[0].count == 0 and c.bins[0].confidence is None and c.bins[0].accuracy is None


def test_a_confident_miss_costs_a_bounded_nll():
    c = calibration(np.array([[1.0, 0.0]]), np.array([1]))
    assert c.nll == pytest.approx(-math.log(1e-12)) and c.brier == pytest.approx(2.0)
    assert (c.ece, c.mce) == (1.0, 1.0)


def test_no_images_gives_no_numbers():
    c = calibration(np.zeros((0, 3)), np.zeros(0, int))
    assert (c.ece, c.mce, c.brier, c.nll) == (None, None, None, None) and len(c.bins) == N_BINS


def _overconfident(n: int = 2000, seed: int = 0):
    """Labels drawn from softmax(z); the model reports softmax(3z): right as often, too sure."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=p) for p in true])
    reported = np.exp(3 * z) / np.exp(3 * z).sum(1, keepdims=True)
    return reported, y


def test_temperature_what_if_finds_the_overconfidence_and_keeps_accuracy():
    probabilities, y = _overconfident()
    result = temperature_what_if(probabilities, y)
    assert result.temperature == pytest.approx(3.0, rel=0.2)  # the 3 the model's logits were scaled by
    assert result.ece_after < result.ece_before / 2
    fit, check = split_halves(len(y))
    assert (result.n_fit, result.n_check) == (len(fit), len(check)) == (1000, 1000)
    scaled = apply_temperature(probabilities, result.temperature)
    assert np.array_equal(scaled.argmax(1), probabilities.argmax(1))  # accuracy unchanged
    assert result.accuracy == pytest.approx(np.mean(probabilities[check].argmax(1) == y[check]))
    assert temperature_what_if(probabilities, y) == result  # fixed split: the same answer every time


def test_summary_json_carries_calibration():
    run = assemble_run(class_names=("a", "b"), paths=[f"f{i}" for i in range(5)], y_true=Y_TRUE, y_pred=PROBABILITIES.argmax(1), probabilities=PROBABILITIES)
    summary = run.summary()["calibration"]
    assert summary["ece"] == pytest.approx(0.456, abs=1e-6)  # float32 probabilities in a Run
    assert set(summary["bins"][13]) == {"lower", "upper", "count", "confidence", "accuracy"}
    assert summary["bins"][13]["count"] == 2


def test_per_class_calibration_by_hand():
    # Predicted class 0: rows 0 (0.9, right), 1 (0.8, wrong), 4 (0.88, wrong).
    #   confidence (0.9 + 0.8 + 0.88)/3 = 0.86, accuracy 1/3, gap 0.52667;
    #   bins: 13 holds 0.9, 0.88 (conf 0.89, acc 1/2, gap 0.39), 11 holds 0.8 (gap 0.8):
    #   ECE = (2·0.39 + 0.8) / 3 = 1.58 / 3.
    # Predicted class 1: rows 2 (0.7, right), 3 (0.6, right): confidence 0.65, accuracy 1,
    #   gap −0.35 (under-confident); bins 10 and 8, gaps 0.3 and 0.4: ECE = 0.35.
    from gtpred_core.calibration import per_class_calibration

    zero, one = per_class_calibration(PROBABILITIES, Y_TRUE, ("a", "b"))
    assert (zero.label, zero.n_predicted) == ("a", 3)
    assert (zero.confidence, zero.accuracy, zero.gap, zero.ece) == pytest.approx((0.86, 1 / 3, 0.86 - 1 / 3, 1.58 / 3))
    assert (one.label, one.n_predicted) == ("b", 2)
    assert (one.confidence, one.accuracy, one.gap, one.ece) == pytest.approx((0.65, 1.0, -0.35, 0.35))
    never = per_class_calibration(PROBABILITIES, Y_TRUE, ("a", "b", "c"))[2]  # a class never predicted keeps its row
    assert (never.label, never.n_predicted, never.ece) == ("c", 0, None)


def test_a_bins_files_are_listed_most_confident_first_and_can_be_only_the_wrong_ones():
    from gtpred_core.calibration import BIN_FILE_COLUMNS, bin_files

    run = assemble_run(class_names=("a", "b"), paths=[f"f{i}" for i in range(5)], y_true=Y_TRUE, y_pred=PROBABILITIES.argmax(1), probabilities=PROBABILITIES)
    top = bin_files(run, 13)  # 0.9 (right) and 0.88 (wrong)
    assert list(top.columns) == list(BIN_FILE_COLUMNS)
    assert list(top["file"]) == ["f0", "f4"] and list(top["right"]) == [True, False]
    assert list(bin_files(run, 13, only_wrong=True)["file"]) == ["f4"]
    assert bin_files(run, 0).empty
    with pytest.raises(ValueError, match="bin_number must be between 0 and 14, got 15"):
        bin_files(run, 15)


def test_the_what_if_reads_in_plain_words():
    from gtpred_core.calibration import TemperatureWhatIf, what_if_sentence

    probabilities, y = _overconfident()
    result = temperature_what_if(probabilities, y)
    text = what_if_sentence(result)
    assert text.startswith(f"Softening the model's probabilities with a temperature T = {result.temperature:.2f} (fitted on 1,000 images)")
    assert f"from {100 * result.ece_before:.1f} to {100 * result.ece_after:.1f} points" in text
    assert f"Accuracy stays {result.accuracy:.1%}" in text
    worse = TemperatureWhatIf(0.8, 10, 10, 0.02, 0.03, 0.9)
    assert what_if_sentence(worse).startswith("Sharpening") and "would not lower" in what_if_sentence(worse)
    assert what_if_sentence(TemperatureWhatIf(1.0, 0, 0, None, None, None)).startswith("Too few images")
