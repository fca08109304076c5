"""History page and auto-save: runs made in the app are stored as they go; stored runs are
listed, opened without inference (by their stored id), renamed, deleted (after a confirmation)
and downloaded; a re-labelled run is stored too, marked with the run it re-reads."""

from __future__ import annotations

import functools
import sqlite3
import threading

import pytest

from gtpred_core import evaluate_folder, index_image_folder, load_model
from gtpred_core.demo import DEMO_MODEL, demo_folder

from gtpred_app.ui.jobs import start_job
from gtpred_core.store import GuardedWriter

from app_helpers import click_cell, no_exceptions, open_app, shown, texts
from stored_runs import demo_runs, fresh_store

HISTORY = "gtpred_app/screens/history.py"


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A store holding the demo in Keras order (#1) and in natural order (#2, newest)."""
    store = fresh_store(tmp_path, monkeypatch)
    keras_run, natural_run = demo_runs()
    store.save(keras_run, "demo, keras order")
    store.save(natural_run, "demo, natural order")
    return store


def select_row(at, row: int, column: str = "name"):
    """Click a cell of the run's row in the history table (any cell selects the run)."""
    return click_cell(at, f"history-{at.session_state['history_version']}", row, column)


def text(at) -> str:
    return texts(at)


def test_the_history_lists_every_stored_run_newest_first_with_its_numbers(store):
    at = open_app(HISTORY)
    no_exceptions(at)
    table = at.dataframe[0].value
    keras_run, natural_run = demo_runs()
    assert list(table["id"]) == [2, 1]
    assert list(table["name"]) == ["demo, natural order", "demo, keras order"]
    assert list(table["accuracy"]) == pytest.approx([natural_run.accuracy, keras_run.accuracy])
    assert list(table["n_images"]) == [797, 797] and set(table["status"]) == {"complete"}
    assert set(table["model"]) == {"digits_cnn.keras"}


def test_opening_a_stored_run_shows_it_on_every_results_page_without_inference(store):
    keras_run, _ = demo_runs()
    at = select_row(open_app(HISTORY), 1)
    assert "#1 · demo, keras order" in shown(at.subheader[0].value)
    at.button(key="history_open").click().run()
    no_exceptions(at)
    assert at.title[0].value == "Results"
    assert "job" not in at.session_state  # no evaluation was started: nothing ran inference
    assert at.metric[0].value == f"{keras_run.accuracy:.1%}"
    assert "class order looks wrong" in at.warning[0].value  # the stored run's own checks
    assert "Saved in the history as run #1." in text(at)
    assert at.session_state["run_id"] == 1 and at.query_params["run"] == "1"  # its one id: the stored one
    assert any(c.value.endswith("/results?run=1") for c in at.code)  # its "Copy link"
    # The stored run works on the other result pages exactly as a fresh one.
    for page in ("gtpred_app/screens/mispredictions.py", "gtpred_app/screens/class_mapping.py"):
        other = open_app(page, run="1")
        no_exceptions(other)


def test_a_relabelling_is_stored_marked_with_its_source_and_comparable(store):
    keras_run, _ = demo_runs()
    at = open_app("gtpred_app/screens/results.py", run="1")
    at.button(key="relabel").click().run()
    no_exceptions(at)
    (newest, *_rest) = store.list()
    assert [r.id for r in store.list()] == [3, 2, 1] and at.query_params["run"] == "3"
    assert newest.name == "re-labelled from run #1, suggested order" and newest.class_order_source == "suggested"
    relabelled = store.load(3)
    assert relabelled.info.relabelled_from == 1
    assert relabelled.class_names == keras_run.suggested_class_order
    assert relabelled.probabilities.tobytes() == keras_run.probabilities.tobytes()
    assert newest.accuracy == pytest.approx(relabelled.accuracy) and relabelled.accuracy > 0.9

    history = select_row(open_app(HISTORY), 0)
    no_exceptions(history)
    assert history.dataframe[0].value["name"][0] == "re-labelled from run #1, suggested order"
    marker = [t.value for t in history.text if t.value.startswith("Re-labelled from run #1")]
    assert marker and "class order " + ", ".join(keras_run.suggested_class_order[:3]) in marker[0]

    compare = open_app("gtpred_app/screens/compare.py", a="1", b="3")
    no_exceptions(compare)
    accuracy_a, accuracy_b, _flips = compare.metric[:3]  # then the calibration section's figures
    assert accuracy_a.value == f"{keras_run.accuracy:.1%}" and accuracy_b.value == f"{relabelled.accuracy:.1%}"


def test_rename_and_delete_after_a_confirmation(store):
    at = select_row(open_app(HISTORY), 0)
    at.text_input(key="rename-2").input("after the fix")
    at.button(key="history_rename").click().run()
    no_exceptions(at)
    assert store.get(2).name == "after the fix"
    assert at.dataframe[0].value["name"][0] == "after the fix"

    at.button(key="history_delete").click().run()
    assert "cannot be undone" in at.warning[0].value
    assert len(store.list()) == 2  # nothing deleted before the confirmation
    at.button(key="history_delete_no").click().run()
    assert not at.warning and len(store.list()) == 2

    at.button(key="history_delete").click().run()
    at.button(key="history_delete_yes").click().run()
    no_exceptions(at)
    assert [r.id for r in store.list()] == [1]
    assert list(at.dataframe[0].value["id"]) == [1]
    assert "Run #2 was deleted." in at.success[0].value
    assert not at.subheader  # the selection does not jump to another run


def test_the_selected_run_can_be_downloaded_and_its_checkbox_selects_it_too(store):
    at = open_app(HISTORY)
    at.session_state[f"history-{at.session_state['history_version']}"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert "#2 · demo, natural order" in shown(at.subheader[0].value)
    assert {b.label for b in at.get("download_button")} == {"Predictions CSV", "Summary JSON"}


def test_a_run_made_in_the_app_is_saved_as_it_runs(tmp_path, monkeypatch):
    store = fresh_store(tmp_path, monkeypatch)
    at = open_app()
    at.button(key="run_demo").click().run()
    no_exceptions(at)
    assert at.title[0].value == "Results"
    (row,) = store.list()
    assert at.session_state["run_id"] == row.id and at.query_params["run"] == str(row.id)
    assert row.status == "complete" and row.n_images == 797
    assert at.metric[0].value == f"{row.accuracy:.1%}"
    assert row.name == "digits_cnn.keras on demo-digits, keras order"
    assert f"Saved in the history as run #{row.id}." in text(at)


def test_a_store_that_cannot_be_opened_never_costs_the_results(tmp_path, monkeypatch):
    monkeypatch.setenv("GTPRED_DB", str(tmp_path))  # a folder: SQLite cannot open it
    at = open_app()
    at.button(key="run_demo").click().run()
    no_exceptions(at)
    assert at.title[0].value == "Results"
    assert at.metric[2].value == "797"  # the results are all there
    warning = " ".join(w.value for w in at.warning)
    assert "Not saved in the history" in warning and "cannot be opened" in warning
    history = open_app(HISTORY)
    no_exceptions(history)
    assert "cannot be opened" in history.error[0].value and "How to fix it" in history.error[0].value


def test_a_cancelled_evaluation_is_stored_with_the_part_done_and_a_store_failure_keeps_the_run(tmp_path):
    from gtpred_core.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite3")
    folder = index_image_folder(demo_folder())
    model = load_model(DEMO_MODEL)
    first_batch = threading.Event()

    def evaluate(progress, cancel, sink):
        def report(done, total):
            progress(done, total)
            first_batch.set()

        return evaluate_folder(model, folder, batch_size=8, progress=report, cancel=cancel, sink=sink)

    sink = GuardedWriter(store.writer("cancelled demo"))
    job = start_job("demo", len(folder.files), functools.partial(evaluate, sink=sink))
    assert first_batch.wait(60)
    job.cancel.set()
    assert job.wait(60) and job.error is None
    row = store.get(sink.run_id)
    assert row.status == "cancelled" and 0 < row.n_images == job.run.n_images < 797
    assert store.load(row.id).paths == job.run.paths

    # The store breaks mid-run (its predictions table is gone): the evaluation still completes,
    # the error is kept for the page, and the partial stored run is marked failed.
    with sqlite3.connect(store.path) as conn:
        conn.execute("DROP TABLE predictions")
    broken = GuardedWriter(store.writer("broken", chunk_rows=64))
    run = evaluate_folder(model, folder, batch_size=128, sink=broken)
    assert run.n_images == 797 and run.info.status == "complete"
    assert "no such table" in str(broken.error)
    assert store.get(broken.writer.run_id).status == "failed"
