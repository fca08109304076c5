"""The Run: a lossless dict round trip, and relabelling as a pure function without inference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gtpred_core import ClassOrderError, Run, assemble_run, evaluate_folder


@pytest.fixture(scope="module")
def trap_run(softmax_model, digits_dir) -> Run:
    return evaluate_folder(softmax_model, digits_dir)


def test_to_dict_and_back_through_json_is_exact(trap_run):
    again = Run.from_dict(json.loads(json.dumps(trap_run.to_dict())))
    assert again.paths == trap_run.paths and again.class_names == trap_run.class_names
    np.testing.assert_array_equal(again.y_true, trap_run.y_true)
    np.testing.assert_array_equal(again.y_pred, trap_run.y_pred)
    assert again.probabilities.dtype == np.float32
    assert again.probabilities.tobytes() == trap_run.probabilities.tobytes()  # bit for bit
    assert again.metrics == trap_run.metrics and again.warnings == trap_run.warnings
    assert again.suggested_class_order == trap_run.suggested_class_order and again.info == trap_run.info


def test_relabel_moves_names_not_predictions_and_leaves_the_original_alone(trap_run):
    before = trap_run.y_true.copy()
    fixed = trap_run.relabel(trap_run.suggested_class_order)
    np.testing.assert_array_equal(trap_run.y_true, before)
    assert fixed.probabilities is trap_run.probabilities and fixed.paths == trap_run.paths
    assert fixed.true_labels == trap_run.true_labels  # each file keeps its true class name
    assert fixed.info.class_order_source == "suggested"
    assert {w.code for w in fixed.warnings} >= {w.code for w in trap_run.warnings} - {"class-order-mismatch"}


def test_relabel_refuses_an_order_with_other_classes(trap_run):
    with pytest.raises(ClassOrderError, match="missing: Class_9; unknown: Class_11"):
        trap_run.relabel([n if n != "Class_9" else "Class_11" for n in trap_run.class_names])


def test_top_k_lists_the_most_probable_classes_first(trap_run):
    top = trap_run.top_k(0)
    assert len(top) == 5 and [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert top[0][0] == trap_run.pred_labels[0]


def test_assemble_run_refuses_misaligned_inputs():
    with pytest.raises(ValueError, match="one entry per file"):
        assemble_run(class_names=["a", "b"], paths=["x"], y_true=[0, 1], y_pred=[0, 1], probabilities=np.eye(2))


def test_relabel_shares_the_prediction_arrays_even_after_a_pickle_round_trip(trap_run):
    import pickle

    travelled = pickle.loads(pickle.dumps(trap_run))  # as a run arrives from the worker process
    fixed = travelled.relabel(travelled.suggested_class_order)
    assert fixed.probabilities is travelled.probabilities and fixed.y_pred is travelled.y_pred


# ----- confusions at scale: counts from y_true/y_pred, the top mistakes, a matrix over chosen classes
def _hand_run() -> Run:
    names = ("cat", "dog", "fox", "owl")
    y_true = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3])
    y_pred = np.array([0, 1, 1, 0, 0, 0, 2, 3, 2, 3])  # dog->cat x3, cat->dog x2, dog->fox, fox->owl
    probabilities = np.eye(4, dtype=np.float32)[y_pred]
    return assemble_run(class_names=names, paths=[f"f{i}.png" for i in range(10)], y_true=y_true, y_pred=y_pred, probabilities=probabilities)


def test_confusion_counts_equal_the_stored_matrix(trap_run):
    np.testing.assert_array_equal(trap_run.confusion_counts(), np.asarray(trap_run.metrics.confusion_matrix))


def test_top_confusions_list_the_most_frequent_mistakes_first():
    run = _hand_run()
    assert run.top_confusions() == [("dog", "cat", 3), ("cat", "dog", 2), ("dog", "fox", 1), ("fox", "owl", 1)]
    assert run.top_confusions(limit=2) == [("dog", "cat", 3), ("cat", "dog", 2)]


def test_a_matrix_among_chosen_classes_keeps_each_rows_total_in_other():
    names, matrix = _hand_run().confusion_among(["dog", "cat"])
    assert names == ("dog", "cat", "(other)")
    # rows = true (dog, cat), columns = predicted (dog, cat, any other class)
    np.testing.assert_array_equal(matrix, [[0, 3, 1], [2, 1, 0]])


def test_a_matrix_among_unknown_or_repeated_classes_is_refused():
    with pytest.raises(ValueError, match="Unknown class name\\(s\\): emu"):
        _hand_run().confusion_among(["cat", "emu"])
    with pytest.raises(ValueError, match="A class is chosen twice"):
        _hand_run().confusion_among(["cat", "cat"])
