"""A labels CSV (Keras' flow_from_dataframe layout) as a data source: same files, same
predictions as the class-folder layout, in the CSV's row order; and the report shown first."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gtpred_core import ClassOrderError, evaluate_folder, index_image_folder
from gtpred_core.sources.labels_csv import LabelsCsvError, read_labels_csv

ROOT = Path(__file__).resolve().parents[1]


def gtpred(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "gtpred_core", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("filename", "class"), **options) -> Path:
    with open(path, "w", newline="", encoding=options.pop("encoding", "utf-8")) as f:
        writer = csv.writer(f, **options)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _img(path: Path, shade: int = 120) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (shade, 10, 10)).save(path, format="PNG")


@pytest.fixture()
def flat(tmp_path) -> Path:
    """Images in one flat folder, labelled only by a CSV (no class folders)."""
    root = tmp_path / "images"
    for name in ("a.png", "b.png", "c.png", "d.png"):
        _img(root / name)
    return root


def folder_rows(tree: Path) -> list[tuple[str, str]]:
    """The rows of a CSV listing a class-folder tree, in the folder's own evaluation order."""
    folder = index_image_folder(tree)
    return [(rel, folder.class_names[label]) for rel, label in zip(folder.files, folder.labels)]


# ----- the proof: the same predictions as the folder evaluation ---------------------------------
def test_cli_labels_csv_in_folder_order_writes_the_folder_evaluations_predictions(softmax_model, digits_dir, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", folder_rows(digits_dir))
    by_folder = gtpred("evaluate", "--model", softmax_model, "--images", digits_dir, "--out", tmp_path / "folder")
    by_csv = gtpred("evaluate", "--model", softmax_model, "--labels", labels, "--images", digits_dir, "--out", tmp_path / "csv")
    assert by_folder.returncode == 0, by_folder.stderr
    assert by_csv.returncode == 0, by_csv.stderr
    assert "labels: labels.csv: 300 rows, 300 images to evaluate in the CSV's row order" in by_csv.stdout
    assert "300 images evaluated" in by_csv.stdout and "class-order-mismatch" in by_csv.stdout
    # Same files, same order, same labels, same probabilities: the CSV files are byte-equal.
    assert (tmp_path / "csv" / "predictions.csv").read_bytes() == (tmp_path / "folder" / "predictions.csv").read_bytes()


def test_a_shuffled_csv_keeps_its_row_order_and_each_files_prediction(softmax_model, digits_dir, tmp_path):
    rows = folder_rows(digits_dir)
    random.Random(7).shuffle(rows)
    folder, report = read_labels_csv(write_csv(tmp_path / "shuffled.csv", rows), digits_dir)
    assert report.clean and folder.files == tuple(rel for rel, _ in rows)
    by_csv = evaluate_folder(softmax_model, folder, class_order="natural", batch_size=7)
    by_folder = evaluate_folder(softmax_model, digits_dir, class_order="natural", batch_size=32)
    assert list(by_csv.paths) == [rel for rel, _ in rows]  # the CSV's order, not the folder's
    reference = dict(zip(by_folder.paths, by_folder.probabilities))
    for path, probabilities, true_index in zip(by_csv.paths, by_csv.probabilities, by_csv.y_true):
        np.testing.assert_allclose(probabilities, reference[path], atol=1e-6)
        assert by_csv.class_names[true_index] == path.split("/")[0]
    assert by_csv.metrics.accuracy == by_folder.metrics.accuracy


def test_paths_are_relative_to_the_csvs_folder_without_images(flat):
    labels = write_csv(flat / "labels.csv", [("c.png", "dog"), ("a.png", "cat"), ("./b.png", "cat")])
    folder, report = read_labels_csv(labels)
    assert folder.root == flat and folder.files == ("c.png", "a.png", "b.png")
    assert folder.class_names == ("cat", "dog") and folder.labels == (1, 0, 0)
    assert folder.source == "labels.csv"
    assert report.not_listed == ("d.png",)
    assert "1 image(s) under the images folder are not in the CSV" in "\n".join(report.lines())


# ----- the report ------------------------------------------------------------------------------
def test_a_missing_file_is_left_out_with_its_reason_and_the_rest_runs(softmax_model, digits_dir, tmp_path):
    rows = folder_rows(digits_dir)[::15]  # 20 rows, every class
    rows.insert(3, ("Class_1/gone.png", "Class_1"))
    folder, report = read_labels_csv(write_csv(tmp_path / "labels.csv", rows), digits_dir)
    assert [(p.row, p.file, p.reason) for p in report.missing] == [(5, "Class_1/gone.png", "not found")]
    assert len(folder.files) == 20 and folder.ignored == ("Class_1/gone.png",)
    run = evaluate_folder(softmax_model, folder, class_order="natural")
    assert run.n_images == 20 and run.ignored == ("Class_1/gone.png",)
    assert "Class_1/gone.png" in next(w.message for w in run.warnings if w.code == "ignored-files")
    assert "not found" in next(w.message for w in run.warnings if w.code == "ignored-files")


def test_duplicate_rows_are_reported_and_evaluated_once(flat):
    rows = [("a.png", "cat"), ("b.png", "dog"), ("a.png", "cat"), ("./b.png", "cat")]
    folder, report = read_labels_csv(write_csv(flat / "labels.csv", rows))
    assert folder.files == ("a.png", "b.png") and folder.labels == (0, 1)
    assert [(p.row, p.file, p.reason) for p in report.duplicates] == [(4, "a.png", "as row 2"), (5, "./b.png", "as row 3")]
    assert report.conflicts == ("./b.png",)
    text = "\n".join(report.lines())
    assert "2 duplicate row(s)" in text and "given different classes (first: ./b.png)" in text


def test_labels_outside_the_class_list_are_reported_and_the_class_order_refuses_them(flat):
    rows = [("a.png", "cat"), ("b.png", "dgo"), ("c.png", "dog")]
    folder, report = read_labels_csv(write_csv(flat / "labels.csv", rows), class_names=["dog", "cat", "bird"])
    assert report.unknown_labels == ("dgo",)
    assert "1 label(s) are not in the class list given: dgo" in "\n".join(report.lines())
    assert "bird" in folder.class_names and folder.counts["bird"] == 0  # kept: output indices stay
    labels_txt = flat / "labels.txt"
    labels_txt.write_text("dog\ncat\nbird\n")
    from gtpred_core import resolve_class_order

    with pytest.raises(ClassOrderError, match="not in labels.txt: dgo"):
        resolve_class_order(labels_txt, folder.class_names, folder.counts)


def test_numeric_labels_are_flagged_and_mapped_through_a_class_list(flat, tmp_path):
    rows = [("a.png", "2"), ("b.png", "10"), ("c.png", "0")]
    labels = write_csv(flat / "labels.csv", rows)
    folder, report = read_labels_csv(labels)
    assert report.numeric_labels == ("0", "2", "10") and not report.numbers_mapped and not report.clean
    assert folder.class_names == ("0", "10", "2")  # text sort, as Keras: hence the warning
    assert "sorts names as text ('10' before '2')" in "\n".join(report.lines())
    names = [f"digit_{i}" for i in range(11)]
    folder, report = read_labels_csv(labels, class_names=names)
    assert report.numbers_mapped and not report.unknown_labels and report.not_listed == ("d.png",)
    assert [folder.class_names[i] for i in folder.labels] == ["digit_2", "digit_10", "digit_0"]


def test_cli_maps_numeric_labels_through_a_class_indices_json(softmax_model, digits_dir, tmp_path):
    import json

    natural = [f"Class_{i}" for i in range(1, 11)]
    rows = [(rel, str(natural.index(name))) for rel, name in folder_rows(digits_dir)]
    labels = write_csv(tmp_path / "numbers.csv", rows, header=("Path", "Label"))
    indices = tmp_path / "class_indices.json"
    indices.write_text(json.dumps({name: i for i, name in enumerate(natural)}))
    result = gtpred("evaluate", "--model", softmax_model, "--labels", labels, "--images", digits_dir, "--class-order", indices, "--out", tmp_path / "o")
    assert result.returncode == 0, result.stderr
    assert "read as indices into the class list given" in result.stdout
    assert "class-order-mismatch" not in result.stdout  # the map gave each number its own class


# ----- what a CSV may look like ------------------------------------------------------------------
def test_columns_are_detected_by_name_whatever_their_case_and_place(flat):
    labels = write_csv(flat / "labels.csv", [("x", "cat", "a.png")], header=("id", "LABEL", " Image "))
    folder, report = read_labels_csv(labels)
    assert folder.files == ("a.png",) and (report.file_column, report.label_column) == (" Image ", "LABEL")


def test_a_csv_without_the_columns_names_itself_and_its_columns(flat, tmp_path):
    labels = write_csv(flat / "labels.csv", [("a.png", "cat")], header=("picture", "kind"))
    with pytest.raises(LabelsCsvError, match=r"labels.csv has no image file column: its columns are 'picture', 'kind'") as err:
        read_labels_csv(labels)
    assert err.value.columns == ("picture", "kind") and "filename" in err.value.fix
    result = gtpred("evaluate", "--model", "m.keras", "--labels", labels, "--out", tmp_path / "o")
    assert result.returncode == 2 and "error: labels.csv has no image file column" in result.stderr
    (flat / "empty.csv").write_text("")
    with pytest.raises(LabelsCsvError, match="columns are none"):
        read_labels_csv(flat / "empty.csv")
    (flat / "header.csv").write_text("filename,class\n")
    with pytest.raises(LabelsCsvError, match="lists no images"):
        read_labels_csv(flat / "header.csv")


def test_a_bom_windows_line_endings_and_semicolons_are_read(flat):
    text = "\ufefffilename;class\r\nb.png;dog\r\na.png;cat\r\n\r\n"
    (flat / "excel.csv").write_bytes(text.encode("utf-8"))
    folder, report = read_labels_csv(flat / "excel.csv")
    assert folder.files == ("b.png", "a.png") and folder.class_names == ("cat", "dog")
    assert report.file_column == "filename" and report.n_rows == 2 and not report.missing


def test_hostile_names_stay_data(tmp_path):
    root = tmp_path / "images"
    link_name, formula = "[x](https:evil.example).png", "=cmd.png"
    _img(root / link_name)
    _img(root / formula)
    labels = write_csv(root / "labels.csv", [(link_name, "[Session expired](https:evil.example)"), (formula, "=HYPERLINK(1)")])
    folder, report = read_labels_csv(labels)
    assert folder.files == (link_name, formula)
    assert set(folder.class_names) == {"[Session expired](https:evil.example)", "=HYPERLINK(1)"}
    assert report.clean


def test_paths_out_of_the_images_folder_are_refused_unread(flat, tmp_path):
    _img(tmp_path / "secret.png")
    os.symlink(tmp_path / "secret.png", flat / "link.png")
    os.symlink(tmp_path, flat / "linked_dir")
    rows = [("../secret.png", "cat"), (str(tmp_path / "secret.png"), "cat"), ("link.png", "cat"), ("linked_dir/secret.png", "cat"), ("a.png", "cat")]
    folder, report = read_labels_csv(write_csv(flat / "labels.csv", rows))
    assert folder.files == ("a.png",)
    reasons = {p.file: p.reason for p in report.missing}
    assert reasons["../secret.png"] == reasons[str(tmp_path / "secret.png")] == "outside the images folder (not read)"
    assert "outside the image folder" in reasons["link.png"] and "outside the image folder" in reasons["linked_dir/secret.png"]
    assert not any(str(tmp_path) in p.reason for p in report.missing)  # no server path in a reason


def test_a_fifo_listed_in_the_csv_is_refused_unopened(flat):
    os.mkfifo(flat / "x.png")
    folder, report = read_labels_csv(write_csv(flat / "labels.csv", [("x.png", "cat"), ("a.png", "cat")]))
    assert folder.files == ("a.png",)
    assert report.missing[0].reason == "a named pipe (FIFO), not a regular file (not read)"
