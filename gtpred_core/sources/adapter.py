"""The one interface every data source answers, as Keras' ``DataAdapter`` is for ``fit``.

A ``DataSource`` wraps a user's own data (arrays, ``tf.data``, ``PyDataset``, a legacy
iterator, a generator) and answers what the training tools ask of it: its batches with labels
(and file paths where the source knows them), its class names, its size, whether it shuffles,
whether random augmentation is on. Each kind answers in its own module; nothing else switches
on the kind. No TensorFlow or Keras import at module level: the adapters import them where used.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator, NamedTuple

import numpy as np

from ..errors import GtpredError
from .audit import Evidence


class Batch(NamedTuple):
    """One batch as the source gave it: inputs, targets, and file paths when the source knows them."""

    x: Any
    y: Any
    paths: list[str] | None


class DataSource:
    """What the training tools ask of any source; each kind answers in its subclass.

    The defaults are the answers of a source that cannot tell (no size, no class names, nothing
    seen shuffling or augmenting). ``data_source`` picks the subclass.
    """

    #: Short name stored with runs (``RunInfo.images``) and shown in the audit.
    kind: ClassVar[str] = ""
    #: How to name the source in a sentence ("a plain generator cannot be read twice...").
    description: ClassVar[str] = ""
    #: Two reads give the same batches (a plain generator is used up by the first).
    repeatable: ClassVar[bool] = True
    #: Several fit/predict workers still hand out batches in order (not a shared generator).
    keeps_order_with_workers: ClassVar[bool] = True

    def __init__(self, source: Any) -> None:
        self.source = source

    def stored_name(self) -> str:
        """How a stored training names its validation source: the kind (a folder gives its path)."""
        return self.kind

    def n_samples(self) -> int | None:
        """How many samples one pass holds, when the source can tell without reading them all."""
        return None

    def batch_size(self) -> int | None:
        """The source's own batch size, when it has one."""
        return None

    def class_names(self) -> tuple[str, ...]:
        """Names of label indices 0, 1, ... as the source assigns them; () when it does not say.

        Read from ``class_indices`` (legacy iterators) or ``class_names`` (Keras datasets).
        """
        indices = getattr(self.source, "class_indices", None)
        if indices:
            return tuple(name for name, _ in sorted(indices.items(), key=lambda item: item[1]))
        names = getattr(self.source, "class_names", None)
        return tuple(str(name) for name in names) if names else ()

    def shuffling(self) -> Evidence | None:
        """Why the source shuffles (seen from how it was built), or None when nothing says so."""
        return None

    def augmentation(self) -> Evidence | None:
        """Which random augmentation is active, or None when none is seen."""
        return None

    def labels_repeat(self, batch_size: int) -> bool:
        """Two full passes give the same labels in the same order."""
        raise NotImplementedError


class BatchSource(DataSource):
    """A source read batch by batch: the user's own pipeline (everything but an image folder)."""

    def batches(self, steps: int | None, batch_size: int) -> Iterator[Batch]:
        """Batches once through, in the order the source gives them; ``steps`` batches if given.

        ``batch_size`` only matters to sources that are not batched already (arrays).
        """
        raise NotImplementedError

    def labels_repeat(self, batch_size: int) -> bool:
        """Two full passes give the same labels in the same order (a source that reshuffles in
        ``__getitem__`` or ``on_epoch_end`` does not)."""
        first = [labels_to_indices(batch.y) for batch in self.batches(None, batch_size)]
        second = [labels_to_indices(batch.y) for batch in self.batches(None, batch_size)]
        return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


def labels_to_indices(y: Any) -> np.ndarray:
    """Class indices from targets given as indices, one-hot rows or soft binary targets."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1).astype(np.int64)  # one-hot
    y = y.reshape(-1)
    if y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0)):
        return (y > 0.5).astype(np.int64)  # soft binary targets
    return y.astype(np.int64)


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(x, y)`` of a batch, refused when the source yields inputs without labels."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise GtpredError(
            "The data source yields batches without labels.",
            "Yield (x, y) batches so predictions can be paired with their true labels.",
        )
    return batch[0], batch[1]
