"""Saliency lands on the evidence: a data set where the evidence's place is known.

Each 32x32 image is noise with one bright bar at a random place; the class is the bar's
direction (horizontal or vertical). A model that learned the task must look at the bar, so the
peak of its map should fall on the bar far more often than chance (the bar covers 16 of 1,024
pixels; with a 2-pixel margin, about 6% of the image).
"""

from __future__ import annotations

import numpy as np
import pytest

from gtpred_core.explain import GRADCAM, OCCLUSION, gradcam, occlusion

SIDE = 32


def bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images 0..255 float32 (n, 32, 32, 3), labels, boxes (top, left, bottom, right))."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 90, size=(n, SIDE, SIDE, 3)).astype(np.float32)
    labels = rng.integers(0, 2, size=n)
    boxes = np.zeros((n, 4), dtype=int)
    for k in range(n):
        h, w = (2, 8) if labels[k] == 0 else (8, 2)
        top, left = rng.integers(2, SIDE - h - 2), rng.integers(2, SIDE - w - 2)
        images[k, top : top + h, left : left + w] = 255
        boxes[k] = (top, left, top + h, left + w)
    return images, labels, boxes


def _train(model, seed: int = 0):
    import keras

    images, labels, _ = bars(800, seed)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=6, batch_size=32, verbose=0)
    return model


def _flat():
    import keras

    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((SIDE, SIDE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def _nested():
    """A functional backbone used as one layer of a Sequential (the transfer-learning shape)."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIDE, SIDE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(x)
    backbone = keras.Model(inputs, x, name="backbone")
    return keras.Sequential([keras.Input((SIDE, SIDE, 3)), backbone, keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(2, activation="softmax")])


def _hits(maps: np.ndarray, boxes: np.ndarray, margin: int = 2) -> float:
    peaks = [np.unravel_index(np.argmax(m), m.shape) for m in maps]
    inside = [
        top - margin <= y < bottom + margin and left - margin <= x < right + margin
        for (y, x), (top, left, bottom, right) in zip(peaks, boxes)
    ]
    return float(np.mean(inside))


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("explain-models")
    paths = {}
    for name, build in (("flat", _flat), ("nested", _nested)):
        model = _train(build())
        paths[name] = folder / f"{name}.keras"
        model.save(paths[name])
    # loaded back from the file: the shape users have (a Sequential with no symbolic graph)
    return {name: keras.saving.load_model(path, safe_mode=True) for name, path in paths.items()}


@pytest.mark.parametrize("name", ["flat", "nested"])
def test_gradcam_peak_lands_on_the_bar(saved_models, name):
    model = saved_models[name]
    images, labels, boxes = bars(64, seed=99)
    weights_before = [w.copy() for w in model.get_weights()]
    result = gradcam(model, images, labels, head="softmax")
    assert result.method == GRADCAM
    last_conv = [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert result.layer == ("backbone" if name == "nested" else last_conv[-1])
    assert result.maps.shape == (64, SIDE, SIDE) and result.maps.dtype == np.float32
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    assert _hits(result.maps, boxes) >= 0.6  # chance is about 0.06
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, model.get_weights()))


def test_occlusion_needs_only_the_forward_call_and_finds_the_bar(saved_models):
    model = saved_models["flat"]
    images, labels, boxes = bars(24, seed=7)
    result = occlusion(lambda x: model(x, training=False), images, labels, head="softmax")
    assert result.method == OCCLUSION
    assert _hits(result.maps, boxes, margin=4) >= 0.5  # 4x4-pixel cells: coarser than Grad-CAM


def test_explain_run_writes_one_row_and_one_map_per_image_in_order(tmp_path, saved_models):
    """A real folder, a real ordered evaluation, then the maps of its mistakes for the true class."""
    from PIL import Image

    from gtpred_core import evaluate_folder
    from gtpred_core.explain import EXPLANATION_COLUMNS, explain_run

    images, labels, _ = bars(40, seed=5)
    for k, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "val" / ("horizontal" if label == 0 else "vertical")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{k:03d}.png")
    model_path = tmp_path / "flat.keras"
    saved_models["flat"].save(model_path)
    run = evaluate_folder(model_path, tmp_path / "val")
    every = explain_run(run, model_path)
    assert [r[0] for r in every.rows] == list(run.paths)
    assert every.maps.shape == (run.n_images, SIDE, SIDE)
    wrong_true = explain_run(run, model_path, only_wrong=True, target="true")
    assert [r[0] for r in wrong_true.rows] == [p for p, ok in zip(run.paths, run.correct) if not ok]
    csv_path, npy_path = every.write(tmp_path / "out")
    import csv

    with open(csv_path, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == EXPLANATION_COLUMNS and len(table) == run.n_images + 1
    assert np.load(npy_path).dtype == np.float32


# ----- one image on click (the Mispredictions detail view), through a real worker -------------------
def test_the_worker_explains_one_misprediction_for_its_predicted_and_true_class(softmax_model, digits_dir, tmp_path):
    from gtpred_core import evaluate_folder, load_model
    from gtpred_core.errors import FolderError, ModelError
    from gtpred_core.explain import explain_file
    from gtpred_core.worker import Explain, Explained, InferenceWorker

    run = evaluate_folder(softmax_model, digits_dir)  # Keras order: plenty of mistakes
    wrong = int(np.flatnonzero(~run.correct)[0])
    message = Explain.for_file(run, run.paths[wrong])
    assert message.targets == (int(run.y_pred[wrong]), int(run.y_true[wrong]))
    worker = InferenceWorker(memory_limit_mb=6144, time_limit_s=300)
    try:
        reply = worker.explain(message)
        assert isinstance(reply, Explained) and reply.method == GRADCAM and reply.targets == message.targets
        assert reply.maps.shape == (2, 16, 16) and reply.maps.dtype == np.float32
        assert 0 <= reply.maps.min() and reply.maps.max() <= 1
        here = explain_file(load_model(softmax_model), message.image, message.targets,
                            input_size=message.input_size, preprocess=message.preprocess, head=message.head)
        np.testing.assert_allclose(reply.maps, here.maps, atol=1e-5)  # the worker's maps are the core's
        gone = tmp_path / "gone.png"
        with pytest.raises(FolderError, match="The image gone.png is no longer where the run found it"):
            worker.explain(Explain(message.model, gone, message.targets, message.input_size, message.preprocess, message.head))
        with pytest.raises(ModelError, match="Model not found"):
            worker.explain(Explain(tmp_path / "moved.keras", message.image, message.targets, message.input_size, "none", "softmax"))
    finally:
        worker.stop()


def test_overlay_blends_the_map_over_the_image_at_the_chosen_opacity():
    from gtpred_core.explain import heat_colours, overlay

    image = np.full((8, 6), 100, dtype=np.uint8)  # grayscale, a different size from the map
    heat = np.zeros((4, 3), dtype=np.float32)
    heat[0, 0] = 1.0
    assert overlay(image, heat, 0.0).shape == (8, 6, 3)
    assert (overlay(image, heat, 0.0) == 100).all()  # opacity 0: the image alone
    alone = overlay(image, heat, 1.0)
    np.testing.assert_array_equal(alone[-1, -1], heat_colours(np.zeros(1))[0].astype(np.uint8))  # cold corner
    np.testing.assert_array_equal(alone[0, 0], [220, 0, 0])  # the hot corner is red
    half = overlay(image, heat, 0.5)
    np.testing.assert_array_equal(half[0, 0], [160, 50, 50])  # (100 + colour) / 2
    with pytest.raises(ValueError, match="opacity must be between 0 and 1, got 1.5"):
        overlay(image, heat, 1.5)


def test_a_one_by_one_head_is_not_taken_for_the_spatial_layer():
    """keras.applications heads keep pooled features as (1, 1, C) maps: Grad-CAM must use the
    last map with room to place evidence, not those."""
    import keras

    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), classes=3, include_preprocessing=True)
    from gtpred_core.explain import find_spatial_layer

    _, name = find_spatial_layer(model, np.zeros((1, 64, 64, 3), np.float32))
    assert tuple(model.get_layer(name).output.shape[1:3]) != (1, 1)
