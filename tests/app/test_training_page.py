"""Training page: a real 3-epoch fit recorded by PredictionRecorder, and a training whose second
epoch collapses onto one class (the demo model rescaled twice), browsed in the app."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

from gtpred_core import EpochRun, TrainingHistory, evaluate_folder, index_image_folder
from gtpred_core.demo import DEMO_MODEL, class_name_for_digit, demo_folder
from gtpred_core.store import RunStore

from app_helpers import click_cell, no_exceptions, open_app, texts
from stored_runs import demo_runs

TRAINING = "gtpred_app/screens/training.py"


def datasets(at):
    return [convert_arrow_bytes_to_pandas_df(d.data.data) for c in at.get("vega_lite_chart") for d in c.proto.datasets]


def confusion_shown(at):
    (cells,) = [d for d in datasets(at) if {"true", "predicted", "share"} <= set(d.columns)]
    return cells


def series_rows(frames, series):
    """The rows of one line series (``TrainingHistory.curves``), by epoch."""
    (rows,) = [f[f["series"] == series] for f in frames if series in set(f["series"])]
    return rows.sort_values("epoch")


def tables_with(at, *columns):
    """The page's tables having these columns, in page order."""
    return [t.value for t in at.dataframe if set(columns) <= set(t.value.columns)]


def table_with(at, *columns):
    (table,) = tables_with(at, *columns)
    return table


@pytest.fixture(scope="module")
def trainings(tmp_path_factory, digits, digits_dir):
    """(store path, fit training id, its recorder, collapsed training id)."""
    import keras

    from gtpred_core.training import PredictionRecorder

    path = tmp_path_factory.mktemp("training-store") / "runs.sqlite3"
    store = RunStore(path)
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(4),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels = digits
    x = np.repeat(images[300:900, :, :, None], 3, axis=-1).astype("float32")
    y = np.array([index_image_folder(digits_dir).class_names.index(class_name_for_digit(d)) for d in labels[300:900]])
    recorder = PredictionRecorder(digits_dir, store=store, name="digits fit")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[recorder])

    # A model rescaled twice (it has its own Rescaling layer) predicts one class for everything.
    _, natural_run = demo_runs()
    collapsed = evaluate_folder(DEMO_MODEL, demo_folder(), class_order="natural", preprocess="rescale")
    assert "prediction-collapse" in collapsed.warning_codes()
    collapsed_id = store.start_training("demo, rescaled twice at epoch 2", str(demo_folder()))
    store.save(natural_run, training_id=collapsed_id, epoch=1, logs={"checkpoint": "good.keras"})
    store.save(collapsed, training_id=collapsed_id, epoch=2, logs={"checkpoint": "rescaled.keras"})
    store.finish_training(collapsed_id)
    return path, recorder.training_id, recorder, collapsed_id


@pytest.fixture()
def fit(trainings, monkeypatch):
    """The Training page on the recorded fit; returns (AppTest, recorder)."""
    path, fit_id, recorder, _ = trainings
    monkeypatch.setenv("GTPRED_DB", str(path))
    at = open_app(TRAINING)
    at.selectbox(key="training").set_value(fit_id).run()
    no_exceptions(at)
    return at, recorder


def test_accuracy_loss_and_recall_per_epoch(fit):
    at, recorder = fit
    runs = [run for _, _, run in recorder.epochs]
    curves = [d for d in datasets(at) if "series" in d.columns]
    accuracy = series_rows(curves, "evaluated accuracy")
    assert list(accuracy["value"]) == pytest.approx([run.accuracy for run in runs])
    loss = series_rows(curves, "loss")
    assert list(loss["value"]) == pytest.approx([logs["loss"] for _, logs, _ in recorder.epochs])
    (recall,) = [d for d in datasets(at) if "recall" in d.columns]
    assert len(recall) == 3 * 10
    table = table_with(at, "epoch", "collapsed")
    assert list(table["epoch"]) == [1, 2, 3]
    # A young model may still predict one class for nearly everything: flagged exactly then.
    collapsed = ["prediction-collapse" in run.warning_codes() for run in runs]
    assert list(table["collapsed"]) == collapsed
    assert any("Predictions collapse onto one class" in w.value for w in at.warning) == any(collapsed)


def test_the_epoch_slider_shows_that_epochs_confusion_matrix_and_a_cell_lists_its_images(fit, trainings):
    at, recorder = fit
    fit_id = trainings[1]
    runs = {epoch: run for epoch, _, run in recorder.epochs}
    assert at.select_slider(key=f"epoch-{fit_id}").value == 3
    assert list(confusion_shown(at)["count"]) == list(runs[3].confusion_cells()["count"])
    at.select_slider(key=f"epoch-{fit_id}").set_value(1).run()
    no_exceptions(at)
    shown = confusion_shown(at)
    assert list(shown["count"]) == list(runs[1].confusion_cells()["count"])
    assert list(shown["count"]) != list(runs[3].confusion_cells()["count"])  # the epochs differ
    assert at.query_params["epoch"] == "1" and at.query_params["training"] == str(fit_id)

    cells = runs[1].confusion_cells()
    true_name, pred_name = cells[(cells.true != cells.predicted) & (cells["count"] > 0)].iloc[0][["true", "predicted"]]
    at.session_state[f"epoch_confusion-{fit_id}"] = {"selection": {"cell": [{"true": true_name, "predicted": pred_name}]}}
    at.run()
    no_exceptions(at)
    listed, _never_right = tables_with(at, "thumbnail", "file", "true", "predicted", "confidence")
    assert list(listed["file"]) == list(runs[1].cell_files(true_name, pred_name)["file"])
    click_cell(at, f"epoch_cell-{fit_id}-1-{true_name}-{pred_name}-1", 0, "thumbnail")
    assert listed["file"][0] in [t.value for t in at.text]


def test_a_flipped_image_opens_large_with_its_probabilities_at_each_epoch(fit, trainings):
    at, recorder = fit
    _, fit_id, _, _ = trainings
    epochs = [e for e, _, _ in recorder.epochs]
    flips = table_with(at, "file", "pred_a", "pred_b", "direction")
    assert len(flips) > 0
    click_cell(at, f"epoch_flips-{fit_id}-1-3-1", 0, "file")
    no_exceptions(at)
    rel = flips["file"][0]
    assert rel in [t.value for t in at.text] and len(at.get("image")) == 1
    assert at.query_params["file"] == rel
    assert any(c.value.endswith(f"/training?training={fit_id}&epoch=3&file={rel}") for c in at.code)
    history = TrainingHistory(tuple(EpochRun(e, logs, run) for e, logs, run in recorder.epochs))
    per_epoch = table_with(at, "epoch", "predicted", "p_true")
    expected = history.file_by_epoch(rel)
    assert list(per_epoch["predicted"]) == list(expected["predicted"])
    assert list(per_epoch["right"]) == list(expected["right"])
    assert per_epoch["right"].iloc[0] != per_epoch["right"].iloc[-1]  # it flipped from epoch 1 to 3
    (lines,) = [d for d in datasets(at) if {"epoch", "class", "probability"} <= set(d.columns)]
    assert set(lines["epoch"]) == set(epochs)

    never = table_with(at, "file", "true", "predicted", "confidence")
    assert set(never["file"]) <= set(history.never_right()["file"])
    click_cell(at, f"never_right-{fit_id}-1", 0, "true")
    rel = never["file"][0]
    assert rel in [t.value for t in at.text]
    assert not table_with(at, "epoch", "predicted", "p_true")["right"].any()


def test_a_training_link_opens_that_training_epoch_and_image_on_a_fresh_session(trainings, monkeypatch):
    path, fit_id, recorder, _collapsed_id = trainings  # the collapsed training is the newest
    monkeypatch.setenv("GTPRED_DB", str(path))
    run = {epoch: run for epoch, _, run in recorder.epochs}[2]
    rel = run.paths[7]
    at = open_app(TRAINING, training=str(fit_id), epoch="2", file=rel)
    no_exceptions(at)
    assert at.selectbox(key="training").value == fit_id
    assert at.select_slider(key=f"epoch-{fit_id}").value == 2
    assert rel in [t.value for t in at.text] and len(at.get("image")) == 1
    assert "**Epoch 2:** True class" in texts(at)


def test_an_epoch_whose_predictions_collapse_is_flagged(trainings, monkeypatch):
    path, _, _, collapsed_id = trainings
    monkeypatch.setenv("GTPRED_DB", str(path))
    at = open_app(TRAINING)
    assert at.selectbox(key="training").value == collapsed_id  # the newest training first
    no_exceptions(at)
    assert "Predictions collapse onto one class at epoch 2" in at.warning[0].value
    assert list(table_with(at, "epoch", "collapsed")["collapsed"]) == [False, True]
    assert "predicts nearly one class" in " ".join(w.value for w in at.warning)  # epoch 2's own warning
    at.select_slider(key=f"epoch-{collapsed_id}").set_value(1).run()
    assert len(at.warning) == 1  # epoch 1 is fine; only the training-wide flag remains


def test_the_evaluate_screen_explains_how_to_audit_ones_own_pipeline():
    from gtpred_core.sources.audit import FindingKind

    at = open_app()
    no_exceptions(at)
    (help_box,) = [e for e in at.expander if e.label == "Checking your own data pipeline"]
    assert "audit_data_source(" in help_box.code[0].value
    listed = " ".join(m.value for m in help_box.markdown)
    for kind in FindingKind:  # the registry the audit builds its findings from
        assert f"**`{kind.code}`**" in listed and kind.problem in listed and kind.fix in listed
