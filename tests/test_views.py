"""gtpred_core.views: the tables the app draws, checked against runs written out by hand.

Axis convention: rows = true class, columns = predicted class.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gtpred_core import RunInfo, assemble_run, views

CLASSES = ("cat", "dog", "fox")


@pytest.fixture()
def run(tmp_path):
    """Six real image files; truth and predictions chosen so every table is known by hand."""
    paths = []
    for i, name in enumerate(["cat/a.png", "cat/b.png", "cat/c.png", "dog/d.png", "dog/e.png", "fox/f.png"]):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("L", (8, 8), color=i * 40).save(tmp_path / name)
        paths.append(name)
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2])
    probabilities = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.3, 0.6, 0.1],  # cat -> dog at 0.6
            [0.1, 0.8, 0.1],  # cat -> dog at 0.8: the most confident mistake
            [0.2, 0.7, 0.1],
            [0.5, 0.4, 0.1],  # dog -> cat at 0.5
            [0.1, 0.1, 0.8],
        ],
        dtype=np.float32,
    )
    info = RunInfo(images=str(tmp_path), folder_classes=CLASSES, class_counts=(3, 2, 1))
    return assemble_run(
        class_names=CLASSES, paths=paths, y_true=y_true, y_pred=y_pred, probabilities=probabilities, info=info
    )


def test_confusion_cells_are_rows_true_columns_predicted_with_row_shares(run):
    cells = views.confusion_cells(run).set_index(["true", "predicted"])
    # by hand: cat row = [1, 2, 0], dog row = [1, 1, 0], fox row = [0, 0, 1]
    assert cells.loc[("cat", "dog"), "count"] == 2
    assert cells.loc[("dog", "cat"), "count"] == 1
    assert cells.loc[("cat", "dog"), "share"] == pytest.approx(2 / 3)
    assert cells.loc[("fox", "fox"), "share"] == 1.0
    assert len(cells) == 9


def test_cell_files_are_exactly_that_cells_images_most_confident_first(run):
    files = views.cell_files(run, "cat", "dog")
    assert list(files["file"]) == ["cat/c.png", "cat/b.png"]
    assert list(files["confidence"]) == pytest.approx([0.8, 0.6])
    assert views.cell_files(run, "fox", "cat").empty


def test_mispredictions_sorted_most_confident_first_and_filtered(run):
    table = views.mispredictions_table(run)
    assert list(table.columns) == list(views.MISPREDICTION_COLUMNS)
    assert list(table["file"]) == ["cat/c.png", "cat/b.png", "dog/e.png"]
    assert list(table["index"]) == [2, 1, 4]
    assert list(views.mispredictions_table(run, true_classes=["dog"])["file"]) == ["dog/e.png"]
    assert list(views.mispredictions_table(run, predicted_classes=["dog"])["file"]) == ["cat/c.png", "cat/b.png"]
    assert views.mispredictions_table(run, true_classes=["fox"]).empty


def test_paging_clamps_and_resets_the_index(run):
    table = views.mispredictions_table(run)
    assert views.page_count(len(table), 2) == 2
    assert list(views.page_of(table, 2, 2)["file"]) == ["dog/e.png"]
    assert list(views.page_of(table, 99, 2).index) == [0]
    assert views.page_count(0, 25) == 1


def test_confidence_histogram_counts_right_and_wrong(run):
    bins = views.confidence_histogram(run, bins=10)
    totals = bins.groupby("outcome")["count"].sum()
    assert totals["right"] == 3 and totals["wrong"] == 3
    wrong = bins[(bins.outcome == "wrong") & (bins["count"] > 0)]
    assert list(wrong["bin_start"]) == pytest.approx([0.5, 0.6, 0.8])


def test_top_k_flags_true_and_predicted(run):
    top = views.top_k_table(run, 2, k=5)  # cat/c.png: true cat, predicted dog
    assert list(top["class"]) == ["dog", "cat", "fox"]  # only 3 classes exist
    assert list(top["probability"]) == pytest.approx([0.8, 0.1, 0.1])
    assert list(top["is_predicted"]) == [True, False, False]
    assert list(top["is_true"]) == [False, True, False]


def test_class_mapping_flags_rows_whose_index_differs():
    folder = ("Class_1", "Class_10", "Class_2")
    table = views.class_mapping_table(folder, (5, 6, 7), in_use=("Class_1", "Class_2", "Class_10"))
    rows = table.set_index("class")
    assert list(table["class"]) == ["Class_1", "Class_10", "Class_2"]  # Keras order
    assert rows.loc["Class_10", "keras_index"] == 1 and rows.loc["Class_10", "natural_index"] == 2
    assert rows.loc["Class_10", "in_use_index"] == 2
    assert list(table["differs"]) == [False, True, True]
    assert rows.loc["Class_2", "images"] == 7


def test_class_mapping_leaves_a_class_missing_from_the_order_without_index():
    table = views.class_mapping_table(("a", "b", "empty"), (1, 1, 0), in_use=("a", "b"))
    assert pd.isna(table.set_index("class").loc["empty", "in_use_index"])
    assert bool(table.set_index("class").loc["empty", "differs"])


def test_run_class_mapping_uses_the_folder_and_the_order_in_use(run):
    relabelled = run.relabel(("dog", "cat", "fox"))
    table = views.run_class_mapping(relabelled).set_index("class")
    assert table.loc["cat", "keras_index"] == 0 and table.loc["cat", "in_use_index"] == 1
    assert table.loc["fox", "differs"] == False  # noqa: E712 - numpy bool


def test_class_indices_and_labels_files_round_trip_through_the_core_reader(tmp_path):
    from gtpred_core import read_class_order_file

    order = ("Class_1", "Class_2", "Class_10")
    (tmp_path / "class_indices.json").write_text(views.class_indices_json(order))
    (tmp_path / "labels.txt").write_text(views.labels_txt(order))
    assert json.loads(views.class_indices_json(order)) == {"Class_1": 0, "Class_2": 1, "Class_10": 2}
    assert read_class_order_file(tmp_path / "class_indices.json") == order
    assert read_class_order_file(tmp_path / "labels.txt") == order


def test_thumbnails_are_png_data_uris_made_once_and_remade_when_the_file_changes(run, tmp_path):
    path = tmp_path / "cat/a.png"
    first = views.thumbnail_data_uri(path, side=32)
    assert first.startswith("data:image/png;base64,")
    hits = views._thumbnail.cache_info().hits
    assert views.thumbnail_data_uri(path, side=32) == first
    assert views._thumbnail.cache_info().hits == hits + 1
    Image.new("L", (8, 8), color=255).save(path)
    os.utime(path, ns=(1, 10**18))  # a new mtime: the cache key changes
    assert views.thumbnail_data_uri(path, side=32) != first
    assert views.thumbnail_data_uri(tmp_path / "missing.png") is None
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert views.thumbnail_data_uri(tmp_path / "broken.png") is None


def test_with_thumbnails_only_makes_the_rows_given(run):
    page = views.page_of(views.mispredictions_table(run), 1, 2)
    shown = views.with_thumbnails(page, run.info.images, side=16)
    assert list(shown.columns)[0] == "thumbnail" and len(shown) == 2
    assert all(uri.startswith("data:image/png") for uri in shown["thumbnail"])


def test_enlarged_image_scales_small_images_up_with_hard_pixels(run):
    image = views.enlarged_image(views.image_path(run, "cat/a.png"), min_side=64)
    assert image.size == (64, 64)


def test_file_position(run):
    assert views.file_position(run, "dog/e.png") == 4
    assert views.file_position(run, "nope.png") is None


def test_find_model_files_lists_models_and_savedmodel_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/m.keras").write_bytes(b"")
    (tmp_path / "b/sm/variables").mkdir(parents=True)
    (tmp_path / "b/sm/saved_model.pb").write_bytes(b"")
    (tmp_path / "b/sm/variables/x.h5").write_bytes(b"")  # inside a SavedModel: not a model
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden/h.h5").write_bytes(b"")
    assert views.find_model_files(tmp_path) == ["a/m.keras", "b/sm"]
    assert views.find_model_files(tmp_path / "missing") == []


# ----- history, comparison, training ------------------------------------------------------------
def _other_run(run, y_pred, probabilities=None, **info):
    """``run``'s files and truth with other predictions (a second run of the same images)."""
    from dataclasses import replace

    n = len(CLASSES)
    probabilities = probabilities if probabilities is not None else np.eye(n, dtype=np.float32)[y_pred] * 0.7 + 0.1
    return assemble_run(
        class_names=CLASSES,
        paths=run.paths,
        y_true=run.y_true,
        y_pred=np.asarray(y_pred),
        probabilities=probabilities,
        info=replace(run.info, **info),
    )


def test_history_table_has_the_key_numbers_newest_first_and_short_names(tmp_path, run):
    from gtpred_core.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite3")
    first = store.save(run, "first")
    second = store.save(_other_run(run, [0, 0, 0, 1, 1, 2], model="/models/m.keras"), "second")
    table = views.history_table(store.list())
    assert list(table.columns) == list(views.HISTORY_COLUMNS)
    assert list(table["id"]) == [second, first]
    row = table.iloc[0]
    assert row["name"] == "second" and row["status"] == "complete" and row["model"] == "m.keras"
    assert row["n_images"] == 6 and row["accuracy"] == 1.0 and row["images"] == tmp_path.name
    assert table.iloc[1]["accuracy"] == pytest.approx(3 / 6)
    assert views.history_table([]).empty


def test_comparison_tables_are_b_minus_a_and_list_each_flip(run):
    from gtpred_core import compare_runs

    # A (the fixture): cat row [1, 2, 0], dog row [1, 1, 0], fox row [0, 0, 1]; 3 right.
    # B: b -> cat (wrong to right), d -> cat (right to wrong), e -> dog (wrong to right), the rest
    # as in A; B: cat row [2, 1, 0], dog row [1, 1, 0], fox row [0, 0, 1].
    b = _other_run(run, [0, 0, 1, 0, 1, 2])
    comparison = compare_runs(run, b)
    cells = views.confusion_delta_cells(comparison).set_index(["true", "predicted"])
    assert cells.loc[("cat", "cat"), "count_a"] == 1 and cells.loc[("cat", "cat"), "count_b"] == 2
    assert cells.loc[("cat", "cat"), "delta"] == 1 and cells.loc[("cat", "dog"), "delta"] == -1
    assert cells.loc[("dog", "dog"), "delta"] == 0 and cells["delta"].sum() == 0
    per_class = views.comparison_per_class(comparison).set_index("class")
    assert per_class.loc["cat", "recall_a"] == pytest.approx(1 / 3)
    assert per_class.loc["cat", "recall_delta"] == pytest.approx(1 / 3)
    assert per_class.loc["fox", "recall_delta"] == 0
    flips = views.flips_table(comparison)
    assert list(flips.columns) == list(views.FLIP_COLUMNS)
    assert list(flips["file"]) == ["dog/d.png", "cat/b.png", "dog/e.png"]  # right-to-wrong first
    assert list(flips["direction"]) == ["right-to-wrong", "wrong-to-right", "wrong-to-right"]
    d = flips.iloc[0]
    assert (d["true"], d["pred_a"], d["pred_b"]) == ("dog", "dog", "cat")
    assert d["confidence_a"] == pytest.approx(0.7) and d["confidence_b"] == pytest.approx(0.8)
    assert list(views.flips_table(comparison, "wrong-to-right")["file"]) == ["cat/b.png", "dog/e.png"]
    assert views.flips_table(compare_runs(run, run)).empty


def _epochs(run):
    """Three epochs of the fixture's files; epoch 3 predicts 'dog' for everything."""
    return [1, 2, 3], [
        run,
        _other_run(run, [0, 1, 1, 1, 1, 2]),
        _other_run(run, [1, 1, 1, 1, 1, 1]),
    ]


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


def test_epoch_table_and_curves_take_accuracy_from_the_runs_and_loss_from_the_logs(run):
    epochs, runs = _epochs(run)
    logs = [{"loss": 1.5, "val_loss": 1.7, "accuracy": 0.4}, {"loss": 0.9}, {"checkpoint": "c3.keras"}]
    table = views.epoch_table(epochs, runs, logs)
    assert list(table["epoch"]) == [1, 2, 3]
    assert list(table["accuracy"]) == pytest.approx([3 / 6, 4 / 6, 2 / 6])
    assert table.loc[0, "log_loss"] == 1.5 and table.loc[2, "log_checkpoint"] == "c3.keras"
    curves = views.epoch_curves(epochs, runs, logs)
    loss = curves[curves.kind == "loss"]
    assert list(zip(loss["epoch"], loss["series"], loss["value"])) == [(1, "loss", 1.5), (1, "val_loss", 1.7), (2, "loss", 0.9)]
    evaluated = curves[curves.series == "evaluated accuracy"]
    assert list(evaluated["value"]) == pytest.approx([3 / 6, 4 / 6, 2 / 6])
    assert set(curves[curves.kind == "accuracy"]["series"]) == {"evaluated accuracy", "accuracy"}
    with pytest.raises(ValueError, match="one run per epoch"):
        views.epoch_table([1], runs)


def test_an_epoch_whose_predictions_collapse_is_flagged(run):
    epochs, runs = [1, 2], [run, _collapsed_run()]
    assert "prediction-collapse" in runs[1].warning_codes()
    assert views.collapsed_epochs(epochs, runs) == [2]
    assert list(views.epoch_table(epochs, runs)["collapsed"]) == [False, True]


def test_recall_by_epoch_and_the_files_never_predicted_right(run):
    epochs, runs = _epochs(run)
    recall = views.recall_by_epoch(epochs, runs).set_index(["epoch", "class"])["recall"]
    assert recall[(1, "cat")] == pytest.approx(1 / 3) and recall[(2, "dog")] == 1.0 and recall[(3, "fox")] == 0.0
    # wrong at every epoch: epoch 1 {b, c, e}, epoch 2 {b, c}, epoch 3 {a, b, c, f}
    never = views.never_right(runs)
    assert list(never.columns) == list(views.MISPREDICTION_COLUMNS)
    assert sorted(never["file"]) == ["cat/b.png", "cat/c.png"]
    assert set(never["predicted"]) == {"dog"}  # the last epoch's prediction
    assert len(views.never_right(runs[2:])) == 4


def test_one_file_across_epochs(run):
    epochs, runs = _epochs(run)
    by_epoch = views.file_by_epoch(epochs, runs, "dog/e.png")
    assert list(by_epoch["predicted"]) == ["cat", "dog", "dog"]
    assert list(by_epoch["right"]) == [False, True, True]
    assert list(by_epoch["p_true"]) == pytest.approx([0.4, 0.8, 0.8])
    probabilities = views.file_probabilities_by_epoch(epochs, runs, "dog/e.png", k=1)
    assert set(probabilities["class"]) == {"dog", "cat"}  # the true class, and each epoch's top 1
    assert probabilities.set_index(["epoch", "class"]).loc[(1, "cat"), "probability"] == pytest.approx(0.5)
    assert list(probabilities[probabilities.is_true]["class"].unique()) == ["dog"]
    assert views.file_by_epoch(epochs, runs, "nope.png").empty
