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


def test_comparison_tables_are_b_minus_a_and_list_each_flip():
    from gtpred_core.compare import FLIP_COLUMNS

    paths = ["cat/a", "cat/b", "cat/c", "dog/d", "dog/e", "fox/f"]
    truth = [0, 0, 0, 1, 1, 2]
    names = ("cat", "dog", "fox")
    # A: cat row [1, 2, 0], dog row [1, 1, 0], fox row [0, 0, 1]; 3 right.
    # B: b -> cat (wrong to right), d -> cat (right to wrong), e -> dog (wrong to right):
    # cat row [2, 1, 0], dog row [1, 1, 0], fox row [0, 0, 1].
    a = _run(paths, truth, [0, 1, 1, 1, 0, 2], names=names)
    b = _run(paths, truth, [0, 0, 1, 0, 1, 2], names=names)
    comparison = compare_runs(a, b)
    cells = comparison.confusion_delta_cells().set_index(["true", "predicted"])
    assert cells.loc[("cat", "cat"), "count_a"] == 1 and cells.loc[("cat", "cat"), "count_b"] == 2
    assert cells.loc[("cat", "cat"), "delta"] == 1 and cells.loc[("cat", "dog"), "delta"] == -1
    assert cells.loc[("dog", "dog"), "delta"] == 0 and cells["delta"].sum() == 0
    per_class = comparison.per_class_table().set_index("class")
    assert per_class.loc["cat", "recall_a"] == pytest.approx(1 / 3)
    assert per_class.loc["cat", "recall_delta"] == pytest.approx(1 / 3)
    assert per_class.loc["fox", "recall_delta"] == 0
    flips = comparison.flips_table()
    assert list(flips.columns) == list(FLIP_COLUMNS)
    assert list(flips["file"]) == ["dog/d", "cat/b", "dog/e"]  # right-to-wrong first
    assert list(flips["direction"]) == ["right-to-wrong", "wrong-to-right", "wrong-to-right"]
    d = flips.iloc[0]
    assert (d["true"], d["pred_a"], d["pred_b"]) == ("dog", "dog", "cat")
    assert d["confidence_a"] == pytest.approx(0.8) and d["confidence_b"] == pytest.approx(0.8)
    assert list(comparison.flips_table("wrong-to-right")["file"]) == ["cat/b", "dog/e"]
    assert compare_runs(a, a).flips_table().empty
