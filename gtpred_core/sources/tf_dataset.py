"""A ``tf.data.Dataset`` of ``(x, y)`` batches, and what its pipeline is built from.

Whether a pipeline shuffles or applies random ops is read from its structure, because reading
it cannot always tell: stateful random ops replay the same sequence on every new iterator, and
a seeded shuffle with ``reshuffle_each_iteration=False`` gives the same wrong order twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator

import numpy as np

from .adapter import Batch, BatchSource, labels_to_indices, split_batch
from .audit import Evidence

_NO_SHUFFLE = "image_dataset_from_directory(..., shuffle=False), or no .shuffle() in the evaluation pipeline"
_NO_RANDOM_LAYERS = "apply random layers (RandomFlip, RandomRotation, ...) only to the training pipeline or inside the model"


@dataclass(frozen=True)
class PipelineOps:
    """The op names a pipeline is built from: its stages, and the ops inside its functions."""

    stages: frozenset[str]
    function_ops: frozenset[str]

    @property
    def shuffles(self) -> bool:
        return any("Shuffle" in stage for stage in self.stages)

    @property
    def random_ops(self) -> tuple[str, ...]:
        """Random ops inside map functions (augmentation such as random flips)."""
        return tuple(sorted(op for op in self.function_ops if "Random" in op and "Shuffle" not in op))


def pipeline_ops(dataset: Any) -> PipelineOps | None:
    """What the pipeline is built from, or None when neither way of reading it works."""
    try:
        return ops_from_pipeline_objects(dataset)
    except AttributeError:  # a TensorFlow release without the private attributes
        return ops_from_serialized_graph(dataset)


def ops_from_pipeline_objects(dataset: Any) -> PipelineOps:
    """Walk the Python objects the pipeline was built from.

    Uses TF's private ``_inputs()`` and ``_map_func`` (there is no public way to walk a
    pipeline): unlike the public serialized graph, this copies nothing, whereas serializing a
    ``from_tensor_slices`` of an in-memory array copies the whole array (0.7 s for 120 MB here)
    and fails past protobuf's 2 GB. Raises AttributeError when those attributes are gone, so
    ``pipeline_ops`` falls back to the public route.
    """
    stages: set[str] = set()
    function_ops: set[str] = set()
    stack = [dataset]
    while stack:
        node = stack.pop()
        stage = type(node).__name__
        stages.add(stage)
        wrapper = getattr(node, "_map_func", None)
        if wrapper is None and "Map" in stage:
            raise AttributeError(f"{stage} has no _map_func")  # renamed: use the public route
        if wrapper is not None:
            function_ops |= _graph_def_ops(wrapper.function.graph.as_graph_def())
        stack.extend(node._inputs())
    return PipelineOps(frozenset(stages), frozenset(function_ops))


def ops_from_serialized_graph(dataset: Any) -> PipelineOps | None:
    """The public route: serialize the pipeline (``DatasetToGraphV2``) and read its GraphDef.

    None when it cannot be serialized (e.g. an in-memory tensor past protobuf's 2 GB).
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        (variant,) = tf.nest.flatten(dataset, expand_composites=True)
        # external_state_policy=1 (ignore): random layers keep state; we only read op names.
        serialized = tf.raw_ops.DatasetToGraphV2(input_dataset=variant, external_state_policy=1)
        graph = tf.compat.v1.GraphDef.FromString(serialized.numpy())
    except (tf.errors.OpError, ValueError, DecodeError):
        return None
    stages = frozenset(node.op for node in graph.node)
    function_ops = frozenset(node.op for function in graph.library.function for node in function.node_def)
    return PipelineOps(stages, function_ops)


def _graph_def_ops(graph_def: Any) -> set[str]:
    ops = {node.op for node in graph_def.node}
    return ops | {node.op for function in graph_def.library.function for node in function.node_def}


class TFDatasetSource(BatchSource):
    """A batched ``tf.data.Dataset``; a Keras ``image_dataset_from_directory`` one also knows its
    ``class_names`` and ``file_paths`` (in its own order, which is shuffled unless shuffle=False)."""

    kind = "tf.data"
    description = "a tf.data.Dataset"

    def batches(self, steps: int | None, batch_size: int) -> Iterator[Batch]:
        for k, batch in enumerate(self.source):
            if steps is not None and k >= steps:
                break
            x, y = split_batch(batch)
            yield Batch(x, y, None)

    def n_samples(self) -> int | None:
        paths = getattr(self.source, "file_paths", None)
        if paths is None or int(self.source.cardinality()) < 0:
            return None
        return len(paths)

    def batch_size(self) -> int | None:
        if int(self.source.cardinality()) < 0:
            return None  # infinite or unknown: reading a batch says nothing about an epoch
        first = self._first_batch_read_twice
        return len(first[0].x) if first else None

    @cached_property
    def _ops(self) -> PipelineOps | None:
        return pipeline_ops(self.source)

    @cached_property
    def _first_batch_read_twice(self) -> tuple[Batch, Batch] | None:
        reads = [next(iter(self.source.take(1)), None) for _ in range(2)]
        if reads[0] is None or reads[1] is None:
            return None
        first, second = (Batch(*split_batch(read), None) for read in reads)
        return first, second

    def shuffling(self) -> Evidence | None:
        if self._ops is not None:
            return Evidence("the tf.data pipeline contains a shuffle", _NO_SHUFFLE) if self._ops.shuffles else None
        # The pipeline could not be read: a reshuffle still shows as the first batch's labels changing.
        pair = self._first_batch_read_twice
        if pair and not np.array_equal(labels_to_indices(pair[0].y), labels_to_indices(pair[1].y)):
            return Evidence("two reads of the first batch gave different labels", _NO_SHUFFLE)
        return None

    def augmentation(self) -> Evidence | None:
        if self._ops is not None and self._ops.random_ops:
            return Evidence(f"the pipeline applies random operations ({', '.join(self._ops.random_ops)})", _NO_RANDOM_LAYERS)
        if self.shuffling() is not None:
            return None  # a shuffle changes the first batch too: reading twice cannot single out augmentation
        pair = self._first_batch_read_twice
        if pair and not np.array_equal(np.asarray(pair[0].x), np.asarray(pair[1].x)):
            return Evidence("the same first batch read twice gave different pixels", _NO_RANDOM_LAYERS)
        return None


def is_tf_dataset(source: Any) -> bool:
    import tensorflow as tf

    return isinstance(source, tf.data.Dataset)
