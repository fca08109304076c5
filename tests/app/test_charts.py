"""The app's charts as Vega-Lite specs (``chart.to_dict()``): sizes, labels, legend and rows, at the
class counts people have (10 and 100). What they look like is checked in a real browser in
tests/browser/test_many_classes.py."""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd
import pytest

from gtpred_app.ui import charts
from gtpred_core import RunInfo, assemble_run


def _run(n_classes: int, per_class: int = 6, seed: int = 0):
    """A run over ``n_classes`` classes with long and short names, about 1 in 6 predictions wrong."""
    rng = np.random.default_rng(seed)
    names = tuple(f"{k:03d}_{'great_grey_owl_strix_nebulosa' if k % 7 == 0 else 'jay'}" for k in range(n_classes))
    y_true = np.repeat(np.arange(n_classes), per_class)
    y_pred = y_true.copy()
    wrong = rng.random(len(y_true)) < 1 / 6
    y_pred[wrong] = (y_true[wrong] + 1) % n_classes
    probabilities = np.full((len(y_true), n_classes), 0.1 / max(1, n_classes - 1), dtype=np.float32)
    probabilities[np.arange(len(y_true)), y_pred] = 0.9
    return assemble_run(
        class_names=names,
        paths=[f"{names[t]}/img_{i}.png" for i, t in enumerate(y_true)],
        y_true=y_true,
        y_pred=y_pred,
        probabilities=probabilities,
        info=RunInfo(model="m.keras", images="images"),
    )


def _spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec with its data inline. Streamlit sends the data apart (as Arrow),
    without Altair's 5,000-row limit, which a 100-class matrix (10,000 cells) passes."""
    with alt.data_transformers.disable_max_rows():
        return chart.to_dict()


def _layers(spec: dict) -> dict[str, dict]:
    return {layer["mark"]["type"]: layer for layer in spec["layer"]}


@pytest.mark.parametrize("n_classes", [10, 100])
def test_the_confusion_matrix_grows_with_the_classes_and_its_labels_never_overlap(n_classes):
    run = _run(n_classes)
    spec = _spec(charts.confusion_heatmap(run.confusion_cells(), run.class_names))

    step = charts.matrix_cell_size(n_classes)
    assert spec["width"] == {"step": step} and spec["height"] == {"step": step}
    assert charts.MIN_CELL <= step <= charts.MAX_CELL
    # 10 classes: roomy 34 px cells (340 px); 100 classes: 22 px cells, a 2,200 px matrix.
    assert step * n_classes == {10: 340, 100: 2200}[n_classes]

    rect = _layers(spec)["rect"]["encoding"]
    for channel in ("x", "y"):
        axis = rect[channel]["axis"]
        assert rect[channel]["sort"] == list(run.class_names)  # every class, in the order in use
        assert axis["labelOverlap"] is False  # one label per cell, none dropped
        assert axis["labelLimit"] == charts.LABEL_LIMIT  # long names end in "…"
        assert axis["labelFontSize"] < step  # a row's label is no taller than its row
    # Column labels are turned 45°, ending at their column (nothing sticks out right of the
    # matrix): along the axis a label takes font size × √2, less than a cell.
    x_axis = rect["x"]["axis"]
    assert (x_axis["labelAngle"], x_axis["labelAlign"]) == (45, "right")
    assert x_axis["labelFontSize"] * math.sqrt(2) < step

    text = _layers(spec)["text"]
    assert text["mark"]["fontSize"] <= step - 8  # a count fits inside its cell


def test_a_matrix_of_100_classes_is_taller_than_its_frame_and_one_of_10_is_not():
    """The page draws the matrix in a frame ``matrix_height`` tall, at most ``MATRIX_FRAME_MAX``:
    10 classes fit (no scrolling), 100 scroll. (The browser test checks the estimate is not short.)"""
    ten, hundred = _run(10).class_names, _run(100).class_names
    assert 340 + 100 < charts.matrix_height(ten) < charts.MATRIX_FRAME_MAX
    assert charts.matrix_height(hundred) > 2200 > charts.MATRIX_FRAME_MAX
    # short names need less room above the matrix than long ones, which are cut at LABEL_LIMIT
    short, long, longer = ([f"{k}{'x' * size}" for k in range(20)] for size in (2, 30, 90))
    assert charts.matrix_height(short) < charts.matrix_height(long) == charts.matrix_height(longer)
    # a few classes: the legend is the tallest part
    assert charts.matrix_height(["a", "b"]) >= 220  # its 160 px gradient and two-line title


def test_the_matrix_legend_sits_left_where_tooltips_never_open():
    """A tooltip opens right of and below the pointer, over the cells: a legend on the left (not
    right, top or bottom, where the pointer's tooltip reaches) is never covered."""
    run = _run(10)
    rect = _layers(_spec(charts.confusion_heatmap(run.confusion_cells(), run.class_names)))["rect"]
    color = rect["encoding"]["color"]
    assert color["legend"]["orient"] == "left"
    assert color["field"] == "share"
    assert [t["title"] for t in rect["encoding"]["tooltip"]] == ["True", "Predicted", "Images", "Share of true class"]


def test_empty_cells_are_near_white_so_the_few_mistakes_stand_out():
    run = _run(100)
    color = _layers(_spec(charts.confusion_heatmap(run.confusion_cells(), run.class_names)))["rect"]["encoding"]["color"]
    assert color["condition"] == {"test": "datum.count == 0", "value": charts.EMPTY_CELL}


def test_the_confusion_difference_is_sized_and_labelled_like_the_matrix():
    names = [f"{k:03d}_jay" for k in range(100)]
    cells = pd.DataFrame(
        [{"true": t, "predicted": p, "count_a": 0, "count_b": 0, "delta": 0} for t in names for p in names]
    )
    spec = _spec(charts.confusion_delta_heatmap(cells, names))
    assert spec["width"] == {"step": charts.matrix_cell_size(100)}
    rect = _layers(spec)["rect"]["encoding"]
    assert rect["x"]["axis"]["labelOverlap"] is False and rect["color"]["legend"]["orient"] == "left"


def test_wrong_predictions_get_their_own_row_and_scale_next_to_many_right_ones():
    """700 right and 3 wrong predictions: on one stacked scale the 3 would be a sliver; in their
    own row, on their own y scale, they are as tall as the chart."""
    n_classes = 10
    y_true = np.arange(703) % n_classes
    y_pred = y_true.copy()
    y_pred[700:] = (y_true[700:] + 1) % n_classes
    confidence = np.concatenate([np.full(700, 0.97), [0.96, 0.97, 0.55]])
    probabilities = np.repeat(((1 - confidence) / (n_classes - 1))[:, None], n_classes, axis=1)
    probabilities[np.arange(703), y_pred] = confidence
    run = assemble_run(
        class_names=[f"c{k}" for k in range(n_classes)],
        paths=[f"c{t}/{i}.png" for i, t in enumerate(y_true)],
        y_true=y_true,
        y_pred=y_pred,
        probabilities=probabilities,
    )
    spec = _spec(charts.confidence_histogram(run.confidence_histogram()))

    assert spec["facet"]["row"]["field"] == "outcome"
    assert spec["facet"]["row"]["sort"] == ["wrong", "right"]  # the mistakes first
    assert spec["resolve"]["scale"]["y"] == "independent"
    encoding = spec["spec"]["encoding"]
    assert "stack" not in encoding["y"]
    assert encoding["color"]["scale"] == {"domain": ["wrong", "right"], "range": [charts.WRONG, charts.RIGHT]}
    data = next(iter(spec["datasets"].values()))
    wrong = [row["count"] for row in data if row["outcome"] == "wrong"]
    right = [row["count"] for row in data if row["outcome"] == "right"]
    assert sum(wrong) == 3 and wrong[-1] == 2 and wrong[11] == 1  # every mistake is in its row's data
    assert sum(right) == 700
