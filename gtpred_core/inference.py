"""Ordered inference: every file predicted exactly once, in list order, index carried along.

The pipeline is ``tf.data``: read + check header size + decode + resize in parallel
(deterministic order), batch, prefetch, then a compiled forward pass. Each element carries its
file index; we verify that indices arrive strictly increasing and each at most once, rather than
trusting the pipeline. Files that fail to decode are dropped by ``ignore_errors`` and then
re-read one by one to find the reason to report.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import InvariantError, ModelError
from .model import LoadedModel
from .preprocessing import apply_preprocess, check_preprocess

#: Pillow's decompression-bomb limit: larger images are skipped, never decoded.
MAX_IMAGE_PIXELS = 89_478_485


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


#: A valid 1x1 black grayscale PNG, decoded in place of an image over the pixel limit.
_ONE_PIXEL_PNG = (
    b"\x89PNG\r\n\x1a\n"
    + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    + _png_chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    + _png_chunk(b"IEND", b"")
)

ProgressCallback = Callable[[int, int], None]
BatchCallback = Callable[[np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class RawPredictions:
    """Model outputs for the files that were evaluated, in file order.

    ``indices`` index into the list of files given; ``outputs`` are the raw model outputs (not yet
    softmaxed), one row per index. ``skipped`` holds positions with their reason. ``completed``
    is False when the run was cancelled; then files after ``n_seen`` were not attempted.
    """

    indices: np.ndarray
    outputs: np.ndarray
    skipped: tuple[tuple[int, str], ...]
    n_seen: int
    completed: bool


def _header_pixels(data):  # graph code: kept free of Python branching on tensors
    """Pixel count declared by a PNG/GIF/BMP/JPEG header, without decoding; 0 if unknown."""
    import tensorflow as tf

    def u8(offset: int, length: int):
        return tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, length), tf.uint8), tf.int64)

    def be32(offset: int):
        b = u8(offset, 4)
        return b[0] * 16777216 + b[1] * 65536 + b[2] * 256 + b[3]

    def le(offset: int, length: int):
        b = u8(offset, length)
        return tf.reduce_sum(b * tf.constant([256**i for i in range(length)], tf.int64))

    def le32_abs(offset: int):
        value = le(offset, 4)
        return tf.where(value >= 2**31, 2**32 - value, value)

    magic = tf.strings.substr(data, 0, 4)
    zero = tf.constant(0, tf.int64)
    # JPEG first: tf.case nests one conditional per test and each costs a function call per
    # image, so the commonest format is settled by the first one.
    return tf.case(
        [
            (
                tf.equal(tf.strings.substr(magic, 0, 2), b"\xff\xd8"),
                lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)),
            ),
            (tf.equal(magic, b"\x89PNG"), lambda: be32(16) * be32(20)),
            (tf.equal(tf.strings.substr(magic, 0, 3), b"GIF"), lambda: le(6, 2) * le(8, 2)),
            (tf.equal(tf.strings.substr(magic, 0, 2), b"BM"), lambda: le32_abs(18) * le32_abs(22)),
        ],
        default=lambda: zero,
    )


def decode_image(data, size: tuple[int, int], channels: int):
    """Decode and resize exactly as ``keras.utils.image_dataset_from_directory`` does."""
    import tensorflow as tf

    image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    image = tf.image.resize(image, size, method="bilinear")
    image.set_shape((size[0], size[1], channels))
    return image


@functools.lru_cache(maxsize=16)
def _loader(size: tuple[int, int], channels: int):
    """The per-file graph function, traced once per (size, channels) and process.

    Tracing it (the header check builds five branch graphs) took 0.1 to 0.4 s per run on 2
    cores: a tenth of a small model's whole run over a few thousand images.
    """
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.string)])
    def load(index, path):
        data = tf.io.read_file(path)
        pixels = _header_pixels(data)
        # An image over the limit is swapped for a one-pixel PNG before decoding (its row is
        # dropped later): a select on the bytes, where a tf.cond costs a function call per image.
        data = tf.where(pixels > MAX_IMAGE_PIXELS, _ONE_PIXEL_PNG, data)
        return index, decode_image(data, size, channels), pixels

    return load


def build_dataset(paths: Sequence[str], size: tuple[int, int], channels: int, batch_size: int):
    """(index, image, declared_pixels) batches in path order; undecodable files dropped."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), list(paths)))
    load = _loader((int(size[0]), int(size[1])), int(channels))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.ignore_errors()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


_FORWARD_CACHE: dict[tuple, tuple] = {}


def make_forward(model: LoadedModel, size: tuple[int, int], preprocess: str):
    """A compiled forward pass with a fixed signature (no retrace on the last partial batch).

    Cached per loaded model, size and preprocessing, so repeated runs (the app, Ray workers
    predicting block after block) trace once.
    """
    key = (id(model.call), size, preprocess)
    cached = _FORWARD_CACHE.get(key)
    if cached is not None and cached[0] is model.call:
        return cached[1]
    forward = _compile_forward(model, size, preprocess)
    if len(_FORWARD_CACHE) >= 8:
        _FORWARD_CACHE.pop(next(iter(_FORWARD_CACHE)))
    _FORWARD_CACHE[key] = (model.call, forward)  # holding model.call keeps the id unique
    return forward


def _compile_forward(model: LoadedModel, size: tuple[int, int], preprocess: str):
    import tensorflow as tf

    spec = tf.TensorSpec((None, size[0], size[1], model.channels), tf.float32)

    @tf.function(input_signature=[spec], reduce_retracing=True)
    def forward(images):
        return model.call(apply_preprocess(images, preprocess))

    return forward


def describe_failure(path: str, channels: int) -> str:
    """Why one file could not be evaluated, in words a user can act on."""
    import tensorflow as tf

    try:
        size = os.path.getsize(path)
    except OSError as err:
        return f"cannot be read: {err.strerror}"
    if size == 0:
        return "empty file (0 bytes)"
    try:
        decode_image(tf.io.read_file(path), (1, 1), channels)
    except tf.errors.OpError as err:
        message = (err.message or str(err)).strip().splitlines()[0]
        return f"cannot be decoded as an image: {message}"
    except Exception as err:  # noqa: BLE001 - any decoder failure is a reason, not a crash
        return f"cannot be decoded as an image: {err}"
    return "cannot be decoded as an image (the decoder failed inside the pipeline)"


def _drop_in_background(holder: list) -> None:
    """Let the last reference to what ``holder`` holds die on a daemon thread, not the caller's.

    Deleting a finished tf.data iterator waits for tf.data's autotuning thread: 1 to 2.5 s in
    about half of the runs measured here (TF 2.21, 2 cores), as long as a small model's whole
    run over 4,000 images. Nothing is computed in that wait, so the caller need not sit in it.
    """
    threading.Thread(target=holder.clear, name="gtpred-drop-iterator", daemon=True).start()


def predict_files(
    model: LoadedModel,
    paths: Sequence[str],
    *,
    image_size: tuple[int, int] | None = None,
    preprocess: str = "none",
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    on_batch: BatchCallback | None = None,
) -> RawPredictions:
    """Predict ``paths`` in order, once each. Cancelling keeps what was done so far.

    ``on_batch(indices, outputs)`` receives each batch's evaluated file indices and raw outputs
    as they come (in order), so a caller can stream results to storage.
    """
    size = image_size or model.input_size
    if size[0] is None or size[1] is None:
        raise ModelError(
            f"{model.name} accepts images of any size, so gtpred cannot tell which to resize to.",
            "Give the size the model was trained at (--image-size HEIGHTxWIDTH).",
            model.path,
        )
    size = (int(size[0]), int(size[1]))
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_preprocess(preprocess, model.channels)
    total = len(paths)
    outputs = np.zeros((total, model.output_width), dtype=np.float32)
    evaluated = np.zeros(total, dtype=bool)
    too_big: list[tuple[int, int]] = []
    last_index = -1
    completed = True
    if total:
        forward = make_forward(model, size, preprocess)
        dataset = build_dataset(paths, size, model.channels, batch_size)
        batches = iter(dataset)
        for batch_indices, images, pixels in batches:
            if cancel is not None and cancel.is_set():
                completed = False
                break
            indices = batch_indices.numpy()
            if indices.size and (indices[0] <= last_index or np.any(np.diff(indices) <= 0)):
                raise InvariantError("Images arrived out of order or twice; results would be mis-paired.")
            batch_out = np.asarray(forward(images))
            if batch_out.shape != (len(indices), model.output_width):
                raise InvariantError(
                    f"The model returned {batch_out.shape[0]} predictions for a batch of "
                    f"{len(indices)} images."
                )
            pixels = pixels.numpy()
            ok = pixels <= MAX_IMAGE_PIXELS
            too_big.extend((int(i), int(p)) for i, p in zip(indices[~ok], pixels[~ok]))
            outputs[indices[ok]] = batch_out[ok]
            evaluated[indices[ok]] = True
            if on_batch is not None and ok.any():
                on_batch(indices[ok], batch_out[ok])
            last_index = int(indices[-1])
            if progress is not None:
                progress(last_index + 1, total)
        else:
            if progress is not None and last_index != total - 1:
                progress(total, total)  # trailing files were all dropped as undecodable
            last_index = total - 1
        holder = [batches]
        del batches  # the daemon thread must hold the last reference
        _drop_in_background(holder)
    n_seen = last_index + 1
    reasons = {i: f"its header declares {p:,} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel safety limit (not decoded)" for i, p in too_big}
    skipped = tuple(
        (int(i), reasons.get(int(i)) or describe_failure(paths[i], model.channels))
        for i in np.flatnonzero(~evaluated[:n_seen])
    )
    indices = np.flatnonzero(evaluated)
    if len(indices) + len(skipped) != n_seen:
        raise InvariantError(f"{len(indices)} evaluated + {len(skipped)} skipped != {n_seen} seen.")
    return RawPredictions(indices, outputs[indices], skipped, n_seen, completed)


class Throughput:
    """Images/s and time left for a progress callback (the app and the CLI share it)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def rate(self, done: int) -> float:
        elapsed = time.perf_counter() - self.start
        return done / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self, done: int, total: int) -> float | None:
        rate = self.rate(done)
        return (total - done) / rate if rate > 0 else None
