"""The Ray backend (local Ray, 2 CPUs) gives exactly the local backend's predictions.csv."""

from __future__ import annotations

import os

import pytest

from gtpred_core import evaluate_folder, predictions_csv

@pytest.fixture(scope="module")
def ray_session():
    if os.environ.get("CI") != "true":
        pytest.importorskip("ray", reason="the Ray backend is optional: pip install -r requirements-ray.txt")
    from gtpred_core.ray_backend import ensure_ray

    ray = ensure_ray(None, 2)
    yield ray
    ray.shutdown()


def test_ray_and_local_backends_write_the_same_predictions_csv(ray_session, softmax_model, digits_dir):
    local = evaluate_folder(softmax_model, digits_dir, batch_size=16)
    distributed = evaluate_folder(softmax_model, digits_dir, batch_size=16, backend="ray")
    assert distributed.n_images == 300
    assert predictions_csv(distributed) == predictions_csv(local)
    assert distributed.metrics == local.metrics


def test_without_ray_the_message_says_how_to_add_it(softmax_model, digits_dir, monkeypatch):
    import sys

    from gtpred_core.ray_backend import RayMissingError

    monkeypatch.setitem(sys.modules, "ray", None)  # as on an install without the optional extra
    with pytest.raises(RayMissingError, match=r"pip install -r requirements-ray.txt"):
        evaluate_folder(softmax_model, digits_dir, backend="ray")


def test_an_unknown_backend_is_named(softmax_model, digits_dir):
    from gtpred_core import GtpredError

    with pytest.raises(GtpredError, match="Unknown backend 'spark'. Choose local or ray."):
        evaluate_folder(softmax_model, digits_dir, backend="spark")
