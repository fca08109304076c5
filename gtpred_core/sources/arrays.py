"""``(x, y)`` arrays held in memory: sliced in order, so they never shuffle."""

from __future__ import annotations

from typing import Any, Iterator

from .adapter import Batch, BatchSource


class ArraySource(BatchSource):
    """An ``(x, y)`` pair of equally long arrays (numpy, or anything with ``shape`` and slicing)."""

    kind = "arrays"
    description = "(x, y) arrays"

    def __init__(self, source: tuple[Any, Any]) -> None:
        super().__init__(source)
        self.x, self.y = source

    def batches(self, steps: int | None, batch_size: int) -> Iterator[Batch]:
        n = len(self.x) if steps is None else min(len(self.x), steps * batch_size)
        for start in range(0, n, batch_size):
            yield Batch(self.x[start : start + batch_size], self.y[start : start + batch_size], None)

    def n_samples(self) -> int:
        return len(self.x)

    def labels_repeat(self, batch_size: int) -> bool:
        return True  # slices of the same arrays, in the same order, every time


def are_arrays(source: Any) -> bool:
    """An ``(x, y)`` tuple of two array-likes, as Keras' ``fit(validation_data=(x, y))`` takes."""
    return isinstance(source, tuple) and len(source) == 2 and all(hasattr(a, "shape") for a in source)
