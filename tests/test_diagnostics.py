"""The checks: the optimal class relabelling, when it is suggested, and prediction collapse."""

from __future__ import annotations

import numpy as np

from gtpred_core.diagnostics import best_class_order, check_class_order, check_prediction_collapse, suggest_class_order


def test_best_order_undoes_a_permutation_of_outputs():
    names = ("a", "b", "c", "d")
    # The model's output 0 means 'b', 1 means 'c', 2 means 'a', 3 means 'd'.
    truth_to_output = {0: 2, 1: 0, 2: 1, 3: 3}
    confusion = np.zeros((4, 4), int)
    for t, o in truth_to_output.items():
        confusion[t, o] = 20
        confusion[t, (o + 1) % 4] = 2  # some honest mistakes
    order, explained = best_class_order(confusion, names)
    assert order == ("b", "c", "a", "d") and explained == 80


def test_a_good_diagonal_gets_no_suggestion():
    confusion = np.eye(5, dtype=int) * 30 + 1
    assert suggest_class_order(confusion, list("abcde")) is None
    warnings, suggestion = check_class_order(confusion, list("abcde"), 0.85)
    assert warnings == [] and suggestion is None


def test_a_tiny_gain_is_not_worth_a_warning():
    confusion = np.array([[10, 0, 0], [0, 5, 6], [0, 4, 5]])  # swapping b/c explains 10 vs 10
    assert suggest_class_order(confusion, ["a", "b", "c"]) is None


def test_the_natural_order_is_named_when_it_is_the_fix():
    names = ("Class_1", "Class_10", "Class_2", "Class_3")
    # natural order: output 0=Class_1, 1=Class_2, 2=Class_3, 3=Class_10
    confusion = np.zeros((4, 4), int)
    for t, o in {0: 0, 2: 1, 3: 2, 1: 3}.items():
        confusion[t, o] = 25
    warnings, suggestion = check_class_order(confusion, names, 0.25)
    assert suggestion == ("Class_1", "Class_2", "Class_3", "Class_10")
    assert warnings[0].code == "class-order-mismatch" and "--class-order natural" in warnings[0].message
    assert "25.0% under the order in use" in warnings[0].message


def test_collapse_is_flagged_only_when_the_truth_does_not_support_it():
    names = list("abcd")
    y_true = np.repeat(np.arange(4), 25)
    collapsed = np.full(100, 2)
    (warning,) = check_prediction_collapse(y_true, collapsed, names, preprocess="none", rescales_itself=False)
    assert warning.code == "prediction-collapse" and "100% of predictions are 'c'" in warning.message
    assert "--preprocess rescale" in warning.message
    imbalanced_truth = np.array([2] * 90 + [0] * 10)
    assert check_prediction_collapse(imbalanced_truth, collapsed, names, preprocess="none", rescales_itself=None) == []
    assert check_prediction_collapse(y_true, y_true.copy(), names, preprocess="none", rescales_itself=None) == []
