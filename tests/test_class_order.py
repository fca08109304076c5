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
