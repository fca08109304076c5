"""Can I trust this number? The intervals, the Compare verdict, the best epoch, suspect labels and
calibration as users read them in the app, on real stored runs of the shipped demo model.

Store: #1 the demo in Keras' folder order (the class-order trap, about 9% right), #2 the same
predictions in natural order (92.3% right), #3 run #2 with class Class_3 cut to 6 images (too
few to trust), #4 run #2 with three predictions changed (two right ones made wrong, one wrong one
made right: the same model as far as 797 images can tell), and a training whose epochs are #1,
#2 and #4's runs.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.runtime.media_file_manager import MediaFileManager

from gtpred_core import assemble_run, compare_runs, wilson_interval
from gtpred_core.calibration import bin_files, calibration, per_class_calibration, temperature_what_if
from gtpred_core.suspects import WAITING_FOR_ORDER, suspect_table

from gtpred_app.ui.charts import BIN, CELL

from app_helpers import click_cell, no_exceptions, open_app, texts
from stored_runs import demo_runs, fresh_store

RESULTS = "gtpred_app/screens/results.py"
COMPARE = "gtpred_app/screens/compare.py"
TRAINING = "gtpred_app/screens/training.py"
HISTORY = "gtpred_app/screens/history.py"
SUSPECTS = "gtpred_app/screens/suspect_labels.py"
CALIBRATION = "gtpred_app/screens/calibration.py"


def percent_interval(right: int, n: int) -> str:
    """The interval as the pages print it, computed here from the counts."""
    ci = wilson_interval(right, n)
    return f"{100 * ci.low:.1f}–{100 * ci.high:.1f}%"


def few_class3_run():
    """Run #2 keeping only 6 images of Class_3."""
    _, natural = demo_runs()
    k = natural.class_names.index("Class_3")
    keep = np.flatnonzero(natural.y_true != k).tolist() + np.flatnonzero(natural.y_true == k)[:6].tolist()
    keep = np.array(sorted(keep))
    return assemble_run(
        class_names=natural.class_names,
        paths=[natural.paths[i] for i in keep],
        y_true=natural.y_true[keep],
        y_pred=natural.y_pred[keep],
        probabilities=natural.probabilities[keep],
        info=natural.info,
    )


def three_changed_run():
    """Run #2 with two right predictions made wrong and one wrong one made right."""
    _, natural = demo_runs()
    y_pred = natural.y_pred.copy()
    right, wrong = np.flatnonzero(natural.correct), np.flatnonzero(~natural.correct)
    y_pred[right[:2]] = (natural.y_true[right[:2]] + 1) % len(natural.class_names)
    y_pred[wrong[0]] = natural.y_true[wrong[0]]
    return assemble_run(
        class_names=natural.class_names,
        paths=natural.paths,
        y_true=natural.y_true,
        y_pred=y_pred,
        probabilities=natural.probabilities,
        info=natural.info,
    )


@pytest.fixture()
def store(tmp_path, monkeypatch):
    store = fresh_store(tmp_path, monkeypatch)
    keras_run, natural_run = demo_runs()
    changed = three_changed_run()
    store.save(keras_run, "keras order")
    store.save(natural_run, "natural order")
    store.save(few_class3_run(), "few Class_3")
    store.save(changed, "three changed")
    training = store.start_training("three epochs", "demo")
    for epoch, run in enumerate((keras_run, natural_run, changed), start=1):
        store.save(run, training_id=training, epoch=epoch, logs={})
    store.finish_training(training)
    return store


@pytest.fixture()
def downloads(monkeypatch):
    """What each download button built on click would serve, by its deferred file id: Streamlit's
    own registry of ``data=callable`` downloads, watched (the callables still register)."""
    made = {}
    register = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, *args, **kwargs):
        file_id = register(self, data_callable, *args, **kwargs)
        made[file_id] = data_callable
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return lambda button: made[button.proto.deferred_file_id]()


def datasets(at):
    return [convert_arrow_bytes_to_pandas_df(d.data.data) for c in at.get("vega_lite_chart") for d in c.proto.datasets]


def table_with(at, *columns):
    (table,) = [t.value for t in at.dataframe if set(columns) <= set(t.value.columns)]
    return table


# ----- Results ----------------------------------------------------------------------------------------
def test_results_gives_accuracy_with_its_interval_and_the_report(store, downloads):
    _, natural = demo_runs()
    at = open_app(RESULTS, run="2")
    no_exceptions(at)
    right = int(natural.correct.sum())
    sentence = f"{right / 797:.1%} (95% CI {percent_interval(right, 797)}, 797 images)"
    assert sentence == "92.3% (95% CI 90.3–94.0%, 797 images)"
    assert f"Accuracy **{sentence}**" in texts(at)
    report = at.download_button(key="results-report")
    assert report.label == "Report (HTML)" and report.proto.deferred_file_id  # built on click only
    page = downloads(report)
    assert page.startswith("<!doctype html>") and "accuracy <b>92.3%</b> (95% confidence interval 90.3–94.0%)" in page


def test_the_per_class_table_shows_intervals_and_flags_a_class_with_few_images(store):
    at = open_app(RESULTS, run="3")
    no_exceptions(at)
    table = table_with(at, "recall_ci", "precision_ci", "few_images").set_index("class")
    run = few_class3_run()
    matrix = np.asarray(run.metrics.confusion_matrix)
    k = run.class_names.index("Class_3")
    assert table.loc["Class_3", "support"] == 6 and table.loc["Class_3", "few_images"]
    assert table.loc["Class_3", "recall_ci"] == percent_interval(int(matrix[k, k]), 6)
    j = run.class_names.index("Class_7")
    assert not table.loc["Class_7", "few_images"]
    assert table.loc["Class_7", "recall_ci"] == percent_interval(int(matrix[j, j]), int(matrix[j].sum()))
    assert table.loc["Class_7", "precision_ci"] == percent_interval(int(matrix[j, j]), int(matrix[:, j].sum()))
    assert int(table["few_images"].sum()) == 1

    # A confusion cell says how many images it holds, of how many of its true class.
    at.session_state["confusion"] = {"selection": {CELL: [{"true": "Class_3", "predicted": "Class_3"}]}}
    at.run()
    no_exceptions(at)
    n = int(matrix[k, k])
    assert f"True Class_3, predicted Class_3: {n} images ({n / 6:.0%} of the 6 images of Class_3)" in texts(at)


# ----- Compare ----------------------------------------------------------------------------------------
def test_compare_says_first_whether_the_difference_is_more_than_chance(store):
    keras_run, natural_run = demo_runs()
    at = open_app(COMPARE, a="1", b="2")
    no_exceptions(at)
    assert at.success[0].value == "**Run B is more accurate than run A, by more than chance would explain.**"
    cmp = compare_runs(keras_run, natural_run)
    points = 100 * (natural_run.accuracy - keras_run.accuracy)
    assert f"B is {points:.1f} points better (95% CI {100 * cmp.delta_ci.low:.1f} to {100 * cmp.delta_ci.high:.1f}); McNemar p < 0.001: a significant difference (at the 0.05 level) on these 797 images." in texts(at)


def test_compare_says_plainly_when_the_difference_could_be_chance(store):
    _, natural = demo_runs()
    at = open_app(COMPARE, a="2", b="4")
    no_exceptions(at)
    # two images only A gets right, one only B: McNemar p = 2 · P(X <= 1 | 3, 1/2) = 1
    assert at.info[0].value == "**The two runs cannot be told apart on these images: the difference could be chance.**"
    text = texts(at)
    assert "B is 0.1 points worse (95% CI \u2212" in text
    assert "McNemar p = 1.00: **not** a significant difference on these 797 images." in text
    per_class = table_with(at, "b", "c", "p_value").set_index("class")
    changed = three_changed_run()
    right_a, right_b = natural.correct, changed.correct
    for k, name in enumerate(natural.class_names):
        mine = natural.y_true == k
        assert per_class.loc[name, "b"] == int(np.sum(mine & right_a & ~right_b))
        assert per_class.loc[name, "c"] == int(np.sum(mine & right_b & ~right_a))
    assert per_class["b"].sum() == 2 and per_class["c"].sum() == 1
    assert (per_class.loc[per_class["b"] + per_class["c"] == 0, "p_value"] == 1.0).all()


# ----- Training and History -----------------------------------------------------------------------------
def test_training_draws_the_accuracy_band_and_says_the_best_epoch_is_not_distinguishable(store):
    keras_run, natural_run = demo_runs()
    at = open_app(TRAINING)
    no_exceptions(at)
    (band,) = [d for d in datasets(at) if {"low", "high"} <= set(d.columns)]
    band = band.sort_values("epoch")
    rights = [int(keras_run.correct.sum()), int(natural_run.correct.sum()), int(three_changed_run().correct.sum())]
    for (_, row), right in zip(band.iterrows(), rights):
        ci = wilson_interval(right, 797)
        assert (row["low"], row["accuracy"], row["high"]) == pytest.approx((ci.low, right / 797, ci.high))
    assert any(
        i.value.startswith("Best epoch: 2 (92.3% accuracy). It is not distinguishable from the next best, epoch 3 (92.2%)")
        and "McNemar p = 1.00 on the 797 images both epochs evaluated" in i.value
        for i in at.info
    )


def test_history_shows_each_accuracy_with_its_interval(store):
    at = open_app(HISTORY)
    no_exceptions(at)
    table = table_with(at, "accuracy", "accuracy_ci").set_index("id")
    keras_run, natural_run = demo_runs()
    assert table.loc[1, "accuracy_ci"] == percent_interval(int(keras_run.correct.sum()), 797)
    assert table.loc[2, "accuracy_ci"] == "90.3–94.0%"
    assert table.loc[3, "accuracy_ci"] == percent_interval(int(few_class3_run().correct.sum()), few_class3_run().n_images)


# ----- Suspect labels -----------------------------------------------------------------------------------
def test_suspect_labels_list_review_candidates_that_open_and_export(store, downloads):
    _, natural = demo_runs()
    expected, _ = suspect_table(natural)
    at = open_app(SUSPECTS, run="2")
    no_exceptions(at)
    assert "review candidates, not proof" in texts(at)
    assert f"{len(expected)} of 797 images are suspect." in texts(at)
    table = table_with(at, "thumbnail", "given", "suggested", "p_given")
    assert list(table["file"]) == list(expected["file"][: len(table)]) and len(table) == min(25, len(expected))
    first = expected.iloc[0]
    i = natural.paths.index(first["file"])
    assert table["p_given"][0] == pytest.approx(float(natural.probabilities[i, natural.y_true[i]]))
    assert table["suggested"][0] == natural.class_names[int(natural.probabilities[i].argmax())] != table["given"][0]
    assert all(str(uri).startswith("data:image/png;base64,") for uri in table["thumbnail"])

    click_cell(at, "suspects-1", 1, "suggested")  # any cell of the row opens its image
    no_exceptions(at)
    rel = table["file"][1]
    assert at.query_params["file"] == rel and rel in [t.value for t in at.text] and len(at.get("image")) == 1
    assert any(c.value.endswith(f"/suspect_labels?run=2&file={rel}") for c in at.code)

    rows = list(csv.reader(io.StringIO(downloads(at.download_button(key="suspects-csv")))))
    assert rows[0] == ["path", "given_label", "suggested_label", "p_given", "p_suggested"]
    assert [r[0] for r in rows[1:]] == list(expected["file"])
    assert rows[1][1:3] == [first["given"], first["suggested"]]
    assert float(rows[1][3]) == pytest.approx(first["p_given"], rel=1e-5)


def test_suspect_labels_wait_for_the_right_class_order_and_say_where_to_relabel(store):
    at = open_app(SUSPECTS, run="1")
    no_exceptions(at)
    assert at.warning[0].value == WAITING_FOR_ORDER
    assert "Re-label under the suggested class order" in texts(at)
    (link,) = at.get("page_link")
    assert link.proto.page.endswith("results") and "run=1" in link.proto.query_string
    assert not at.dataframe


# ----- Calibration -------------------------------------------------------------------------------------
def test_calibration_numbers_a_bin_click_lists_its_images_and_a_row_opens_one(store):
    _, natural = demo_runs()
    numbers = calibration(natural.probabilities, natural.y_true)
    at = open_app(CALIBRATION, run="2")
    no_exceptions(at)
    assert at.metric[0].value == f"{100 * numbers.ece:.1f} points"
    (bins,) = [d for d in datasets(at) if "count" in d.columns and "bin" in d.columns]
    assert list(bins["count"]) == [b.count for b in numbers.bins if b.count] and bins["count"].sum() == 797

    top = numbers.bins[14]  # (14/15, 1]: the sure predictions
    at.session_state["reliability"] = {"selection": {BIN: [{"bin": 14}]}}
    at.run()
    no_exceptions(at)
    assert f"Confidence 93%–100%: {top.count} images, {top.accuracy:.1%} right at a mean confidence of {top.confidence:.1%}" in texts(at)
    listed = table_with(at, "thumbnail", "right")
    assert list(listed["file"]) == list(bin_files(natural, 14)["file"][:20])

    at.toggle(key="bin-wrong-14").set_value(True).run()  # the confident and wrong
    no_exceptions(at)
    wrong = bin_files(natural, 14, only_wrong=True)
    listed = table_with(at, "thumbnail", "right")
    assert len(wrong) == int(top.count - round(top.accuracy * top.count)) and len(listed) == min(20, len(wrong))
    assert list(listed["file"]) == list(wrong["file"][:20]) and not listed["right"].any()
    assert all(listed["confidence"] > 14 / 15)
    click_cell(at, "bin-files-14-True-1", 0, "confidence")
    no_exceptions(at)
    rel = listed["file"][0]
    assert at.query_params["file"] == rel and len(at.get("image")) == 1
    i = natural.paths.index(rel)
    assert f"True class **{natural.class_names[natural.y_true[i]]}** · predicted **{natural.class_names[natural.y_pred[i]]}**" in texts(at)


def test_calibration_per_class_and_the_temperature_what_if(store):
    _, natural = demo_runs()
    at = open_app(CALIBRATION, run="2")
    no_exceptions(at)
    table = table_with(at, "n_predicted", "ece").set_index("label")
    for c in per_class_calibration(natural.probabilities, natural.y_true, natural.class_names):
        assert table.loc[c.label, "n_predicted"] == c.n_predicted
        assert table.loc[c.label, "ece"] == pytest.approx(c.ece)
    assert table["n_predicted"].sum() == 797
    what_if = temperature_what_if(natural.probabilities, natural.y_true)
    text = texts(at)
    assert f"temperature T = {what_if.temperature:.2f} (fitted on 399 images)" in text
    assert f"from {100 * what_if.ece_before:.1f} to {100 * what_if.ece_after:.1f} points" in text
    assert f"Accuracy stays {what_if.accuracy:.1%}" in text


@pytest.mark.parametrize("page", [SUSPECTS, CALIBRATION])
def test_the_new_screens_without_a_run_say_what_to_do(page, tmp_path, monkeypatch):
    fresh_store(tmp_path, monkeypatch)
    at = open_app(page)
    no_exceptions(at)
    assert "evaluate a model first" in at.info[0].value
