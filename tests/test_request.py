"""EvaluationRequest: the one typed value that carries an evaluation from page to worker to core to Ray."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from gtpred_core import BackendError, EvaluationRequest, PreprocessError, evaluate, evaluate_folder, index_image_folder, load_model
from gtpred_core.store import RunStore


def test_a_request_pickles_and_its_store_path_streams_the_run(softmax_model, digits_dir, tmp_path):
    request = EvaluationRequest(
        softmax_model, index_image_folder(digits_dir), class_order="natural", store_path=tmp_path / "runs.sqlite3", run_name="from a request"
    )
    assert pickle.loads(pickle.dumps(request)) == request  # what the worker receives is what was sent
    run = evaluate(request)
    store = RunStore(tmp_path / "runs.sqlite3")
    (row,) = store.list()
    assert row.name == "from a request" and row.status == "complete"
    stored = store.load(row.id)
    assert stored.paths == run.paths and np.array_equal(stored.probabilities, run.probabilities)
    assert run.probabilities.tobytes() == evaluate_folder(softmax_model, digits_dir, class_order="natural").probabilities.tobytes()


def test_a_loaded_model_travels_as_its_path(softmax_model, digits_dir):
    request = EvaluationRequest(load_model(softmax_model), digits_dir)
    sent = request.for_transport()
    assert sent.model == softmax_model and request.model_path == softmax_model
    pickle.dumps(sent)  # a LoadedModel holds TensorFlow objects; the path pickles


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"backend": "spark"}, BackendError, r"Unknown backend 'spark'. Choose local or ray."),
        ({"preprocess": "imagenet"}, PreprocessError, r"Unknown preprocessing 'imagenet'. Choose one of: none, "),
        ({"image_size": (224, 0)}, Exception, r"image size must be \(height, width\) in pixels, got \(224, 0\)"),
        ({"batch_size": 2.5}, Exception, r"batch size must be a whole number of at least 1, got 2.5"),
    ],
)
def test_a_request_that_cannot_run_is_refused_when_made_with_what_was_received(softmax_model, digits_dir, fields, error, message):
    with pytest.raises(error, match=message) as caught:
        EvaluationRequest(softmax_model, digits_dir, **fields)
    assert caught.value.received is not None and caught.value.expected
