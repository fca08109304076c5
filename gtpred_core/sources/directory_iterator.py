"""Keras' legacy iterators (``flow_from_directory``'s ``DirectoryIterator``, ``flow``'s
``NumpyArrayIterator``): indexed batches whose file order is in ``index_array``."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .adapter import Batch, BatchSource
from .audit import Evidence

#: ImageDataGenerator settings that make every read of the same image different.
AUGMENTATIONS = (
    "rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range",
    "channel_shift_range", "horizontal_flip", "vertical_flip", "brightness_range",
)

#: What each of those settings is when it does nothing.
_INACTIVE = (None, 0, 0.0, False, [1.0, 1.0], (1.0, 1.0))


class DirectoryIteratorSource(BatchSource):
    """A legacy Keras iterator. Knows its files: each batch carries the paths of its rows."""

    kind = "iterator"
    description = "a flow_from_directory iterator"

    def batches(self, steps: int | None, batch_size: int) -> Iterator[Batch]:
        it = self.source
        n_batches = len(it) if steps is None else steps
        filenames = getattr(it, "filenames", None)
        for k in range(n_batches):
            x, y = it[k % len(it)]  # steps past the end wrap around, as Keras' own loop does
            # Read the order after the batch: the iterator draws its permutation on first use.
            order = it.index_array if it.index_array is not None else np.arange(it.n)
            rows = order[(k % len(it)) * it.batch_size :][: len(x)]
            yield Batch(x, y, [filenames[i].replace("\\", "/") for i in rows] if filenames else None)

    def n_samples(self) -> int:
        return int(self.source.n)

    def batch_size(self) -> int:
        return int(self.source.batch_size)

    def shuffling(self) -> Evidence | None:
        if not self.source.shuffle:
            return None
        return Evidence("the iterator was made with shuffle=True", "flow_from_directory(..., shuffle=False)")

    def augmentation(self) -> Evidence | None:
        generator = getattr(self.source, "image_data_generator", None)
        if generator is None:
            return None
        active = [name for name in AUGMENTATIONS if getattr(generator, name, None) not in _INACTIVE]
        if not active:
            return None
        return Evidence(
            f"the ImageDataGenerator sets {', '.join(active)}",
            "an ImageDataGenerator that only rescales (no rotation/shift/flip/zoom)",
        )


def is_legacy_iterator(source: Any) -> bool:
    """Duck-typed: the legacy iterators live in tf.keras, not in Keras 3, so no class to check."""
    return hasattr(source, "shuffle") and hasattr(source, "index_array") and hasattr(source, "batch_size")
