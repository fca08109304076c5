"""Server paths are not shown to app users (issue 14, item 2): what the app hands out names files
relative to the data root, or by an upload's own name; model errors name the file, not the
scratch folder it was saved in (the full path stays in ``err.path`` for the server log)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from gtpred_core import ModelError, load_model, summary_json
from gtpred_core.export import shareable_summary_json
from gtpred_core.uploads.server_paths import path_for_users


def test_a_path_is_shown_relative_to_the_data_root_or_by_its_own_name(tmp_path):
    root = tmp_path / "srv" / "datasets"
    (root / "val" / "cats").mkdir(parents=True)
    assert path_for_users(root / "val" / "cats", root) == "val/cats"
    assert path_for_users(tmp_path / "cache" / "scratch" / "model-x1" / "net.keras", root) == "net.keras"
    assert path_for_users(root / "val", None) == "val"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "link").symlink_to(outside)  # a link out of the root is not "inside" it
    assert path_for_users(root / "link", root) == "link"


def test_the_apps_summary_names_model_and_images_without_the_servers_layout(tmp_path):
    from gtpred_core.demo import DEMO_MODEL, demo_folder
    from gtpred_core import evaluate_folder

    root = tmp_path / "srv" / "datasets"
    for class_folder in demo_folder().iterdir():  # ten classes, five images each: quick
        (root / "digits" / class_folder.name).mkdir(parents=True)
        for image in sorted(class_folder.glob("*.png"))[:5]:
            shutil.copy(image, root / "digits" / class_folder.name / image.name)
    scratch = tmp_path / "cache" / "scratch" / "model-abc123"
    scratch.mkdir(parents=True)
    shutil.copy(DEMO_MODEL, scratch / "my model.keras")
    run = evaluate_folder(scratch / "my model.keras", root / "digits", class_order="keras")
    run = replace(run, info=replace(run.info, model=str(scratch / "my model.keras")))

    shared = json.loads(shareable_summary_json(run, root))
    assert shared["run"]["model"] == "my model.keras"  # an upload: its own name
    assert shared["run"]["images"] == "digits"  # under the data root: relative to it
    assert str(tmp_path) not in shareable_summary_json(run, root)
    # the CLI's summary.json keeps the paths its user gave
    assert json.loads(summary_json(run))["run"]["images"] == str(root / "digits")


def test_a_missing_model_in_a_scratch_folder_is_named_by_its_file(tmp_path):
    path = tmp_path / "cache" / "scratch" / "model-x1" / "net.keras"
    with pytest.raises(ModelError, match=r"^Model not found: net\.keras\. Check the path\.$") as caught:
        load_model(path)
    assert caught.value.path == str(path)  # for the server log


def test_a_file_keras_cannot_read_is_named_without_its_folder(tmp_path):
    folder = tmp_path / "cache" / "scratch" / "model-x2"
    folder.mkdir(parents=True)
    (folder / "broken.keras").write_bytes(b"this is not a zip")
    with pytest.raises(ModelError, match=r"broken\.keras") as caught:
        load_model(folder / "broken.keras")
    assert str(folder) not in caught.value.message and "scratch" not in caught.value.message
    assert caught.value.path == str(folder / "broken.keras")
