"""Altair charts drawn from ``gtpred_core.views`` tables (which hold all the arithmetic)."""

from __future__ import annotations

from typing import Sequence

import altair as alt
import pandas as pd

#: The selection parameter of the confusion heatmap: ``event["selection"][CELL]``.
CELL = "cell"

RIGHT, WRONG, OTHER = "#2e7d32", "#c62828", "#90a4ae"


def confusion_heatmap(cells: pd.DataFrame, class_names: Sequence[str]) -> alt.LayerChart:
    """Rows = true class, columns = predicted class; colour = share of the row, text = count.

    Clicking a cell selects its (true, predicted) pair; double-click clears.
    """
    names = list(class_names)
    pick = alt.selection_point(name=CELL, fields=["true", "predicted"], on="click", clear="dblclick")
    side = max(28, min(48, 520 // max(1, len(names))))
    base = alt.Chart(cells).encode(
        x=alt.X("predicted:N", sort=names, title="Predicted class", axis=alt.Axis(labelAngle=-45, orient="top", labelOverlap=False)),
        y=alt.Y("true:N", sort=names, title="True class", axis=alt.Axis(labelOverlap=False)),
    )
    rect = base.mark_rect(stroke="white", strokeWidth=1, cursor="pointer").encode(
        color=alt.Color(
            "share:Q",
            title="Share of true class",
            scale=alt.Scale(scheme="blues", domain=[0, 1]),
            legend=alt.Legend(format=".0%"),
        ),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)),
        tooltip=[
            alt.Tooltip("true:N", title="True"),
            alt.Tooltip("predicted:N", title="Predicted"),
            alt.Tooltip("count:Q", title="Images"),
            alt.Tooltip("share:Q", title="Share of true class", format=".1%"),
        ],
    ).add_params(pick)
    text = base.mark_text(fontSize=11, cursor="pointer").encode(
        text=alt.condition("datum.count > 0", alt.Text("count:Q"), alt.value("")),
        color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("#263238")),
    )
    return (rect + text).properties(width=side * len(names), height=side * len(names))


def confidence_histogram(bins: pd.DataFrame) -> alt.Chart:
    """Right and wrong predictions per confidence bin, stacked (the bar's height is the bin's total)."""
    return (
        alt.Chart(bins)
        .mark_bar(opacity=0.85, binSpacing=1)
        .encode(
            x=alt.X("bin_start:Q", bin="binned", title="Confidence of the predicted class", axis=alt.Axis(format=".0%")),
            x2="bin_end:Q",
            y=alt.Y("count:Q", title="Images", stack=True),
            color=alt.Color(
                "outcome:N",
                title="Prediction",
                scale=alt.Scale(domain=["right", "wrong"], range=[RIGHT, WRONG]),
            ),
            tooltip=[
                alt.Tooltip("outcome:N", title="Prediction"),
                alt.Tooltip("bin_start:Q", title="From", format=".0%"),
                alt.Tooltip("bin_end:Q", title="To", format=".0%"),
                alt.Tooltip("count:Q", title="Images"),
            ],
        )
        .properties(height=220)
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
    return (bars + labels).properties(height=34 * len(data) + 20)
