"""Altair charts drawn from the tables of ``Run``, ``RunComparison`` and ``TrainingHistory`` (which hold all the arithmetic)."""

from __future__ import annotations

import math
from typing import Sequence

import altair as alt
import pandas as pd

#: The selection parameter of the confusion heatmap: ``event["selection"][CELL]``.
CELL = "cell"

RIGHT, WRONG, OTHER = "#2e7d32", "#c62828", "#90a4ae"
EMPTY_CELL = "#f4f6f8"


#: Pixels per confusion-matrix cell: roomy for a few classes (10 classes fit beside the list of
#: a cell's images on a laptop screen), never below ``MIN_CELL`` (counts and labels readable; at
#: 100 classes a 2,200 px matrix, in a frame that scrolls).
MAX_CELL, MIN_CELL = 34, 22
#: Axis labels longer than this many pixels end in "…" (the tooltip has the full name).
LABEL_LIMIT = 140
#: The tallest the matrix's frame gets; a taller matrix scrolls inside it.
MATRIX_FRAME_MAX = 760


def matrix_cell_size(n_classes: int) -> int:
    """Side of one cell in pixels: the matrix fills about 520 px, cells stay between
    ``MIN_CELL`` and ``MAX_CELL``."""
    return max(MIN_CELL, min(MAX_CELL, 520 // max(1, n_classes)))


def matrix_height(class_names: Sequence[str]) -> int:
    """The confusion matrix's height in pixels, a little over rather than under: its cells, the
    turned column labels above them (about 7 px per character, cut at ``LABEL_LIMIT``), the axis
    title, Vega's padding, and room for a sideways scrollbar; at least the legend's height."""
    cells = matrix_cell_size(len(class_names)) * len(class_names)
    label = min(LABEL_LIMIT, 7.5 * max((len(name) for name in class_names), default=0))
    labels = round(label * math.sin(math.radians(45))) + 12 + 40  # turned labels, then the axis title
    return max(cells + labels, 220) + 10 + 20  # Vega's padding; a sideways scrollbar


def confusion_heatmap(cells: pd.DataFrame, class_names: Sequence[str]) -> alt.LayerChart:
    """Rows = true class, columns = predicted class; colour = share of the row, text = count.

    Clicking a cell selects its (true, predicted) pair; double-click clears. The matrix grows with
    the number of classes (``matrix_cell_size`` per cell, labels never drawn over each other).
    The colour legend sits left of the matrix: a tooltip opens right of and below the pointer,
    over the cells, so it never hides the legend. Draw it in a frame ``matrix_height`` tall (up to
    ``MATRIX_FRAME_MAX``, then it scrolls), which also scrolls sideways when the page is narrow.
    """
    names = list(class_names)
    pick = alt.selection_point(name=CELL, fields=["true", "predicted"], on="click", clear="dblclick")
    base = _matrix_base(cells, names)
    rect = base.mark_rect(stroke="white", strokeWidth=1, cursor="pointer").encode(
        # An empty cell is near-white, so the few cells that hold mistakes stand out among
        # thousands of empty ones (the colour scheme's lightest blue is for "a few").
        color=alt.condition(
            "datum.count == 0",
            alt.value(EMPTY_CELL),
            alt.Color(
                "share:Q",
                title=["Share of", "true class"],
                scale=alt.Scale(scheme="blues", domain=[0, 1]),
                legend=_matrix_legend(format=".0%"),
            ),
        ),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)),
        tooltip=[
            alt.Tooltip("true:N", title="True"),
            alt.Tooltip("predicted:N", title="Predicted"),
            alt.Tooltip("count:Q", title="Images"),
            alt.Tooltip("share:Q", title="Share of true class", format=".1%"),
        ],
    ).add_params(pick)
    text = base.mark_text(fontSize=_count_font_size(len(names)), cursor="pointer").encode(
        text=alt.condition("datum.count > 0", alt.Text("count:Q"), alt.value("")),
        color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("#263238")),
    )
    return _sized(rect + text, names)


def _matrix_legend(**options) -> alt.Legend:
    """The colour legend left of the matrix, clear of the tooltips over its cells."""
    return alt.Legend(orient="left", direction="vertical", gradientLength=160, offset=6, **options)


def _count_font_size(n_classes: int) -> int:
    return 11 if matrix_cell_size(n_classes) >= 30 else 9


def _matrix_base(cells: pd.DataFrame, names: list[str]) -> alt.Chart:
    """Rows = true class, columns = predicted class, both in the order in use.

    Labels never overlap: one label per cell (``labelOverlap=False``), at most as tall as the cell
    (font size), column labels turned 45° (a label's footprint along the axis is about 1.4 times
    its font size, under the cell's width), and long names cut at ``LABEL_LIMIT`` pixels with "…".
    A column label ends at its column and rises to the left, over the row labels' corner, so
    nothing sticks out right of the matrix.
    """
    font = min(12, matrix_cell_size(len(names)) - 10)
    columns = alt.Axis(
        orient="top", labelAngle=45, labelAlign="right", labelBaseline="middle",
        labelOverlap=False, labelLimit=LABEL_LIMIT, labelFontSize=font,
    )
    rows = alt.Axis(labelOverlap=False, labelLimit=LABEL_LIMIT, labelFontSize=font)
    return alt.Chart(cells).encode(
        x=alt.X("predicted:N", sort=names, title="Predicted class", axis=columns),
        y=alt.Y("true:N", sort=names, title="True class", axis=rows),
    )


def _sized(chart: alt.LayerChart, names: list[str]) -> alt.LayerChart:
    """A fixed step per cell, so the matrix grows with the number of classes."""
    step = matrix_cell_size(len(names))
    return chart.properties(width=alt.Step(step), height=alt.Step(step))


def confusion_delta_heatmap(cells: pd.DataFrame, class_names: Sequence[str]) -> alt.LayerChart:
    """The confusion difference B − A (``RunComparison.confusion_delta_cells``): diverging colours, blue
    where B has more images than A, red where fewer, white where equal; text = the signed change."""
    names = list(class_names)
    largest = max(1, int(cells["delta"].abs().max())) if len(cells) else 1
    base = _matrix_base(cells, names)
    rect = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color(
            "delta:Q",
            title=["Images,", "B − A"],
            scale=alt.Scale(scheme="redblue", domain=[-largest, largest], domainMid=0),
            legend=_matrix_legend(),
        ),
        tooltip=[
            alt.Tooltip("true:N", title="True"),
            alt.Tooltip("predicted:N", title="Predicted"),
            alt.Tooltip("count_a:Q", title="Images in A"),
            alt.Tooltip("count_b:Q", title="Images in B"),
            alt.Tooltip("delta:Q", title="B − A", format="+d"),
        ],
    )
    text = base.mark_text(fontSize=_count_font_size(len(names))).encode(
        text=alt.condition("datum.delta != 0", alt.Text("delta:Q", format="+d"), alt.value("")),
        color=alt.condition(f"abs(datum.delta) > {largest / 2}", alt.value("white"), alt.value("#263238")),
    )
    return _sized(rect + text, names)


def epoch_lines(table: pd.DataFrame, title: str, percent: bool = False) -> alt.Chart:
    """Per-epoch numbers (``epoch``, ``series``, ``value``) as one line per series."""
    axis = alt.Axis(format=".0%") if percent else alt.Axis()
    return (
        alt.Chart(table)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:O", title="Epoch", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("value:Q", title=title, axis=axis, scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=[alt.Tooltip("epoch:O"), alt.Tooltip("series:N"), alt.Tooltip("value:Q", format=".1%" if percent else ".4f")],
        )
        .properties(height=240)
    )


def recall_heatmap(table: pd.DataFrame, class_names: Sequence[str]) -> alt.Chart:
    """Per-class recall by epoch (``TrainingHistory.recall_by_epoch``): one row per class, one column per epoch."""
    names = list(class_names)
    return (
        alt.Chart(table)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=alt.X("epoch:O", title="Epoch", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("class:N", sort=names, title="Class", axis=alt.Axis(labelOverlap=False)),
            color=alt.Color("recall:Q", title="Recall", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=alt.Legend(format=".0%")),
            tooltip=[alt.Tooltip("epoch:O"), alt.Tooltip("class:N"), alt.Tooltip("recall:Q", format=".1%")],
        )
        .properties(height=max(120, 22 * len(names)))
    )


def file_probability_lines(table: pd.DataFrame) -> alt.Chart:
    """One file's class probabilities by epoch (``TrainingHistory.file_probabilities``); the true
    class drawn thick."""
    return (
        alt.Chart(table)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:O", title="Epoch", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("probability:Q", title="Probability", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
            color=alt.Color("class:N", title=None, legend=alt.Legend(orient="bottom")),
            strokeWidth=alt.condition("datum.is_true", alt.value(4), alt.value(1.5)),
            tooltip=[alt.Tooltip("epoch:O"), alt.Tooltip("class:N"), alt.Tooltip("probability:Q", format=".1%")],
        )
        .properties(height=220)
    )


#: The histogram's rows, wrong first: the mistakes are what a reader looks for.
OUTCOMES = ("wrong", "right")


def confidence_histogram(bins: pd.DataFrame) -> alt.FacetChart:
    """Wrong and right predictions per confidence bin, in two rows with their own count scales.

    Why two rows, not stacked bars: a good model has hundreds of right predictions per bin and a
    handful of wrong ones, and stacked on one scale the wrong ones are a sliver nobody sees. On
    their own scale (the axis says how many) their shape shows: confident mistakes pile up at the
    right. Why not a log scale: a log axis is hard to read for most people, and a bin of 0 has no
    place on it. The x axis is shared, so the rows line up bin by bin.
    """
    return (
        alt.Chart(bins)
        .mark_bar(binSpacing=1)
        .encode(
            x=alt.X("bin_start:Q", bin="binned", title="Confidence of the predicted class", axis=alt.Axis(format=".0%")),
            x2="bin_end:Q",
            y=alt.Y("count:Q", title="Images", axis=alt.Axis(tickMinStep=1, format="d")),
            color=alt.Color(
                "outcome:N",
                title="Prediction",
                scale=alt.Scale(domain=list(OUTCOMES), range=[WRONG, RIGHT]),
                legend=None,  # the row headers say it
            ),
            tooltip=[
                alt.Tooltip("outcome:N", title="Prediction"),
                alt.Tooltip("bin_start:Q", title="From", format=".0%"),
                alt.Tooltip("bin_end:Q", title="To", format=".0%"),
                alt.Tooltip("count:Q", title="Images"),
            ],
        )
        .properties(height=110, width=600)
        .facet(
            row=alt.Row(
                "outcome:N",
                sort=list(OUTCOMES),
                title=None,
                header=alt.Header(labelExpr="datum.value + ' predictions'", labelAngle=0, labelAlign="left", labelFontWeight="bold"),
            )
        )
        .resolve_scale(y="independent")
    )


def top_k_bars(top: pd.DataFrame) -> alt.LayerChart:
    """The most probable classes of one image; the true class green, a wrong prediction red."""
    data = top.assign(
        role=[
            "true class" if t else ("predicted" if p else "other")
            for t, p in zip(top["is_true"], top["is_predicted"])
        ]
    )
    base = alt.Chart(data).encode(
        y=alt.Y("class:N", sort=list(data["class"]), title=None),
        x=alt.X("probability:Q", title="Probability", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
    )
    bars = base.mark_bar().encode(
        color=alt.Color(
            "role:N",
            title=None,
            scale=alt.Scale(domain=["true class", "predicted", "other"], range=[RIGHT, WRONG, OTHER]),
            legend=alt.Legend(orient="bottom"),
        ),
        tooltip=[alt.Tooltip("class:N"), alt.Tooltip("probability:Q", format=".2%")],
    )
    labels = base.mark_text(align="left", dx=4).encode(text=alt.Text("probability:Q", format=".1%"))
    return (bars + labels).properties(height=alt.Step(30))


# ----- intervals and calibration (issues 16 and 18) ----------------------------------------------------
#: The selection parameter of the reliability diagram: ``event["selection"][BIN]`` = ``[{"bin": i}]``.
BIN = "bin"


def accuracy_with_band(lines: pd.DataFrame, band: pd.DataFrame) -> alt.LayerChart:
    """Per-epoch accuracy lines (``epoch``, ``series``, ``value``) over the evaluated accuracy's
    95% interval (``TrainingHistory.accuracy_band``: ``epoch``, ``low``, ``high``) as a shaded band."""
    area = (
        alt.Chart(band)
        .mark_area(opacity=0.22, color="#1f77b4")
        .encode(
            x=alt.X("epoch:O", title="Epoch", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("low:Q", title="Accuracy", axis=alt.Axis(format=".0%"), scale=alt.Scale(zero=False)),
            y2="high:Q",
            tooltip=[
                alt.Tooltip("epoch:O"),
                alt.Tooltip("accuracy:Q", title="Evaluated accuracy", format=".1%"),
                alt.Tooltip("low:Q", title="95% CI from", format=".1%"),
                alt.Tooltip("high:Q", title="95% CI to", format=".1%"),
                alt.Tooltip("n_images:Q", title="Images"),
            ],
        )
    )
    return alt.layer(area, epoch_lines(lines, "Accuracy", percent=True)).properties(height=240)


def reliability_diagram(bins: Sequence[object]) -> alt.LayerChart:
    """Accuracy against confidence per calibration bin (``Calibration.bins``): blue bars are how
    often the predictions in the bin are right, the dark tick how sure they were on average (red
    above a bar: surer than right), the dashed diagonal is perfect calibration, the number on top
    is the bin's images. Clicking a bin
    selects it (``[{"bin": i}]``); double-click clears."""
    rows = [
        {
            "bin": i,
            "lower": b.lower,
            "upper": b.upper,
            "count": b.count,
            "confidence": b.confidence,
            "accuracy": b.accuracy,
            "gap_low": min(b.accuracy, b.confidence),
            "gap_high": max(b.accuracy, b.confidence),
            "label_y": max(b.accuracy, b.confidence),
            "bottom": 0.0,
            "top": 1.0,
        }
        for i, b in enumerate(bins)
        if b.count
    ]
    data = pd.DataFrame(rows, columns=["bin", "lower", "upper", "count", "confidence", "accuracy", "gap_low", "gap_high", "label_y", "bottom", "top"])
    pick = alt.selection_point(name=BIN, fields=["bin"], on="click", clear="dblclick")
    x = alt.X("lower:Q", title="Confidence of the predicted class", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%"))
    y_scale = alt.Scale(domain=[0, 1.08])
    base = alt.Chart(data)
    accuracy = base.mark_rect(color="#1f77b4", stroke="white", strokeWidth=1).encode(
        x=x, x2="upper:Q", y=alt.Y("bottom:Q", title="Share right", scale=y_scale, axis=alt.Axis(format=".0%")), y2="accuracy:Q"
    )
    # The gap to the mean confidence, drawn under the bars: it shows (red) where the bin is surer
    # than right; where it is right more often than sure, the confidence tick inside the bar shows it.
    gap = base.mark_rect(color=WRONG, opacity=0.35, stroke="white", strokeWidth=1).encode(x=x, x2="upper:Q", y="gap_low:Q", y2="gap_high:Q")
    tick = base.mark_rule(color="#263238", strokeWidth=2).encode(x=x, x2="upper:Q", y=alt.Y("confidence:Q", scale=y_scale))
    counts = base.mark_text(dy=-7, fontSize=10, color="#263238").encode(
        x=alt.X("mid:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("label_y:Q", scale=y_scale), text=alt.Text("count:Q", format=",d")
    ).transform_calculate(mid="(datum.lower + datum.upper) / 2")
    diagonal = alt.Chart(pd.DataFrame({"lower": [0.0, 1.0], "accuracy": [0.0, 1.0]})).mark_line(strokeDash=[4, 4], color="#546e7a").encode(
        x=alt.X("lower:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("accuracy:Q", scale=y_scale)
    )
    # On top, one clickable column per bin, nearly transparent: a click anywhere in the column
    # (even over a bar of height 0) selects the bin.
    columns = base.mark_rect(color="#263238", cursor="pointer").encode(
        x=x,
        x2="upper:Q",
        y=alt.Y("bottom:Q", scale=y_scale),
        y2="top:Q",
        opacity=alt.condition(pick, alt.value(0.12), alt.value(0.01), empty=False),
        tooltip=[
            alt.Tooltip("lower:Q", title="Confidence from", format=".1%"),
            alt.Tooltip("upper:Q", title="to", format=".1%"),
            alt.Tooltip("count:Q", title="Images"),
            alt.Tooltip("confidence:Q", title="Mean confidence", format=".1%"),
            alt.Tooltip("accuracy:Q", title="Share right", format=".1%"),
        ],
    ).add_params(pick)
    return alt.layer(gap, accuracy, tick, diagonal, counts, columns).properties(height=320)


#: The embedding map's selection parameters: a clicked point (``[{"index": i}]``) and a dragged
#: region (``{"x": [lo, hi], "y": [lo, hi]}``), in ``event["selection"]``.
POINT, REGION = "point", "region"


def embedding_scatter(points: pd.DataFrame, colour_by: str = "right") -> alt.Chart:
    """The run's 2-D map (``embeddings.embedding_points``): one dot per image, green right / red
    wrong (``colour_by="right"``) or one colour per true class (``"class"``); hover for the file
    and its classes. A click selects a point; a drag selects a region (double-click clears)."""
    data = points.assign(verdict=points["right"].map({True: "right", False: "wrong"}))
    if colour_by == "class":
        colour = alt.Color("true:N", title="True class", scale=alt.Scale(scheme="tableau20"))
    else:
        colour = alt.Color("verdict:N", title="Prediction", scale=alt.Scale(domain=["right", "wrong"], range=[RIGHT, WRONG]))
    click = alt.selection_point(name=POINT, fields=["index"], on="click", clear="dblclick", nearest=True)
    region = alt.selection_interval(name=REGION, encodings=["x", "y"], clear="dblclick")
    return (
        alt.Chart(data)
        .mark_circle(size=36, opacity=0.8, cursor="pointer")
        .encode(
            x=alt.X("x:Q", title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("y:Q", title=None, axis=alt.Axis(labels=False, ticks=False)),
            color=colour,
            tooltip=[
                alt.Tooltip("file:N", title="File"),
                alt.Tooltip("true:N", title="True"),
                alt.Tooltip("predicted:N", title="Predicted"),
                alt.Tooltip("confidence:Q", title="Confidence", format=".1%"),
            ],
        )
        .add_params(click, region)
        .properties(height=520)
    )
