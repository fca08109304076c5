"""A plain Python generator of ``(x, y)`` batches: read once, with ``steps`` saying when to stop."""

from __future__ import annotations

import inspect
from typing import Any, Iterator

from ..errors import GtpredError
from .adapter import Batch, BatchSource, split_batch


class GeneratorSource(BatchSource):
    """A generator (or any iterator) of ``(x, y)`` batches.

    It cannot be read twice, and several workers sharing it hand out batches in whatever order
    they finish, so the recorder refuses it and the audit warns when ``workers > 1``.
    """

    kind = "generator"
    description = "a plain generator"
    repeatable = False
    keeps_order_with_workers = False

    def batches(self, steps: int | None, batch_size: int) -> Iterator[Batch]:
        if steps is None:
            raise GtpredError(
                "A plain generator never says when an epoch ends.",
                "Pass steps=ceil(n_samples / batch_size) so every sample is seen exactly once.",
            )
        for _ in range(steps):
            x, y = split_batch(next(self.source))
            yield Batch(x, y, None)


def is_generator(source: Any) -> bool:
    return inspect.isgenerator(source) or hasattr(source, "__next__")
