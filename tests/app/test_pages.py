"""Every page through Streamlit's AppTest: the demo end to end, selections, relabelling, links
by stored id (also on a "restarted server": a run stored by another process), errors."""

from __future__ import annotations

import io
from pathlib import Path
import zipfile

import numpy as np
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from gtpred_core.demo import DEMO_MODEL, demo_folder
from gtpred_core.store import RunStore

from gtpred_app.ui import state
from gtpred_app.ui.charts import CELL

from app_helpers import click_cell, no_exceptions, open_app, shown, stored_run, texts
from stored_runs import demo_runs, fresh_store

PAGES = ["gtpred_app/screens/evaluate.py", "gtpred_app/screens/results.py", "gtpred_app/screens/mispredictions.py", "gtpred_app/screens/class_mapping.py"]


def current_run(at):
    """The run the session shows: its stored id is in the session and in the URL."""
    assert at.query_params["run"] == str(at.session_state["run_id"])
    return stored_run(at.session_state["run_id"])


def chart_data(chart) -> "pd.DataFrame":  # noqa: F821
    (dataset,) = chart.proto.datasets
    return convert_arrow_bytes_to_pandas_df(dataset.data.data)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_launches_without_a_run(page):
    at = open_app(page)
    no_exceptions(at)
    if page != "gtpred_app/screens/evaluate.py":
        assert "evaluate a model first" in at.info[0].value


@pytest.mark.parametrize("page", PAGES)
def test_every_page_launches_with_the_demo_run(page, demo_run_id):
    at = open_app(page, run=demo_run_id)
    no_exceptions(at)
    assert at.title


def test_the_demo_runs_end_to_end_and_shows_the_class_order_trap(demo_app):
    at = demo_app
    assert at.title[0].value == "Results"  # the finished run opened Results by itself
    run = current_run(at)
    assert run.n_images == 797 and run.info.class_order_source == "keras"
    assert [m.value for m in at.metric][:3] == [f"{run.accuracy:.1%}", f"{run.metrics.top5_accuracy:.1%}", "797"]
    assert run.accuracy < 0.2
    assert "class order looks wrong" in at.warning[0].value
    assert f"Saved in the history as run #{at.session_state['run_id']}." in texts(at)


def test_the_suggested_order_relabels_without_inference_and_stores_a_new_run(demo_run_id):
    at = open_app("gtpred_app/screens/results.py", run=demo_run_id)
    before = current_run(at)
    at.button(key="relabel").click().run()
    no_exceptions(at)
    assert "job" not in at.session_state or at.session_state["job"] is None  # no evaluation started
    new_id = at.session_state["run_id"]
    assert new_id != int(demo_run_id) and at.query_params["run"] == str(new_id)
    after = current_run(at)  # loaded back from the store
    assert after.info.relabelled_from == int(demo_run_id)
    assert after.info.class_order_source == "suggested"
    assert after.class_names == before.suggested_class_order
    # The same predictions, bit for bit: only the names attached to the outputs moved.
    assert after.probabilities.tobytes() == before.probabilities.tobytes()
    assert list(after.y_pred) == list(before.y_pred) and after.paths == before.paths
    assert after.accuracy > 0.9
    assert at.metric[0].value == f"{after.accuracy:.1%}"
    assert not at.warning  # the mismatch warning is gone under the right order
    assert f"Re-labelled from run #{demo_run_id}" in at.success[0].value
    assert "no inference ran again" in at.success[0].value
    assert f"Saved in the history as run #{new_id}." in texts(at)
    at.button(key="undo_relabel").click().run()
    no_exceptions(at)
    assert at.query_params["run"] == demo_run_id
    assert at.metric[0].value == f"{before.accuracy:.1%}"


def test_a_confusion_cell_selection_shows_exactly_that_cells_images(demo_run_id):
    at = open_app("gtpred_app/screens/results.py", run=demo_run_id)
    run = current_run(at)
    at.session_state["confusion"] = {"selection": {CELL: [{"true": "Class_10", "predicted": "Class_9"}]}}
    at.run()
    no_exceptions(at)
    t, p = run.class_names.index("Class_10"), run.class_names.index("Class_9")
    expected = {run.paths[i] for i in np.flatnonzero((run.y_true == t) & (run.y_pred == p))}
    assert len(expected) > 10  # the trap: the zeros are read as the nines' output
    assert f"True Class_10, predicted Class_9: {len(expected):,} images" in texts(at)
    shown = []
    for page in range(1, int(at.number_input(key="cell_page-Class_10-Class_9").max) + 1):
        at.number_input(key="cell_page-Class_10-Class_9").set_value(page).run()
        (table,) = [df.value for df in at.dataframe if "thumbnail" in df.value.columns]
        shown += list(table["file"])
    assert sorted(shown) == sorted(expected)

    # A click on one of the cell's images (its thumbnail) opens it, and the address links to it.
    click_cell(at, f"cell_files-Class_10-Class_9-{page}", 0, "thumbnail")
    no_exceptions(at)
    rel = table["file"][0]
    assert at.query_params["file"] == rel and rel in [t.value for t in at.text]
    assert len(at.get("image")) == 1
    assert any(c.value.endswith(f"/results?run={demo_run_id}&file={rel}") for c in at.code)


@pytest.mark.parametrize("column", ["file", "thumbnail", "true", "confidence"])
def test_a_click_on_any_cell_of_a_row_opens_that_image_and_puts_it_in_the_url(demo_run_id, column):
    at = open_app("gtpred_app/screens/mispredictions.py", run=demo_run_id)
    run = current_run(at)
    table = at.dataframe[0].value
    assert list(table["confidence"]) == sorted(table["confidence"], reverse=True)
    click_cell(at, state.table_key(1), 3, column)
    no_exceptions(at)
    rel = table["file"][3]
    index = run.paths.index(rel)
    assert at.query_params["file"] == rel
    assert rel in [t.value for t in at.text]
    assert f"True class **{run.class_names[run.y_true[index]]}**" in texts(at)
    link = f"/mispredictions?run={demo_run_id}&file={rel}"
    assert any(c.value.startswith("http") and c.value.endswith(link) for c in at.code)
    assert len(at.get("image")) == 3  # the image, and under its maps for the predicted and true class
    (top,) = [chart_data(c) for c in at.get("vega_lite_chart")]
    expected = run.top_k(index, 5)
    assert list(top["class"]) == [name for name, _ in expected]
    assert list(top["probability"]) == pytest.approx([p for _, p in expected])


def test_the_rows_checkbox_still_opens_the_row(demo_run_id):
    at = open_app("gtpred_app/screens/mispredictions.py", run=demo_run_id)
    table = at.dataframe[0].value
    at.session_state[state.table_key(1)] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    at.run()
    assert at.query_params["file"] == table["file"][2]


def test_a_link_with_a_file_opens_that_misprediction(demo_run_id):
    rel = stored_run(demo_run_id).mispredictions()["file"].iloc[-1]  # the least confident: not on page 1
    at = open_app("gtpred_app/screens/mispredictions.py", run=demo_run_id, file=rel)
    no_exceptions(at)
    assert rel in [t.value for t in at.text] and len(at.get("image")) == 3  # the image, then where the model looked for each class


def test_a_link_opens_a_run_stored_by_another_process_as_on_a_restarted_server(tmp_path, monkeypatch):
    """The run was never in this app's memory: it was stored by another process (here, the test
    writes the store file directly), as happens when the server restarts between the link being
    copied and being opened."""
    store = fresh_store(tmp_path, monkeypatch)
    keras_run, _ = demo_runs()
    run_id = store.save(keras_run, "stored elsewhere")
    rel = keras_run.mispredictions()["file"].iloc[5]
    at = open_app("gtpred_app/screens/mispredictions.py", run=str(run_id), file=rel)
    no_exceptions(at)
    assert at.title[0].value == "Mispredictions"
    assert f"{int((~keras_run.correct).sum()):,} of 797 images are predicted wrong" in texts(at)
    assert rel in [t.value for t in at.text] and len(at.get("image")) == 3  # the image and its two saliency maps
    index = keras_run.paths.index(rel)
    assert f"predicted **{keras_run.class_names[keras_run.y_pred[index]]}**" in texts(at)
    for page in ("gtpred_app/screens/results.py", "gtpred_app/screens/class_mapping.py"):
        other = open_app(page, run=str(run_id))
        no_exceptions(other)
        assert f"Saved in the history as run #{run_id}." in texts(other)


def test_a_link_to_a_deleted_run_says_so_and_how_to_get_results(tmp_path, monkeypatch):
    store = fresh_store(tmp_path, monkeypatch)
    run_id = store.save(demo_runs()[0], "soon gone")
    store.delete(run_id)
    at = open_app("gtpred_app/screens/mispredictions.py", run=str(run_id), file="Class_1/x.png")
    no_exceptions(at)
    (warning,) = [w.value for w in at.warning]
    assert f"#{run_id}" in warning and "deleted" in warning
    assert "restored" in warning or "Evaluate the model again" in warning
    assert not at.get("image") and not at.dataframe


def test_filters_and_gallery(demo_run_id):
    at = open_app("gtpred_app/screens/mispredictions.py", run=demo_run_id)
    at.multiselect(key="filter_true").select("Class_10").run()
    table = at.dataframe[0].value
    assert set(table["true"]) == {"Class_10"}
    at.button_group(key="mis_view").set_value("Gallery").run()
    no_exceptions(at)
    assert not at.dataframe and len(at.get("image")) == len(table)
    at.button(key=f"open-{stored_run(demo_run_id).file_position(table['file'][1])}").click().run()
    no_exceptions(at)
    assert at.query_params["file"] == table["file"][1]
    assert len(at.get("image")) == len(table) + 3  # the gallery, the opened image and its two maps


def test_class_mapping_highlights_the_classes_whose_index_differs(demo_run_id):
    at = open_app("gtpred_app/screens/class_mapping.py", run=demo_run_id)
    no_exceptions(at)
    assert "9 of 10 classes get a different index" in at.warning[0].value
    assert {b.label for b in at.get("download_button")} == {"class_indices.json", "labels.txt"}


def test_a_link_with_a_run_that_is_not_a_number_says_so():
    at = open_app("gtpred_app/screens/results.py", run="no-such-run")
    no_exceptions(at)
    assert "names no stored run" in at.warning[0].value and "'no-such-run'" in shown(at.warning[0].value)


def test_a_run_the_store_cannot_save_stays_in_the_session_without_a_link(tmp_path, monkeypatch):
    monkeypatch.setenv("GTPRED_DB", str(tmp_path))  # a folder: SQLite cannot open it
    at = open_app()
    at.button(key="run_demo").click().run()
    no_exceptions(at)
    assert at.title[0].value == "Results" and at.metric[2].value == "797"
    assert "run" not in at.query_params and at.session_state["run_id"] is None
    assert "Not saved in the history" in " ".join(w.value for w in at.warning)
    assert not at.code  # no link: the run has no stored id
    at.switch_page("gtpred_app/screens/mispredictions.py").run()  # it survives a page switch
    no_exceptions(at)
    assert at.title[0].value == "Mispredictions" and at.dataframe
    # Re-labelling it cannot be stored either: shown all the same, still in this session only.
    at.switch_page("gtpred_app/screens/results.py").run()
    at.button(key="relabel").click().run()
    no_exceptions(at)
    assert float(at.metric[0].value.rstrip("%")) > 90
    assert "Not saved in the history" in " ".join(w.value for w in at.warning)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def test_bad_uploads_show_a_message_with_the_fix_never_a_traceback():
    at = open_app()
    at.file_uploader(key="model_upload").upload("broken.keras", b"this is not a model", "application/octet-stream")
    at.radio(key="images_source").set_value("Upload a .zip")
    at.run()
    at.file_uploader(key="images_zip").upload("val.zip", _zip({"../evil.png": b"x"}), "application/zip").run()
    no_exceptions(at)
    errors = [shown(e.value) for e in at.error]
    assert any("broken.keras is not a Keras model file (it is a text file)" in e and "How to fix it" in e for e in errors), errors
    assert any("'..'" in e and "How to fix it" in e for e in errors), errors
    assert at.button(key="run").disabled


def test_an_uploaded_savedmodel_is_refused_unless_the_server_allows_it(monkeypatch):
    monkeypatch.delenv("GTPRED_ALLOW_SAVEDMODEL", raising=False)
    at = open_app()
    bundle = _zip({"sm/saved_model.pb": b"graph", "sm/variables/variables.index": b""})
    at.file_uploader(key="model_upload").upload("sm.zip", bundle, "application/zip").run()
    no_exceptions(at)
    (error,) = [shown(e.value) for e in at.error]
    assert "does not accept uploaded TF SavedModels" in error and "GTPRED_ALLOW_SAVEDMODEL=1" in error


def _evaluate_with_uploads() -> tuple[AppTest, list]:
    """Evaluate opened with the demo model and about 100 demo images (all 10 classes) uploaded as
    a person would: the model file, then "Upload a .zip" and the zip (class order left to set)."""
    images = sorted(demo_folder().rglob("*.png"))[::8]
    bundle = _zip({f"val/{p.parent.name}/{p.name}": p.read_bytes() for p in images})
    at = open_app()
    at.file_uploader(key="model_upload").upload("digits.keras", DEMO_MODEL.read_bytes(), "application/octet-stream")
    at.radio(key="images_source").set_value("Upload a .zip")
    at.run()
    at.file_uploader(key="images_zip").upload("val.zip", bundle, "application/zip")
    return at, images


def test_uploads_evaluate_end_to_end_and_a_wrong_labels_file_is_explained():
    at, images = _evaluate_with_uploads()
    at.radio(key="class_order").set_value("file")
    at.run()
    at.file_uploader(key="labels_upload").upload("labels.txt", b"cat\ndog\n", "text/plain").run()
    no_exceptions(at)
    (error,) = [e.value for e in at.error]
    assert "does not match the image folder" in error and "How to fix it" in error
    assert at.button(key="run").disabled

    at.radio(key="class_order").set_value("natural").run()
    no_exceptions(at)
    assert not at.error
    assert f"{len(images)} images in 10 classes" in " ".join(m.value for m in at.markdown)
    assert "outputs **10** values per image" in " ".join(m.value for m in at.markdown)
    at.button(key="run").click().run()
    no_exceptions(at)
    run = current_run(at)
    assert at.title[0].value == "Results"
    assert run.n_images == len(images) and run.info.class_order_source == "natural"
    assert run.accuracy > 0.8


def test_two_models_run_in_one_pass_and_open_on_compare(tmp_path):
    """A second model on the same images: one click evaluates both (one decode) and Compare opens
    with the two stored runs, each the run its model gives alone."""
    import keras

    from gtpred_core import evaluate_folder, predictions_csv

    other = keras.saving.load_model(DEMO_MODEL, compile=False)
    rng = np.random.default_rng(0)
    other.set_weights([w + 0.05 * rng.standard_normal(w.shape).astype(w.dtype) for w in other.get_weights()])
    other.save(tmp_path / "noisy.keras")

    at, images = _evaluate_with_uploads()
    at.radio(key="class_order").set_value("natural")
    at.toggle(key="two_models").set_value(True)
    at.run()
    no_exceptions(at)
    assert at.button(key="run").label == "Run both and compare" and at.button(key="run").disabled
    assert any("Choose the second model" in i.value for i in at.info)

    noisy = (tmp_path / "noisy.keras").read_bytes()
    at.file_uploader(key="second_model_upload").upload("noisy.keras", noisy, "application/octet-stream").run()
    no_exceptions(at)
    assert not at.button(key="run").disabled
    at.button(key="run").click().run()
    no_exceptions(at)
    assert at.title[0].value == "Compare two runs"
    run_a, run_b = stored_run(at.query_params["a"]), stored_run(at.query_params["b"])
    assert run_a.n_images == run_b.n_images == len(images)
    assert run_a.info.model.endswith(".keras") and run_a.info.model != run_b.info.model
    folder = Path(run_a.info.images)
    assert predictions_csv(run_a) == predictions_csv(evaluate_folder(DEMO_MODEL, folder, class_order="natural"))
    assert predictions_csv(run_b) == predictions_csv(evaluate_folder(tmp_path / "noisy.keras", folder, class_order="natural"))
    assert predictions_csv(run_a) != predictions_csv(run_b)


def test_the_backend_choice_is_offered_with_local_as_default():
    at = open_app("gtpred_app/screens/evaluate.py")
    no_exceptions(at)
    backend = at.radio(key="backend")
    assert list(backend.options) == ["local", "ray"] and backend.value == "local"


def test_copied_links_include_the_servers_base_url_path(demo_run_id):
    from streamlit import config

    before = config.get_option("server.baseUrlPath")
    config.set_option("server.baseUrlPath", "tools/gtpred")
    try:
        at = open_app("gtpred_app/screens/results.py", run=demo_run_id)
    finally:
        config.set_option("server.baseUrlPath", before)
    no_exceptions(at)
    (link,) = [c.value for c in at.code]
    assert link.startswith("http") and link.endswith(f"/tools/gtpred/results?run={demo_run_id}")
