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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_figure_matches_scikit_learns_on_random_runs_with_ties_and_empty_classes(seed):
    """The numpy counting gives scikit-learn's figures (zero_division=0), on a run where one class
    has no images, one is never predicted, and probabilities tie (ranked as top_k_accuracy_score ranks)."""
    from sklearn.metrics import precision_recall_fscore_support, top_k_accuracy_score

    rng = np.random.default_rng(seed)
    k, n = 9, 500
    y_true = rng.choice([c for c in range(k) if c != 3], size=n)  # class 3 has no images
    probabilities = rng.integers(0, 4, size=(n, k)).astype(np.float32)  # many ties
    probabilities[:, 7] = -1  # class 7 is never predicted
    y_pred = probabilities.argmax(1)
    m = compute_metrics(y_true, y_pred, probabilities, [f"c{c}" for c in range(k)])
    labels = list(range(k))
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    assert [c.precision for c in m.per_class] == pytest.approx(p)
    assert [c.recall for c in m.per_class] == pytest.approx(r)
    assert [c.f1 for c in m.per_class] == pytest.approx(f)
    assert [c.support for c in m.per_class] == list(support)
    for average, got in (("macro", m.macro), ("weighted", m.weighted)):
        want = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)[:3]
        assert (got.precision, got.recall, got.f1) == pytest.approx(want)
    assert m.top5_accuracy == pytest.approx(top_k_accuracy_score(y_true, probabilities, k=5, labels=labels))
    assert m.accuracy == pytest.approx(np.mean(y_true == y_pred))


def test_no_images_gives_no_accuracy_rather_than_a_fake_number():
    m = compute_metrics(np.zeros(0, int), np.zeros(0, int), np.zeros((0, 2)), ["a", "b"])
    assert m.accuracy is None and m.n_images == 0


# ----- 95% Wilson score intervals (issue 18)
from gtpred_core import RunStore, assemble_run  # noqa: E402
from gtpred_core.metrics import FEW_IMAGES_WIDTH, Metrics, wilson_interval  # noqa: E402

Z = 1.959963984540054  # the 97.5% normal quantile


def test_wilson_81_of_263_worked_by_hand():
    # p = 81/263 = 0.307985; z²/n = 3.841459/263 = 0.014606, so the scale is 1.014606;
    # centre = (0.307985 + 3.841459/526) / 1.014606 = (0.307985 + 0.007303) / 1.014606 = 0.310750
    # half = 1.959964 / 1.014606 · sqrt(0.307985·0.692015/263 + 3.841459/(4·263²))
    #      = 1.931753 · sqrt(0.00081038 + 0.00001388) = 1.931753 · 0.028710 = 0.055461
    ci = wilson_interval(81, 263)
    assert (ci.low, ci.high) == pytest.approx((0.310750 - 0.055461, 0.310750 + 0.055461), abs=2e-6)
    assert (round(ci.low, 4), round(ci.high, 4)) == (0.2553, 0.3662)  # Newcombe (1998), single proportion
    assert (ci.level, ci.method) == (0.95, "wilson")


def test_wilson_0_of_10_is_not_a_zero_width_interval():
    # p = 0: centre = half = (z²/2n) / (1 + z²/n) = 0.192073 / 1.384146 = 0.1387664, so 0 to 0.277533
    ci = wilson_interval(0, 10)
    assert ci.low == 0.0 and ci.high == pytest.approx(2 * (Z * Z / 20) / (1 + Z * Z / 10), abs=1e-12)
    assert ci.high == pytest.approx(0.277533, abs=1e-6)
    assert wilson_interval(10, 10).high == 1.0
    assert wilson_interval(0, 0) is None


def test_wilson_agrees_with_scipy_binomtest():
    from scipy.stats import binomtest

    for k, n in [(1, 1), (3, 7), (50, 100), (736, 797), (9999, 10000), (12, 4000)]:
        expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        ci = wilson_interval(k, n)
        assert (ci.low, ci.high) == pytest.approx((expected.low, expected.high), abs=1e-12), (k, n)
    with pytest.raises(ValueError, match="successes must be between 0 and trials"):
        wilson_interval(11, 10)


def _two_class_metrics():
    # a: 200 images, 196 right (4 predicted b); b: 5 images, 3 right (2 predicted a)
    y_true = np.array([0] * 200 + [1] * 5)
    y_pred = np.array([0] * 196 + [1] * 4 + [1, 1, 1, 0, 0])
    return compute_metrics(y_true, y_pred, np.eye(2)[y_pred], ["a", "b"])


def test_intervals_ride_on_accuracy_and_each_class():
    m = _two_class_metrics()
    assert m.accuracy_ci == wilson_interval(199, 205)
    a, b = m.per_class
    assert a.recall_ci == wilson_interval(196, 200)  # on the class's images (support)
    assert a.precision_ci == wilson_interval(196, 198)  # on the images predicted as a
    assert b.recall_ci == wilson_interval(3, 5) and b.precision_ci == wilson_interval(3, 7)
    assert a.recall_ci.width < FEW_IMAGES_WIDTH and not a.few_images
    assert b.few_images  # 3 of 5: the interval spans more than 20 points
    assert m.top5_accuracy_ci is None


def test_top5_interval_counts_top5_hits():
    probabilities = np.tile(np.linspace(0.3, 0.05, 6), (4, 1))
    m = compute_metrics(np.array([0, 4, 5, 5]), np.zeros(4, int), probabilities, list("abcdef"))
    assert m.top5_accuracy == 0.5 and m.top5_accuracy_ci == wilson_interval(2, 4)


def test_a_class_never_predicted_has_no_precision_interval_and_is_flagged():
    m = compute_metrics(np.array([0, 0, 1]), np.array([0, 0, 0]), np.eye(2)[[0, 0, 0]], ["a", "b"])
    b = m.per_class[1]
    assert b.precision_ci is None and b.recall_ci == wilson_interval(0, 1) and b.few_images
    assert m.to_dict()["per_class"][1]["precision_ci"] is None


def test_metrics_round_trip_and_old_stored_metrics_get_their_intervals():
    m = _two_class_metrics()
    data = m.to_dict()
    assert data["accuracy_ci"] == {"low": m.accuracy_ci.low, "high": m.accuracy_ci.high, "level": 0.95, "method": "wilson"}
    assert Metrics.from_dict(data) == m
    old = {k: v for k, v in data.items() if k not in ("accuracy_ci", "top5_accuracy_ci")}
    old["per_class"] = [
        {k: v for k, v in c.items() if k not in ("recall_ci", "precision_ci", "few_images")} for c in data["per_class"]
    ]
    assert Metrics.from_dict(old) == m


def test_a_run_stored_before_intervals_loads_with_them(tmp_path):
    import json
    import sqlite3

    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 1, 2])
    run = assemble_run(class_names=("a", "b", "c"), paths=[f"f{i}" for i in range(6)], y_true=y_true, y_pred=y_pred, probabilities=np.eye(3)[y_pred])
    store = RunStore(tmp_path / "runs.sqlite3")
    run_id = store.save(run)
    store.close()
    with sqlite3.connect(tmp_path / "runs.sqlite3") as conn:  # strip the fields, as an old gtpred wrote it
        summary = json.loads(conn.execute("SELECT summary FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
        for c in summary["metrics"]["per_class"]:
            del c["recall_ci"], c["precision_ci"], c["few_images"]
        del summary["metrics"]["accuracy_ci"], summary["metrics"]["top5_accuracy_ci"]
        conn.execute("UPDATE runs SET summary = ? WHERE id = ?", (json.dumps(summary), run_id))
    loaded = RunStore(tmp_path / "runs.sqlite3").load(run_id)
    assert loaded.metrics.accuracy_ci == wilson_interval(5, 6)
    assert loaded.metrics.per_class[1].precision_ci == wilson_interval(3, 4)
    assert loaded.summary()["accuracy_ci"]["method"] == "wilson"
    assert loaded.summary()["per_class"][0]["recall_ci"] == run.summary()["per_class"][0]["recall_ci"]


def test_intervals_read_as_people_read_them():
    from gtpred_core.metrics import interval_text, proportion_text, rate_interval

    ci = wilson_interval(81, 263)  # 25.53–36.62% (worked by hand above)
    assert interval_text(ci) == "25.5–36.6%" and interval_text(None) == ""
    assert proportion_text(81 / 263, ci, 263) == "30.8% (95% CI 25.5–36.6%, 263 images)"
    assert proportion_text(None, None, 0) == "n/a"
    # A stored rate (k/n as a float) gives back the interval of k of n exactly.
    assert rate_interval(81 / 263, 263) == ci and rate_interval(None, 263) is None and rate_interval(0.5, 0) is None


def test_the_per_class_table_shows_each_interval_and_flags_few_images():
    from gtpred_core import assemble_run

    # class a: 100 images, 90 right (recall 82.6–94.5%); class b: 5 images, 4 right (far too few).
    y_true = np.array([0] * 100 + [1] * 5)
    y_pred = y_true.copy()
    y_pred[:10] = 1
    y_pred[100] = 0
    probabilities = np.eye(2, dtype=np.float32)[y_pred]
    run = assemble_run(class_names=("a", "b"), paths=[f"f{i}" for i in range(105)], y_true=y_true, y_pred=y_pred, probabilities=probabilities)
    table = run.per_class_table().set_index("class")
    assert list(table.columns) == ["precision", "precision_ci", "recall", "recall_ci", "f1", "support", "few_images"]
    assert table.loc["a", "recall_ci"] == interval(wilson_interval(90, 100))
    assert table.loc["a", "recall_ci"] == "82.6–94.5%"
    assert table.loc["b", "precision_ci"] == interval(wilson_interval(4, 14))
    assert not table.loc["a", "few_images"] and table.loc["b", "few_images"]


def interval(ci):
    return f"{100 * ci.low:.1f}–{100 * ci.high:.1f}%"
