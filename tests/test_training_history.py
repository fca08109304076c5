"""TrainingHistory: a training's epochs (number, Keras logs, evaluated run) kept together, and
the questions asked of them, checked against runs written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from gtpred_core import EpochRun, TrainingHistory, assemble_run
from gtpred_core.run import FILE_COLUMNS

CLASSES = ("cat", "dog", "fox")
PATHS = ("cat/a.png", "cat/b.png", "cat/c.png", "dog/d.png", "dog/e.png", "fox/f.png")
TRUTH = np.array([0, 0, 0, 1, 1, 2])


def _run(y_pred, probabilities=None):
    y_pred = np.asarray(y_pred)
    if probabilities is None:
        probabilities = np.eye(3, dtype=np.float32)[y_pred] * 0.7 + 0.1
    return assemble_run(class_names=CLASSES, paths=PATHS, y_true=TRUTH, y_pred=y_pred, probabilities=probabilities)


def _history(logs=({}, {}, {})) -> TrainingHistory:
    """Three epochs; epoch 1 has e (dog) wrong as cat at 0.5; epoch 3 predicts 'dog' for everything."""
    first = np.array(
        [[0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]],
        dtype=np.float32,
    )
    runs = [_run([0, 1, 1, 1, 0, 2], first), _run([0, 1, 1, 1, 1, 2]), _run([1, 1, 1, 1, 1, 1])]
    return TrainingHistory(tuple(EpochRun(epoch, log, run) for epoch, log, run in zip((1, 2, 3), logs, runs)))


def _collapsed_run(n=12):
    """``n`` files, a third of each class, all predicted 'dog': the core flags a collapse."""
    y_true = np.arange(n) % 3
    return assemble_run(
        class_names=CLASSES,
        paths=[f"{CLASSES[t]}/{i}.png" for i, t in enumerate(y_true)],
        y_true=y_true,
        y_pred=np.ones(n, dtype=np.int64),
        probabilities=np.tile(np.array([0.1, 0.8, 0.1], dtype=np.float32), (n, 1)),
    )


def test_epoch_table_and_curves_take_accuracy_from_the_runs_and_loss_from_the_logs():
    history = _history(({"loss": 1.5, "val_loss": 1.7, "accuracy": 0.4}, {"loss": 0.9}, {"checkpoint": "c3.keras"}))
    table = history.epoch_table()
    assert list(table["epoch"]) == [1, 2, 3]
    assert list(table["accuracy"]) == pytest.approx([3 / 6, 4 / 6, 2 / 6])
    assert table.loc[0, "log_loss"] == 1.5 and table.loc[2, "log_checkpoint"] == "c3.keras"
    curves = history.curves()
    loss = curves[curves.kind == "loss"]
    assert list(zip(loss["epoch"], loss["series"], loss["value"])) == [(1, "loss", 1.5), (1, "val_loss", 1.7), (2, "loss", 0.9)]
    evaluated = curves[curves.series == "evaluated accuracy"]
    assert list(evaluated["value"]) == pytest.approx([3 / 6, 4 / 6, 2 / 6])
    assert set(curves[curves.kind == "accuracy"]["series"]) == {"evaluated accuracy", "accuracy"}


def test_an_epoch_whose_predictions_collapse_is_flagged():
    history = TrainingHistory((EpochRun(1, {}, _run([0, 0, 0, 1, 1, 2])), EpochRun(2, {}, _collapsed_run())))
    assert "prediction-collapse" in history.at(2).run.warning_codes()
    assert history.collapsed_epochs() == [2]
    assert list(history.epoch_table()["collapsed"]) == [False, True]


def test_recall_by_epoch_and_the_files_never_predicted_right():
    history = _history()
    recall = history.recall_by_epoch().set_index(["epoch", "class"])["recall"]
    assert recall[(1, "cat")] == pytest.approx(1 / 3) and recall[(2, "dog")] == 1.0 and recall[(3, "fox")] == 0.0
    # wrong at every epoch: epoch 1 {b, c, e}, epoch 2 {b, c}, epoch 3 {a, b, c, f}
    never = history.never_right()
    assert list(never.columns) == list(FILE_COLUMNS)
    assert sorted(never["file"]) == ["cat/b.png", "cat/c.png"]
    assert set(never["predicted"]) == {"dog"}  # the last epoch's prediction
    assert len(TrainingHistory(history.entries[2:]).never_right()) == 4
    assert TrainingHistory().never_right().empty


def test_one_file_across_epochs():
    history = _history()
    by_epoch = history.file_by_epoch("dog/e.png")
    assert list(by_epoch["predicted"]) == ["cat", "dog", "dog"]
    assert list(by_epoch["right"]) == [False, True, True]
    assert list(by_epoch["p_true"]) == pytest.approx([0.4, 0.8, 0.8])
    probabilities = history.file_probabilities("dog/e.png", k=1)
    assert set(probabilities["class"]) == {"dog", "cat"}  # the true class, and each epoch's top 1
    assert probabilities.set_index(["epoch", "class"]).loc[(1, "cat"), "probability"] == pytest.approx(0.5)
    assert list(probabilities[probabilities.is_true]["class"].unique()) == ["dog"]
    assert history.file_by_epoch("nope.png").empty


def test_an_epoch_is_found_by_its_number_and_a_missing_one_is_named():
    history = _history()
    assert history.epochs == [1, 2, 3] and history.at(2).run is history.runs[1]
    with pytest.raises(KeyError, match=r"epoch 7 was not recorded \(recorded: 1, 2, 3\)"):
        history.at(7)


def test_a_stored_training_loads_whole(tmp_path):
    from gtpred_core.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite3")
    history = _history(({"loss": 1.0}, {"loss": 0.5}, {"loss": 0.7}))
    training = store.start_training("hand-made", "val/")
    for entry in history.entries:
        store.save(entry.run, training_id=training, epoch=entry.epoch, logs=dict(entry.logs))
    loaded = TrainingHistory.load(store, training)
    assert loaded.epochs == [1, 2, 3] and [dict(e.logs) for e in loaded.entries] == [{"loss": 1.0}, {"loss": 0.5}, {"loss": 0.7}]
    assert all(e.run_id is not None for e in loaded.entries)
    assert list(loaded.never_right()["file"]) == list(history.never_right()["file"])


def test_accuracy_per_epoch_carries_its_interval():
    band = _history().accuracy_band()
    assert list(band["epoch"]) == [1, 2, 3] and list(band["n_images"]) == [6, 6, 6]
    from gtpred_core import wilson_interval

    for (_, row), right in zip(band.iterrows(), (3, 4, 2)):
        ci = wilson_interval(right, 6)
        assert (row["accuracy"], row["low"], row["high"]) == pytest.approx((right / 6, ci.low, ci.high))


def test_the_best_epoch_says_when_the_next_best_is_as_good():
    # epoch 2 (4/6) beats epoch 1 (3/6) on one image only (e: wrong, then right): b = 0, c = 1,
    # McNemar p = 2 · P(X <= 0 | 1, 1/2) = 1, capped at 1: not distinguishable.
    best = _history().best_epoch()
    assert (best.epoch, best.runner_up, best.p_value, best.n_common) == (2, 1, 1.0, 6)
    assert best.distinguishable is False
    assert best.sentence() == (
        "Best epoch: 2 (66.7% accuracy). It is not distinguishable from the next best, epoch 1 (50.0%): "
        "the difference could be chance (McNemar p = 1.00 on the 6 images both epochs evaluated), so either epoch would do."
    )


def test_a_best_epoch_that_beats_the_next_by_more_than_chance_says_so():
    n = 60
    y_true = np.arange(n) % 3
    paths = [f"{CLASSES[t]}/{i}.png" for i, t in enumerate(y_true)]

    def run(right):
        y_pred = np.where(np.arange(n) < right, y_true, (y_true + 1) % 3)
        return assemble_run(class_names=CLASSES, paths=paths, y_true=y_true, y_pred=y_pred, probabilities=np.eye(3, dtype=np.float32)[y_pred])

    history = TrainingHistory((EpochRun(1, {}, run(20)), EpochRun(2, {}, run(50)), EpochRun(3, {}, run(30))))
    best = history.best_epoch()
    # epoch 2 against epoch 3: 20 images only epoch 2 gets right, none the other way: p = 2 / 2^20
    assert (best.epoch, best.runner_up, best.distinguishable) == (2, 3, True)
    assert best.p_value == pytest.approx(2 / 2**20)
    assert "It beats the next best, epoch 3 (50.0%), by more than chance (McNemar p < 0.001 on the 60 images" in best.sentence()
    single = TrainingHistory((EpochRun(1, {}, run(20)),)).best_epoch()
    assert single.distinguishable is None and "only epoch" in single.sentence()
    assert TrainingHistory(()).best_epoch() is None
