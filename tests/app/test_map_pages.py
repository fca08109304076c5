"""The Embedding map, Leakage and Compare's calibration/suspects section as users read them, on
small real stored runs (tests/map_fixtures.py: 30 real PNGs, a hand-placed map, a training folder
with one exact and one re-encoded copy).

Store: #1 the map run with leakage searched (two planted mistakes), #2 the same files without a
map or a leakage search, #3 a SavedModel-style run (probabilities mapped), #4 run #1's files with
softer probabilities and other mistakes (one in common with #1)."""

from __future__ import annotations

import pytest

from gtpred_core import compare_runs
from gtpred_core.embeddings import METHOD_PROBABILITIES
from gtpred_core.store import RunStore

from gtpred_app.ui.charts import POINT, REGION

from app_helpers import click_cell, no_exceptions, open_app, texts
from map_fixtures import WRONG_A, WRONG_B, make_run, write_images, write_train_folder

MAP = "gtpred_app/screens/embedding_map.py"
LEAKAGE = "gtpred_app/screens/leakage.py"
COMPARE = "gtpred_app/screens/compare.py"


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    db = tmp_path / "runs.sqlite3"
    monkeypatch.setenv("GTPRED_DB", str(db))
    images, train = tmp_path / "images", tmp_path / "train"
    paths = write_images(images)
    write_train_folder(images, train)
    store = RunStore(db)
    made = {
        "map": make_run(images, paths, wrong=WRONG_A, train=train),
        "plain": make_run(images, paths, embedding=False),
        "probabilities": make_run(images, paths, method=METHOD_PROBABILITIES),
        "other": make_run(images, paths, sure=0.6, wrong=WRONG_B),
    }
    ids = {name: str(store.save(run)) for name, run in made.items()}
    return ids, made, tmp_path


def test_map_shows_every_image_and_a_clicked_point_opens_its_file(runs):
    ids, made, tmp_path = runs
    at = open_app(MAP, run=ids["map"])
    no_exceptions(at)
    assert "30 images on the map, 2 wrong" in texts(at)
    at.session_state["embedding-map"] = {"selection": {POINT: [{"index": made["map"].paths.index("fox/img_2.png")}]}}
    at.run()
    no_exceptions(at)
    shown = texts(at)
    assert "fox/img_2.png" in [t.value for t in at.text]
    assert "True class **fox** · predicted **cat** (95.0%, wrong)" in shown
    assert at.query_params["file"] == "fox/img_2.png"  # the address bar links to this image
    assert str(tmp_path) not in shown


def test_a_selected_region_lists_its_images_and_a_row_opens_one(runs):
    ids, _, _ = runs
    at = open_app(MAP, run=ids["map"])
    at.session_state["embedding-map"] = {"selection": {REGION: {"x": [-1.0, 1.0], "y": [0.0, 4.0]}}}
    at.run()
    no_exceptions(at)
    assert "5 images in the region, 1 wrong" in [t.value for t in at.text]
    listed = at.dataframe(key="map-region-1").value
    assert sorted(listed["file"]) == [f"cat/img_{i}.png" for i in range(5)]
    assert listed["file"].iloc[0] == "cat/img_1.png"  # most confident first: 95% dog, wrong
    click_cell(at, "map-region-1", 2)
    no_exceptions(at)
    assert listed["file"].iloc[2] in [t.value for t in at.text]
    assert "True class **cat** · predicted **cat**" in texts(at)


def test_colour_by_class_keeps_the_points(runs):
    ids, _, _ = runs
    at = open_app(MAP, run=ids["map"])
    at.radio(key="map-colour").set_value("class").run()
    no_exceptions(at)
    assert "30 images on the map, 2 wrong" in texts(at)


def test_a_run_without_a_map_says_how_to_get_one(runs):
    ids, _, _ = runs
    at = open_app(MAP, run=ids["plain"])
    no_exceptions(at)
    assert "--embeddings" in at.info[0].value
    assert not at.get("arrow_vega_lite_chart")


def test_a_map_of_probabilities_says_so(runs):
    ids, _, _ = runs
    at = open_app(MAP, run=ids["probabilities"])
    no_exceptions(at)
    assert "SavedModel" in at.warning[0].value and "probability vectors" in at.warning[0].value


def test_leakage_lists_pairs_exact_first_relative_to_each_folder(runs):
    ids, _, tmp_path = runs
    at = open_app(LEAKAGE, run=ids["map"])
    no_exceptions(at)
    assert "2 of 30 evaluated images are also in the training folder (1 exact copies, 1 near-duplicate pairs)" in at.warning[0].value
    table = at.dataframe(key="leakage-1").value
    assert list(table["file"]) == ["cat/img_0.png", "dog/img_3.png"]
    assert list(table["train_file"]) == ["cat/copy.png", "dog/resaved.png"]
    assert list(table["kind"]) == ["exact", "near"]
    assert table["thumbnail"].notna().all() and table["train_thumbnail"].notna().all()
    click_cell(at, "leakage-1", 1)
    no_exceptions(at)
    written = [t.value for t in at.text]
    assert "dog/img_3.png" in written and "dog/resaved.png" in written
    assert str(tmp_path) not in texts(at) + " ".join(written)


def test_leakage_without_a_search_explains_train_images(runs):
    ids, _, _ = runs
    at = open_app(LEAKAGE, run=ids["plain"])
    no_exceptions(at)
    assert "--train-images" in at.info[0].value


def test_compare_shows_the_calibration_delta_and_suspects_in_common(runs):
    ids, made, _ = runs
    comparison = compare_runs(made["map"], made["other"])
    at = open_app(COMPARE, a=ids["map"], b=ids["other"])
    no_exceptions(at)
    metrics = {m.label: m for m in at.metric}
    assert metrics["Calibration error A (ECE)"].value == f"{100 * comparison.ece_a:.1f} points"
    assert metrics["Calibration error B (ECE)"].value == f"{100 * comparison.ece_b:.1f} points"
    assert metrics["Calibration error B (ECE)"].delta == f"{100 * comparison.ece_delta:+.1f} points"
    assert metrics["Suspect labels in both"].value == "1"
    listed = [df.value for df in at.dataframe if list(df.value.columns) == ["file"]]
    assert list(listed[0]["file"]) == ["cat/img_1.png"]
