"""History page and auto-save: runs made in the app are stored as they go; stored runs are
listed, opened without inference, renamed, deleted (after a confirmation) and downloaded."""

from __future__ import annotations

import functools
import sqlite3
import threading

import numpy as np
import pytest

from gtpred_core import evaluate_folder, index_image_folder, load_model
from gtpred_core.demo import DEMO_MODEL, demo_folder

from gtpred_app.ui import state
from gtpred_app.ui.jobs import start_job
from gtpred_core.store import GuardedWriter

from app_helpers import no_exceptions, open_app
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


def select_row(at, row: int):
    at.session_state[f"history-{at.session_state['history_version']}"] = {"selection": {"rows": [row], "columns": []}}
    return at.run()


def text(at) -> str:
    return " ".join(m.value for m in at.markdown) + " ".join(m.value for m in at.caption)


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
    assert "#1 · demo, keras order" in at.subheader[0].value
    at.button(key="history_open").click().run()
    no_exceptions(at)
    assert at.title[0].value == "Results"
    assert "job" not in at.session_state  # no evaluation was started: nothing ran inference
    assert at.metric[0].value == f"{keras_run.accuracy:.1%}"
    assert "class order looks wrong" in at.warning[0].value  # the stored run's own checks
    assert "Saved in the history as run #1." in text(at)
    opened = state.run_registry().get(at.session_state["run_id"])
    assert opened.paths == keras_run.paths
    assert np.array_equal(opened.probabilities, keras_run.probabilities)
    # The stored run works on the other result pages exactly as a fresh one.
    for page in ("gtpred_app/screens/mispredictions.py", "gtpred_app/screens/class_mapping.py"):
        other = open_app(page, run=at.session_state["run_id"])
        no_exceptions(other)
    at.button(key="relabel").click().run()  # a relabelling is not a new stored run
    no_exceptions(at)
    assert len(store.list()) == 2


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


def test_the_selected_run_can_be_downloaded(store):
    at = select_row(open_app(HISTORY), 0)
    assert {b.label for b in at.get("download_button")} == {"Predictions CSV", "Summary JSON"}


def test_a_run_made_in_the_app_is_saved_as_it_runs(tmp_path, monkeypatch):
    store = fresh_store(tmp_path, monkeypatch)
    at = open_app()
    at.button(key="run_demo").click().run()
    no_exceptions(at)
    assert at.title[0].value == "Results"
    (row,) = store.list()
    run = state.run_registry().get(at.session_state["run_id"])
    assert row.status == "complete" and row.n_images == run.n_images == 797
    assert row.accuracy == pytest.approx(run.accuracy)
    assert row.name == "digits_cnn.keras on demo-digits, keras order"
    assert np.array_equal(store.load(row.id).probabilities, run.probabilities)
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
