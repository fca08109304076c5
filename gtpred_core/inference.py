"""Ordered inference: every file predicted exactly once, in list order, index carried along.

The pipeline is ``tf.data``: read + check header size + decode + resize in parallel
(deterministic order), batch, prefetch, then a compiled forward pass, two batches at a time on
two threads, their results taken strictly in order. Each element carries its file index; we
verify that indices arrive strictly increasing and each at most once, rather than trusting the
pipeline. Files that fail to decode are dropped by ``ignore_errors`` and then
re-read one by one to find the reason to report. Before any read, every path is ``stat``-ed:
only regular files up to ``GTPRED_MAX_IMAGE_MB`` go in (``tf.io.read_file`` reads a named pipe
forever and ``/dev/zero`` until memory runs out; both are skipped with the reason, unread).

Decoding is most of the work for a small model, so a file list evaluated again (each epoch of
``PredictionRecorder``, several models on one folder) need not be decoded again: inside
``decoding_once(cache)``, ``predict_files`` keeps the decoded batches in a ``DecodeCache`` (up to
``GTPRED_DECODE_CACHE_MB``) and replays them, to later calls and to calls running at the same time
in other threads, which read the batches as the first call decodes them. Several models on one
file list go further: ``predict_files_together`` runs each decoded batch through all of them in one
compiled call (``make_joint_forward``).
"""

from __future__ import annotations

import contextvars
import functools
import os
import re
import struct
import threading
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterator, Sequence

import numpy as np

from .errors import InvariantError, ModelError
from .folder import read_refusal
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

#: A valid 1x1 grayscale JPEG: what libjpeg's header parser reads when the file is no JPEG.
_ONE_PIXEL_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b"
    "0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ff"
    "c0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708090a0b"
    "ffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a108"
    "2342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a53545556"
    "5758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9"
    "aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7"
    "f8f9faffda0008010100003f00f9febfffd9"
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
    ``features`` (with ``with_features``) are the penultimate features of the same pass, one row
    per index (see ``embeddings.features_call``).
    """

    indices: np.ndarray
    outputs: np.ndarray
    skipped: tuple[tuple[int, str], ...]
    n_seen: int
    completed: bool
    features: np.ndarray | None = None


_HEADER_BYTES = 32
#: First bytes of each format, as big-endian numbers: JPEG (2 bytes), PNG ("\x89PN"), GIF, BMP.
#: Three bytes for PNG keep every signature under 2**31, out of reach of the BMP sign fix below.
_SIGNATURES = (0xFFD8, 0x89504E, 0x474946, 0x424D)


def _header_weights() -> np.ndarray:
    """A (32, 12) matrix: one product with a file's first 32 bytes reads every header field.

    Columns 0-3 are the signatures (JPEG, PNG, GIF, BMP), 4-7 the widths and 8-11 the heights
    of the same formats (JPEG's left zero: libjpeg reads those). PNG is big-endian 32-bit at
    16/20, GIF little-endian 16-bit at 6/8, BMP little-endian 32-bit at 18/22.
    """
    weights = np.zeros((_HEADER_BYTES, 12))
    fields = [  # (column, offset, length, big_endian)
        (0, 0, 2, True), (1, 0, 3, True), (2, 0, 3, True), (3, 0, 2, True),  # signatures
        (5, 16, 4, True), (9, 20, 4, True),  # PNG IHDR width, height
        (6, 6, 2, False), (10, 8, 2, False),  # GIF logical screen width, height
        (7, 18, 4, False), (11, 22, 4, False),  # BMP width, height (signed)
    ]  # fmt: skip
    for column, offset, length, big_endian in fields:
        for k in range(length):
            weights[offset + k, column] = 256.0 ** (length - 1 - k if big_endian else k)
    return weights


def _select(condition, if_true, if_false):
    """``tf.where`` for a scalar condition: hands on one input's buffer, copying nothing.

    ``tf.where`` (SelectV2) broadcasts and copies the chosen string: on a tiny file, ~15
    microseconds more per file than this.
    """
    import tensorflow as tf

    return tf.raw_ops.Select(condition=condition, x=if_true, y=if_false)


def _header_pixels(data):  # graph code: no Python branching on tensors, and no tf.cond either
    """Pixel count (float64) declared by a PNG/GIF/BMP/JPEG header, without decoding; 0 if unknown.

    Straight-line ops, no conditionals, so the map can run them inline (``_map_in_order``;
    that executor refuses a tf.cond's switch ops), and as few ops as we could: each costs a
    microsecond or two per file. Measured on a tiny JPEG, where nothing else hides it, the
    first version's 40 ops cost ~50 us per file (over 10% of decoding a 224x224 JPEG), these
    ~20-30 us. JPEG's size comes from libjpeg's own header parser,
    the one the decoder then uses, handed a one-pixel JPEG in place of other formats.
    """
    import tensorflow as tf

    head = tf.io.decode_raw(tf.reshape(data, [1]), tf.uint8, fixed_length=_HEADER_BYTES)  # padded, cut
    fields = tf.matmul(tf.cast(head, tf.float64), _header_weights())
    fields = tf.minimum(fields, 2.0**32 - fields)  # a BMP's negative (top-down) height
    signature, width, height = tf.unstack(tf.reshape(fields, (3, 4)))
    kind = tf.cast(tf.equal(signature, _SIGNATURES), tf.float64)  # one-hot, or zeros if unknown
    is_jpeg = kind[0]
    jpeg = tf.image.extract_jpeg_shape(_select(is_jpeg > 0, data, tf.constant(_ONE_PIXEL_JPEG)))
    return tf.reduce_sum(kind * width * height) + is_jpeg * tf.cast(tf.reduce_prod(jpeg[:2]), tf.float64)


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

    Tracing it anew per run cost 20 to 400 ms on 2 cores: a noticeable part of a small model's
    whole run over a few thousand images.
    """
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.string)])
    def load(index, path):
        data = tf.io.read_file(path)
        pixels = _header_pixels(data)
        # An image over the limit is swapped for a one-pixel PNG before decoding (its row is
        # dropped later): a select on the bytes, where a tf.cond costs a function call per image.
        data = _select(pixels > MAX_IMAGE_PIXELS, tf.constant(_ONE_PIXEL_PNG), data)
        return index, decode_image(data, size, channels), pixels

    return load


def _map_in_order(dataset, function, parallel: int):
    """``dataset.map`` in parallel and in order, each call's ops run inline on its own thread.

    A map function's small ops are otherwise handed one by one to TensorFlow's inter-op
    threads; run inline (TensorFlow's own readers map this way), reading, checking and decoding
    a 224x224 JPEG took about 10% less CPU here. The switch is not public API, so any TensorFlow without it gets the
    plain map, with the same results.
    """
    import tensorflow as tf

    try:
        from tensorflow.python.data.ops.map_op import _ParallelMapDataset

        return _ParallelMapDataset(
            dataset,
            function,
            num_parallel_calls=parallel,
            deterministic=True,
            use_inter_op_parallelism=False,
            preserve_cardinality=True,
        )
    except (ImportError, TypeError):
        return dataset.map(function, num_parallel_calls=parallel, deterministic=True)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, e.g. a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: Files read and decoded at once beyond one per usable CPU. The map keeps the folder's order, so
#: a thread that finished its file waits while an earlier, larger one is still decoding; with one
#: file per CPU in flight the cores sat idle behind such files (1.78 of 2 cores busy), with six
#: more they stay busy (1.89): the decode-bound digits CNN went from 3,734 to 4,137 img/s and from
#: 0.476 to 0.458 CPU ms per image (4,000 JPEGs, 2 cores, median of 6 interleaved passes in one
#: process; 2, 4, 6 and 8 files at once gave 3,734 / 4,003 / 4,053 / 4,137 img/s). A fixed number
#: rather than a multiple of the CPUs: each waiting file holds its decoded image, and a 64-core
#: server decoding 20-megapixel photos should hold six more of them, not 192.
DECODE_SLACK = 6


def build_dataset(
    paths: Sequence[str],
    size: tuple[int, int],
    channels: int,
    batch_size: int,
    indices: Sequence[int] | None = None,
):
    """(index, image, declared_pixels) batches in path order; undecodable files dropped.

    ``indices`` (increasing) picks which of ``paths`` to read; each element carries its index.

    Fixed parallelism (one file per usable CPU plus ``DECODE_SLACK``) and a two-batch
    prefetch, with tf.data's autotuning off: without it there is no per-element timing to keep
    (about 5% less CPU per image on the decode-bound digits CNN, same images/s on
    MobileNetV3Small) and no tuning thread to wait for when the iterator is deleted.
    """
    import tensorflow as tf

    picked = range(len(paths)) if indices is None else indices
    make = _dataset_maker((int(size[0]), int(size[1])), int(channels), int(batch_size), usable_cpus() + DECODE_SLACK)
    return make(tf.constant(list(picked), dtype=tf.int64), tf.constant([paths[i] for i in picked], dtype=tf.string))


@functools.lru_cache(maxsize=16)
def _dataset_maker(size: tuple[int, int], channels: int, batch_size: int, parallel: int):
    """The pipeline as a graph function of (indices, paths), traced once per process and shape.

    ``dataset.map`` traces its function anew each time a dataset is built: 14 ms of CPU (40 ms
    of wall time on the busy 2-core machine) before the first read, for every evaluation. Built
    by this traced function instead, the same pipeline costs 1.7 ms of CPU (4.4 ms wall; median of
    15 interleaved builds over the 4,000-file bench folder); the batches are identical.
    """
    import tensorflow as tf

    loader = _loader(size, channels)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.string)])
    def make(indices, paths):
        dataset = tf.data.Dataset.from_tensor_slices((indices, paths))
        dataset = _map_in_order(dataset, loader, parallel=parallel)
        dataset = dataset.ignore_errors().batch(batch_size).prefetch(2)
        options = tf.data.Options()
        options.autotune.enabled = False
        # tf.data's default graph rewrites find nothing to fuse here (the map is already parallel
        # and prefetched) but rewrite the pipeline's graph at every iterator: 37 -> 23 ms from
        # building an iterator to its first batch, the same CPU per image (4,000 JPEGs, median of 6)
        options.experimental_optimization.apply_default_optimizations = False
        return dataset.with_options(options)

    return make


_FORWARD_CACHE: dict[tuple, tuple] = {}
_FORWARD_CACHE_LOCK = threading.Lock()


def make_joint_forward(
    models: Sequence[LoadedModel], size: tuple[int, int], preprocess: str, with_features: bool = False
):
    """One compiled call running every model's forward pass on a batch: a tuple, one result per model.

    Each result is the model's outputs, or (outputs, penultimate features) with ``with_features``.
    The signature is fixed (no retrace on the last partial batch). Several models in one call
    pay one dispatch per batch instead of one each, and TensorFlow runs their ops side by side:
    five digits-CNN checkpoints on decoded batches cost 1,152 CPU ms in one call against 1,227
    in five threads (4,000 images), and with decoding 3.3 against 3.8 CPU s. Each model's outputs
    are bit for bit those of its own call (tests/test_sweep.py).

    Cached per loaded models, size, preprocessing and that flag, so repeated runs (the app, Ray
    workers predicting block after block) trace once. The least recently used entry goes first: with
    five checkpoints evaluated again and again while other models came and went, dropping the
    oldest entry instead made the five trace again (bench/sweep.py).
    """
    calls = tuple(model.call for model in models)
    key = (tuple(id(call) for call in calls), size, preprocess, with_features)
    with _FORWARD_CACHE_LOCK:  # several evaluations may start at once (the app's pool, the Ray actors)
        cached = _FORWARD_CACHE.pop(key, None)
        if cached is not None and all(a is b for a, b in zip(cached[0], calls)):
            _FORWARD_CACHE[key] = cached  # now the most recently used
            return cached[1]
        forward = _compile_forward(models, size, preprocess, with_features)
        if len(_FORWARD_CACHE) >= 8:
            _FORWARD_CACHE.pop(next(iter(_FORWARD_CACHE)))
        _FORWARD_CACHE[key] = (calls, forward)  # holding the calls keeps their ids unique
        return forward


def make_forward(model: LoadedModel, size: tuple[int, int], preprocess: str, with_features: bool = False):
    """``make_joint_forward`` for one model, returning its result alone (not in a tuple)."""
    joint = make_joint_forward([model], size, preprocess, with_features)
    return lambda images: joint(images)[0]


def _compile_forward(models: Sequence[LoadedModel], size: tuple[int, int], preprocess: str, with_features: bool):
    import tensorflow as tf

    spec = tf.TensorSpec((None, size[0], size[1], models[0].channels), tf.float32)
    if with_features:
        from .embeddings import features_call

        calls = [features_call(model) for model in models]
    else:
        calls = [model.call for model in models]

    @tf.function(input_signature=[spec], reduce_retracing=True)
    def forward(images):
        prepared = apply_preprocess(images, preprocess)
        return tuple(call(prepared) for call in calls)

    return forward


def max_image_bytes() -> int | None:
    """The per-file read cap from ``GTPRED_MAX_IMAGE_MB`` (0 or less: no cap)."""
    from .settings import get_settings

    mb = get_settings().max_image_mb
    return mb * 2**20 if mb > 0 else None


def _decoder_words(message: str) -> str:
    """TensorFlow's decoder message without its graph plumbing (``{{function_node ...}}``,
    ``[Op:DecodeImage] name:``): what a person reads is the decoder's own sentence."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message.strip().splitlines()[0] if message.strip() else "")
    return re.sub(r"\s*\[Op:\w+\].*$", "", text).strip() or "the decoder refused it"


def describe_failure(path: str, channels: int) -> str:
    """Why one file could not be evaluated, in words a user can act on."""
    import tensorflow as tf

    refused = read_refusal(path, max_image_bytes())  # never re-read a file swapped for a pipe
    if refused is not None:
        return refused
    size = os.path.getsize(path)
    if size == 0:
        return "empty file (0 bytes)"
    try:
        decode_image(tf.io.read_file(path), (1, 1), channels)
    except tf.errors.OpError as err:
        return f"cannot be decoded as an image: {_decoder_words(err.message or str(err))}"
    except Exception as err:  # noqa: BLE001 - any decoder failure is a reason, not a crash
        return f"cannot be decoded as an image: {err}"
    return "cannot be decoded as an image (the decoder failed inside the pipeline)"


# --------------------------------------------------------------------------------------------
# Decoded batches: one decode, replayed

#: A batch as the forward loop takes it: file indices, the images, each file's declared pixels.
Batch = tuple[np.ndarray, Any, np.ndarray]


def _decoded_batches(
    paths: Sequence[str], size: tuple[int, int], channels: int, batch_size: int, indices: Sequence[int] | None
) -> Generator[Batch, None, None]:
    """Decode ``paths`` (or the ``indices`` of them) into batches, in order."""
    if indices is not None and not len(indices):
        return
    for batch_indices, images, pixels in build_dataset(paths, size, channels, batch_size, indices):
        yield batch_indices.numpy(), images, pixels.numpy()


def _refusals(paths: Sequence[str]) -> dict[int, str]:
    """The files that must not be read now (not regular, over ``GTPRED_MAX_IMAGE_MB``), with why."""
    cap = max_image_bytes()
    return {i: reason for i, path in enumerate(paths) if (reason := read_refusal(path, cap)) is not None}


def _readable(total: int, refused: dict[int, str]) -> list[int] | None:
    return [i for i in range(total) if i not in refused] if refused else None


class _Closing:
    """An iterator whose ``close()`` also runs ``on_close``, even if iteration never started
    (a generator's ``finally`` runs only once it has started)."""

    def __init__(self, batches: Generator[Batch, None, None], on_close: Callable[[], None] = lambda: None) -> None:
        self._batches, self._on_close = batches, on_close

    def __iter__(self) -> "_Closing":
        return self

    def __next__(self) -> Batch:
        return next(self._batches)

    def close(self) -> None:
        try:
            self._batches.close()
        finally:
            self._on_close()


@dataclass
class _DecodedFiles:
    """One file list's decoded batches (for one size, channels and batch size), as they come."""

    refused: dict[int, str] | None  # None while the decoding call's read guard runs
    batches: list[tuple[np.ndarray, Any, np.ndarray]] = field(default_factory=list)
    decoding: bool = True  # a call is decoding the list (and storing its batches while it may)
    full: bool = False  # the budget was reached: no more batches will be stored
    complete: bool = False  # that call reached the end and every batch is stored
    exact_as_uint8: bool = True  # False once a batch had fractions (resized): kept as float32
    abandoned: bool = False  # the decoding call failed before it started: the next call decodes


def _decode_cache_budget_mb() -> int:
    from .settings import get_settings

    return get_settings().decode_cache_mb


class DecodeCache:
    """Decoded images of file lists, kept in memory under a byte budget and replayed in order.

    Batches are kept as the model receives them (after resizing): as uint8 when that is exact (no
    resize, or one that hit whole numbers), else as float32, because bilinear resizing gives
    fractions that uint8 would round and predictions would change. Past the budget
    (``GTPRED_DECODE_CACHE_MB`` unless ``budget_mb`` is given) no more batches are kept: a replay
    gives the kept ones and decodes the rest. A replay gives the same batches, so the same
    predictions bit for bit, as decoding again; files changed on disk since are not read again.
    """

    def __init__(self, budget_mb: float | None = None) -> None:
        self.budget_bytes = int(max(0.0, _decode_cache_budget_mb() if budget_mb is None else budget_mb) * 2**20)
        self.bytes_held = 0
        self.images_held = 0
        self.decoded_passes = 0  # calls that decoded their file list (and filled the cache)
        self.replayed_passes = 0  # calls that replayed it (decoding only what was not kept)
        self._changed = threading.Condition()
        self._entries: dict[tuple, _DecodedFiles] = {}

    def batches(
        self, paths: Sequence[str], size: tuple[int, int], channels: int, batch_size: int
    ) -> tuple[dict[int, str], "_Closing"]:
        """The refused files and the batches of ``paths``: decoded (and kept) or replayed."""
        key = (tuple(paths), size, channels, batch_size)
        with self._changed:
            entry = self._entries.get(key)
            if entry is None:  # this call decodes; the calls arriving meanwhile wait for its read guard
                entry = self._entries[key] = _DecodedFiles(refused=None)
                self.decoded_passes += 1
            else:
                while entry.refused is None and not entry.abandoned:
                    self._changed.wait()
                if entry.abandoned:
                    return self.batches(paths, size, channels, batch_size)
                self.replayed_passes += 1
                assert entry.refused is not None
                return entry.refused, _Closing(self._replay(entry, entry.refused, paths, size, channels, batch_size))
        try:
            # The read guard stats every file, outside the lock, once: five models arriving at once
            # each statted the folder before (4,000 files: 10 ms alone, 5x longer for each of five
            # threads taking turns at the interpreter).
            refused = _refusals(paths)
        except BaseException:
            with self._changed:
                entry.abandoned = True
                del self._entries[key]
                self._changed.notify_all()
            raise
        with self._changed:
            entry.refused = refused
            self._changed.notify_all()
        return refused, self._decode(entry, refused, paths, size, channels, batch_size)

    def decode_ahead(
        self, paths: Sequence[str], size: tuple[int, int], channels: int, batch_size: int, stop: threading.Event
    ) -> threading.Thread:
        """Start decoding ``paths`` into the cache in a thread, for calls yet to come (they read the
        batches as they are kept). It stops at the budget, at the end, or when ``stop`` is set.

        ``evaluate_models`` starts it after loading the first model, so decoding runs while the
        other models load and trace, as it did when each model started on loading.
        """
        key = (tuple(paths), size, channels, batch_size)

        def decode() -> None:
            with self._changed:
                if key in self._entries:  # decoded, or being decoded, already
                    return
            try:
                _, batches = self.batches(paths, size, channels, batch_size)
            except Exception:  # noqa: BLE001 - the call that needs these batches meets it and reports it
                return
            try:
                for _ in batches:
                    if stop.is_set() or self._entries[key].full:
                        break
            except Exception:  # noqa: BLE001 - same: a reader decodes what was not kept, and fails there
                pass
            finally:
                batches.close()

        thread = threading.Thread(target=decode, name="gtpred-decode-ahead", daemon=True)
        thread.start()
        return thread

    def _decode(
        self, entry: _DecodedFiles, refused: dict[int, str], paths: Sequence[str], size: tuple[int, int], channels: int,
        batch_size: int,
    ) -> "_Closing":
        def decode_and_keep() -> Generator[Batch, None, None]:
            storing = True
            for batch in _decoded_batches(paths, size, channels, batch_size, _readable(len(paths), refused)):
                if storing:
                    storing = self._keep(entry, batch)
                yield batch
            with self._changed:
                entry.complete = storing

        def stopped() -> None:  # at the end, or when the caller stops early: readers go on alone
            with self._changed:
                entry.decoding = False
                self._changed.notify_all()

        return _Closing(decode_and_keep(), stopped)

    def _keep(self, entry: _DecodedFiles, batch: Batch) -> bool:
        """Store one batch, or return False when it would pass the budget (nothing more is kept)."""
        indices, images, pixels = batch
        kept: Any = images
        if entry.exact_as_uint8:  # a first batch with fractions settles it: no check after
            values = images.numpy()
            as_uint8 = values.astype(np.uint8)
            if np.array_equal(as_uint8, values):
                kept = as_uint8
            else:
                entry.exact_as_uint8 = False
        nbytes = indices.nbytes + pixels.nbytes + int(np.prod(images.shape)) * (1 if kept is not images else 4)
        with self._changed:
            if self.bytes_held + nbytes > self.budget_bytes:
                entry.full = True  # readers waiting for the next batch decode the rest themselves now
                self._changed.notify_all()
                return False
            self.bytes_held += nbytes
            self.images_held += len(indices)
            entry.batches.append((indices, kept, pixels))
            self._changed.notify_all()
        return True

    def _replay(
        self, entry: _DecodedFiles, refused: dict[int, str], paths: Sequence[str], size: tuple[int, int], channels: int,
        batch_size: int,
    ) -> Generator[Batch, None, None]:
        import tensorflow as tf

        k = 0
        while True:
            with self._changed:
                while k >= len(entry.batches) and entry.decoding and not entry.full:
                    self._changed.wait()
                if k >= len(entry.batches):
                    complete = entry.complete and not entry.full
                    break
                indices, kept, pixels = entry.batches[k]
            k += 1
            yield indices, (tf.cast(kept, tf.float32) if isinstance(kept, np.ndarray) else kept), pixels
        if not complete:  # past the budget, or the decoding call stopped early: decode the rest
            after = int(entry.batches[k - 1][0][-1]) if k else -1
            readable = _readable(len(paths), refused)
            rest = [i for i in (range(len(paths)) if readable is None else readable) if i > after]
            yield from _decoded_batches(paths, size, channels, batch_size, rest)


_ACTIVE_CACHE: contextvars.ContextVar[DecodeCache | None] = contextvars.ContextVar("gtpred_decode_cache", default=None)


@contextmanager
def decoding_once(cache: DecodeCache | None = None) -> Iterator[DecodeCache]:
    """Inside this block, ``predict_files`` calls on the same files decode them once.

    The first call decodes and keeps the batches in ``cache`` (a new one by default); later calls,
    and calls in other threads started with this context (``contextvars.copy_context()``), replay
    them. Used by ``PredictionRecorder`` (every recorded epoch) and ``evaluate_models``.
    """
    cache = cache if cache is not None else DecodeCache()
    token = _ACTIVE_CACHE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE_CACHE.reset(token)


#: Batches whose forward pass runs at once, on as many threads. Two passes side by side fill
#: the gaps one leaves while its ops wait for each other: on 2 cores MobileNetV3Small went from
#: 0.72-0.88x its sequential forward-only limit to 0.95-0.98x (bench/throughput.py); a tiny
#: model neither gains nor loses. Results are still taken strictly in order.
FORWARDS_IN_FLIGHT = 2


def _run_forward(forward, images) -> list[Any]:
    """Each model's result as numpy: its outputs, or (outputs, features)."""
    return [
        tuple(np.asarray(part) for part in result) if isinstance(result, (tuple, list)) else np.asarray(result)
        for result in forward(images)
    ]


class _Collected:
    """One model's outputs as its batches come in, at their files' positions."""

    def __init__(self, model: LoadedModel, total: int, on_batch: BatchCallback | None) -> None:
        self.model, self.on_batch = model, on_batch
        self.outputs = np.zeros((total, model.output_width), dtype=np.float32)
        self.features: np.ndarray | None = None  # (total, width), made at the first batch

    def add(self, indices: np.ndarray, ok: np.ndarray, result: Any) -> None:
        batch_out, batch_features = result if isinstance(result, tuple) else (result, None)
        if batch_out.shape != (len(indices), self.model.output_width):
            raise InvariantError(
                f"{self.model.name} returned {batch_out.shape[0]} predictions for a batch of {len(indices)} images."
            )
        self.outputs[indices[ok]] = batch_out[ok]
        if batch_features is not None:
            if self.features is None:
                self.features = np.zeros((len(self.outputs), batch_features.shape[1]), dtype=np.float32)
            self.features[indices[ok]] = batch_features[ok]
        if self.on_batch is not None and ok.any():
            self.on_batch(indices[ok], batch_out[ok])


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
    with_features: bool = False,
) -> RawPredictions:
    """Predict ``paths`` in order, once each. Cancelling keeps what was done so far.

    ``on_batch(indices, outputs)`` receives each batch's evaluated file indices and raw outputs
    as they come (in order), so a caller can stream results to storage. ``with_features`` also
    keeps each image's penultimate features from the same pass (a Keras model only).
    """
    return predict_files_together(
        [model], paths, image_size=image_size, preprocess=preprocess, batch_size=batch_size, progress=progress,
        cancel=cancel, on_batch=[on_batch], with_features=with_features,
    )[0]  # fmt: skip


def predict_files_together(
    models: Sequence[LoadedModel],
    paths: Sequence[str],
    *,
    image_size: tuple[int, int] | None = None,
    preprocess: str = "none",
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    on_batch: Sequence[BatchCallback | None] | None = None,
    with_features: bool = False,
) -> list[RawPredictions]:
    """``predict_files`` for several models at once: each batch decoded once and run through
    every model in one compiled call (``make_joint_forward``). One RawPredictions per model, in
    order, each bit for bit what ``predict_files`` gives for that model alone.

    The models must take the same input (size, after ``image_size``, and channels);
    ``on_batch`` holds one callback (or None) per model; ``progress`` counts files, for all.
    """
    if not models:
        return []
    sizes = {(image_size or model.input_size) for model in models}
    for model in models:
        size = image_size or model.input_size
        if size[0] is None or size[1] is None:
            raise ModelError(
                f"{model.name} accepts images of any size, so gtpred cannot tell which to resize to.",
                "Give the size the model was trained at (--image-size HEIGHTxWIDTH).",
                model.path,
            )
        check_preprocess(preprocess, model.channels)
    channels = {model.channels for model in models}
    if len(sizes) > 1 or len(channels) > 1:
        raise ValueError(f"models predicted together must take the same input; got sizes {sizes}, channels {channels}")
    size = (int(next(iter(sizes))[0]), int(next(iter(sizes))[1]))  # type: ignore[arg-type]  # checked above
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    channel_count = models[0].channels
    total = len(paths)
    callbacks = list(on_batch) if on_batch is not None else [None] * len(models)
    collected = [_Collected(model, total, callback) for model, callback in zip(models, callbacks)]
    evaluated = np.zeros(total, dtype=bool)
    too_big: list[tuple[int, int]] = []
    cache = _ACTIVE_CACHE.get()
    if cache is not None:
        refused, batches = cache.batches(paths, size, channel_count, batch_size)
    else:
        refused = _refusals(paths)
        batches = _Closing(_decoded_batches(paths, size, channel_count, batch_size, _readable(total, refused)))
    last_index = -1
    completed = True
    try:
        if total:
            forward = make_joint_forward(models, size, preprocess, with_features)
            in_flight: deque[tuple[np.ndarray, np.ndarray, Future]] = deque()
            last_arrived = -1

            def finish_oldest() -> None:
                nonlocal last_index
                indices, pixels, future = in_flight.popleft()
                results = future.result()
                ok = pixels <= MAX_IMAGE_PIXELS
                too_big.extend((int(i), int(p)) for i, p in zip(indices[~ok], pixels[~ok]))
                for model_outputs, result in zip(collected, results):
                    model_outputs.add(indices, ok, result)
                evaluated[indices[ok]] = True
                last_index = int(indices[-1])
                if progress is not None:
                    progress(last_index + 1, total)

            with ThreadPoolExecutor(FORWARDS_IN_FLIGHT, thread_name_prefix="gtpred-forward") as pool:
                for indices, images, pixels in batches:
                    if cancel is not None and cancel.is_set():
                        completed = False  # batches still in flight are dropped: not "seen"
                        break
                    if indices.size and (indices[0] <= last_arrived or np.any(np.diff(indices) <= 0)):
                        raise InvariantError("Images arrived out of order or twice; results would be mis-paired.")
                    last_arrived = int(indices[-1])
                    in_flight.append((indices, pixels, pool.submit(_run_forward, forward, images)))
                    if len(in_flight) >= FORWARDS_IN_FLIGHT:
                        finish_oldest()
                else:
                    while in_flight:
                        finish_oldest()
                    if progress is not None and last_index != total - 1:
                        progress(total, total)  # trailing files were all dropped as undecodable
                    last_index = total - 1
    finally:
        batches.close()  # stops decoding now; a cache's readers waiting on this decode go on alone
    n_seen = last_index + 1
    reasons = {i: f"its header declares {p:,} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel safety limit (not decoded)" for i, p in too_big}
    reasons.update(refused)
    skipped = tuple(
        (int(i), reasons.get(int(i)) or describe_failure(paths[int(i)], channel_count))
        for i in np.flatnonzero(~evaluated[:n_seen])
    )
    indices = np.flatnonzero(evaluated)
    if len(indices) + len(skipped) != n_seen:
        raise InvariantError(f"{len(indices)} evaluated + {len(skipped)} skipped != {n_seen} seen.")
    predictions = []
    for model_outputs in collected:
        features = None
        if with_features:
            features = model_outputs.features[indices] if model_outputs.features is not None else np.zeros((0, 0), np.float32)
        predictions.append(RawPredictions(indices, model_outputs.outputs[indices], skipped, n_seen, completed, features))
    return predictions


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
