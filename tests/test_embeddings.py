"""The embedding map: features from the evaluation's own pass, a 2-D map that keeps neighbours,
rows in evaluation order, kept with the run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gtpred_core import EvaluationRequest, evaluate_folder, load_model, predict_files
from gtpred_core.embeddings import (
    METHOD_PENULTIMATE,
    METHOD_PROBABILITIES,
    embedding_map,
    neighbour_agreement,
)
from gtpred_core.errors import BackendError
from gtpred_core.explain import load_images
from gtpred_core.folder import index_image_folder

ROOT = Path(__file__).resolve().parents[1]


def gtpred(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "gtpred_core", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_features_from_the_evaluation_pass_equal_features_computed_separately(softmax_model, digits_dir):
    import keras

    loaded = load_model(softmax_model)
    paths = index_image_folder(digits_dir).absolute_paths()[:70]
    with_features = predict_files(loaded, paths, batch_size=32, with_features=True)
    plain = predict_files(loaded, paths, batch_size=32)
    np.testing.assert_allclose(with_features.outputs, plain.outputs, atol=1e-6)  # predictions unchanged
    np.testing.assert_array_equal(with_features.indices, plain.indices)
    # separately: the file decoded again, run through a new model made of every layer but the last
    images = load_images(paths, loaded.input_size, loaded.channels, "none")
    body = keras.Sequential(keras.saving.load_model(softmax_model).layers[:-1])
    expected = np.asarray(body(images, training=False))
    assert with_features.features.shape == expected.shape == (70, expected.shape[1])
    np.testing.assert_allclose(with_features.features, expected, rtol=1e-5, atol=1e-5)


def test_a_functional_model_gives_the_input_of_its_classifier_from_a_spatial_head(tmp_path):
    """keras.applications heads end in a 1x1 Conv2D classifier on a (1, 1, C) map: that input,
    flattened, is the feature; a functional graph is read with a two-output model."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = keras.layers.Conv2D(4, 1, name="classifier")(pooled)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Activation("softmax")(x)
    keras.Model(inputs, outputs).save(tmp_path / "functional.keras")
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for k in range(9):
        path = tmp_path / f"img_{k}.png"
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)
        files.append(str(path))
    loaded = load_model(tmp_path / "functional.keras")
    raw = predict_files(loaded, files, batch_size=4, with_features=True)
    reference = keras.saving.load_model(tmp_path / "functional.keras")
    pool = keras.Model(reference.inputs[0], reference.get_layer("pool").output)
    expected = np.asarray(pool(load_images(files, (12, 12), 3, "none"))).reshape(9, -1)
    np.testing.assert_allclose(raw.features, expected, rtol=1e-5, atol=1e-6)


def test_the_map_keeps_neighbours_where_pca_does_not(softmax_model, digits_dir):
    """The issue's yardstick: a 5-NN classifier of the true class on the 2-D map."""
    from sklearn.decomposition import PCA

    loaded = load_model(softmax_model)
    folder = index_image_folder(digits_dir)
    raw = predict_files(loaded, folder.absolute_paths(), with_features=True)
    labels = np.asarray(folder.labels)[raw.indices]
    tsne_score = neighbour_agreement(embedding_map(raw.features), labels)
    pca_score = neighbour_agreement(PCA(2).fit_transform(raw.features), labels)
    assert tsne_score > pca_score + 0.1
    assert tsne_score >= 0.8


def test_neighbour_agreement_counts_a_point_whose_neighbours_share_its_label():
    points = np.array([[0, 0], [0, 1], [3, 0], [10, 10], [10, 11], [11, 10]], dtype=float)
    assert neighbour_agreement(points, [0, 0, 0, 1, 1, 1], k=1) == 1.0
    # the third point is labelled 1 but its nearest neighbour, (0, 0), is a 0: 5 of 6 agree
    assert neighbour_agreement(points, [0, 0, 1, 1, 1, 1], k=1) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="needs more than k=5 points, got 3"):
        neighbour_agreement(points[:3], [0, 0, 0])


def test_a_map_of_few_images_still_has_one_point_each():
    assert embedding_map(np.zeros((0, 8))).shape == (0, 2)
    assert embedding_map(np.eye(3)).shape == (3, 2)
    points = embedding_map(np.random.default_rng(0).normal(size=(12, 8)))
    assert points.shape == (12, 2) and np.isfinite(points).all()


def test_evaluate_writes_embeddings_csv_in_evaluation_order_and_runs_export_writes_it_again(softmax_model, digits_dir, tmp_path):
    db = tmp_path / "runs.db"
    result = gtpred("evaluate", "--model", softmax_model, "--images", digits_dir, "--out", tmp_path / "a", "--embeddings", "--save", "--db", db)
    assert result.returncode == 0, result.stderr
    assert "embeddings.csv" in result.stdout
    with open(tmp_path / "a" / "predictions.csv", newline="") as f:
        prediction_paths = [row["path"] for row in csv.DictReader(f)]
    with open(tmp_path / "a" / "embeddings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "x", "y"]
    assert [row["path"] for row in rows] == prediction_paths and len(rows) == 300
    assert all(np.isfinite(float(row["x"])) and np.isfinite(float(row["y"])) for row in rows)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["embedding_method"] == METHOD_PENULTIMATE
    exported = gtpred("runs", "--db", db, "export", "1", "--out", tmp_path / "b")
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "b" / "embeddings.csv").read_text() == (tmp_path / "a" / "embeddings.csv").read_text()
    plain = gtpred("evaluate", "--model", softmax_model, "--images", digits_dir, "--out", tmp_path / "c")
    assert plain.returncode == 0 and not (tmp_path / "c" / "embeddings.csv").exists()
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["embedding_method"] is None


def test_a_savedmodel_maps_its_probabilities_and_says_so(softmax_model, digits_dir):
    run = evaluate_folder(softmax_model.parent / "softmax_savedmodel", digits_dir, embeddings=True)
    assert run.embedding_method == METHOD_PROBABILITIES and "SavedModel" in run.embedding_method
    assert run.embedding.shape == (run.n_images, 2)


def test_the_map_survives_relabelling_and_a_dict_round_trip(softmax_model, digits_dir):
    from gtpred_core import Run

    run = evaluate_folder(softmax_model, digits_dir, embeddings=True)
    again = Run.from_dict(json.loads(json.dumps(run.to_dict())))
    np.testing.assert_array_equal(again.embedding, run.embedding)
    assert again.embedding_method == run.embedding_method
    relabelled = run.relabel(sorted(run.class_names, reverse=True))
    assert relabelled.embedding is run.embedding


def test_embeddings_are_refused_on_ray_before_anything_runs(softmax_model, digits_dir):
    with pytest.raises(BackendError, match="The embedding map is made on this server only"):
        EvaluationRequest(softmax_model, digits_dir, embeddings=True, backend="ray")
