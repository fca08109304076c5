"""Choose the adapter for a data source, once, as Keras' ``get_data_adapter`` does for ``fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from ..errors import GtpredError
from .adapter import BatchSource
from .arrays import ArraySource, are_arrays
from .directory_iterator import DirectoryIteratorSource, is_legacy_iterator
from .generator import GeneratorSource, is_generator
from .image_folder import ImageFolderSource
from .py_dataset import PyDatasetSource, is_py_dataset
from .tf_dataset import TFDatasetSource, is_tf_dataset

#: What ``data_source`` returns: gtpred's own folder reading, or a source read batch by batch.
FolderOrBatches = Union[ImageFolderSource, BatchSource]


def data_source(source: Any) -> FolderOrBatches:
    """The adapter for ``source``: an image folder path, ``(x, y)`` arrays, a ``tf.data.Dataset``,
    a legacy ``flow_from_directory`` iterator, a ``keras.utils.PyDataset`` or a plain generator.

    An adapter passed in is returned as it is. The order of the checks matters: a legacy iterator
    is also a ``keras.utils.PyDataset``, and any of them may define ``__next__``.
    """
    if isinstance(source, (ImageFolderSource, BatchSource)):
        return source
    if isinstance(source, (str, Path)):
        return ImageFolderSource(source)
    if are_arrays(source):
        return ArraySource(source)
    if is_tf_dataset(source):
        return TFDatasetSource(source)
    if is_legacy_iterator(source):
        return DirectoryIteratorSource(source)
    if is_py_dataset(source):
        return PyDatasetSource(source)
    if is_generator(source):
        return GeneratorSource(source)
    raise GtpredError(
        f"gtpred cannot read a data source of type {type(source).__name__}.",
        "Pass an image folder path, (x, y) arrays, a tf.data.Dataset, a keras PyDataset or "
        "a flow_from_directory iterator.",
    )
