"""A ``keras.utils.PyDataset``: batches read by index, in index order."""

from __future__ import annotations

from typing import Any, Iterator

from ..errors import GtpredError
from .adapter import Batch, BatchSource, split_batch


class PyDatasetSource(BatchSource):
    """A PyDataset of ``(x, y)`` batches. Indexed, so workers keep the order; a dataset that
    reshuffles in ``__getitem__`` or ``on_epoch_end`` shows as labels differing between passes."""

    kind = "pydataset"
    description = "a keras PyDataset"

    def batches(self, steps: int | None, batch_size: int) -> Iterator[Batch]:
        n_batches = self.source.num_batches if steps is None else steps
        if n_batches is None:
            raise GtpredError("This PyDataset has no length.", "Pass steps=N.")
        for k in range(n_batches):
            x, y = split_batch(self.source[k])
            yield Batch(x, y, None)


def is_py_dataset(source: Any) -> bool:
    import keras

    return isinstance(source, keras.utils.PyDataset)
