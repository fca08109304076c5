"""Isolated inference: the worker gives the in-process results; crashes, memory and time stop there;
errors come back as their own class with their fields; bugs are logged there with a reference."""

from __future__ import annotations

import re
import threading

import pytest

from gtpred_core import ClassOrderError, EvaluationRequest, GtpredError, ImageFolder, ModelError, evaluate_folder, predictions_csv
from gtpred_core.store import RunStore
from gtpred_core.worker import InferenceWorker, UnexpectedWorkerError, WorkerError


@pytest.fixture(scope="module")
def log_file(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-log") / "worker.log"


@pytest.fixture(scope="module")
def worker(log_file):
    w = InferenceWorker(memory_limit_mb=6144, time_limit_s=300, log_file=log_file)
    yield w
    w.stop()


def test_the_worker_gives_the_in_process_results_and_stays_warm(worker, softmax_model, digits_dir, tmp_path):
    local = evaluate_folder(softmax_model, digits_dir, class_order="natural")
    db = tmp_path / "runs.db"
    result = worker.evaluate(EvaluationRequest(softmax_model, digits_dir, class_order="natural", store_path=db, run_name="via worker"))
    assert predictions_csv(result.run) == predictions_csv(local)
    assert result.store_error is None and RunStore(db).load(result.run_id).paths == local.paths
    assert RunStore(db).get(result.run_id).name == "via worker"
    pid = worker.pid
    again = worker.evaluate(EvaluationRequest(softmax_model, digits_dir))
    assert worker.pid == pid  # reused, not restarted
    assert again.run_id is None  # no store asked for, none written


def test_two_models_in_one_pass_in_the_worker_are_each_stored_as_evaluated_alone(worker, softmax_model, logits_model, digits_dir, tmp_path):
    db = tmp_path / "runs.db"
    requests = [
        EvaluationRequest(model, digits_dir, class_order="natural", store_path=db, run_name=name)
        for model, name in ((softmax_model, "model A"), (logits_model, "model B"))
    ]
    seen: list[tuple[int, int]] = []
    results = worker.evaluate_together(requests, progress=lambda done, total: seen.append((done, total)))
    assert [r.store_error for r in results] == [None, None]
    assert [RunStore(db).get(r.run_id).name for r in results] == ["model A", "model B"]
    for model, result in zip((softmax_model, logits_model), results):
        alone = evaluate_folder(model, digits_dir, class_order="natural")
        assert predictions_csv(RunStore(db).load(result.run_id)) == predictions_csv(alone)
        assert result.run.info.model == str(model)
    assert seen[-1] == (300, 300) and len(seen) == len(set(seen))  # one progress line per batch, not one per model


def test_a_user_error_comes_back_as_its_own_class_with_its_fields(worker, softmax_model, digits_dir, tmp_path):
    with pytest.raises(ModelError, match="Model not found") as missing:
        worker.evaluate(EvaluationRequest(tmp_path / "missing.keras", digits_dir))
    assert missing.value.path == str(tmp_path / "missing.keras")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join([f"Class_{i}" for i in range(1, 10)] + ["Class_99"]) + "\n")
    with pytest.raises(ClassOrderError, match="Class_99") as order:
        worker.evaluate(EvaluationRequest(softmax_model, digits_dir, class_order=labels))
    assert order.value.missing_in_folder == ("Class_99",)
    assert order.value.missing_in_order == ("Class_10",)
    assert order.value.path == str(labels)
    assert worker.evaluate(EvaluationRequest(softmax_model, digits_dir)).run.n_images == 300  # it goes on


def test_an_unexpected_error_is_logged_in_the_worker_and_arrives_as_a_plain_message_with_its_reference(
    worker, log_file, softmax_model, digits_dir
):
    # An indexed folder whose labels point past its classes: a broken object, not a user mistake.
    broken = ImageFolder(root=digits_dir, class_names=("Class_1",), files=("Class_1/img_0001.png",), labels=(7,), ignored=())
    with pytest.raises(UnexpectedWorkerError) as caught:
        worker.evaluate(EvaluationRequest(softmax_model, broken))
    err = caught.value
    assert err.error_type == "IndexError" and re.fullmatch(r"worker-\d+-[0-9a-f]{8}", err.log_ref)
    assert str(err).startswith("The evaluation stopped on an unexpected error (IndexError); it was logged on the server as worker-")
    assert "Traceback" not in str(err) and str(digits_dir) not in str(err)
    logged = log_file.read_text()
    line = next(line for line in logged.splitlines() if err.log_ref in line)
    assert "ERROR" in line and "unexpected error" in line
    assert "Traceback (most recent call last)" in logged.split(err.log_ref, 1)[1]
    assert worker.evaluate(EvaluationRequest(softmax_model, digits_dir)).run.n_images == 300


def test_a_request_is_checked_before_it_reaches_the_worker(softmax_model, digits_dir):
    with pytest.raises(GtpredError, match=r"batch size must be a whole number of at least 1, got 0"):
        EvaluationRequest(softmax_model, digits_dir, batch_size=0)
    with pytest.raises(ModelError, match=r"Unknown head choice 'probability'. Choose one of: auto, logit."):
        EvaluationRequest(softmax_model, digits_dir, head="probability")


def test_cancel_reaches_the_worker_and_keeps_the_part_done(worker, softmax_model, digits_dir):
    cancel = threading.Event()
    request = EvaluationRequest(softmax_model, digits_dir, batch_size=16)
    result = worker.evaluate(request, cancel=cancel, progress=lambda done, total: cancel.set() if done >= 32 else None)
    assert result.run.info.status == "cancelled" and 32 <= result.run.n_images < 300


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
        with pytest.raises(WorkerError, match="more memory than the evaluation may use") as caught:
            worker.evaluate(EvaluationRequest(tmp_path / "hog.keras", digits_dir, store_path=db))
        assert caught.value.limit == "4096 MB"
        assert worker.pid is None  # a worker that ran out of memory is not trusted again: it ended
        assert worker.evaluate(EvaluationRequest(softmax_model, digits_dir)).run.n_images == 300
    finally:
        worker.stop()
    assert store.integrity_ok() and store.load(earlier).n_images == 300
    assert store.get(earlier).status == "complete"


def test_a_worker_that_dies_mid_run_is_reported_and_replaced(softmax_model, digits_dir):
    worker = InferenceWorker(time_limit_s=300)
    request = EvaluationRequest(softmax_model, digits_dir, batch_size=1)
    killed = threading.Event()

    def kill_after_the_first_batch(done: int, total: int) -> None:
        if not killed.is_set():  # the worker is mid-run: it has just sent its first progress
            killed.set()
            worker._process.kill()

    try:
        with pytest.raises(WorkerError, match="stopped unexpectedly"):
            worker.evaluate(request, progress=kill_after_the_first_batch)
        assert killed.is_set()
        assert worker.evaluate(EvaluationRequest(softmax_model, digits_dir)).run.n_images == 300  # a new worker answers
    finally:
        worker.stop()


def test_a_run_past_the_time_limit_is_stopped(softmax_model, digits_dir):
    worker = InferenceWorker(time_limit_s=0.5)  # less than the worker's own TensorFlow import
    try:
        with pytest.raises(WorkerError, match="ran past its time limit") as caught:
            worker.evaluate(EvaluationRequest(softmax_model, digits_dir))
        assert caught.value.limit == "0.5 s"
    finally:
        worker.stop()


def test_describe_reads_the_model_in_the_worker_and_the_store_failing_never_fails_the_run(worker, softmax_model, digits_dir, tmp_path):
    facts = worker.describe(softmax_model)
    assert (facts.input_size, facts.channels, facts.output_width, facts.rescales_itself, facts.head) == ((16, 16), 3, 10, True, "softmax")
    (tmp_path / "weights.pt").write_bytes(b"torch weights")
    with pytest.raises(ModelError, match="weights.pt is not a model format"):
        worker.describe(tmp_path / "weights.pt")
    not_a_db = tmp_path / "not-a-db.sqlite3"
    not_a_db.write_bytes(b"this is not SQLite" * 100)
    result = worker.evaluate(EvaluationRequest(softmax_model, digits_dir, store_path=not_a_db))
    assert result.run.n_images == 300 and result.run_id is None
    assert isinstance(result.store_error, GtpredError) and "cannot be opened" in str(result.store_error)


def test_the_warm_worker_serves_a_copy_under_its_own_name_and_reloads_a_file_replaced_in_place(worker, softmax_model, logits_model, digits_dir, tmp_path):
    """Models are cached by content: a copy of a loaded model is named as the caller named it, and
    new bytes at the same path are never answered with the old model."""
    import shutil

    copy = tmp_path / "copy of the model.keras"
    shutil.copy(softmax_model, copy)
    worker.evaluate(EvaluationRequest(softmax_model, digits_dir))
    run = worker.evaluate(EvaluationRequest(copy, digits_dir)).run
    assert run.info.model == str(copy) and worker.describe(copy).name == "copy of the model.keras"
    shutil.copy(logits_model, copy)  # another model's bytes at the same path
    assert worker.describe(copy).activation != worker.describe(softmax_model).activation
    assert predictions_csv(worker.evaluate(EvaluationRequest(copy, digits_dir)).run) == predictions_csv(evaluate_folder(logits_model, digits_dir))
