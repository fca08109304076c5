"""Real fixtures: digit image folders from scikit-learn and tiny Keras models trained here.

Nothing is mocked. Models are trained once per test session (a few seconds each) on the 1,797
scikit-learn digits, with classes in *natural* order (Class_1, Class_2, ..., Class_10), which is
what makes Keras' folder order (Class_1, Class_10, Class_2, ...) the class-order trap.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The app's AppTests share one inference pool per test process; one warm worker (~0.7 GB with
# TensorFlow) is enough for them and keeps parallel test processes light.
os.environ.setdefault("GTPRED_WORKERS", "1")

from gtpred_core.demo import class_name_for_digit, demo_class_names, digit_images, write_digits_folder

MODEL_SIZE = 16  # models take 16x16 input; the 32x32 files are resized by the pipeline


@pytest.fixture(scope="session", autouse=True)
def _throwaway_run_store(tmp_path_factory):
    """The app saves every run in the store at $GTPRED_DB: tests use a fresh file, never the
    user's history (a test wanting its own store sets GTPRED_DB again with monkeypatch)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("GTPRED_DB", str(tmp_path_factory.mktemp("run-store") / "runs.sqlite3"))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return digit_images()


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory, digits) -> Path:
    """300 digits (about 30 per class) in Class_1..Class_10 folders; Class_10 holds the zeros."""
    images, labels = digits
    return write_digits_folder(tmp_path_factory.mktemp("digits") / "val", images[:300], labels[:300])


def _natural_labels(labels: np.ndarray) -> np.ndarray:
    names = demo_class_names()
    return np.array([names.index(class_name_for_digit(int(d))) for d in labels])


def _train(images: np.ndarray, y: np.ndarray, *, channels: int, outputs: int, activation: str | None, loss):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    x = tf.image.resize(images[..., None].astype("float32"), (MODEL_SIZE, MODEL_SIZE)).numpy()
    if channels == 3:
        x = np.repeat(x, 3, axis=-1)
    model = keras.Sequential(
        [
            keras.Input((MODEL_SIZE, MODEL_SIZE, channels)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(outputs, activation=activation),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), loss)
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def softmax_model(digits, models_dir) -> Path:
    """RGB 16x16 softmax CNN, 10 classes in natural order, saved as .keras, .h5 and SavedModel."""
    images, labels = digits
    model = _train(images, _natural_labels(labels), channels=3, outputs=10, activation="softmax", loss="sparse_categorical_crossentropy")
    path = models_dir / "softmax.keras"
    model.save(path)
    model.save(models_dir / "softmax.h5")
    model.export(models_dir / "softmax_savedmodel", verbose=False)
    return path


@pytest.fixture(scope="session")
def logits_model(digits, models_dir) -> Path:
    import keras

    images, labels = digits
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = _train(images, _natural_labels(labels), channels=3, outputs=10, activation=None, loss=loss)
    path = models_dir / "logits.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def gray_model(digits, models_dir) -> Path:
    images, labels = digits
    model = _train(images, _natural_labels(labels), channels=1, outputs=10, activation="softmax", loss="sparse_categorical_crossentropy")
    path = models_dir / "gray.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def binary_dir(tmp_path_factory, digits) -> Path:
    """Zeros and ones: folders 'one' (index 0 in Keras order) and 'zero' (index 1)."""
    from PIL import Image

    images, labels = digits
    root = tmp_path_factory.mktemp("binary") / "val"
    for digit, name in ((0, "zero"), (1, "one")):
        (root / name).mkdir(parents=True)
        for n in np.flatnonzero(labels[:400] == digit):
            Image.fromarray(images[n], mode="L").save(root / name / f"img_{n:04d}.png")
    return root


@pytest.fixture(scope="session")
def sigmoid_model(digits, models_dir) -> Path:
    """One sigmoid unit: P(class 1) where class 1 is 'zero' (Keras order: one, zero)."""
    images, labels = digits
    keep = (labels == 0) | (labels == 1)
    model = _train(images[keep], (labels[keep] == 0).astype("float32"), channels=3, outputs=1, activation="sigmoid", loss="binary_crossentropy")
    path = models_dir / "sigmoid.keras"
    model.save(path)
    return path


def keras_reference_predictions(model_path: Path, folder: Path, channels: int = 3) -> dict[str, np.ndarray]:
    """What the model predicts for each file on its own, through Keras' own loader.

    ``image_dataset_from_directory(shuffle=False, batch_size=1)`` decodes and resizes each file
    as Keras does in training; each file is predicted alone (a batch of one).
    """
    import keras

    model = keras.saving.load_model(model_path)
    size = tuple(model.inputs[0].shape[1:3])
    dataset = keras.utils.image_dataset_from_directory(
        folder,
        shuffle=False,
        batch_size=1,
        image_size=size,
        color_mode="grayscale" if channels == 1 else "rgb",
        verbose=False,
    )
    predictions = {}
    for path, (x, _) in zip(dataset.file_paths, dataset):
        rel = Path(path).relative_to(folder).as_posix()
        predictions[rel] = np.asarray(model(x, training=False))[0]
    return predictions
