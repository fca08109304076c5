"""Every page through Streamlit's AppTest: the demo end to end, selections, relabelling, errors."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

from gtpred_core import views
from gtpred_core.demo import DEMO_MODEL, demo_folder

from gtpred_app.ui import state
from gtpred_app.ui.charts import CELL

from app_helpers import no_exceptions, open_app

PAGES = ["gtpred_app/screens/evaluate.py", "gtpred_app/screens/results.py", "gtpred_app/screens/mispredictions.py", "gtpred_app/screens/class_mapping.py"]


def current_run(at):
    return state.run_registry().get(at.session_state["run_id"])


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
    assert at.query_params["run"] == at.session_state["run_id"]


def test_the_suggested_order_relabels_without_running_inference_again(demo_run_id):
    at = open_app("gtpred_app/screens/results.py", run=demo_run_id)
    before = current_run(at)
    at.button(key="relabel").click().run()
    no_exceptions(at)
    after = current_run(at)
    assert after is not before
    assert after.info.class_order_source == "suggested"
    assert after.class_names == before.suggested_class_order
    # The same prediction arrays, not recomputed ones: no inference ran.
    assert after.probabilities is before.probabilities and after.y_pred is before.y_pred
    assert after.accuracy > 0.9
    assert at.metric[0].value == f"{after.accuracy:.1%}"
    assert not at.warning  # the mismatch warning is gone under the right order
    assert "no inference ran again" in at.success[0].value
    at.button(key="undo_relabel").click().run()
    assert current_run(at) is before


def test_a_confusion_cell_selection_shows_exactly_that_cells_images(demo_run_id):
    at = open_app("gtpred_app/screens/results.py", run=demo_run_id)
    run = current_run(at)
    at.session_state["confusion"] = {"selection": {CELL: [{"true": "Class_10", "predicted": "Class_9"}]}}
    at.run()
    no_exceptions(at)
    t, p = run.class_names.index("Class_10"), run.class_names.index("Class_9")
    expected = {run.paths[i] for i in np.flatnonzero((run.y_true == t) & (run.y_pred == p))}
    assert len(expected) > 10  # the trap: the zeros are read as the nines' output
    assert f"True Class_10, predicted Class_9: {len(expected):,} images" in " ".join(m.value for m in at.markdown)
    shown = []
    for page in range(1, int(at.number_input(key="cell_page-Class_10-Class_9").max) + 1):
        at.number_input(key="cell_page-Class_10-Class_9").set_value(page).run()
        (table,) = [df.value for df in at.dataframe if "thumbnail" in df.value.columns]
        shown += list(table["file"])
    assert sorted(shown) == sorted(expected)


def test_a_row_click_opens_that_image_with_its_probabilities_and_puts_it_in_the_url(demo_run_id):
    at = open_app("gtpred_app/screens/mispredictions.py", run=demo_run_id)
    run = current_run(at)
    table = at.dataframe[0].value
    assert list(table["confidence"]) == sorted(table["confidence"], reverse=True)
    at.session_state[state.table_key(1)] = {"selection": {"rows": [3], "columns": []}}
    at.run()
    no_exceptions(at)
    rel = table["file"][3]
    index = run.paths.index(rel)
    assert at.query_params["file"] == rel
    text = " ".join(m.value for m in at.markdown)
    assert f"**{rel}**" in text
    assert f"True class **{run.class_names[run.y_true[index]]}**" in text
    assert len(at.get("image")) == 1
    (top,) = [chart_data(c) for c in at.get("vega_lite_chart")]
    expected = run.top_k(index, 5)
    assert list(top["class"]) == [name for name, _ in expected]
    assert list(top["probability"]) == pytest.approx([p for _, p in expected])


def test_a_link_with_a_file_opens_that_misprediction(demo_run_id):
    run = state.run_registry().get(demo_run_id)
    rel = views.mispredictions_table(run)["file"].iloc[-1]  # the least confident: not on page 1
    at = open_app("gtpred_app/screens/mispredictions.py", run=demo_run_id, file=rel)
    no_exceptions(at)
    assert f"**{rel}**" in " ".join(m.value for m in at.markdown)


def test_filters_and_gallery(demo_run_id):
    at = open_app("gtpred_app/screens/mispredictions.py", run=demo_run_id)
    at.multiselect(key="filter_true").select("Class_10").run()
    table = at.dataframe[0].value
    assert set(table["true"]) == {"Class_10"}
    at.button_group(key="mis_view").set_value("Gallery").run()
    no_exceptions(at)
    assert not at.dataframe and len(at.get("image")) == len(table)


def test_class_mapping_highlights_the_classes_whose_index_differs(demo_run_id):
    at = open_app("gtpred_app/screens/class_mapping.py", run=demo_run_id)
    no_exceptions(at)
    assert "9 of 10 classes get a different index" in at.warning[0].value
    assert {b.label for b in at.get("download_button")} == {"class_indices.json", "labels.txt"}


def test_a_stale_run_link_says_so():
    at = open_app("gtpred_app/screens/results.py", run="no-such-run")
    no_exceptions(at)
    assert "no longer holds" in at.warning[0].value


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
    errors = [e.value for e in at.error]
    assert any("broken.keras is not a Keras model file (it is a text file)" in e and "How to fix it" in e for e in errors), errors
    assert any("'..'" in e and "How to fix it" in e for e in errors), errors
    assert at.button(key="run").disabled


def test_an_uploaded_savedmodel_is_refused_unless_the_server_allows_it(monkeypatch):
    monkeypatch.delenv("GTPRED_ALLOW_SAVEDMODEL", raising=False)
    at = open_app()
    bundle = _zip({"sm/saved_model.pb": b"graph", "sm/variables/variables.index": b""})
    at.file_uploader(key="model_upload").upload("sm.zip", bundle, "application/zip").run()
    no_exceptions(at)
    (error,) = [e.value for e in at.error]
    assert "does not accept uploaded TF SavedModels" in error and "GTPRED_ALLOW_SAVEDMODEL=1" in error


def test_uploads_evaluate_end_to_end_and_a_wrong_labels_file_is_explained():
    images = sorted(demo_folder().rglob("*.png"))[::8]  # about 100 images, all 10 classes
    bundle = _zip({f"val/{p.parent.name}/{p.name}": p.read_bytes() for p in images})
    at = open_app()
    at.file_uploader(key="model_upload").upload("digits.keras", DEMO_MODEL.read_bytes(), "application/octet-stream")
    at.radio(key="images_source").set_value("Upload a .zip")
    at.run()
    at.file_uploader(key="images_zip").upload("val.zip", bundle, "application/zip")
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


def test_the_backend_choice_is_offered_with_local_as_default():
    at = open_app("gtpred_app/screens/evaluate.py")
    no_exceptions(at)
    backend = at.radio(key="backend")
    assert list(backend.options) == ["local", "ray"] and backend.value == "local"
