"""The embedding map: each image placed in 2-D so that images the model sees alike lie close.

What is mapped: the model's penultimate features, the input of its classifier layer (the last
layer with weights on the way to the output: a ``Dense``, or the 1x1 ``Conv2D`` of
``keras.applications`` heads). They come from the evaluation's own ordered pass
(``predict_files(with_features=True)``): the compiled forward returns (outputs, features), so
no image is decoded twice and row ``i`` of the features is row ``i`` of the predictions. A
loaded Sequential has no symbolic graph, so its layers are called in turn (as ``explain.py``
does); a functional model gets a two-output model over its own graph. Spatial features are
averaged over space; features wider than ``MAX_FEATURE_WIDTH`` are multiplied by a fixed random
Gaussian matrix (distances are kept approximately: Johnson-Lindenstrauss), so memory stays
bounded. A TF SavedModel has no layers: its probability vectors are mapped, and ``method`` says so.

How: t-SNE (scikit-learn), after PCA to 50 dimensions. PCA alone does not keep neighbours: on
the digits CNN a 5-NN classifier of the true class scores 0.53 on PCA's map and 0.97 on
t-SNE's. UMAP (umap-learn) is not installable here (not in the package index this project
uses) and would compile with numba at first import. Above ``MAX_TSNE_POINTS`` images, t-SNE
lays out a random sample and every other image goes to the distance-weighted mean of its 5
nearest sampled neighbours in feature space: the cost stops growing with the folder.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .run import Run

PENULTIMATE = "penultimate"
PROBABILITIES = "probabilities"
#: ``Run.embedding_method`` values: what was mapped, and how.
METHOD_PENULTIMATE = "t-SNE of penultimate features"
METHOD_PROBABILITIES = "t-SNE of probabilities (a SavedModel has no layers to read features from)"

EMBEDDING_COLUMNS = ("path", "x", "y")
MAX_FEATURE_WIDTH = 2048
PROJECTED_WIDTH = 512
PCA_WIDTH = 50
MAX_TSNE_POINTS = 5000
TSNE_ITERATIONS = 500


# ----- features from the one ordered pass -----------------------------------------------------------
def _has_kernel(layer: Any) -> bool:
    return getattr(layer, "kernel", None) is not None and not getattr(layer, "layers", None)


def _sequential_stages(model: Any) -> list[Any]:
    """A Sequential's layers, nested Sequentials opened (chaining them is the same computation)."""
    import keras

    stages: list[Any] = []
    for layer in model.layers:
        stages.extend(_sequential_stages(layer) if isinstance(layer, keras.Sequential) else [layer])
    return stages


def _functional_classifier(model: Any) -> Any | None:
    """The last layer with weights on the way to a functional model's output (its graph known)."""
    from .model import _input_layer, _output_layer

    layer = _output_layer(model)
    for _ in range(len(model.layers) + 1):
        if layer is None or getattr(layer, "layers", None):
            return None  # a nested model makes the output: its inside is not this graph
        if _has_kernel(layer):
            return layer
        layer = _input_layer(model, layer)
    return None


def _flat(features: Any) -> Any:
    """(batch, width): spatial features averaged over space, anything else flattened."""
    import tensorflow as tf

    if len(features.shape) == 4:
        return tf.reduce_mean(features, axis=(1, 2))
    return tf.reshape(features, (tf.shape(features)[0], -1))


@functools.lru_cache(maxsize=4)
def _projection(width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((width, PROJECTED_WIDTH)) / np.sqrt(PROJECTED_WIDTH)).astype(np.float32)


def _bounded(features: Any) -> Any:
    """Features at most ``MAX_FEATURE_WIDTH`` wide (decided at trace time, from the static width)."""
    import tensorflow as tf

    features = tf.cast(_flat(features), tf.float32)
    width = features.shape[-1]
    if width is not None and width > MAX_FEATURE_WIDTH:
        return tf.matmul(features, tf.constant(_projection(int(width))))
    return features


def features_call(model: Any) -> Callable[[Any], tuple[Any, Any]]:
    """``x -> (outputs, features)`` for a ``LoadedModel``: outputs exactly as ``model.call``
    gives them, features the input of its classifier layer. A model without one (a SavedModel,
    or a graph we cannot read) gets its outputs as features."""
    import keras

    net = model.keras_model
    if net is None:
        return lambda x: (lambda out: (out, _bounded(out)))(model.call(x))
    if isinstance(net, keras.Sequential):
        stages = _sequential_stages(net)
        last = max((i for i, s in enumerate(stages) if _has_kernel(s)), default=None)

        def call_in_turn(x: Any) -> tuple[Any, Any]:
            features = None
            for i, stage in enumerate(stages):
                if i == last:
                    features = x
                x = stage(x, training=False)
            return x, _bounded(x if features is None else features)

        return call_in_turn
    classifier = _functional_classifier(net)
    try:
        two = keras.Model(net.inputs[0], [net.outputs[0], classifier.input]) if classifier is not None else None
    except (AttributeError, ValueError):  # a layer called twice has no single input
        two = None
    if two is None:
        return lambda x: (lambda out: (out, _bounded(out)))(model.call(x))

    def two_outputs(x: Any) -> tuple[Any, Any]:
        outputs, features = two(x, training=False)
        return outputs, _bounded(features)

    return two_outputs


def feature_kind(model: Any) -> str:
    """What ``features_call`` maps for this model: penultimate features, or (no layers) the
    probability vectors."""
    return PROBABILITIES if model.keras_model is None else PENULTIMATE


# ----- the 2-D map -----------------------------------------------------------------------------------
def embedding_map(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(N, 2) float32 points, one per row of ``features``, neighbours kept (t-SNE after PCA)."""
    from sklearn.decomposition import PCA

    n = len(features)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    x = np.asarray(features, dtype=np.float32).reshape(n, -1)
    x = x - x.mean(axis=0)
    width = min(PCA_WIDTH, x.shape[1], n)
    if x.shape[1] > width and width >= 2:
        x = PCA(width, random_state=seed).fit_transform(x).astype(np.float32)
    if n < 5:  # too few for t-SNE's neighbourhoods: the first two principal axes
        points = np.zeros((n, 2), dtype=np.float32)
        points[:, : min(2, x.shape[1])] = x[:, :2]
        return points
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, MAX_TSNE_POINTS, replace=False)) if n > MAX_TSNE_POINTS else np.arange(n)
    laid = _tsne(x[sample], seed)
    points = np.zeros((n, 2), dtype=np.float32)
    points[sample] = laid
    rest = np.setdiff1d(np.arange(n), sample)
    if len(rest):
        points[rest] = _place_by_neighbours(x[sample], laid, x[rest])
    return points


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(x) - 1) / 3))
    tsne = TSNE(
        2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=TSNE_ITERATIONS,
        angle=0.6, random_state=seed,
    )
    return tsne.fit_transform(x).astype(np.float32)


def _place_by_neighbours(fitted: np.ndarray, laid: np.ndarray, others: np.ndarray, k: int = 5) -> np.ndarray:
    """Each of ``others`` at the distance-weighted mean of its ``k`` nearest ``fitted`` points' places."""
    from sklearn.neighbors import NearestNeighbors

    distances, neighbours = NearestNeighbors(n_neighbors=min(k, len(fitted))).fit(fitted).kneighbors(others)
    weights = 1.0 / (distances + 1e-6)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", weights, laid[neighbours]).astype(np.float32)


def neighbour_agreement(points: np.ndarray, labels: Sequence[int] | np.ndarray, k: int = 5) -> float:
    """How well a map keeps classes together: the share of points whose ``k`` nearest other
    points, by majority, have the point's own label (a leave-one-out k-NN classifier)."""
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    if len(points) <= k:
        raise ValueError(f"neighbour_agreement needs more than k={k} points, got {len(points)}")
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    votes = labels[neighbours[:, 1:]]
    majority = np.array([np.bincount(row).argmax() for row in votes])
    return float(np.mean(majority == labels))


def embeddings_csv(paths: Sequence[str], points: np.ndarray) -> str:
    """``path, x, y`` in evaluation order (the rows of predictions.csv)."""
    from .export import csv_text

    # numbers, not text: a negative coordinate must not get the spreadsheet quote of a "-" string
    rows = ([p, float(f"{x:.6g}"), float(f"{y:.6g}")] for p, (x, y) in zip(paths, points.tolist()))
    return csv_text(EMBEDDING_COLUMNS, rows)


# ----- the map as the pages read it ------------------------------------------------------------------
#: Columns of ``embedding_points``: the run's row, its file, true and predicted class, the
#: confidence, whether it is right, and its place on the map.
POINT_COLUMNS = ("index", "file", "true", "predicted", "confidence", "right", "x", "y")


def maps_probabilities(method: str | None) -> bool:
    """Whether ``Run.embedding_method`` says the probability vectors were mapped (a SavedModel),
    not the penultimate features: neighbours then mean "predicted alike", not "seen alike"."""
    return method is not None and method.startswith("t-SNE of probabilities")


def embedding_points(run: "Run") -> "pd.DataFrame | None":
    """One row per file of ``run`` with its place on the 2-D map (``POINT_COLUMNS``), in file
    order; None when the run has no map (it was evaluated without ``--embeddings``)."""
    import pandas as pd

    if run.embedding is None:
        return None
    table = run.files_table(np.arange(run.n_images)).sort_values("index", kind="stable").reset_index(drop=True)
    table["right"] = run.correct[table["index"].to_numpy()]
    table["x"] = run.embedding[table["index"].to_numpy(), 0].astype(float)
    table["y"] = run.embedding[table["index"].to_numpy(), 1].astype(float)
    return pd.DataFrame(table, columns=list(POINT_COLUMNS))


def region_files(run: "Run", x: Sequence[float], y: Sequence[float]) -> "pd.DataFrame":
    """The files whose map point lies in the rectangle ``x`` × ``y`` (each a pair of bounds, in
    either order, edges included), as ``Run.files_table`` (most confident first). A run without
    a map has no file in any region."""
    if run.embedding is None:
        return run.files_table([])
    (x0, x1), (y0, y1) = sorted(map(float, x)), sorted(map(float, y))
    px, py = run.embedding[:, 0], run.embedding[:, 1]
    inside = (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)
    return run.files_table(np.flatnonzero(inside))
