"""The Run: a lossless dict round trip, and relabelling as a pure function without inference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gtpred_core import ClassOrderError, Run, assemble_run, evaluate_folder


@pytest.fixture(scope="module")
def trap_run(softmax_model, digits_dir) -> Run:
    return evaluate_folder(softmax_model, digits_dir)


def test_to_dict_and_back_through_json_is_exact(trap_run):
    again = Run.from_dict(json.loads(json.dumps(trap_run.to_dict())))
    assert again.paths == trap_run.paths and again.class_names == trap_run.class_names
    np.testing.assert_array_equal(again.y_true, trap_run.y_true)
    np.testing.assert_array_equal(again.y_pred, trap_run.y_pred)
    assert again.probabilities.dtype == np.float32
    assert again.probabilities.tobytes() == trap_run.probabilities.tobytes()  # bit for bit
    assert again.metrics == trap_run.metrics and again.warnings == trap_run.warnings
    assert again.suggested_class_order == trap_run.suggested_class_order and again.info == trap_run.info


def test_relabel_moves_names_not_predictions_and_leaves_the_original_alone(trap_run):
    before = trap_run.y_true.copy()
    fixed = trap_run.relabel(trap_run.suggested_class_order)
    np.testing.assert_array_equal(trap_run.y_true, before)
    assert fixed.probabilities is trap_run.probabilities and fixed.paths == trap_run.paths
    assert fixed.true_labels == trap_run.true_labels  # each file keeps its true class name
    assert fixed.info.class_order_source == "suggested"
    assert {w.code for w in fixed.warnings} >= {w.code for w in trap_run.warnings} - {"class-order-mismatch"}


def test_relabel_refuses_an_order_with_other_classes(trap_run):
    with pytest.raises(ClassOrderError, match="missing: Class_9; unknown: Class_11"):
        trap_run.relabel([n if n != "Class_9" else "Class_11" for n in trap_run.class_names])


def test_top_k_lists_the_most_probable_classes_first(trap_run):
    top = trap_run.top_k(0)
    assert len(top) == 5 and [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert top[0][0] == trap_run.pred_labels[0]


def test_assemble_run_refuses_misaligned_inputs():
    with pytest.raises(ValueError, match="one entry per file"):
        assemble_run(class_names=["a", "b"], paths=["x"], y_true=[0, 1], y_pred=[0, 1], probabilities=np.eye(2))


def test_relabel_shares_the_prediction_arrays_even_after_a_pickle_round_trip(trap_run):
    import pickle

    travelled = pickle.loads(pickle.dumps(trap_run))  # as a run arrives from the worker process
    fixed = travelled.relabel(travelled.suggested_class_order)
    assert fixed.probabilities is travelled.probabilities and fixed.y_pred is travelled.y_pred


# ----- a run's queries, checked against a run written out by hand --------------------------------
# Axis convention: rows = true class, columns = predicted class.
CLASSES = ("cat", "dog", "fox")


@pytest.fixture()
def hand_run(tmp_path) -> Run:
    """Six real image files; truth and predictions chosen so every table is known by hand."""
    from PIL import Image

    from gtpred_core import RunInfo

    paths = ["cat/a.png", "cat/b.png", "cat/c.png", "dog/d.png", "dog/e.png", "fox/f.png"]
    for i, name in enumerate(paths):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("L", (8, 8), color=i * 40).save(tmp_path / name)
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
    return assemble_run(
        class_names=CLASSES,
        paths=paths,
        y_true=np.array([0, 0, 0, 1, 1, 2]),
        y_pred=np.array([0, 1, 1, 1, 0, 2]),
        probabilities=probabilities,
        info=RunInfo(images=str(tmp_path), folder_classes=CLASSES, class_counts=(3, 2, 1)),
    )


def test_confusion_cells_are_rows_true_columns_predicted_with_row_shares(hand_run):
    cells = hand_run.confusion_cells().set_index(["true", "predicted"])
    # by hand: cat row = [1, 2, 0], dog row = [1, 1, 0], fox row = [0, 0, 1]
    assert cells.loc[("cat", "dog"), "count"] == 2
    assert cells.loc[("dog", "cat"), "count"] == 1
    assert cells.loc[("cat", "dog"), "share"] == pytest.approx(2 / 3)
    assert cells.loc[("fox", "fox"), "share"] == 1.0
    assert len(cells) == 9


def test_cell_files_are_exactly_that_cells_images_most_confident_first(hand_run):
    files = hand_run.cell_files("cat", "dog")
    assert list(files["file"]) == ["cat/c.png", "cat/b.png"]
    assert list(files["confidence"]) == pytest.approx([0.8, 0.6])
    assert hand_run.cell_files("fox", "cat").empty


def test_mispredictions_sorted_most_confident_first_and_filtered(hand_run):
    from gtpred_core.run import FILE_COLUMNS

    table = hand_run.mispredictions()
    assert list(table.columns) == list(FILE_COLUMNS)
    assert list(table["file"]) == ["cat/c.png", "cat/b.png", "dog/e.png"]
    assert list(table["index"]) == [2, 1, 4]
    assert list(hand_run.mispredictions(true_classes=["dog"])["file"]) == ["dog/e.png"]
    assert list(hand_run.mispredictions(predicted_classes=["dog"])["file"]) == ["cat/c.png", "cat/b.png"]
    assert hand_run.mispredictions(true_classes=["fox"]).empty


def test_confidence_histogram_counts_right_and_wrong(hand_run):
    bins = hand_run.confidence_histogram(bins=10)
    totals = bins.groupby("outcome")["count"].sum()
    assert totals["right"] == 3 and totals["wrong"] == 3
    wrong = bins[(bins.outcome == "wrong") & (bins["count"] > 0)]
    assert list(wrong["bin_start"]) == pytest.approx([0.5, 0.6, 0.8])


def test_top_k_table_flags_true_and_predicted(hand_run):
    top = hand_run.top_k_table(2, k=5)  # cat/c.png: true cat, predicted dog
    assert list(top["class"]) == ["dog", "cat", "fox"]  # only 3 classes exist
    assert list(top["probability"]) == pytest.approx([0.8, 0.1, 0.1])
    assert list(top["is_predicted"]) == [True, False, False]
    assert list(top["is_true"]) == [False, True, False]


def test_per_class_table_in_the_order_in_use(hand_run):
    table = hand_run.per_class_table().set_index("class")
    assert list(table.index) == list(CLASSES)
    assert table.loc["cat", "recall"] == pytest.approx(1 / 3) and table.loc["cat", "support"] == 3
    assert table.loc["dog", "precision"] == pytest.approx(1 / 3)


def test_class_mapping_uses_the_folder_and_the_order_in_use(hand_run):
    relabelled = hand_run.relabel(("dog", "cat", "fox"))
    table = relabelled.class_mapping().set_index("class")
    assert table.loc["cat", "keras_index"] == 0 and table.loc["cat", "in_use_index"] == 1
    assert table.loc["cat", "images"] == 3 and table.loc["fox", "images"] == 1
    assert table.loc["fox", "differs"] == False  # noqa: E712 - numpy bool


def test_file_position_and_image_path(hand_run):
    assert hand_run.file_position("dog/e.png") == 4
    assert hand_run.file_position("nope.png") is None
    assert hand_run.image_path("cat/a.png").is_file()


def test_the_relabelled_from_mark_survives_the_store_round_trip(hand_run, tmp_path):
    from dataclasses import replace

    from gtpred_core.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite3")
    original = store.save(hand_run)
    relabelled = hand_run.relabel(("dog", "cat", "fox"))
    assert relabelled.info.relabelled_from is None  # relabel stays pure: it knows no store
    marked = replace(relabelled, info=replace(relabelled.info, relabelled_from=original))
    loaded = store.load(store.save(marked))
    assert loaded.info.relabelled_from == original
    assert loaded.summary()["run"]["relabelled_from"] == original
    assert store.load(original).info.relabelled_from is None

# ----- confusions at scale: counts from y_true/y_pred, the top mistakes, a matrix over chosen classes
def _hand_run() -> Run:
    names = ("cat", "dog", "fox", "owl")
    y_true = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3])
    y_pred = np.array([0, 1, 1, 0, 0, 0, 2, 3, 2, 3])  # dog->cat x3, cat->dog x2, dog->fox, fox->owl
    probabilities = np.eye(4, dtype=np.float32)[y_pred]
    return assemble_run(class_names=names, paths=[f"f{i}.png" for i in range(10)], y_true=y_true, y_pred=y_pred, probabilities=probabilities)


def test_confusion_counts_equal_the_stored_matrix(trap_run):
    np.testing.assert_array_equal(trap_run.confusion_counts(), np.asarray(trap_run.metrics.confusion_matrix))


def test_top_confusions_list_the_most_frequent_mistakes_first():
    run = _hand_run()
    assert run.top_confusions() == [("dog", "cat", 3), ("cat", "dog", 2), ("dog", "fox", 1), ("fox", "owl", 1)]
    assert run.top_confusions(limit=2) == [("dog", "cat", 3), ("cat", "dog", 2)]


def test_a_matrix_among_chosen_classes_keeps_each_rows_total_in_other():
    names, matrix = _hand_run().confusion_among(["dog", "cat"])
    assert names == ("dog", "cat", "(other)")
    # rows = true (dog, cat), columns = predicted (dog, cat, any other class)
    np.testing.assert_array_equal(matrix, [[0, 3, 1], [2, 1, 0]])


def test_a_matrix_among_unknown_or_repeated_classes_is_refused():
    with pytest.raises(ValueError, match="Unknown class name\\(s\\): emu"):
        _hand_run().confusion_among(["cat", "emu"])
    with pytest.raises(ValueError, match="A class is chosen twice"):
        _hand_run().confusion_among(["cat", "cat"])
