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
