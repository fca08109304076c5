"""Pixel preprocessing modes, matching ``keras.applications.imagenet_utils``.

The default is ``none``: float32 pixels in 0..255, exactly what ``image_dataset_from_directory``
feeds, because most Keras models carry their own ``Rescaling`` layer.
"""

from __future__ import annotations

from typing import Any

from .errors import PreprocessError

#: Mode -> one line a user can choose by.
PREPROCESS_MODES: dict[str, str] = {
    "none": "Pixels as 0..255 floats, as image_dataset_from_directory feeds them "
    "(right when the model has its own Rescaling layer).",
    "rescale": "Divide by 255 to 0..1 (for models trained on ImageDataGenerator(rescale=1/255)).",
    "tf": "Scale to -1..1 (MobileNet, Inception, Xception, EfficientNetV2 without its own scaling).",
    "torch": "0..1, then subtract the ImageNet mean and divide by its std, per RGB channel.",
    "caffe": "RGB to BGR, then subtract the ImageNet mean per channel (VGG, ResNet50 v1).",
}

_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def check_preprocess(mode: str, channels: int) -> None:
    """Refuse unknown modes, and the ImageNet modes on inputs that are not RGB."""
    if mode not in PREPROCESS_MODES:
        raise PreprocessError(
            f"Unknown preprocessing {mode!r}.", f"Choose one of: {', '.join(PREPROCESS_MODES)}."
        )
    if mode in ("torch", "caffe") and channels != 3:
        raise PreprocessError(
            f"Preprocessing {mode!r} is defined for RGB images, but the model takes "
            f"{channels} channel(s).",
            "Choose none, rescale or tf.",
        )


def apply_preprocess(images: Any, mode: str) -> Any:
    """Apply ``mode`` to a float32 batch (N, H, W, C) of 0..255 pixels; TF ops, graph-safe."""
    import tensorflow as tf

    if mode == "none":
        return images
    if mode == "rescale":
        return images / 255.0
    if mode == "tf":
        return images / 127.5 - 1.0
    if mode == "torch":
        return (images / 255.0 - tf.constant(_IMAGENET_MEAN_RGB)) / tf.constant(_IMAGENET_STD_RGB)
    if mode == "caffe":
        return images[..., ::-1] - tf.constant(_CAFFE_MEAN_BGR)
    raise PreprocessError(f"Unknown preprocessing {mode!r}.", f"Choose one of: {', '.join(PREPROCESS_MODES)}.")
