"""Isolated inference: the worker gives the in-process results; crashes, memory and time stop there."""

from __future__ import annotations

import threading

import pytest

from gtpred_core import GtpredError, evaluate_folder, predictions_csv
from gtpred_core.store import RunStore
from gtpred_core.worker import InferenceWorker, WorkerError


@pytest.fixture(scope="module")
def worker():
    w = InferenceWorker(memory_limit_mb=6144, time_limit_s=300)
    yield w
    w.stop()


def test_the_worker_gives_the_in_process_results_and_stays_warm(worker, softmax_model, digits_dir, tmp_path):
    local = evaluate_folder(softmax_model, digits_dir, class_order="natural")
    db = tmp_path / "runs.db"
    remote = worker.evaluate(softmax_model, digits_dir, class_order="natural", store_path=db, run_name="via worker")
    assert predictions_csv(remote) == predictions_csv(local)
    assert RunStore(db).load(worker.last_run_id).paths == local.paths
    pid = worker._process.pid
    worker.evaluate(softmax_model, digits_dir)
    assert worker._process.pid == pid  # reused, not restarted


def test_a_user_error_comes_back_as_a_message_and_the_worker_goes_on(worker, softmax_model, digits_dir, tmp_path):
    with pytest.raises(GtpredError, match="Model not found"):
        worker.evaluate(tmp_path / "missing.keras", digits_dir)
    assert worker.evaluate(softmax_model, digits_dir).n_images == 300


def test_cancel_reaches_the_worker_and_keeps_the_part_done(worker, softmax_model, digits_dir):
    cancel = threading.Event()
    run = worker.evaluate(
        softmax_model, digits_dir, batch_size=16, cancel=cancel, progress=lambda done, total: cancel.set() if done >= 32 else None
    )
    assert run.info.status == "cancelled" and 32 <= run.n_images < 300


def test_a_model_that_allocates_past_the_limit_is_stopped_and_the_next_request_is_answered(softmax_model, digits_dir, tmp_path):
    import keras

    # A tiny file whose forward pass wants ~15 GB: 32x32 images upsampled 200x.
    hog = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.UpSampling2D(200), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    hog.save(tmp_path / "hog.keras")
    db = tmp_path / "runs.db"
    store = RunStore(db)
    earlier = store.save(evaluate_folder(softmax_model, digits_dir), name="earlier")
    worker = InferenceWorker(memory_limit_mb=4096, time_limit_s=300)
    try:
        with pytest.raises(WorkerError, match="more memory than the evaluation may use"):
            worker.evaluate(tmp_path / "hog.keras", digits_dir, store_path=db)
        assert worker.evaluate(softmax_model, digits_dir).n_images == 300
    finally:
        worker.stop()
    assert store.integrity_ok() and store.load(earlier).n_images == 300
    assert store.get(earlier).status == "complete"


def test_a_worker_that_dies_mid_run_is_reported_and_replaced(softmax_model, digits_dir):
    worker = InferenceWorker(time_limit_s=300)
    try:
        worker.evaluate(softmax_model, digits_dir)  # warm
        killer = threading.Timer(0.2, lambda: worker._process.kill())
        killer.start()
        with pytest.raises(WorkerError, match="stopped unexpectedly"):
            worker.evaluate(softmax_model, digits_dir, batch_size=1)
        assert worker.evaluate(softmax_model, digits_dir).n_images == 300  # a new worker answers
    finally:
        worker.stop()


def test_a_run_past_the_time_limit_is_stopped(softmax_model, digits_dir):
    worker = InferenceWorker(time_limit_s=0.5)
    try:
        with pytest.raises(WorkerError, match="ran past its time limit"):
            worker.evaluate(softmax_model, digits_dir)
    finally:
        worker.stop()


def test_describe_reads_the_model_in_the_worker_and_the_store_failing_never_fails_the_run(worker, softmax_model, digits_dir, tmp_path):
    facts = worker.describe(softmax_model)
    assert (facts.input_size, facts.channels, facts.output_width, facts.rescales_itself) == ((16, 16), 3, 10, True)
    (tmp_path / "weights.pt").write_bytes(b"torch weights")
    with pytest.raises(GtpredError, match="weights.pt is not a model format"):
        worker.describe(tmp_path / "weights.pt")
    not_a_db = tmp_path / "not-a-db.sqlite3"
    not_a_db.write_bytes(b"this is not SQLite" * 100)
    run = worker.evaluate(softmax_model, digits_dir, store_path=not_a_db)
    assert run.n_images == 300 and worker.last_run_id is None
    assert "cannot be opened" in worker.last_store_error


def test_the_warm_worker_serves_a_copy_under_its_own_name_and_reloads_a_file_replaced_in_place(worker, softmax_model, logits_model, digits_dir, tmp_path):
    """Models are cached by content: a copy of a loaded model is named as the caller named it, and
    new bytes at the same path are never answered with the old model."""
    import shutil

    copy = tmp_path / "copy of the model.keras"
    shutil.copy(softmax_model, copy)
    worker.evaluate(softmax_model, digits_dir)
    run = worker.evaluate(copy, digits_dir)
    assert run.info.model == str(copy) and worker.describe(copy).name == "copy of the model.keras"
    shutil.copy(logits_model, copy)  # another model's bytes at the same path
    assert worker.describe(copy).activation != worker.describe(softmax_model).activation
    assert predictions_csv(worker.evaluate(copy, digits_dir)) == predictions_csv(evaluate_folder(logits_model, digits_dir))
