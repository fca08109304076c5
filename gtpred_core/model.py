"""Load a saved Keras model safely and read what evaluation needs from it.

``.keras`` and legacy ``.h5`` load through ``keras.saving.load_model(safe_mode=True)``, so a
``Lambda`` or any config asking for arbitrary code is refused. A TF SavedModel directory
(which Keras 3's ``load_model`` refuses) is loaded with ``tf.saved_model.load`` and called
through its ``serving_default`` signature, which is what ``keras.layers.TFSMLayer`` wraps.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import ModelError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

#: Layers that mean "this model rescales its own pixels": preprocessing outside is then wrong.
_SCALING_LAYERS = ("Rescaling", "Normalization")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with the facts read from it.

    ``input_size`` is (height, width), either possibly None when the model takes any size.
    ``activation`` is the last layer's activation when the file says it (None for SavedModel).
    ``rescales_itself`` is True/False when the layers are known, None for a SavedModel.
    """

    path: Path
    kind: str  # "keras" | "h5" | "savedmodel"
    input_size: tuple[int | None, int | None]
    channels: int
    output_width: int
    activation: str | None
    rescales_itself: bool | None
    call: Callable[[Any], Any] = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.name


def model_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return "savedmodel"
        raise ModelError(
            f"{path.name} is a folder but not a TF SavedModel (no saved_model.pb inside).",
            "Give a .keras or .h5 file, or a SavedModel folder.",
            path,
        )
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    raise ModelError(
        f"{path.name} is not a model format gtpred reads.",
        "Give a .keras or .h5 file, or a TF SavedModel folder.",
        path,
    )


def load_model(path: str | Path) -> LoadedModel:
    """Load ``path`` (``.keras``, ``.h5`` or a SavedModel folder) for inference."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"Model not found: {path.name}.", "Check the path.", path)  # the full path: err.path
    kind = model_kind(path)
    if kind == "savedmodel":
        return _load_savedmodel(path)
    return _load_keras(path, kind)


def _load_keras(path: Path, kind: str) -> LoadedModel:
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for unreadable files; we name the file.
        raise _explain_load_failure(path, err) from err
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"{path.name} has {len(model.inputs)} input(s) and {len(model.outputs)} output(s); "
            "gtpred evaluates image classifiers with one image input and one class output.",
            "Save a model with a single image input and a single classification head.",
            path,
        )
    return from_keras_model(model, path, kind)


def from_keras_model(model: Any, path: str | Path = "<in memory>", kind: str = "keras") -> LoadedModel:
    """Wrap a Keras model (loaded, or live during training) so the ordered pipeline can run it.

    The forward pass reads the model's variables when called, so later weights are used.
    """
    input_shape = tuple(model.inputs[0].shape)
    output_shape = tuple(model.outputs[0].shape)
    _check_shapes(Path(str(path)), input_shape, output_shape)
    return LoadedModel(
        path=Path(str(path)),
        kind=kind,
        input_size=(input_shape[1], input_shape[2]),
        channels=int(input_shape[3]),
        output_width=int(output_shape[-1]),
        activation=_last_activation(model),
        rescales_itself=_has_scaling_layer(model),
        call=lambda x: model(x, training=False),
    )


def _load_savedmodel(path: Path) -> LoadedModel:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as err:
        raise ModelError(
            f"{path.name} could not be loaded as a TF SavedModel: {_first_line(err)}",
            "Re-export it with model.export(folder), or save a .keras file.",
            path,
        ) from err
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise ModelError(
            f"The SavedModel {path.name} has no serving_default signature "
            f"(it has: {', '.join(loaded.signatures) or 'none'}).",
            "Re-export it with model.export(folder).",
            path,
        )
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"The SavedModel {path.name} has {len(inputs)} inputs and {len(outputs)} outputs; "
            "gtpred needs one image input and one class output.",
            "Export a model with a single input and a single classification head.",
            path,
        )
    (input_name, input_spec), = inputs.items()
    (output_name, output_spec), = outputs.items()
    input_shape = tuple(input_spec.shape)
    _check_shapes(path, input_shape, tuple(output_spec.shape))

    def call(x: Any) -> Any:
        return signature(**{input_name: x})[output_name]

    call.keep_alive = loaded  # type: ignore[attr-defined]  # the signature needs its object
    return LoadedModel(
        path=path,
        kind="savedmodel",
        input_size=(input_shape[1], input_shape[2]),
        channels=int(input_shape[3]),
        output_width=int(output_spec.shape[-1]),
        activation=None,
        rescales_itself=None,
        call=call,
    )


def _check_shapes(path: Path, input_shape: tuple, output_shape: tuple) -> None:
    if len(input_shape) != 4 or input_shape[3] not in (1, 3, 4):
        raise ModelError(
            f"{path.name} takes input of shape {input_shape}; gtpred needs images "
            "(batch, height, width, channels) with 1, 3 or 4 channels.",
            "Use an image classifier in channels-last layout.",
            path,
        )
    if len(output_shape) != 2 or output_shape[-1] is None:
        raise ModelError(
            f"{path.name} outputs shape {output_shape}; gtpred needs (batch, classes).",
            "Evaluate a classifier whose last layer is Dense(n_classes).",
            path,
        )


def _walk_layers(model: Any):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _walk_layers(layer)


def _has_scaling_layer(model: Any) -> bool:
    return any(type(layer).__name__ in _SCALING_LAYERS for layer in _walk_layers(model))


def _last_activation(model: Any) -> str | None:
    layers = list(_walk_layers(model))
    for layer in reversed(layers):
        if type(layer).__name__ == "Softmax":
            return "softmax"
        activation = layer.get_config().get("activation") if hasattr(layer, "get_config") else None
        if isinstance(activation, str):
            return activation
        if activation is not None:
            return str(activation)
    return None


#: The folders of an absolute path inside a library's message (``filepath=/srv/x/m.keras``).
_FOLDERS_OF_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s/]+/)+")


def _first_line(err: BaseException) -> str:
    """A library error's first line with the folders cut from any absolute path in it (Keras
    says ``filepath=/scratch/.../m.keras``): messages name files, never the server's layout."""
    text = str(err).strip().splitlines()
    return _FOLDERS_OF_ABSOLUTE_PATH.sub("", text[0]) if text else type(err).__name__


def _explain_load_failure(path: Path, err: Exception) -> ModelError:
    text = str(err)
    if "Lambda" in text or "arbitrary code" in text or "safe_mode" in text:
        return ModelError(
            f"{path.name} was refused: it asks to run code when loaded (a Lambda layer or a "
            "Python function in its config), which gtpred never does.",
            "Replace the Lambda with a built-in or registered layer and save the model again.",
            path,
        )
    if "Unknown layer" in text or "Could not locate" in text:
        return ModelError(
            f"{path.name} uses a custom layer or object gtpred does not know: {_first_line(err)}",
            "Save the model with built-in Keras layers only.",
            path,
        )
    return ModelError(
        f"{path.name} could not be loaded as a Keras model: {_first_line(err)}",
        "Check that the file is a complete .keras/.h5 model saved by Keras (not weights only).",
        path,
    )


# ----- finding models on the server --------------------------------------------------------------
def find_model_files(root: str | Path, limit: int = 500) -> list[str]:
    """Model files (``.keras``, ``.h5``) and SavedModel folders under ``root``, relative and
    sorted; the walk stops after ``limit`` finds so a huge data root stays quick."""
    root = Path(root)
    found: list[str] = []
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        if "saved_model.pb" in filenames:
            found.append(here.relative_to(root).as_posix())
            dirnames[:] = []  # a SavedModel's variables/ holds no other model
        found.extend(
            (here / f).relative_to(root).as_posix() for f in sorted(filenames) if f.lower().endswith(MODEL_SUFFIXES)
        )
        if len(found) >= limit:
            break
    return sorted(found)[:limit]
