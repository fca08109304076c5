"""Page parts more than one screen draws: the run's one-line description, its warnings,
downloads, one image shown large with its top-5 probabilities, and the clickable tables of
files and confusion cells."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from gtpred_core import Run, predictions_csv, summary_json, views
from gtpred_core.diagnostics import WarningCode

from . import charts, state

#: A short headline per warning code; the core's message follows it.
WARNING_TITLES = {
    WarningCode.CLASS_ORDER_MISMATCH: "The class order looks wrong",
    WarningCode.PREDICTION_COLLAPSE: "The model predicts nearly one class for everything",
    WarningCode.LOGITS_OUTPUT: "The model outputs logits",
    WarningCode.EMPTY_CLASS: "A class folder is empty",
    WarningCode.SKIPPED_FILES: "Some images could not be read",
    WarningCode.IGNORED_FILES: "Some files are not images",
    WarningCode.CANCELLED: "The run was cancelled",
}
_INFO_CODES = {WarningCode.LOGITS_OUTPUT, WarningCode.IGNORED_FILES}


def run_caption(run: Run) -> str:
    info = run.info
    parts = [
        f"Model **{Path(info.model).name}**",
        f"images **{Path(info.images).name}**",
        f"class order **{info.class_order_source}**",
        f"preprocessing **{info.preprocess}**",
        f"{info.seconds:.1f} s" if info.seconds else "",
    ]
    return " · ".join(p for p in parts if p)


def run_warnings(run: Run) -> None:
    for warning in run.warnings:
        title = WARNING_TITLES.get(warning.code, warning.code)
        show = st.info if warning.code in _INFO_CODES else st.warning
        text = warning.message
        if not text.lower().startswith(title.lower()):
            text = f"**{title}.** {text}"
        show(text, icon=":material/warning:")


def downloads(run: Run, key: str) -> None:
    """Predictions CSV and summary JSON, made only when clicked (10,000 rows stay cheap)."""
    left, right = st.columns(2)
    left.download_button(
        "Predictions CSV",
        data=lambda: predictions_csv(run),
        file_name="predictions.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key=f"{key}-csv",
        width="stretch",
    )
    right.download_button(
        "Summary JSON",
        data=lambda: summary_json(run),
        file_name="summary.json",
        mime="application/json",
        icon=":material/download:",
        on_click="ignore",
        key=f"{key}-json",
        width="stretch",
    )


def image_detail(run: Run, rel: str) -> None:
    """One file large, its true and predicted class, and its top-5 probabilities."""
    index = views.file_position(run, rel)
    if index is None:
        st.info("That file is not part of this run.")
        return
    large_image(run, rel)
    prediction(run, index)


def large_image(run: Run, rel: str) -> None:
    """The file ``rel`` of ``run`` (under its images root), enlarged, with its path above."""
    st.markdown(f"**{rel}**")
    try:
        st.image(views.enlarged_image(views.image_path(run, rel), 256), width=256)
    except OSError:
        st.warning("The image file can no longer be read on the server.")


def prediction(run: Run, index: int, who: str = "") -> None:
    """File ``index`` of ``run``: true class, predicted class with its confidence, top-5 bars.

    ``who`` names the run when several are shown side by side ("Run A", "Epoch 3").
    """
    top = views.top_k_table(run, index, k=5)
    true_name = run.class_names[int(run.y_true[index])]
    pred_name = run.class_names[int(run.y_pred[index])]
    confidence = float(run.confidence[index])
    verdict = "right" if true_name == pred_name else "wrong"
    lead = f"**{who}:** " if who else ""
    st.markdown(
        f"{lead}True class **{true_name}** · predicted **{pred_name}** ({confidence:.1%}, {verdict})"
    )
    st.caption("Top-5 probabilities" if len(top) == 5 else f"Probabilities (all {len(top)} classes)")
    st.altair_chart(charts.top_k_bars(top), width="stretch", key=f"top-k-{who}" if who else None)


def clicked_confusion_cell(run: Run, key: str) -> tuple[str, str] | None:
    """Draw the run's clickable confusion heatmap; return the (true, predicted) cell clicked."""
    event = st.altair_chart(
        charts.confusion_heatmap(views.confusion_cells(run), run.class_names),
        on_select="rerun",
        key=key,
        width="content",
    )
    picked = event["selection"].get(charts.CELL) or []
    return (picked[0]["true"], picked[0]["predicted"]) if picked else None


def clicked_file(shown: pd.DataFrame, columns: list[str], key: str, row_height: int, column_config: dict) -> str | None:
    """Draw a page of files (a ``file`` and a ``thumbnail`` column) one row per image; return the
    file of a row newly clicked, else None (a selection kept from an earlier rerun is not new)."""
    event = st.dataframe(
        shown[columns],
        hide_index=True,
        row_height=row_height,
        height=row_height * len(shown) + 38,
        on_select="rerun",
        selection_mode="single-row",
        key=key,
        column_config={"thumbnail": st.column_config.ImageColumn("image", width="small"), **column_config},
    )
    rows = state.new_selection(key, list(event["selection"]["rows"]))
    return shown["file"][rows[0]] if rows else None
