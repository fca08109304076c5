"""One decode for many models: ``evaluate_models``, ``DecodeCache`` and ``decoding_once``.

What a user relies on: evaluating models together (or an epoch replayed from memory) gives
exactly, bit for bit, what evaluating each alone gives, bad files included; the decode really
happens once; and a cache past its budget still gives every file.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from gtpred_core import evaluate_folder, index_image_folder, load_model, predict_files
from gtpred_core.errors import OutputWidthError
from gtpred_core.export import predictions_csv
from gtpred_core.inference import DecodeCache, decoding_once
from gtpred_core.sweep import evaluate_models
from tests.test_inference import _png_declaring


def _same_run(together, alone) -> None:
    assert predictions_csv(together) == predictions_csv(alone)
    np.testing.assert_array_equal(together.probabilities, alone.probabilities)  # bit for bit
    assert together.paths == alone.paths
    assert [(s.path, s.reason) for s in together.skipped] == [(s.path, s.reason) for s in alone.skipped]


@pytest.fixture(scope="module")
def bad_files_dir(tmp_path_factory, digits_dir) -> Path:
    """The digits with bad files early and late in the file order: skipped either side of a
    partly kept cache."""
    root = tmp_path_factory.mktemp("sweep") / "val"
    shutil.copytree(digits_dir, root)
    for class_folder in ("Class_1", "Class_9"):
        (root / class_folder / "zz_empty.png").write_bytes(b"")
        (root / class_folder / "zz_text.jpg").write_text("not an image\n")
        (root / class_folder / "zz_bomb.png").write_bytes(_png_declaring(30_000, 30_000))
    return root


def _untrained_cnn(path: Path, side: int) -> Path:
    import keras

    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((side, side, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Conv2D(3, 3, activation="relu"),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")]
    )  # fmt: skip
    model.save(path)
    return path


@pytest.fixture(scope="module")
def full_size_model(tmp_path_factory) -> Path:
    """An untrained CNN taking the files' own 32x32 size: its inputs are whole numbers (no resize)."""
    return _untrained_cnn(tmp_path_factory.mktemp("full-size") / "full_size.keras", 32)


def test_models_evaluated_together_equal_each_alone_bit_for_bit(softmax_model, logits_model, gray_model, full_size_model, bad_files_dir):
    models = [softmax_model, logits_model, gray_model, full_size_model]
    cache = DecodeCache()
    together = evaluate_models(models, bad_files_dir, class_order="natural", batch_size=16, cache=cache)
    for model, run in zip(models, together):
        alone = evaluate_folder(model, bad_files_dir, class_order="natural", batch_size=16)
        _same_run(run, alone)
        assert run.info.model == str(model)
    assert len(together[0].skipped) == 6 and together[0].n_images == 300
    # softmax and logits take 16x16 RGB: one decode (started ahead while the others loaded) and their
    # one pass replaying it; gray 16x16 and RGB 32x32: one decode each
    assert (cache.decoded_passes, cache.replayed_passes) == (3, 1)


def test_calls_arriving_together_stat_the_folder_once_and_share_what_it_refused(softmax_model, logits_model, bad_files_dir, monkeypatch):
    """The read guard (a stat of every file) runs once for calls started at the same moment in
    threads sharing one ``decoding_once``: the later ones wait for it rather than each statting the
    folder while the first decodes."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from gtpred_core import inference

    guards: list[int] = []
    guard = inference._refusals
    monkeypatch.setattr(inference, "_refusals", lambda paths: guards.append(len(paths)) or guard(paths))
    models = [load_model(path) for path in (softmax_model, logits_model, softmax_model, logits_model)]  # all ready at once
    paths = index_image_folder(bad_files_dir).absolute_paths()
    with decoding_once() as cache, ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, predict_files, model, paths, batch_size=16) for model in models
        ]
        raws = [future.result() for future in futures]
    assert guards == [len(paths)]  # the folder statted once, not once per call
    assert (cache.decoded_passes, cache.replayed_passes) == (1, 3)
    assert [len(raw.skipped) for raw in raws] == [6, 6, 6, 6]


def test_models_together_past_the_budget_still_equal_each_alone(softmax_model, logits_model, bad_files_dir):
    cache = DecodeCache(budget_mb=0.1)  # 128 of 302 decoded images: the others decode the rest
    together = evaluate_models([softmax_model, logits_model], bad_files_dir, batch_size=16, cache=cache)
    assert cache.images_held == 128
    for model, run in zip([softmax_model, logits_model], together):
        _same_run(run, evaluate_folder(model, bad_files_dir, batch_size=16))


def test_whole_number_inputs_are_kept_as_uint8_a_quarter_of_the_memory(full_size_model, digits_dir, tmp_path):
    resizing_model = _untrained_cnn(tmp_path / "side_20.keras", 20)  # 32 -> 20 px: fractions
    paths = index_image_folder(digits_dir).absolute_paths()
    held = {}
    for model in (full_size_model, resizing_model):
        with decoding_once(DecodeCache()) as cache:
            predict_files(load_model(model), paths)
        held[model] = cache.bytes_held
    values_32, values_20 = 300 * 32 * 32 * 3, 300 * 20 * 20 * 3
    assert values_32 <= held[full_size_model] < values_32 * 1.1  # one byte per value
    assert 4 * values_20 <= held[resizing_model] < 4 * values_20 * 1.1  # fractions: float32


@pytest.mark.parametrize("budget_mb", [0, 0.1, 1024])
def test_a_replay_gives_the_same_outputs_whatever_the_budget_kept(softmax_model, bad_files_dir, budget_mb):
    model = load_model(softmax_model)
    paths = index_image_folder(bad_files_dir).absolute_paths()
    fresh = predict_files(model, paths, batch_size=16)
    with decoding_once(DecodeCache(budget_mb)) as cache:
        first = predict_files(model, paths, batch_size=16)
        replayed = predict_files(model, paths, batch_size=16)
    assert (cache.decoded_passes, cache.replayed_passes) == (1, 1)
    # 302 decoded: 300 digits and the two bombs (as one-pixel stand-ins); 0.1 MB holds 8 batches
    kept = {0: 0, 0.1: 128, 1024: 302}[budget_mb]
    assert cache.images_held == kept and cache.bytes_held <= budget_mb * 2**20
    for raw in (first, replayed):
        np.testing.assert_array_equal(raw.indices, fresh.indices)
        np.testing.assert_array_equal(raw.outputs, fresh.outputs)
        assert raw.skipped == fresh.skipped


def test_a_cancelled_first_pass_leaves_a_replay_that_decodes_the_rest(softmax_model, bad_files_dir):
    model = load_model(softmax_model)
    paths = index_image_folder(bad_files_dir).absolute_paths()
    fresh = predict_files(model, paths, batch_size=16)
    cancel = threading.Event()

    def stop_at_100(done: int, total: int) -> None:
        if done >= 100:
            cancel.set()

    with decoding_once() as cache:
        part = predict_files(model, paths, batch_size=16, progress=stop_at_100, cancel=cancel)
        whole = predict_files(model, paths, batch_size=16)
    assert not part.completed and whole.completed and cache.replayed_passes == 1
    np.testing.assert_array_equal(whole.outputs, fresh.outputs)
    assert whole.skipped == fresh.skipped


def test_one_model_that_does_not_fit_fails_after_the_others_finish(softmax_model, sigmoid_model, digits_dir):
    progress: dict[int, int] = {}
    with pytest.raises(OutputWidthError, match="outputs 1 values per image but the folder has 10 classes"):
        evaluate_models(
            [sigmoid_model, softmax_model], digits_dir, class_order="natural",
            progress=lambda index, done, total: progress.__setitem__(index, done),
        )  # fmt: skip
    assert progress == {1: 300}  # the model that fits was evaluated to the end


def test_a_model_that_cannot_be_loaded_stops_the_ones_after_it_not_those_before(softmax_model, logits_model, digits_dir, tmp_path):
    from gtpred_core.errors import ModelError

    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip archive")
    progress: dict[int, int] = {}
    with pytest.raises(ModelError) as caught:
        evaluate_models(
            [softmax_model, broken, logits_model], digits_dir, class_order="natural",
            progress=lambda index, done, total: progress.__setitem__(index, done),
        )  # fmt: skip
    assert "broken.keras" in str(caught.value)
    assert progress == {0: 300}  # the one before it was evaluated to the end; the one after never started


def test_requests_with_embeddings_together_keep_each_models_penultimate_map(softmax_model, logits_model, digits_dir):
    from gtpred_core import EvaluationRequest
    from gtpred_core.sweep import evaluate_requests

    requests = [EvaluationRequest(model, digits_dir, class_order="natural", embeddings=True) for model in (softmax_model, logits_model)]
    for request, run in zip(requests, evaluate_requests(requests)):
        alone = evaluate_folder(request.model, digits_dir, class_order="natural", embeddings=True)
        assert run.embedding_method == alone.embedding_method == "t-SNE of penultimate features"
        np.testing.assert_array_equal(run.embedding, alone.embedding)
