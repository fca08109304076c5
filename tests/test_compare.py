"""Comparing two runs: deltas on common files, classes matched by name, flipped images."""

from __future__ import annotations

import numpy as np
import pytest

from gtpred_core import assemble_run, evaluate_folder
from gtpred_core.compare import ComparisonError, compare_runs
from gtpred_core.run import RunInfo


def _run(paths, y_true, y_pred, names=("a", "b", "c"), fingerprint="same"):
    probabilities = np.eye(len(names), dtype=np.float32)[y_pred] * 0.7 + 0.1
    return assemble_run(class_names=names, paths=paths, y_true=y_true, y_pred=y_pred, probabilities=probabilities, info=RunInfo(images_fingerprint=fingerprint))


def test_flips_and_deltas_by_hand():
    paths = ["a/1", "a/2", "b/3", "c/4"]
    a = _run(paths, [0, 0, 1, 2], [0, 1, 1, 2])  # 3/4 right, a/2 wrong
    b = _run(paths, [0, 0, 1, 2], [0, 0, 2, 2])  # 3/4 right, b/3 wrong
    cmp = compare_runs(a, b)
    assert cmp.same_images and cmp.n_common == 4 and cmp.accuracy_delta == 0.0
    assert [(f.path, f.direction) for f in cmp.flips] == [("a/2", "wrong-to-right"), ("b/3", "right-to-wrong")]
    flip = cmp.flips_in("right-to-wrong")[0]
    assert (flip.pred_a, flip.pred_b, flip.true_label) == ("b", "c", "b")
    # rows = true, columns = predicted; B - A
    assert cmp.confusion_delta.tolist() == [[1, -1, 0], [0, -1, 1], [0, 0, 0]]
    deltas = {row["label"]: row["recall_delta"] for row in cmp.per_class_deltas()}
    assert deltas == pytest.approx({"a": 0.5, "b": -1.0, "c": 0.0})


def test_runs_in_different_class_orders_compare_by_name(softmax_model, digits_dir):
    keras_run = evaluate_folder(softmax_model, digits_dir)
    natural_run = keras_run.relabel(keras_run.suggested_class_order)
    cmp = compare_runs(keras_run, natural_run)
    assert cmp.same_images
    assert cmp.metrics_b.accuracy == pytest.approx(natural_run.metrics.accuracy)
    assert cmp.accuracy_delta > 0.5
    assert len(cmp.flips_in("wrong-to-right")) > 150
    flip = cmp.flips_in("wrong-to-right")[0]
    assert flip.pred_b == flip.true_label and natural_run.paths[flip.index_b] == flip.path


def test_partly_overlapping_runs_compare_on_common_files():
    a = _run(["a/1", "b/2", "c/3"], [0, 1, 2], [0, 1, 2], fingerprint="x")
    b = _run(["b/2", "c/3", "c/4"], [1, 2, 2], [1, 0, 2], fingerprint="y")
    cmp = compare_runs(a, b)
    assert not cmp.same_images and (cmp.n_common, cmp.only_in_a, cmp.only_in_b) == (2, 1, 1)
    assert [f.path for f in cmp.flips] == ["c/3"]


def test_incomparable_runs_are_refused_with_the_reason():
    a = _run(["a/1"], [0], [0])
    with pytest.raises(ComparisonError, match="only in A: c; only in B: d"):
        compare_runs(a, _run(["a/1"], [0], [0], names=("a", "b", "d")))
    with pytest.raises(ComparisonError, match="no image file in common"):
        compare_runs(a, _run(["z/9"], [0], [0]))
