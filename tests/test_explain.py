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
