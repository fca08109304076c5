"""The worker-thread evaluation behind the progress bar: progress is reported, Cancel stops it."""

from __future__ import annotations

import functools
import threading

from gtpred_core import evaluate_folder, index_image_folder, load_model
from gtpred_core.demo import DEMO_MODEL, demo_folder

from gtpred_app.ui.jobs import start_job


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
    job.cancel.set()
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
