"""Compare page: two stored runs of the demo (Keras order, natural order) compared in the app."""

from __future__ import annotations

from dataclasses import replace

import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

from gtpred_core import assemble_run, compare_runs

from app_helpers import click_cell, no_exceptions, open_app, texts
from stored_runs import demo_runs, fresh_store

COMPARE = "gtpred_app/screens/compare.py"


def chart_data(chart):
    return [convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets]


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """#1: the demo in Keras order (A by default); #2: in natural order (B by default)."""
    store = fresh_store(tmp_path, monkeypatch)
    keras_run, natural_run = demo_runs()
    store.save(keras_run, "keras order")
    store.save(natural_run, "natural order")
    return store


def test_compare_shows_both_accuracies_the_delta_and_the_per_class_changes(store):
    keras_run, natural_run = demo_runs()
    comparison = compare_runs(keras_run, natural_run)
    at = open_app(COMPARE)
    no_exceptions(at)
    assert at.selectbox(key="compare_a").value == 1 and at.selectbox(key="compare_b").value == 2
    assert "same 797 images" in texts(at) and not at.warning
    accuracy_a, accuracy_b, flipped = at.metric[:3]  # then the calibration section's figures
    assert accuracy_a.value == f"{keras_run.accuracy:.1%}" and accuracy_b.value == f"{natural_run.accuracy:.1%}"
    assert accuracy_b.delta == f"{natural_run.accuracy - keras_run.accuracy:+.1%}"
    assert flipped.value == f"{len(comparison.flips):,}" and len(comparison.flips) > 600
    per_class = at.dataframe[0].value.set_index("class")
    assert per_class.loc["Class_10", "recall_delta"] == pytest.approx(
        natural_run.metrics.per_class[natural_run.class_names.index("Class_10")].recall
        - keras_run.metrics.per_class[keras_run.class_names.index("Class_10")].recall
    )
    # The difference heatmap is B − A, cell by cell.
    (cells,) = [d for chart in at.get("vega_lite_chart") for d in chart_data(chart) if "delta" in d.columns]
    assert (cells["delta"] == cells["count_b"] - cells["count_a"]).all() and cells["delta"].abs().sum() > 0


def test_a_flipped_row_shows_the_image_with_both_runs_predictions(store):
    keras_run, natural_run = demo_runs()
    at = open_app(COMPARE)
    at.button_group(key="flip_direction").set_value("wrong-to-right").run()
    table = at.dataframe[1].value
    assert set(table.columns) >= {"file", "true", "pred_a", "pred_b"}
    click_cell(at, "flips-1-2-wrong-to-right-1", 2, "pred_b")  # any cell of the row opens it
    no_exceptions(at)
    rel = table["file"][2]
    i_a, i_b = keras_run.paths.index(rel), natural_run.paths.index(rel)
    text = texts(at)
    assert rel in [t.value for t in at.text] and len(at.get("image")) == 1
    assert at.query_params["a"] == "1" and at.query_params["b"] == "2" and at.query_params["file"] == rel
    assert any(c.value.endswith(f"/compare?a=1&b=2&file={rel}") for c in at.code)
    truth = natural_run.class_names[natural_run.y_true[i_b]]
    pred_a = keras_run.class_names[keras_run.y_pred[i_a]]
    pred_b = natural_run.class_names[natural_run.y_pred[i_b]]
    assert pred_a != truth and pred_b == truth  # wrong in A, right in B
    assert f"**Run A:** True class **{truth}** · predicted **{pred_a}** ({keras_run.confidence[i_a]:.1%}, wrong)" in text
    assert f"**Run B:** True class **{truth}** · predicted **{pred_b}** ({natural_run.confidence[i_b]:.1%}, right)" in text
    # Run A's top-5 bars, then Run B's (page order).
    top_a, top_b = [d for chart in at.get("vega_lite_chart") for d in chart_data(chart) if "is_true" in d.columns]
    assert list(top_a["class"]) == [name for name, _ in keras_run.top_k(i_a, 5)]
    assert list(top_b["class"]) == [name for name, _ in natural_run.top_k(i_b, 5)]


def test_runs_on_different_images_are_compared_on_the_common_files_and_say_so(store):
    _, natural_run = demo_runs()
    first_300 = assemble_run(  # the same model on a smaller folder: another file list
        class_names=natural_run.class_names,
        paths=natural_run.paths[:300],
        y_true=natural_run.y_true[:300],
        y_pred=natural_run.y_pred[:300],
        probabilities=natural_run.probabilities[:300],
        info=replace(natural_run.info, images_fingerprint="another folder"),
    )
    store.save(first_300, "first 300 files")
    at = open_app(COMPARE)
    at.selectbox(key="compare_a").set_value(1).run()
    no_exceptions(at)
    assert at.selectbox(key="compare_b").value == 3
    warning = at.warning[0].value
    assert "not made on the same images" in warning and "300 files both evaluated" in warning
    assert "497 file(s) only in A and 0 only in B" in warning


def test_one_stored_run_is_not_enough(tmp_path, monkeypatch):
    store = fresh_store(tmp_path, monkeypatch)
    store.save(demo_runs()[0], "alone")
    at = open_app(COMPARE)
    no_exceptions(at)
    assert "needs two stored runs" in at.info[0].value


def test_a_compare_link_opens_both_runs_and_the_image_on_a_fresh_session(store):
    keras_run, natural_run = demo_runs()
    rel = compare_runs(natural_run, keras_run).flips_table("right-to-wrong")["file"].iloc[-1]
    at = open_app(COMPARE, a="2", b="1", file=rel)  # the other way round from the default
    no_exceptions(at)
    assert at.selectbox(key="compare_a").value == 2 and at.selectbox(key="compare_b").value == 1
    assert rel in [t.value for t in at.text] and len(at.get("image")) == 1
    assert "**Run A:**" in texts(at) and "right)" in texts(at) and "wrong)" in texts(at)


def test_a_compare_link_to_a_deleted_run_says_so(store):
    store.delete(2)
    at = open_app(COMPARE, a="1", b="2")
    no_exceptions(at)
    assert any("#2" in w.value and "deleted" in w.value for w in at.warning)
    assert not at.metric
