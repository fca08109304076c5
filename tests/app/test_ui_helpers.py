"""The app's presentation helpers that need no session: thumbnails and enlarged images, paging,
the history table, and the addresses people share (with hostile file names)."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image

from gtpred_core import RunInfo, assemble_run

from gtpred_app.ui import images, links, tables

CLASSES = ("cat", "dog", "fox")


@pytest.fixture()
def run(tmp_path):
    """Six real 8x8 image files, three of them predicted wrong."""
    paths = ["cat/a.png", "cat/b.png", "cat/c.png", "dog/d.png", "dog/e.png", "fox/f.png"]
    for i, name in enumerate(paths):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("L", (8, 8), color=i * 40).save(tmp_path / name)
    y_pred = np.array([0, 1, 1, 1, 0, 2])
    return assemble_run(
        class_names=CLASSES,
        paths=paths,
        y_true=np.array([0, 0, 0, 1, 1, 2]),
        y_pred=y_pred,
        probabilities=np.eye(3, dtype=np.float32)[y_pred] * 0.7 + 0.1,
        info=RunInfo(images=str(tmp_path)),
    )


def test_thumbnails_are_png_data_uris_made_once_and_remade_when_the_file_changes(run, tmp_path):
    path = tmp_path / "cat/a.png"
    first = images.thumbnail_data_uri(path, side=32)
    assert first.startswith("data:image/png;base64,")
    hits = images._thumbnail.cache_info().hits
    assert images.thumbnail_data_uri(path, side=32) == first
    assert images._thumbnail.cache_info().hits == hits + 1
    Image.new("L", (8, 8), color=255).save(path)
    os.utime(path, ns=(1, 10**18))  # a new mtime: the cache key changes
    assert images.thumbnail_data_uri(path, side=32) != first
    assert images.thumbnail_data_uri(tmp_path / "missing.png") is None
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert images.thumbnail_data_uri(tmp_path / "broken.png") is None


def test_with_thumbnails_only_makes_the_rows_given(run):
    page = tables.page_of(run.mispredictions(), 1, 2)
    shown = images.with_thumbnails(page, run.info.images, side=16)
    assert list(shown.columns)[0] == "thumbnail" and len(shown) == 2
    assert all(uri.startswith("data:image/png") for uri in shown["thumbnail"])


def test_enlarged_image_scales_small_images_up_with_hard_pixels(run):
    image = images.enlarged_image(run.image_path("cat/a.png"), min_side=64)
    assert image.size == (64, 64)
    assert set(np.asarray(image).ravel()) == {0}  # nearest neighbour: no blurred in-between grey


def test_paging_clamps_and_resets_the_index(run):
    table = run.mispredictions()
    assert tables.page_count(len(table), 2) == 2
    assert list(tables.page_of(table, 2, 2)["file"]) == ["dog/e.png"]
    assert list(tables.page_of(table, 99, 2).index) == [0]
    assert tables.page_count(0, 25) == 1


def test_history_table_has_the_key_numbers_newest_first_short_names_and_utc_dates(tmp_path, run):
    from dataclasses import replace

    from gtpred_core.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite3")
    first = store.save(replace(run, info=replace(run.info, created_at="2025-11-23T20:05:11+00:00")), "first")
    second = store.save(replace(run, info=replace(run.info, model="/models/secret/m.keras")), "second")
    table = tables.history_table(store.list())
    assert list(table.columns) == list(tables.HISTORY_COLUMNS)
    assert list(table["id"]) == [second, first]
    row = table.iloc[0]
    assert row["name"] == "second" and row["status"] == "complete" and row["model"] == "m.keras"
    assert row["n_images"] == 6 and row["accuracy"] == pytest.approx(3 / 6) and row["images"] == tmp_path.name
    assert table.iloc[1]["created"] == "2025-11-23 20:05 UTC"
    assert tables.history_table([]).empty


@pytest.mark.parametrize(
    "name",
    ["Class_3/img 7.png", "cats & dogs/a+b=c #1?.png", "ünïcödé/100%.jpg", "x/=HYPERLINK(\"http:evil\").png"],
)
def test_a_link_carries_any_file_name_encoded_and_reads_back_exactly(name):
    url = links.build_url("https://ml.example.org", "/gtpred/", "mispredictions", {"run": 12, "file": name})
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "ml.example.org", "/gtpred/mispredictions")
    assert parse_qs(parts.query) == {"run": ["12"], "file": [name]}
    assert " " not in url and "#" not in url.split("?", 1)[1] and url.count("&") == 1


def test_links_use_the_base_path_and_the_default_screen_has_no_path():
    assert links.build_url("http://h:8501", "", "results", {"run": 3}) == "http://h:8501/results?run=3"
    assert links.build_url("http://h:8501/", "", "evaluate") == "http://h:8501/"
    assert links.build_url("http://h", "a/b", "compare", {"a": 1, "b": 2, "file": None}) == "http://h/a/b/compare?a=1&b=2"
    with pytest.raises(ValueError, match="no screen named 'nope'"):
        links.url_path("nope")
