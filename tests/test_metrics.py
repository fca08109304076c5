"""Metrics against small cases computed by hand. Confusion matrix: rows = true, columns = predicted."""

from __future__ import annotations

import numpy as np
import pytest

from gtpred_core import compute_metrics


def test_a_three_class_case_by_hand():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    m = compute_metrics(y_true, y_pred, np.eye(3)[y_pred], ["a", "b", "c"])
    # rows = true (a, b, c), columns = predicted (a, b, c)
    assert m.confusion_matrix == ((1, 1, 0), (0, 2, 0), (1, 0, 0))
    assert m.accuracy == pytest.approx(3 / 5)
    a, b, c = m.per_class
    assert (a.precision, a.recall, a.f1, a.support) == pytest.approx((1 / 2, 1 / 2, 1 / 2, 2))
    assert (b.precision, b.recall, b.f1, b.support) == pytest.approx((2 / 3, 1.0, 0.8, 2))
    assert (c.precision, c.recall, c.f1, c.support) == (0.0, 0.0, 0.0, 1)  # zero_division=0
    assert m.macro.recall == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m.weighted.precision == pytest.approx((2 * 1 / 2 + 2 * 2 / 3 + 0) / 5)
    assert m.top5_accuracy is None  # only 3 classes


def test_top5_accuracy_with_six_classes():
    # Image 0: true class 5 ranked 6th (miss); image 1: true class 0 ranked 2nd (hit).
    probabilities = np.array(
        [[0.30, 0.25, 0.20, 0.15, 0.09, 0.01], [0.30, 0.40, 0.10, 0.10, 0.05, 0.05]], np.float32
    )
    m = compute_metrics(np.array([5, 0]), probabilities.argmax(1), probabilities, list("abcdef"))
    assert m.top5_accuracy == pytest.approx(0.5)
    assert m.accuracy == 0.0


def test_a_class_with_no_images_keeps_its_row_and_column():
    m = compute_metrics(np.array([0, 0]), np.array([0, 2]), np.eye(3)[[0, 2]], ["a", "b", "c"])
    assert m.confusion_matrix == ((1, 0, 1), (0, 0, 0), (0, 0, 0))
    assert [c.support for c in m.per_class] == [2, 0, 0]


def test_no_images_gives_no_accuracy_rather_than_a_fake_number():
    m = compute_metrics(np.zeros(0, int), np.zeros(0, int), np.zeros((0, 2)), ["a", "b"])
    assert m.accuracy is None and m.n_images == 0
