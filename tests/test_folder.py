"""Indexing an image folder: Keras' class order and file order, ignored and hidden files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from gtpred_core import FolderError, index_image_folder
from gtpred_core.folder import OUTSIDE_ROOT


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (200, 10, 10)).save(path, format="PNG")


@pytest.fixture()
def tree(tmp_path) -> Path:
    root = tmp_path / "data"
    for rel in [
        "Class_2/b.png", "Class_2/a.PNG", "Class_10/x.jpg", "Class_1/z.JpEg", "Class_1/sub/y.png",
        "Class_1/a.gif", "Class_1/b.bmp", "Class_1/sub2/deeper/q.png", "class_3/k.png",
    ]:
        _img(root / rel)
    (root / "Class_2" / "notes.txt").write_text("hi")
    (root / "Class_2" / "img.webp").write_bytes(b"RIFF")
    (root / "Empty").mkdir()
    (root / ".cache").mkdir()
    _img(root / ".cache" / "c.png")
    _img(root / "__MACOSX" / "Class_1" / "._z.png")
    _img(root / "Class_1" / ".ipynb_checkpoints" / "w.png")
    (root / "labels.csv").write_text("a,b")
    return root


def test_classes_and_files_are_in_the_order_keras_lists_them(tree):
    import keras

    folder = index_image_folder(tree)
    dataset = keras.utils.image_dataset_from_directory(tree, shuffle=False, batch_size=4, image_size=(4, 4), verbose=False)
    assert folder.class_names == ("Class_1", "Class_10", "Class_2", "Empty", "class_3")
    # Keras also walks hidden sub-folders inside a class; gtpred does not (checkpoints, .git).
    keras_files = [Path(p).relative_to(tree).as_posix() for p in dataset.file_paths]
    assert list(folder.files) == [f for f in keras_files if "/." not in f]
    # Deliberate difference: Keras makes macOS zip litter (__MACOSX) a class; gtpred skips it.
    assert [c for c in dataset.class_names if c != "__MACOSX"] == list(folder.class_names)


def test_labels_follow_the_class_of_each_file(tree):
    folder = index_image_folder(tree)
    for rel, label in zip(folder.files, folder.labels):
        assert rel.split("/")[0] == folder.class_names[label]
    assert folder.counts == {"Class_1": 5, "Class_10": 1, "Class_2": 2, "Empty": 0, "class_3": 1}
    assert folder.empty_classes == ("Empty",)


def test_non_images_are_listed_as_ignored_and_hidden_folders_are_skipped(tree):
    folder = index_image_folder(tree)
    assert set(folder.ignored) == {"labels.csv", "Class_2/notes.txt", "Class_2/img.webp"}
    assert not any(".cache" in f or "__MACOSX" in f or ".ipynb" in f for f in folder.files)


def test_hidden_image_files_are_ignored_not_evaluated(tmp_path):
    _img(tmp_path / "a" / "ok.png")
    (tmp_path / "a" / "._ok.png").write_bytes(b"\0\5\26\7")  # macOS AppleDouble litter
    folder = index_image_folder(tmp_path)
    assert folder.files == ("a/ok.png",) and folder.ignored == ("a/._ok.png",)


def test_missing_folder_file_instead_of_folder_and_no_class_folders_are_clear_errors(tmp_path):
    with pytest.raises(FolderError, match="Image folder not found"):
        index_image_folder(tmp_path / "nope")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(FolderError, match="is a file, not a folder"):
        index_image_folder(tmp_path / "f.png")
    with pytest.raises(FolderError, match="No class folders"):
        index_image_folder(tmp_path)


# ----- files that hang, stream forever or lead out of the folder (issue 14) ----------------------
def test_a_fifo_named_like_an_image_is_ignored_with_its_reason_never_opened(tmp_path):
    _img(tmp_path / "a" / "ok.png")
    os.mkfifo(tmp_path / "a" / "x.png")
    folder = index_image_folder(tmp_path)  # opening the FIFO would block here forever
    assert folder.files == ("a/ok.png",) and folder.ignored == ("a/x.png",)
    assert folder.why_ignored("a/x.png") == "a named pipe (FIFO), not a regular file (not read)"
    assert "a named pipe (FIFO)" in folder.describe_ignored()


def test_a_link_to_a_device_is_ignored_with_its_reason(tmp_path):
    _img(tmp_path / "a" / "ok.png")
    os.symlink("/dev/zero", tmp_path / "a" / "z.png")
    folder = index_image_folder(tmp_path)
    assert folder.files == ("a/ok.png",)
    # /dev is outside the folder: refused before its type is even looked at.
    assert folder.why_ignored("a/z.png") == OUTSIDE_ROOT


def test_links_out_of_the_folder_are_refused_links_within_it_are_kept(tmp_path):
    outside = tmp_path / "outside"
    _img(outside / "secret.png")
    _img(outside / "more" / "deep.png")
    root = tmp_path / "data"
    _img(root / "cat" / "a.png")
    _img(root / "dog" / "b.png")
    os.symlink(outside / "secret.png", root / "cat" / "linked.png")  # a linked image
    os.symlink(outside, root / "zebra")  # a linked class folder
    os.symlink(root / "cat" / "a.png", root / "dog" / "same_as_a.png")  # inside: fine
    os.symlink(outside / "gone.png", root / "dog" / "broken.png")
    folder = index_image_folder(root)
    assert folder.class_names == ("cat", "dog", "zebra")  # the class stays: indices as in Keras
    assert folder.files == ("cat/a.png", "dog/b.png", "dog/same_as_a.png")
    assert folder.why_ignored("cat/linked.png") == OUTSIDE_ROOT
    assert folder.why_ignored("zebra/") == OUTSIDE_ROOT and folder.empty_classes == ("zebra",)
    assert folder.why_ignored("dog/broken.png") == OUTSIDE_ROOT  # it points outside, even missing
    assert not any("secret" in f or "deep" in f for f in folder.files + folder.ignored)


def test_the_data_root_itself_may_be_a_link(tmp_path):
    _img(tmp_path / "real" / "cat" / "a.png")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert index_image_folder(tmp_path / "alias").files == ("cat/a.png",)


def test_a_broken_link_inside_the_folder_says_so(tmp_path):
    _img(tmp_path / "cat" / "a.png")
    os.symlink(tmp_path / "cat" / "gone.png", tmp_path / "cat" / "b.png")
    folder = index_image_folder(tmp_path)
    assert folder.files == ("cat/a.png",)
    assert folder.why_ignored("cat/b.png") == "a broken link (its target is missing)"
