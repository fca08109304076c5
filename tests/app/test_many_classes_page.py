"""The Results page on a run with many classes (200): the top confusions, the class picker and
the matrix of the chosen classes instead of a 40,000-cell matrix, each click opening its images.

The run is built with ``assemble_run`` over real PNG files (6 per class) with mistakes placed by
hand, stored in a fresh run store and opened by its link (``?run=``), as the app opens any run.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

from gtpred_core import RunInfo, assemble_run

from gtpred_app.ui.charts import CELL

from app_helpers import click_cell, no_exceptions, open_app, texts
from stored_runs import fresh_store

RESULTS = "gtpred_app/screens/results.py"
N_CLASSES, PER_CLASS = 200, 6
NAMES = tuple(f"class_{k:03d}" for k in range(N_CLASSES))
# (true, predicted, how many images): three big confusions, then ten single mistakes.
MISTAKES = [(10, 20, 4), (30, 40, 3), (50, 60, 2)] + [(100 + k, 150 + k, 1) for k in range(10)]


@pytest.fixture
def many_classes_run(tmp_path, monkeypatch):
    """(stored run id, run): 1,200 real PNGs in 200 class folders, the ``MISTAKES`` wrong."""
    images = tmp_path / "images"
    y_true = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    y_pred = y_true.copy()
    for true, predicted, count in MISTAKES:
        first = true * PER_CLASS
        y_pred[first : first + count] = predicted
    rng = np.random.default_rng(0)
    paths = []
    for i, k in enumerate(y_true):
        rel = f"{NAMES[k]}/img_{i:04d}.png"
        (images / NAMES[k]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, size=(8, 8), dtype=np.uint8), mode="L").save(images / rel)
        paths.append(rel)
    probabilities = np.full((len(y_true), N_CLASSES), 0.1 / (N_CLASSES - 1), dtype=np.float32)
    probabilities[np.arange(len(y_true)), y_pred] = np.linspace(0.5, 0.9, len(y_true), dtype=np.float32)
    info = RunInfo(model="many.keras", images=str(images), folder_classes=NAMES, class_counts=(PER_CLASS,) * N_CLASSES)
    run = assemble_run(class_names=NAMES, paths=paths, y_true=y_true, y_pred=y_pred, probabilities=probabilities, info=info)
    return str(fresh_store(tmp_path, monkeypatch).save(run, "200 classes")), run


def files_of(true: int, predicted: int) -> set[str]:
    first = true * PER_CLASS
    if true == predicted:
        count = next((c for t, _, c in MISTAKES if t == true), 0)
        return {f"{NAMES[true]}/img_{i:04d}.png" for i in range(first + count, first + PER_CLASS)}
    count = next(c for t, p, c in MISTAKES if (t, p) == (true, predicted))
    return {f"{NAMES[true]}/img_{i:04d}.png" for i in range(first, first + count)}


def shown_files(at) -> set[str]:
    (table,) = [df.value for df in at.dataframe if "thumbnail" in df.value.columns]
    return set(table["file"])


def matrix_cells(at):
    """The restricted matrix's data, as the chart draws it (rows = true, columns = predicted)."""
    (cells,) = [
        convert_arrow_bytes_to_pandas_df(d.data.data)
        for chart in at.get("vega_lite_chart")
        for d in chart.proto.datasets
        if '"name": "cell"' in chart.proto.spec
    ]
    return cells


def test_many_classes_show_top_confusions_a_picker_and_the_chosen_classes_matrix(many_classes_run):
    run_id, run = many_classes_run
    at = open_app(RESULTS, run=run_id)
    no_exceptions(at)
    assert "200 classes: too many for one matrix" in texts(at)

    # The top confusions: most first, ties in class order.
    top = at.dataframe(key="confusion-top").value
    expected = [(NAMES[t], NAMES[p], c) for t, p, c in MISTAKES]
    assert list(zip(top["true"], top["predicted"], top["images"])) == expected

    # The picker starts with the top confusions' classes, each once, at most 15.
    picker = at.multiselect(key="confusion-classes")
    default = ["class_010", "class_020", "class_030", "class_040", "class_050", "class_060"]
    default += ["class_100", "class_150", "class_101", "class_151", "class_102", "class_152", "class_103", "class_153", "class_104"]
    assert picker.value == default
    assert len(picker.options) == N_CLASSES

    # The matrix has those rows, those columns and "(other)"; each row sums to its class's images.
    cells = matrix_cells(at)
    assert set(cells["true"]) == set(default) and set(cells["predicted"]) == set(default) | {"(other)"}
    count = {(t, p): c for t, p, c in zip(cells["true"], cells["predicted"], cells["count"])}
    assert count[("class_010", "class_020")] == 4 and count[("class_010", "class_010")] == 2
    assert count[("class_104", "(other)")] == 1  # class_154 was not chosen
    assert count[("class_020", "class_010")] == 0
    assert all(sum(count[(t, p)] for p in set(default) | {"(other)"}) == PER_CLASS for t in default)

    # Choosing other classes redraws the matrix over them alone.
    picker.set_value(["class_030", "class_040", "class_199"]).run()
    no_exceptions(at)
    cells = matrix_cells(at)
    assert len(cells) == 3 * 4
    count = {(t, p): c for t, p, c in zip(cells["true"], cells["predicted"], cells["count"])}
    assert count[("class_030", "class_040")] == 3 and count[("class_199", "class_199")] == PER_CLASS


def test_a_top_confusion_row_and_a_matrix_cell_open_their_images(many_classes_run):
    run_id, run = many_classes_run
    at = open_app(RESULTS, run=run_id)
    assert "Click a cell of the matrix" in " ".join(i.value for i in at.info)

    click_cell(at, "confusion-top", 1, "true")  # class_030 -> class_040
    no_exceptions(at)
    assert "True class_030, predicted class_040: 3 images (50% of the 6 images of class_030)" in texts(at)
    assert shown_files(at) == files_of(30, 40)

    # A click on a matrix cell then shows that cell instead: the last click wins.
    at.session_state["confusion"] = {"selection": {CELL: [{"true": "class_010", "predicted": "class_010"}]}}
    at.run()
    no_exceptions(at)
    assert "True class_010, predicted class_010: 2 images" in texts(at)
    assert shown_files(at) == files_of(10, 10)

    # The "(other)" column: class_104's image predicted as class_154, a class not chosen.
    at.session_state["confusion"] = {"selection": {CELL: [{"true": "class_104", "predicted": "(other)"}]}}
    at.run()
    no_exceptions(at)
    assert "True class_104, predicted (other): 1 images" in texts(at)
    assert shown_files(at) == files_of(104, 154)

    # ...and a click on one of its images opens it, with a link to it.
    click_cell(at, "cell_files-class_104-(other)-1", 0, "file")
    no_exceptions(at)
    rel = f"class_104/img_{104 * PER_CLASS:04d}.png"
    assert at.query_params["file"] == rel and rel in [t.value for t in at.text]
    assert "True class **class\\_104** · predicted **class\\_154**" in " ".join(m.value for m in at.markdown)

    # A row clicked again after the matrix: the list answers again.
    click_cell(at, "confusion-top", 0, "images")
    no_exceptions(at)
    assert shown_files(at) == files_of(10, 20)
