"""Load a saved Keras model safely and read what evaluation needs from it.

``.keras`` and legacy ``.h5`` load through ``keras.saving.load_model(safe_mode=True)``, so a
``Lambda`` or any config asking for arbitrary code is refused. A TF SavedModel directory
(which Keras 3's ``load_model`` refuses) is loaded with ``tf.saved_model.load`` and called
through its ``serving_default`` signature, which is what ``keras.layers.TFSMLayer`` wraps.

The output head (how raw outputs become class probabilities) is decided here, once, from the
model's graph: the activation applied last on the way to the output, looking through nested
models, ``Softmax``/``Activation`` layers and layers that keep the meaning of their input
(dropout, flatten, pooling). Only when the graph cannot tell (a SavedModel, an unknown layer)
is it left to the outputs, which evaluation then reads from the first batch on every path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import ModelError, OutputWidthError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

#: Layers that mean "this model rescales its own pixels": preprocessing outside is then wrong.
_SCALING_LAYERS = ("Rescaling", "Normalization")


class Head(StrEnum):
    """How a model's raw outputs become class probabilities (equal to its stored string)."""

    SOFTMAX = "softmax"  # N probabilities summing to 1: used as they are
    LOGITS = "logits"  # N raw scores: softmax applied (argmax unchanged)
    SIGMOID = "sigmoid"  # one probability p of class 1: columns (1 - p, p)
    SIGMOID_LOGIT = "sigmoid-logit"  # one raw score of class 1: sigmoid applied, then (1 - p, p)

    def n_classes(self, output_width: int) -> int:
        """How many classes outputs of this width under this head stand for."""
        return 2 if self in (Head.SIGMOID, Head.SIGMOID_LOGIT) else output_width


#: What a user may say about the head: "auto" (read it from the model) or "logit" (the outputs
#: are raw scores: softmax over N of them, sigmoid of a single one).
HEAD_CHOICES = ("auto", "logit")

#: Activations whose outputs are probabilities.
_PROBABILITY_ACTIVATIONS = {"softmax": Head.SOFTMAX, "sigmoid": Head.SIGMOID, "hard_sigmoid": Head.SIGMOID}
#: Built-in activations whose outputs are scores, not probabilities.
_SCORE_ACTIVATIONS = frozenset(
    {"linear", "log_softmax", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish",
     "mish", "tanh", "softplus", "softsign", "exponential", "hard_silu", "hard_swish", "celu", "glu"}
)
#: Layers whose output means what their input means (a probability stays one): look through them.
_PASS_THROUGH_LAYERS = frozenset(
    {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
     "GaussianNoise", "AlphaDropout", "ActivityRegularization", "Identity", "Flatten", "Reshape",
     "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "InputLayer"}
)


def head_from_activation(activation: str | None, output_width: int) -> Head | None:
    """The head a last activation means; None when it does not say (unknown, or one unit that
    is not a sigmoid, which only the user can call a logit: see ``resolve_head``)."""
    if activation is None:
        return None
    if activation in _PROBABILITY_ACTIVATIONS:
        head = _PROBABILITY_ACTIVATIONS[activation]
        if output_width == 1:
            return head if head is Head.SIGMOID else None
        return head if head is Head.SOFTMAX else Head.LOGITS  # N sigmoids: scores to softmax
    if activation in _SCORE_ACTIVATIONS:
        return Head.LOGITS if output_width > 1 else None
    return None


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with the facts read from it.

    ``input_size`` is (height, width), either possibly None when the model takes any size.
    ``activation`` is the activation applied last on the way to the output when the graph says
    it (None for a SavedModel); ``head`` is what it means for the outputs (None when the graph
    cannot tell). ``rescales_itself`` is True/False when the layers are known, None for a
    SavedModel.
    """

    path: Path
    kind: str  # "keras" | "h5" | "savedmodel"
    input_size: tuple[int | None, int | None]
    channels: int
    output_width: int
    activation: str | None
    rescales_itself: bool | None
    call: Callable[[Any], Any] = field(repr=False, compare=False)
    head: Head | None = None
    #: The Keras model object (None for a SavedModel): penultimate features and Grad-CAM need
    #: its layers; the warm worker reuses it instead of loading the file again.
    keras_model: Any = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.name


def resolve_head(model: Any, choice: str = "auto") -> Head | None:
    """The head to read ``model``'s outputs with (a LoadedModel or the worker's ModelFacts).

    ``choice`` is "auto" (the model's graph decides) or "logit" (the user says the outputs are
    raw scores). None means the graph cannot tell: evaluation then decides from the first batch.
    A one-unit output without a sigmoid is refused unless the user says it is a logit: it may
    as well be a regression model, whose outputs are no class scores at all.
    """
    width, activation = int(model.output_width), model.activation
    if choice == "logit":
        if activation in _PROBABILITY_ACTIVATIONS:
            raise ModelError(
                f"{model.name} ends in a {activation}: its outputs are already probabilities, "
                "not logits.",
                "Drop the logit head choice (--head auto), so the model's own activation is used.",
                model.path,
            )
        return Head.SIGMOID_LOGIT if width == 1 else Head.LOGITS
    if choice != "auto":
        raise ModelError(
            f"Unknown head choice {choice!r}.", f"Choose one of: {', '.join(HEAD_CHOICES)}.", model.path
        )
    head = model.head
    if head is None and width == 1 and activation is not None:
        raise ModelError(
            f"{model.name} outputs a single value with a {activation} activation, not a sigmoid: it "
            "may be a regression model, and gtpred cannot tell which class a value means.",
            "If the value is the logit of class 1 of a binary classifier (trained with "
            "from_logits=True), say so: --head logit on the command line, or the logit head choice.",
            model.path,
        )
    return head


def check_model_fits(model: Any, n_classes: int, head: Head | None = None) -> None:
    """Refuse a model whose head cannot mean these classes, before anything runs.

    A sigmoid head (one unit) means two classes; any other head one class per output. ``head``
    defaults to the model's own; None (decided later from the outputs) takes one unit as a sigmoid.
    """
    head = head or getattr(model, "head", None)
    width = int(model.output_width)
    implied = head.n_classes(width) if head is not None else (2 if width == 1 else width)
    if implied != n_classes:
        raise OutputWidthError(width, n_classes, model.path, implied_classes=implied, head=head)


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
    activation = output_activation(model)
    return LoadedModel(
        path=Path(str(path)),
        kind=kind,
        input_size=(input_shape[1], input_shape[2]),
        channels=int(input_shape[3]),
        output_width=int(output_shape[-1]),
        activation=activation,
        rescales_itself=_has_scaling_layer(model),
        call=lambda x: model(x, training=False),
        head=head_from_activation(activation, int(output_shape[-1])),
        keras_model=model,
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


def _producer(tensor: Any) -> Any:
    """The layer that made a symbolic tensor (Keras' own record of it), or None."""
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history else None


def _output_layer(model: Any) -> Any:
    """The layer that makes ``model``'s output; the last layer when the graph does not say."""
    try:
        layer = _producer(model.outputs[0])
    except (AttributeError, IndexError, ValueError):
        layer = None
    layers = getattr(model, "layers", [])
    return layer if layer is not None else (layers[-1] if layers else None)


def _input_layer(model: Any, layer: Any) -> Any:
    """The layer feeding ``layer`` inside ``model`` (the one before it when the graph does not say)."""
    try:
        previous = _producer(layer.input)
    except (AttributeError, ValueError):  # a layer called more than once has no single input
        previous = None
    if previous is not None and previous is not layer:
        return previous
    layers = list(getattr(model, "layers", []))
    index = next((i for i, other in enumerate(layers) if other is layer), 0)
    return layers[index - 1] if index > 0 else None


def output_activation(model: Any) -> str | None:
    """The activation applied last on the way to ``model``'s output, or None when the graph
    cannot tell. Looks into a nested model that makes the output, through ``Softmax`` and
    ``Activation`` layers, and through layers that keep their input's meaning."""
    layer = _output_layer(model)
    for _ in range(10_000):  # a graph is finite; this bounds a malformed one
        if layer is None:
            return None
        name = type(layer).__name__
        if getattr(layer, "layers", None) and hasattr(layer, "outputs"):
            return output_activation(layer)  # a nested Sequential/functional model
        if name == "Softmax":
            return "softmax"
        config = layer.get_config() if hasattr(layer, "get_config") else {}
        activation = config.get("activation")
        if name == "Activation" and activation == "linear" or name in _PASS_THROUGH_LAYERS:
            if name == "InputLayer":
                return None
            layer = _input_layer(model, layer)
            continue
        return activation if isinstance(activation, str) else None
    return None


#: The folders of an absolute path inside a library's message (``filepath=/srv/x/m.keras``).
_FOLDERS_OF_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s/]+/)+")


def _first_line(err: BaseException) -> str:
    """A library error's first line with the folders cut from any absolute path in it (Keras
    says ``filepath=/scratch/.../m.keras``): messages name files, never the server's layout."""
    text = str(err).strip().splitlines()
    return _FOLDERS_OF_ABSOLUTE_PATH.sub("", text[0]) if text else type(err).__name__


def guess_file_type(path: Path) -> str:
    """What a file is, from its first bytes: for "not a Keras model file (it is ...)"."""
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError as err:
        return f"unreadable ({err.strerror or type(err).__name__})"
    if not head:
        return "an empty file (0 bytes)"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        import zipfile

        if not zipfile.is_zipfile(path):
            return "a truncated or damaged zip archive"
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return "a truncated or damaged zip archive"
        if "config.json" not in names:
            return "a zip archive without a Keras model inside (no config.json)"
        return "a zip archive" + (", a .keras model saved under another name" if path.suffix.lower() != ".keras" else "")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file" + (", an .h5 model saved under another name" if path.suffix.lower() == ".keras" else "")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of an unknown kind"
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "a text file"
    return "binary data of an unknown kind"


def _not_a_model(path: Path, kind_of_file: str, fix: str) -> ModelError:
    return ModelError(f"{path.name} is not a Keras model file (it is {kind_of_file}).", fix, path)


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
    found = guess_file_type(path)
    suffix = path.suffix.lower()
    if found.startswith("an HDF5 file"):
        if suffix == ".keras":
            return _not_a_model(path, found, "Rename it to .h5, the format it is in.")
        if "No model config" in text:
            return _not_a_model(
                path, "an HDF5 file of weights only (no model config)",
                "Save the whole model (model.save('model.keras')), not model.save_weights().",
            )
        return _not_a_model(
            path, f"an HDF5 file that cannot be read: {_first_line(err)}",
            "Copy the file again in full: it may be truncated or damaged.",
        )
    if found.startswith("a zip archive") and "another name" in found:
        return _not_a_model(path, found, "Rename it to .keras, the format it is in.")
    if not found.startswith("a zip archive") or "without a Keras model" in found:
        return _not_a_model(
            path, found,
            "Give the complete .keras (or .h5) file written by model.save(); a partial copy or an "
            "upload that was cut short cannot be read.",
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
