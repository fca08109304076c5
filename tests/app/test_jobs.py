"""The evaluation behind the progress panel: its place in the server's queue, its progress, Cancel
(which takes a queued run out of the queue, and stops a running one keeping the part done)."""

from __future__ import annotations

import functools
import threading

from gtpred_core import EvaluationRequest, evaluate_folder, index_image_folder, load_model
from gtpred_core.demo import DEMO_MODEL, demo_folder
from streamlit.testing.v1 import AppTest

from app_helpers import APP, TIMEOUT, no_exceptions
from gtpred_app.ui import state
from gtpred_app.ui.jobs import start_job, submit_job


def test_cancel_stops_after_the_current_batch_and_keeps_the_part_done():
    folder = index_image_folder(demo_folder())
    first_batch = threading.Event()
    job = None

    def evaluate(progress, cancel):
        def report(done, total):
            progress(done, total)
            first_batch.set()

        return evaluate_folder(load_model(DEMO_MODEL), folder, batch_size=8, progress=report, cancel=cancel)

    job = start_job("demo", len(folder.files), evaluate)
    assert first_batch.wait(60)
    assert job.running and 0 < job.done < job.total and "images/s" in job.progress_text()
    job.request_cancel()
    assert "cancelling" in job.progress_text()
    assert job.wait(60)
    assert job.error is None
    assert job.run.info.status == "cancelled"
    assert 0 < job.run.n_images < len(folder.files)
    assert "cancelled" in job.run.warning_codes()


def test_an_error_in_the_worker_is_kept_for_the_page():
    job = start_job("missing", 1, functools.partial(evaluate_folder, "/no/such/model.keras", demo_folder()))
    assert job.wait(60)
    assert job.run is None and "Model not found" in str(job.error)


def _evaluate_demo(worker, progress, cancel):
    return worker.evaluate(EvaluationRequest(DEMO_MODEL, demo_folder()), progress=progress, cancel=cancel).run


def test_a_queued_run_says_how_many_are_ahead_and_cancel_takes_it_out_of_the_queue():
    pool = state.worker_pool()  # the app's pool (GTPRED_WORKERS=1 in the tests)
    assert pool.wait_warm(300)
    gate, holding = threading.Event(), threading.Event()

    def someone_elses_long_run(worker, progress, cancel):
        holding.set()
        assert gate.wait(300)
        return _evaluate_demo(worker, progress, cancel)

    long_run = pool.submit("someone else", someone_elses_long_run)
    try:
        assert holding.wait(120)
        theirs = submit_job(pool, "another session", "their images", 797, _evaluate_demo)
        mine = submit_job(pool, "my session", "the demo", 797, _evaluate_demo, origin="demo")
        assert mine.running and mine.queued and mine.fraction == 0
        assert mine.progress_text() == "Waiting: 1 run ahead of yours (1 worker, all busy)"
        mine.request_cancel()
        assert not mine.running and mine.cancelled_before_start and mine.run is None and mine.error is None
        assert theirs.progress_text() == "Waiting: yours is next (1 worker, all busy)"
    finally:
        gate.set()
    assert long_run.wait(120) and theirs.wait(120)
    assert theirs.run.n_images == 797 and mine.started is None  # never ran

    # The page of the session that cancelled: a plain note, and the demo button works again.
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["job"] = mine
    at.run()
    no_exceptions(at)
    assert [i.value for i in at.info if "Cancelled before it started" in i.value]
    assert not at.button(key="run_demo").disabled
    assert at.session_state["job"] is None


def test_a_run_that_ends_between_two_reruns_of_evaluate_still_opens_its_results():
    """The page's polling loop opens Results when the run ends; when a rerun interrupted the loop
    just then (a click, a second tab), the next rerun finds the run finished before the page
    draws: it must still go to Results, not stay on Evaluate with only a toast (seen in Chromium
    on a loaded machine after Cancel)."""
    job = start_job(
        "demo", 797, functools.partial(evaluate_folder, load_model(DEMO_MODEL), demo_folder()), origin="demo"
    )
    assert job.wait(120) and job.error is None
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["job"] = job  # finished, not yet collected: as the interrupted loop left it
    at.run()
    no_exceptions(at)
    assert at.session_state["job"] is None
    assert [t.value for t in at.title] == ["Results"]
    assert "Accuracy" in [m.label for m in at.metric]
