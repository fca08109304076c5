"""Labelled data, one adapter per kind: each turns its source into an ordered list of files (or
batches) with their labels, so everything after it (pairing, metrics, store, pages) is the same.
"""
from .choose import FolderOrBatches, data_source
