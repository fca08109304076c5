"""gtpred_core.sources adapters: one per kind of source, chosen once, each answering the same
questions (batches with labels and paths, size, class names, shuffling, augmentation) truthfully."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gtpred_core.errors import GtpredError
from gtpred_core.sources import data_source
from gtpred_core.sources.adapter import labels_to_indices
from gtpred_core.sources.arrays import ArraySource
from gtpred_core.sources.directory_iterator import DirectoryIteratorSource
from gtpred_core.sources.generator import GeneratorSource
from gtpred_core.sources.image_folder import ImageFolderSource
from gtpred_core.sources.py_dataset import PyDatasetSource
from gtpred_core.sources.tf_dataset import TFDatasetSource, ops_from_pipeline_objects, ops_from_serialized_graph
from tests.conftest import MODEL_SIZE, _natural_labels

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def xy(digits):
    """100 real digits as 16x16 RGB arrays with their class indices."""
    import tensorflow as tf

    images, labels = digits
    x = tf.image.resize(images[:100, :, :, None].astype("float32"), (MODEL_SIZE, MODEL_SIZE)).numpy()
    return np.repeat(x, 3, axis=-1), _natural_labels(labels[:100])


def _ordered_batches(x, y, size=32):
    import keras

    class Ordered(keras.utils.PyDataset):
        def __len__(self):
            return -(-len(x) // size)

        def __getitem__(self, k):
            return x[k * size : (k + 1) * size], y[k * size : (k + 1) * size]

    return Ordered()


def _legacy_iterator(folder, **options):
    import tensorflow as tf

    return tf.keras.preprocessing.image.ImageDataGenerator().flow_from_directory(
        str(folder), target_size=(MODEL_SIZE, MODEL_SIZE), batch_size=32, class_mode="sparse", **options
    )


def test_each_kind_of_source_gets_its_adapter_once(xy, digits_dir):
    import tensorflow as tf

    x, y = xy
    sources = [
        (str(digits_dir), ImageFolderSource),
        (digits_dir, ImageFolderSource),
        ((x, y), ArraySource),
        (tf.data.Dataset.from_tensor_slices((x, y)).batch(32), TFDatasetSource),
        (_legacy_iterator(digits_dir, shuffle=False), DirectoryIteratorSource),  # before PyDataset: it is one too
        (_ordered_batches(x, y), PyDatasetSource),
        (((x[i : i + 32], y[i : i + 32]) for i in range(0, 100, 32)), GeneratorSource),
    ]
    for source, adapter in sources:
        chosen = data_source(source)
        assert type(chosen) is adapter
        assert data_source(chosen) is chosen  # an adapter passed in is used as it is
    with pytest.raises(GtpredError, match=r"cannot read a data source of type dict.*Pass an image folder path"):
        data_source({"x": x})


def test_every_batch_kind_yields_the_labels_in_the_sources_order(xy):
    import tensorflow as tf

    x, y = xy
    for source in (
        (x, y),
        tf.data.Dataset.from_tensor_slices((x, y)).batch(32),
        _ordered_batches(x, y),
        ((x[i : i + 32], y[i : i + 32]) for i in range(0, 100, 32)),
    ):
        adapter = data_source(source)
        batches = list(adapter.batches(4 if adapter.kind == "generator" else None, 32))
        assert [len(b.x) for b in batches] == [32, 32, 32, 4], adapter.kind
        assert np.concatenate([labels_to_indices(b.y) for b in batches]).tolist() == y.tolist(), adapter.kind
        np.testing.assert_array_equal(np.concatenate([np.asarray(b.x) for b in batches]), x)
    cut = list(data_source((x, y)).batches(2, 32))  # steps=2: two batches, as Keras' predict(steps=2)
    assert sum(len(b.y) for b in cut) == 64


def test_a_legacy_iterator_knows_the_file_of_every_row_even_when_it_shuffles(digits_dir):
    iterator = _legacy_iterator(digits_dir, shuffle=True, seed=4)
    adapter = data_source(iterator)
    names = adapter.class_names()
    assert names[:3] == ("Class_1", "Class_10", "Class_2")  # class_indices order: Keras' string sort
    paths, labels = [], []
    for batch in adapter.batches(None, 32):
        paths += batch.paths
        labels += labels_to_indices(batch.y).tolist()
    assert sorted(paths) == sorted(iterator.filenames) and paths != sorted(paths)  # all files, shuffled
    assert all(path.split("/")[0] == names[label] for path, label in zip(paths, labels))
    assert (adapter.n_samples(), adapter.batch_size()) == (300, 32)
    wrapped = list(adapter.batches(11, 32))  # one step past the end wraps to the first batch again
    assert wrapped[10].paths == wrapped[0].paths


def test_sizes_and_class_names_come_from_the_source(digits_dir, xy):
    import keras

    ordered = keras.utils.image_dataset_from_directory(digits_dir, shuffle=False, image_size=(16, 16), verbose=False)
    adapter = data_source(ordered)
    assert (adapter.n_samples(), adapter.batch_size()) == (300, 32)
    assert adapter.class_names()[:2] == ("Class_1", "Class_10")
    endless = data_source(ordered.repeat())
    assert (endless.n_samples(), endless.batch_size()) == (None, None)  # an endless dataset has no epoch
    folder = data_source(digits_dir)
    assert folder.n_samples() == 300 and folder.class_names() == ()  # order is chosen at evaluation
    assert folder.stored_name() == str(digits_dir) and data_source(xy).stored_name() == "arrays"


def test_sources_that_cannot_say_when_an_epoch_ends_ask_for_steps(xy):
    import keras

    x, y = xy

    class Endless(keras.utils.PyDataset):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, k):
            return x[:32], y[:32]

    with pytest.raises(GtpredError, match="PyDataset has no length.*Pass steps=N"):
        list(data_source(Endless()).batches(None, 32))
    with pytest.raises(GtpredError, match=r"never says when an epoch ends.*steps=ceil\(n_samples / batch_size\)"):
        list(data_source(iter([(x, y)])).batches(None, 32))
    assert len(list(data_source(Endless()).batches(2, 32))) == 2


def test_batches_without_labels_are_refused_with_the_fix(xy):
    import tensorflow as tf

    x, _ = xy
    with pytest.raises(GtpredError, match=r"yields batches without labels.*Yield \(x, y\) batches"):
        list(data_source(tf.data.Dataset.from_tensor_slices(x).batch(32)).batches(None, 32))


def test_a_pydataset_that_reshuffles_is_caught_by_reading_it_twice(xy):
    import keras

    x, y = xy

    class Reshuffling(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(0)

        def __len__(self):
            return 3

        def __getitem__(self, k):
            rows = self.rng.permutation(len(x))[:32]
            return x[rows], y[rows]

    assert not data_source(Reshuffling()).labels_repeat(32)
    assert data_source(_ordered_batches(x, y)).labels_repeat(32)
    assert data_source((x, y)).labels_repeat(32)


def test_the_public_graph_reading_agrees_with_the_private_walk(xy, digits_dir):
    """The fallback used when a TF release drops ``_inputs``/``_map_func`` sees the same shuffles
    and random ops on real pipelines."""
    import keras
    import tensorflow as tf

    x, y = xy
    flip = keras.layers.RandomFlip()
    slices = tf.data.Dataset.from_tensor_slices((x, y))
    pipelines = {
        "shuffled": (slices.shuffle(100).batch(32), True, False),
        "tf.image flip": (slices.batch(32).map(lambda a, b: (tf.image.random_flip_left_right(a), b)), False, True),
        "keras RandomFlip": (slices.batch(32).map(lambda a, b: (flip(a), b)), False, True),
        "clean": (slices.batch(32).prefetch(2), False, False),
        "from directory": (keras.utils.image_dataset_from_directory(digits_dir, image_size=(16, 16), verbose=False), True, False),
        "from directory, shuffle=False": (
            keras.utils.image_dataset_from_directory(digits_dir, image_size=(16, 16), shuffle=False, verbose=False), False, False,
        ),
    }
    for name, (pipeline, shuffles, random) in pipelines.items():
        private, public = ops_from_pipeline_objects(pipeline), ops_from_serialized_graph(pipeline)
        assert public is not None
        assert private.shuffles == public.shuffles == shuffles, name
        assert private.random_ops == public.random_ops and bool(public.random_ops) == random, name


def test_when_the_pipeline_cannot_be_read_two_reads_still_tell_shuffle_from_augmentation(xy):
    """Reading twice is the last resort: it sees a Keras random layer (its seed state advances),
    not a stateful tf.random op under a global seed (which replays on every new iterator)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(5)  # as a training script does
    x, y = xy
    slices = tf.data.Dataset.from_tensor_slices((x, y))
    flip = keras.layers.RandomFlip()
    shuffled = TFDatasetSource(slices.shuffle(100).batch(32))
    flipping = TFDatasetSource(slices.batch(32).map(lambda a, b: (flip(a), b)))
    clean = TFDatasetSource(slices.batch(32))
    for adapter in (shuffled, flipping, clean):
        adapter.__dict__["_ops"] = None  # as if neither the private walk nor the serialized graph worked
    assert "first batch gave different labels" in shuffled.shuffling().facts and shuffled.augmentation() is None
    assert flipping.shuffling() is None and "read twice gave different pixels" in flipping.augmentation().facts
    assert clean.shuffling() is None and clean.augmentation() is None


def test_importing_the_sources_package_stays_cheap():
    code = "import sys, gtpred_core.sources, gtpred_core.sources.audit; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr
