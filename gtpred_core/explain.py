"""Saliency: where in the image the model found its evidence for a class.

Grad-CAM (Selvaraju et al. 2017) on the last layer with a spatial (rank-4) output: the gradient
of the target class's log-probability with respect to that layer's feature maps, averaged over
space, weighs the maps; their positive part, resized to the model's input, is the heat map.

Why the layers are called one by one: a Sequential loaded from a file has no symbolic graph
("The layer sequential has never been called and thus has no defined output"), so the usual
``keras.Model(model.inputs, [conv.output, model.output])`` recipe fails on it, and a backbone
used as one layer (``keras.applications`` model inside a Sequential, the usual transfer-learning
shape) hides its convolutions from the outer model. Calling the outer layers in turn inside a
``GradientTape`` and watching the chosen rank-4 output works for both: a backbone whose output
is spatial is itself that layer (its output is its last convolution's). Nothing in the loaded
model is changed (no activation swapped, no layer added).

A TF SavedModel has no layers: it gets occlusion sensitivity instead (the drop in the target's
probability when a patch is greyed out), and ``method`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import FolderError, ModelError

GRADCAM = "grad-cam"
OCCLUSION = "occlusion"


@dataclass(frozen=True)
class SaliencyMaps:
    """One map per image (N, H, W) in [0, 1] at the model's input size, and how they were made."""

    maps: np.ndarray
    method: str
    layer: str


def _rank(tensor: Any) -> int:
    return len(tensor.shape)


def _stages(model: Any) -> list[Any]:
    """The layers to call in turn: a Sequential's own layers; a functional model as one stage."""
    import keras

    if isinstance(model, keras.Sequential):
        return list(model.layers)
    return [model]


def find_spatial_layer(model: Any, sample: np.ndarray, layer: str | None = None) -> tuple[int, str]:
    """(stage index, name) of the last stage with a rank-4 output, or of the stage named ``layer``.

    Found by calling the stages on one image (a loaded Sequential has no output shapes to read).
    """
    stages = _stages(model)
    if len(stages) == 1 and layer is None:
        inner = _functional_spatial_layer(stages[0])
        if inner is not None:
            return 0, inner
    x = sample[:1]
    found: tuple[int, str] | None = None
    for i, stage in enumerate(stages):
        x = stage(x, training=False)
        if layer is not None and stage.name == layer:
            if _rank(x) != 4:
                raise ModelError(
                    f"The layer {layer!r} outputs shape {tuple(x.shape)}, not feature maps (batch, height, width, channels).",
                    "Name a convolutional layer, or leave --layer out to use the last one.",
                )
            return i, stage.name
        if _is_map(tuple(x.shape)):
            found = (i, stage.name)
    if layer is not None:
        names = ", ".join(s.name for s in stages)
        raise ModelError(f"The model has no layer named {layer!r} at its top level (it has: {names}).", "Choose one of those names.")
    if found is None:
        raise ModelError(
            "The model has no layer with a spatial output (feature maps), so Grad-CAM cannot place its evidence.",
            "Explain a convolutional model, or use a SavedModel export for occlusion maps.",
        )
    return found


def _is_map(shape: Any) -> bool:
    """A rank-4 output with room to place evidence: a 1x1 map (``keras.applications`` heads
    keep their pooled features as (1, 1, C)) says nothing about where."""
    return len(shape) == 4 and not (shape[1] == 1 and shape[2] == 1)


def _functional_spatial_layer(model: Any) -> str | None:
    """For a functional model: the name of its last layer with a spatial output (graph known)."""
    try:
        candidates = [layer for layer in model.layers if _is_map(tuple(layer.output.shape))]
    except (AttributeError, ValueError):
        return None
    return candidates[-1].name if candidates else None


def _log_probability(outputs: Any, targets: Any, head: str) -> Any:
    """log p(target) for each row, from the model's raw outputs under its head."""
    import tensorflow as tf

    if head == "softmax":
        picked = tf.gather(outputs, targets, axis=1, batch_dims=1)
        return tf.math.log(tf.maximum(picked, 1e-12))
    if head == "logits":
        return tf.gather(tf.nn.log_softmax(outputs, axis=1), targets, axis=1, batch_dims=1)
    unit = outputs[:, 0]
    if head == "sigmoid":
        p_one = tf.clip_by_value(unit, 1e-12, 1 - 1e-12)
        return tf.where(tf.equal(targets, 1), tf.math.log(p_one), tf.math.log(1 - p_one))
    # sigmoid-logit: log sigmoid(z) for class 1, log sigmoid(-z) for class 0
    return tf.where(tf.equal(targets, 1), tf.math.log_sigmoid(unit), tf.math.log_sigmoid(-unit))


def gradcam(model: Any, images: np.ndarray, targets: Sequence[int], head: str, layer: str | None = None) -> SaliencyMaps:
    """Grad-CAM maps of ``targets`` for a batch of preprocessed ``images`` (N, H, W, C)."""
    import tensorflow as tf

    images = np.asarray(images, dtype=np.float32)
    stage_index, name = find_spatial_layer(model, images, layer)
    stages = _stages(model)
    targets_t = tf.constant(np.asarray(targets, dtype=np.int32))
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)  # a frozen backbone's variables are not watched: the input is
        if len(stages) == 1:
            inner = stages[0].get_layer(name)
            features, outputs = _two_outputs(stages[0], inner)(x, training=False)
        else:
            for i, stage in enumerate(stages):
                x = stage(x, training=False)
                if i == stage_index:
                    features = x
            outputs = x
        score = tf.reduce_sum(_log_probability(outputs, targets_t, head))
    gradients = tape.gradient(score, features)
    if gradients is None:
        raise ModelError(f"No gradient reaches the layer {name!r} from the output.", "Choose another --layer.")
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., None]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()
    return SaliencyMaps(_normalise(cam), GRADCAM, name)


_TWO_OUTPUTS: dict[tuple[int, str], tuple[Any, Any]] = {}


def _two_outputs(model: Any, inner: Any) -> Any:
    """(feature maps, outputs) over the model's own graph; kept per model and layer, so a warm
    worker explaining click after click builds it once."""
    import keras

    key = (id(model), inner.name)
    cached = _TWO_OUTPUTS.get(key)
    if cached is None or cached[0] is not model:
        if len(_TWO_OUTPUTS) >= 4:
            _TWO_OUTPUTS.pop(next(iter(_TWO_OUTPUTS)))
        cached = (model, keras.Model(model.inputs[0], [inner.output, model.outputs[0]]))
        _TWO_OUTPUTS[key] = cached
    return cached[1]


def occlusion(call: Any, images: np.ndarray, targets: Sequence[int], head: str, grid: int = 8) -> SaliencyMaps:
    """Occlusion maps: how much p(target) drops when each cell of a ``grid`` x ``grid`` is greyed.

    Model-agnostic (only the forward call is needed): what a SavedModel gets.
    """
    from .evaluation import probabilities_for_head

    images = np.asarray(images, dtype=np.float32)
    n, h, w, _ = images.shape
    maps = np.zeros((n, h, w), dtype=np.float32)
    ys = np.linspace(0, h, grid + 1).astype(int)
    xs = np.linspace(0, w, grid + 1).astype(int)
    for k in range(n):
        base = probabilities_for_head(np.asarray(call(images[k : k + 1])), head)[0, targets[k]]
        batch = np.repeat(images[k : k + 1], grid * grid, axis=0)
        fill = images[k].mean(axis=(0, 1))
        for cell, (i, j) in enumerate((i, j) for i in range(grid) for j in range(grid)):
            batch[cell, ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = fill
        probs = probabilities_for_head(np.asarray(call(batch)), head)[:, targets[k]]
        for cell, (i, j) in enumerate((i, j) for i in range(grid) for j in range(grid)):
            maps[k, ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = max(0.0, float(base - probs[cell]))
    return SaliencyMaps(_normalise(maps), OCCLUSION, "input")


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Each map scaled to [0, 1] by its own maximum (an all-zero map stays zero)."""
    maps = np.maximum(np.asarray(maps, dtype=np.float32), 0)
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1) if len(maps) else np.ones((0, 1, 1))
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0).astype(np.float32)


# ----- a whole folder, in evaluation order -----------------------------------------------------------
EXPLANATION_COLUMNS = ("path", "true_label", "pred_label", "target_label", "target_index", "probability", "method", "layer")


@dataclass(frozen=True)
class Explanations:
    """Saliency for a run's images, in evaluation order: one CSV row and one map per image."""

    rows: tuple[tuple[str, str, str, str, int, float, str, str], ...]
    maps: np.ndarray  # (N, H, W) float32 in [0, 1]

    def csv(self) -> str:
        from .export import csv_text

        return csv_text(EXPLANATION_COLUMNS, ([*r[:5], f"{r[5]:.9g}", *r[6:]] for r in self.rows))

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """``explanations.csv`` and ``heatmaps.npy`` (float32, same row order) in ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "explanations.csv").write_text(self.csv(), encoding="utf-8")
        np.save(out / "heatmaps.npy", self.maps.astype(np.float32))
        return out / "explanations.csv", out / "heatmaps.npy"


def load_images(paths: Sequence[str | Path], size: tuple[int, int], channels: int, preprocess: str) -> np.ndarray:
    """Decode, resize and preprocess files exactly as the evaluation did (the model's input)."""
    import tensorflow as tf

    from .inference import decode_image
    from .preprocessing import apply_preprocess

    batch = [decode_image(tf.io.read_file(str(p)), size, channels) for p in paths]
    if not batch:
        return np.zeros((0, size[0], size[1], channels), np.float32)
    return np.asarray(apply_preprocess(tf.stack(batch), preprocess), dtype=np.float32)


def explain_run(
    run: Any,
    model_path: str | Path,
    *,
    target: str = "predicted",
    only_wrong: bool = False,
    layer: str | None = None,
    batch_size: int = 16,
    indices: Sequence[int] | None = None,
) -> Explanations:
    """Saliency maps for a run's images (all, the wrong ones, or ``indices``), in run order.

    ``target="predicted"`` explains the predicted class, ``"true"`` the true class. The model is
    loaded again here (safe mode); a SavedModel gets occlusion maps.
    """
    from .model import load_model

    if target not in ("predicted", "true"):
        raise ValueError("target must be 'predicted' or 'true'")
    info = run.info
    size = (int(info.input_size[0]), int(info.input_size[1]))
    rows_wanted = np.arange(run.n_images) if indices is None else np.asarray(indices, dtype=int)
    if only_wrong:
        rows_wanted = rows_wanted[~run.correct[rows_wanted]]
    targets = (run.y_pred if target == "predicted" else run.y_true)[rows_wanted]
    loaded = load_model(model_path)
    keras_model = _keras_model(Path(model_path), loaded.kind)
    maps, method, layer_name = [], OCCLUSION, "input"
    root = Path(info.images)
    for start in range(0, len(rows_wanted), batch_size):
        chunk = rows_wanted[start : start + batch_size]
        images = load_images([root / run.paths[i] for i in chunk], size, info.channels, info.preprocess)
        chunk_targets = targets[start : start + batch_size]
        if keras_model is not None:
            result = gradcam(keras_model, images, chunk_targets, info.head, layer)
        else:
            result = occlusion(loaded.call, images, chunk_targets, info.head)
        maps.append(result.maps)
        method, layer_name = result.method, result.layer
    names = run.class_names
    rows = tuple(
        (
            run.paths[i],
            names[run.y_true[i]],
            names[run.y_pred[i]],
            names[t],
            int(t),
            float(run.probabilities[i, t]),
            method,
            layer_name,
        )
        for i, t in zip(rows_wanted, targets)
    )
    stacked = np.concatenate(maps) if maps else np.zeros((0, size[0], size[1]), np.float32)
    return Explanations(rows, stacked)


def _keras_model(path: Path, kind: str) -> Any | None:
    """The Keras model object for Grad-CAM (None for a SavedModel, which has no layers)."""
    if kind == "savedmodel":
        return None
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True)


# ----- one image on click, and the overlay the page shows ------------------------------------------
def explain_file(
    model: Any,
    image: str | Path,
    targets: Sequence[int],
    *,
    input_size: tuple[int, int],
    preprocess: str,
    head: str,
    layer: str | None = None,
) -> SaliencyMaps:
    """One map per class in ``targets`` for one image file, decoded as the evaluation did.

    ``model`` is a ``LoadedModel``: its Keras model (kept warm by the worker) gets Grad-CAM,
    a SavedModel occlusion. All targets go through the model in one batch.
    """
    if not Path(image).is_file():
        raise FolderError(
            f"The image {Path(image).name} is no longer where the run found it.",
            "Evaluate the folder again to explain its images.",
            image,
        )
    size = (int(input_size[0]), int(input_size[1]))
    pixels = load_images([image], size, model.channels, preprocess)
    batch = np.repeat(pixels, len(targets), axis=0)
    if model.keras_model is not None:
        return gradcam(model.keras_model, batch, list(targets), head, layer)
    return occlusion(model.call, batch, list(targets), head)


#: Colour stops of the heat scale (dark blue, cyan, yellow, red): low to high evidence.
_HEAT_STOPS = np.array([[0, 0, 130], [0, 200, 255], [255, 230, 0], [220, 0, 0]], dtype=np.float32)


def heat_colours(heatmap: np.ndarray) -> np.ndarray:
    """(H, W, 3) float colours of a [0, 1] map, interpolated between ``_HEAT_STOPS``."""
    position = np.clip(np.asarray(heatmap, dtype=np.float32), 0, 1) * (len(_HEAT_STOPS) - 1)
    low = np.minimum(position.astype(int), len(_HEAT_STOPS) - 2)
    share = (position - low)[..., None]
    return _HEAT_STOPS[low] * (1 - share) + _HEAT_STOPS[low + 1] * share


def overlay(image: Any, heatmap: np.ndarray, opacity: float) -> np.ndarray:
    """The image (array-like: a PIL image or an (H, W[, C]) array) with ``heatmap`` ([0, 1], any
    size: resized bilinearly to the image) laid over it at ``opacity`` (0: the image alone, 1:
    the map alone), as an (H, W, 3) uint8 RGB array."""
    from PIL import Image

    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    pixels = pixels[..., :3].astype(np.float32)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    height, width = pixels.shape[:2]
    resized = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F").resize((width, height), Image.Resampling.BILINEAR)
    blended = (1 - opacity) * pixels + opacity * heat_colours(np.asarray(resized))
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
