"""Class orders: Keras' string sort, natural sort, and training-order files with their errors."""

from __future__ import annotations

import json

import pytest

from gtpred_core import ClassOrderError, keras_order, natural_order, read_class_order_file, resolve_class_order

FOLDERS = ["Class_1", "Class_10", "Class_2", "Class_3"]


def test_keras_order_is_a_string_sort_and_natural_order_sorts_numbers_as_numbers():
    names = ["Class_2", "Class_10", "Class_1", "Class_3"]
    assert keras_order(names) == ("Class_1", "Class_10", "Class_2", "Class_3")
    assert natural_order(names) == ("Class_1", "Class_2", "Class_3", "Class_10")
    assert natural_order(["img12b", "img12a", "img2", "Img3"]) == ("img2", "Img3", "img12a", "img12b")


def test_a_labels_text_file_is_one_class_per_line(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("Class_3\n\nClass_1 \nClass_2\nClass_10\n")
    order = resolve_class_order(path, FOLDERS)
    assert order.names == ("Class_3", "Class_1", "Class_2", "Class_10") and order.source == "labels.txt"


def test_class_indices_json_is_read_by_index_not_by_key_order(tmp_path):
    path = tmp_path / "class_indices.json"
    path.write_text(json.dumps({"Class_10": 3, "Class_1": 0, "Class_3": 2, "Class_2": 1}))
    assert read_class_order_file(path) == ("Class_1", "Class_2", "Class_3", "Class_10")


def test_a_file_that_does_not_match_the_folders_lists_both_sides(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("Class_1\nClass_2\nClass_3\nClass_4\n")
    with pytest.raises(ClassOrderError, match=r"in labels.txt but not a folder: Class_4; folders with images not in labels.txt: Class_10") as info:
        resolve_class_order(path, FOLDERS)
    assert info.value.missing_in_folder == ("Class_4",) and info.value.missing_in_order == ("Class_10",)


def test_an_empty_folder_may_be_left_out_of_the_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("Class_1\nClass_2\nClass_3\n")
    counts = {"Class_1": 5, "Class_10": 0, "Class_2": 5, "Class_3": 5}
    assert resolve_class_order(path, FOLDERS, counts).names == ("Class_1", "Class_2", "Class_3")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Class_1\nClass_1\n", "more than once: Class_1"),
        ("", "lists no class names"),
        ('{"a": 0, "b": 2}', r"must be the whole numbers 0..1"),
        ('{"a": 0, "b": true}', r"must be the whole numbers"),
        ('{"a": 0,', "is not valid JSON"),
        ("42", "neither a"),
    ],
)
def test_bad_order_files_are_refused_with_the_reason(tmp_path, content, message):
    path = tmp_path / ("order.json" if content.startswith(("{", "4")) else "labels.txt")
    path.write_text(content)
    with pytest.raises(ClassOrderError, match=message):
        read_class_order_file(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ClassOrderError, match="Class order file not found"):
        resolve_class_order(tmp_path / "nope.txt", FOLDERS)


def test_class_mapping_flags_rows_whose_index_differs():
    from gtpred_core.class_order import class_mapping_table

    folder = ("Class_1", "Class_10", "Class_2")
    table = class_mapping_table(folder, {"Class_1": 5, "Class_10": 6, "Class_2": 7}, in_use=("Class_1", "Class_2", "Class_10"))
    rows = table.set_index("class")
    assert list(table["class"]) == ["Class_1", "Class_10", "Class_2"]  # Keras order
    assert rows.loc["Class_10", "keras_index"] == 1 and rows.loc["Class_10", "natural_index"] == 2
    assert rows.loc["Class_10", "in_use_index"] == 2
    assert list(table["differs"]) == [False, True, True]
    assert rows.loc["Class_2", "images"] == 7


def test_class_mapping_leaves_a_class_missing_from_the_order_without_index():
    import pandas as pd

    from gtpred_core.class_order import class_mapping_table

    table = class_mapping_table(("a", "b", "empty"), {"a": 1, "b": 1, "empty": 0}, in_use=("a", "b"))
    assert pd.isna(table.set_index("class").loc["empty", "in_use_index"])
    assert bool(table.set_index("class").loc["empty", "differs"])


def test_class_indices_and_labels_files_round_trip_through_the_reader(tmp_path):
    from gtpred_core.class_order import class_indices_json, labels_txt

    order = ("Class_1", "Class_2", "Class_10")
    (tmp_path / "class_indices.json").write_text(class_indices_json(order))
    (tmp_path / "labels.txt").write_text(labels_txt(order))
    assert json.loads(class_indices_json(order)) == {"Class_1": 0, "Class_2": 1, "Class_10": 2}
    assert read_class_order_file(tmp_path / "class_indices.json") == order
    assert read_class_order_file(tmp_path / "labels.txt") == order
