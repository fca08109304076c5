"""Comparing two runs: deltas on common files, classes matched by name, flipped images."""

from __future__ import annotations

import numpy as np
import pytest

from gtpred_core import assemble_run, evaluate_folder
from gtpred_core.compare import (
    EXACT_INTEGER_LIMIT,
    ComparisonError,
    compare_runs,
    mcnemar_exact,
    paired_difference_interval,
)
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


# ----- is the difference more than chance? (issue 18)
def test_newcombe_interval_on_a_published_example():
    # Cavo et al. (2012), complete response before/after consolidation therapy, as worked in
    # Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017), ch. 8:
    # 59 both, 6 only before, 16 only after, 80 neither. Difference before − after = −0.0621,
    # Newcombe square-and-add 95% CI −0.1186 to −0.0046; McNemar exact conditional P = 0.052479.
    # Here "B" = before, "A" = after: only_b = 6, only_a = 16.
    ci = paired_difference_interval(both=59, only_a=16, only_b=6, neither=80)
    assert (round(ci.low, 4), round(ci.high, 4)) == (-0.1186, -0.0046)
    assert (ci.level, ci.method) == (0.95, "newcombe")
    assert round(mcnemar_exact(16, 6).p_value, 6) == 0.052479


def test_mcnemar_agrees_with_scipy_binomtest():
    from scipy.stats import binomtest

    big = EXACT_INTEGER_LIMIT // 2 + 300  # past the exact-integer limit: the log-space sum
    for b, c in [(0, 1), (1, 0), (3, 3), (16, 6), (2, 17), (120, 90), (big, big + 150), (big + 10, big - 300)]:
        expected = binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
        assert mcnemar_exact(b, c).p_value == pytest.approx(expected, rel=1e-9, abs=1e-300), (b, c)
    assert mcnemar_exact(0, 0).p_value == 1.0 and mcnemar_exact(0, 0).method == "exact"
    with pytest.raises(ValueError, match="cannot be negative"):
        mcnemar_exact(-1, 2)


def test_no_difference_gives_an_interval_around_zero():
    ci = paired_difference_interval(both=90, only_a=0, only_b=0, neither=10)
    assert ci.low < 0 < ci.high
    assert paired_difference_interval(0, 0, 0, 0) is None


def test_comparison_carries_mcnemar_delta_interval_and_per_class_counts():
    names = ("a", "b")
    y_true = np.array([0] * 10 + [1] * 10)
    pred_a = y_true.copy()
    pred_a[[0, 1, 2, 10]] = 1 - y_true[[0, 1, 2, 10]]  # A misses a0, a1, a2, b10
    pred_b = y_true.copy()
    pred_b[[10, 11, 12, 13, 14]] = 0  # B misses b10..b14
    paths = [f"{names[t]}/{i}" for i, t in enumerate(y_true)]
    cmp = compare_runs(_run(paths, y_true, pred_a, names), _run(paths, y_true, pred_b, names))
    # only A right: b11..b14 (4); only B right: a0, a1, a2 (3); both right 12; neither (b10) 1
    assert (cmp.mcnemar.b, cmp.mcnemar.c) == (4, 3)
    assert (cmp.accuracy_a, cmp.accuracy_b) == (16 / 20, 15 / 20)
    assert cmp.mcnemar.p_value == pytest.approx(1.0)  # 2 · P(X <= 3 | 7, 1/2) = 2 · 0.5 capped
    assert cmp.delta_ci == paired_difference_interval(both=12, only_a=4, only_b=3, neither=1)
    assert cmp.delta_ci.low < cmp.accuracy_delta < cmp.delta_ci.high
    per_class = {row.label: (row.b, row.c) for row in cmp.per_class_mcnemar}
    assert per_class == {"a": (0, 3), "b": (4, 0)}
    assert cmp.per_class_mcnemar[1].p_value == pytest.approx(2 * 1 / 16)
    document = cmp.significance()
    assert document["n_common"] == 20 and document["mcnemar"] == {"b": 4, "c": 3, "p_value": cmp.mcnemar.p_value, "method": "exact"}
    assert document["delta_ci"]["method"] == "newcombe" and document["per_class"][0] == {"label": "a", "b": 0, "c": 3, "p_value": 0.25}


def test_a_wrong_class_order_against_the_right_one_is_a_significant_difference(softmax_model, digits_dir):
    keras_run = evaluate_folder(softmax_model, digits_dir)
    natural_run = keras_run.relabel(keras_run.suggested_class_order)
    cmp = compare_runs(keras_run, natural_run)
    right_a, right_b = keras_run.correct, natural_run.correct  # same file order in both
    assert cmp.mcnemar.b == int(np.sum(right_a & ~right_b)) and cmp.mcnemar.c == int(np.sum(right_b & ~right_a))
    assert cmp.mcnemar.p_value < 1e-20
    assert 0 < cmp.delta_ci.low < cmp.accuracy_delta < cmp.delta_ci.high


def test_runs_compare_prints_one_json_object(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from gtpred_core import RunStore

    names = ("a", "b")
    y_true = np.array([0] * 30 + [1] * 30)
    pred_a, pred_b = y_true.copy(), y_true.copy()
    pred_a[:12] = 1  # A misses 12 a's; B misses 2 b's
    pred_b[30:32] = 0
    paths = [f"{names[t]}/{i:02d}.png" for i, t in enumerate(y_true)]
    db = tmp_path / "runs.sqlite3"
    store = RunStore(db)
    id_a, id_b = store.save(_run(paths, y_true, pred_a, names)), store.save(_run(paths, y_true, pred_b, names))
    store.close()
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "gtpred_core", "runs", "--db", str(db), "compare", str(id_a), str(id_b)],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["accuracy_a"], document["accuracy_b"], document["n_common"]) == (48 / 60, 58 / 60, 60)
    assert document["mcnemar"]["b"] == 2 and document["mcnemar"]["c"] == 12
    assert document["mcnemar"]["p_value"] == pytest.approx(mcnemar_exact(2, 12).p_value)
    assert document["delta_ci"]["low"] > 0 and document["delta_ci"]["method"] == "newcombe"
    assert [row["label"] for row in document["per_class"]] == ["a", "b"]
    missing = subprocess.run(
        [sys.executable, "-m", "gtpred_core", "runs", "--db", str(db), "compare", str(id_a), "99"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert missing.returncode == 2 and "There is no run 99" in missing.stderr


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


def test_the_verdict_says_in_plain_words_whether_the_difference_is_more_than_chance():
    from gtpred_core.compare import Verdict
    from gtpred_core.metrics import Interval

    # The issue's own example: B 1.2 points better, interval −0.4 to 2.8, p = 0.14 on 797 images.
    verdict = Verdict(0.012, Interval(-0.004, 0.028, method="newcombe"), 0.14, 797)
    assert not verdict.significant
    assert verdict.sentence("**") == (
        "B is 1.2 points better (95% CI \u22120.4 to 2.8); McNemar p = 0.14: **not** a significant difference on these 797 images."
    )
    assert verdict.headline() == "The two runs cannot be told apart on these images: the difference could be chance."
    worse = Verdict(-0.05, Interval(-0.08, -0.02, method="newcombe"), 0.0004, 1200)
    assert worse.significant and worse.headline() == "Run B is less accurate than run A, by more than chance would explain."
    assert worse.sentence() == (
        "B is 5.0 points worse (95% CI \u22128.0 to \u22122.0); McNemar p < 0.001: a significant difference (at the 0.05 level) on these 1,200 images."
    )
    assert Verdict(0.0, Interval(-0.01, 0.01), 1.0, 20).sentence().startswith("B and A are equally accurate (95% CI \u22121.0 to 1.0); McNemar p = 1.00: not")


def test_the_verdict_and_per_class_table_carry_the_comparisons_own_tests():
    names = ("a", "b")
    y_true = np.array([0] * 10 + [1] * 10)
    pred_a = y_true.copy()
    pred_a[[0, 1, 2, 10]] = 1 - y_true[[0, 1, 2, 10]]
    pred_b = y_true.copy()
    pred_b[[10, 11, 12, 13, 14]] = 0
    paths = [f"{names[t]}/{i}" for i, t in enumerate(y_true)]
    cmp = compare_runs(_run(paths, y_true, pred_a, names), _run(paths, y_true, pred_b, names))
    verdict = cmp.verdict()
    assert (verdict.delta, verdict.ci, verdict.p_value, verdict.n_images) == (cmp.accuracy_delta, cmp.delta_ci, cmp.mcnemar.p_value, 20)
    assert verdict.sentence().startswith("B is 5.0 points worse (95% CI ")
    table = cmp.per_class_table().set_index("class")
    assert (table.loc["a", "b"], table.loc["a", "c"]) == (0, 3) and (table.loc["b", "b"], table.loc["b", "c"]) == (4, 0)
    assert table.loc["b", "p_value"] == pytest.approx(2 / 16) and table.loc["a", "p_value"] == pytest.approx(0.25)
