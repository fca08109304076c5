"""Training-time tools: the per-epoch recorder, checkpoints, paired prediction and the audit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gtpred_core import evaluate_folder, index_image_folder
from gtpred_core.store import RunStore
from gtpred_core.sources.audit import AUDIT_EXAMPLE, FindingKind
from gtpred_core.training import PredictionRecorder, SourceShufflesError, audit_data_source, predict_pairs
from tests.conftest import MODEL_SIZE, _natural_labels

ROOT = Path(__file__).resolve().parents[1]


def _fresh_model():
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((MODEL_SIZE, MODEL_SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def training_xy(digits):
    import tensorflow as tf

    images, labels = digits
    x = tf.image.resize(images[300:900, :, :, None].astype("float32"), (MODEL_SIZE, MODEL_SIZE)).numpy()
    return np.repeat(x, 3, axis=-1), _natural_labels(labels[300:900])


@pytest.fixture(scope="module")
def recorded(training_xy, digits_dir, tmp_path_factory):
    """A real 3-epoch fit with the recorder on the digits folder, and a checkpoint per epoch."""
    import keras

    tmp = tmp_path_factory.mktemp("training")
    store = RunStore(tmp / "runs.db")
    recorder = PredictionRecorder(digits_dir, store=store, name="digits fit", class_order="natural", out_file=tmp / "epochs.npz")
    checkpoints = keras.callbacks.ModelCheckpoint(str(tmp / "ckpt_{epoch}.keras"))
    x, y = training_xy
    _fresh_model().fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[recorder, checkpoints])
    return recorder, store, tmp


def test_recorded_epochs_pair_labels_in_order_with_that_epochs_weights(recorded, digits_dir):
    recorder, _, tmp = recorded
    folder = index_image_folder(digits_dir)
    assert [e for e, _, _ in recorder.epochs] == [1, 2, 3]
    for epoch, logs, run in recorder.epochs:
        assert list(run.paths) == list(folder.files)
        assert run.true_labels == [folder.class_names[i] for i in folder.labels]  # y_true = labels in order
        again = evaluate_folder(tmp / f"ckpt_{epoch}.keras", digits_dir, class_order="natural")
        np.testing.assert_array_equal(run.y_pred, again.y_pred)  # exactly what that epoch's weights predict
        assert "loss" in logs and "accuracy" in logs
    assert len({run.metrics.accuracy for _, _, run in recorder.epochs}) > 1  # epochs really differ
    saved = np.load(tmp / "epochs.npz")
    assert saved["y_pred"].shape == (3, 300)


def test_recorded_epochs_after_the_first_replay_the_folder_and_predict_the_same(recorded, digits_dir):
    recorder, _, tmp = recorded
    assert (recorder.decoded.decoded_passes, recorder.decoded.replayed_passes) == (1, 2)  # decoded once
    for epoch, _, run in recorder.epochs:
        decoded_again = evaluate_folder(tmp / f"ckpt_{epoch}.keras", digits_dir, class_order="natural")
        np.testing.assert_array_equal(run.probabilities, decoded_again.probabilities)  # bit for bit


def test_the_training_run_is_stored_one_epoch_each(recorded):
    recorder, store, _ = recorded
    (training,) = store.list_trainings()
    assert (training.name, training.status, training.n_epochs) == ("digits fit", "complete", 3)
    epochs = store.training_epochs(training.id)
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert store.load(epochs[2].run_id).y_pred.tolist() == recorder.epochs[2][2].y_pred.tolist()
    assert store.list() == []  # epochs do not crowd the evaluation history


def test_evaluate_checkpoints_gives_the_callbacks_numbers(recorded, digits_dir):
    recorder, _, tmp = recorded
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "gtpred_core", "evaluate-checkpoints", "--models", str(tmp / "ckpt_*.keras"), "--images", str(digits_dir), "--class-order", "natural", "--db", str(tmp / "ckpt.db")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    store = RunStore(tmp / "ckpt.db")
    (training,) = store.list_trainings()
    epochs = store.training_epochs(training.id)
    assert [e.logs["checkpoint"] for e in epochs] == ["ckpt_1.keras", "ckpt_2.keras", "ckpt_3.keras"]
    for stored, (_, _, run) in zip(epochs, recorder.epochs):
        assert store.load(stored.run_id).metrics == run.metrics


def test_arrays_as_validation_data_are_recorded_in_order(training_xy):
    x, y = training_xy
    recorder = PredictionRecorder((x[:100], y[:100]), every=2)
    model = _fresh_model()
    model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[recorder])
    ((epoch, _, run),) = recorder.epochs  # every=2: only epoch 2
    assert epoch == 2 and run.y_true.tolist() == y[:100].tolist()
    np.testing.assert_array_equal(run.y_pred, model.predict(x[:100], verbose=0).argmax(1))


def test_shuffling_sources_are_refused_with_the_reason(training_xy, digits_dir):
    import keras
    import tensorflow as tf

    x, y = training_xy
    shuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(100).batch(32)
    with pytest.raises(SourceShufflesError, match="pipeline contains a shuffle"):
        PredictionRecorder(shuffled)
    iterator = tf.keras.preprocessing.image.ImageDataGenerator().flow_from_directory(str(digits_dir), target_size=(16, 16), shuffle=True)
    with pytest.raises(SourceShufflesError, match=r"made with shuffle=True.*flow_from_directory\(\.\.\., shuffle=False\)"):
        PredictionRecorder(iterator)

    class ReshufflingLabels(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(0)

        def __len__(self):
            return 3

        def __getitem__(self, k):
            rows = self.rng.permutation(len(x))[:32]
            return x[rows], y[rows]

    with pytest.raises(SourceShufflesError, match="labels differ between two passes"):
        PredictionRecorder(ReshufflingLabels())


def test_predict_pairs_keeps_pairs_right_even_when_the_source_shuffles(softmax_model, training_xy):
    import keras
    import tensorflow as tf

    x, y = training_xy
    model = keras.saving.load_model(softmax_model)
    ordered = predict_pairs(model, (x, y))
    shuffled_ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(600, seed=1).batch(32)
    shuffled = predict_pairs(model, shuffled_ds)
    assert shuffled.n_images == ordered.n_images == 600
    assert shuffled.metrics.accuracy == ordered.metrics.accuracy > 0.8
    assert shuffled.metrics.confusion_matrix == ordered.metrics.confusion_matrix
    naive = (model.predict(shuffled_ds, verbose=0).argmax(1) == y).mean()  # the classic mistake
    assert naive < 0.3


def test_predict_pairs_knows_the_files_of_a_directory_iterator(softmax_model, digits_dir):
    import tensorflow as tf

    iterator = tf.keras.preprocessing.image.ImageDataGenerator().flow_from_directory(
        str(digits_dir), target_size=(16, 16), batch_size=32, shuffle=True, class_mode="sparse", interpolation="bilinear"
    )
    run = predict_pairs(softmax_model, iterator)
    assert sorted(run.paths) == sorted(iterator.filenames) and run.n_images == 300
    assert run.class_names[:2] == ("Class_1", "Class_10")
    for path, label in zip(run.paths, run.true_labels):
        assert path.split("/")[0] == label  # each file paired with its own class


def test_audit_reports_each_mistake_with_its_fix(digits_dir, training_xy):
    import keras
    import tensorflow as tf

    legacy = tf.keras.preprocessing.image.ImageDataGenerator
    shuffled = legacy().flow_from_directory(str(digits_dir), target_size=(16, 16), batch_size=32)
    audit = audit_data_source(shuffled, steps=300 // 32)
    assert {"shuffle-on", "steps-drop-samples", "class-order-string-sort"} <= set(audit.codes())
    drop = next(f for f in audit.findings if f.code == "steps-drop-samples")
    assert "last 12 sample(s)" in drop.message and "Here: steps=10." in drop.fix
    shuffle = next(f for f in audit.findings if f.code == "shuffle-on")
    assert "made with shuffle=True" in shuffle.message and "flow_from_directory(..., shuffle=False)" in shuffle.fix
    augmented = legacy(rotation_range=20, horizontal_flip=True).flow_from_directory(str(digits_dir), target_size=(16, 16), shuffle=False)
    augmentation = audit_data_source(augmented)
    assert augmentation.codes() == ["augmentation-on", "class-order-string-sort"]
    assert "sets rotation_range, horizontal_flip" in augmentation.findings[0].message
    repeat = audit_data_source(legacy().flow_from_directory(str(digits_dir), shuffle=False), steps=11)
    assert "steps-repeat-samples" in repeat.codes()
    clean = keras.utils.image_dataset_from_directory(digits_dir, shuffle=False, image_size=(16, 16), verbose=False)
    assert audit_data_source(clean).codes() == ["class-order-string-sort"]
    from_directory = audit_data_source(keras.utils.image_dataset_from_directory(digits_dir, image_size=(16, 16), verbose=False))
    assert "shuffle-on" in from_directory.codes() and (from_directory.n_samples, from_directory.batch_size) == (300, 32)
    x, y = training_xy
    flipping = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).map(lambda a, b: (tf.image.random_flip_left_right(a), b))
    flips = audit_data_source(flipping)
    assert flips.codes() == ["augmentation-on"] and "RandomUniform" in flips.findings[0].message
    generator = ((x[i : i + 32], y[i : i + 32]) for i in range(0, 600, 32))
    shared = audit_data_source(generator, steps=19, workers=4)
    assert shared.codes() == ["generator-with-workers"] and "4 workers" in shared.findings[0].message
    assert audit_data_source((x, y), steps=3).ok and audit_data_source(digits_dir).n_samples == 300
    # Every kind in the registry (the list the Evaluate page's help shows) is really reported.
    seen = {code for a in (audit, augmentation, repeat, from_directory, flips, shared) for code in a.codes()}
    assert seen == {kind.code for kind in FindingKind}


def test_the_helps_example_runs_on_a_real_folder(digits_dir, capsys):
    import keras

    exec(AUDIT_EXAMPLE.replace('"val/"', repr(str(digits_dir))), {"keras": keras})
    findings = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("Found 300 files")]
    assert len(findings) == 1 and findings[0].startswith("class-order-string-sort - ")  # the folder's only trap
    assert "Fix: Save class_indices" in findings[0]


def test_predict_pairs_reads_the_head_from_the_model_not_from_its_outputs():
    """A linear (logits) head whose outputs happen to look like probabilities (0.3, 0.7: in 0..1,
    summing to 1) is still read as logits, as every evaluation reads it: softmax(0.3, 0.7)."""
    import keras

    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.layers[-1].set_weights([np.zeros((48, 2), np.float32), np.array([0.3, 0.7], np.float32)])
    x, y = np.zeros((5, 4, 4, 3), np.float32), np.array([0, 1, 1, 0, 1])
    run = predict_pairs(model, (x, y))
    assert run.info.head == "logits"
    assert run.probabilities[0] == pytest.approx([1 / (1 + np.exp(0.4)), 1 / (1 + np.exp(-0.4))], abs=1e-6)
