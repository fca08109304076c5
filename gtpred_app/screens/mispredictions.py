"""Mispredictions: the most confident mistakes first, filterable; click a row (any cell) to see
the image large, with where the model looked for the predicted and the true class.

Only the visible page is turned into thumbnails, so a run with 10,000 mistakes stays quick.
The address names the stored run and the open file (``?run=12&file=Class_3/img_0042.png``):
a link opens that mistake, on this server or after a restart.
"""

from __future__ import annotations

import streamlit as st

from gtpred_core import Run

from gtpred_app.ui import panels, saliency, state, tables
from gtpred_app.ui.images import with_thumbnails

PAGE_SIZE = 25
GALLERY_COLUMNS = 5
ROW_HEIGHT = 56

run = state.require_run()
run_id = state.current_run_id()

st.title("Mispredictions")
n_wrong = int((~run.correct).sum())
st.markdown(f"{n_wrong:,} of {run.n_images:,} images are predicted wrong · {panels.run_caption(run)}")
panels.stored_status(run_id, "mispredictions")


@st.fragment
def browse_mistakes(run: Run, run_id: int | None) -> None:
    """Filters, the page of mistakes and the open one. A fragment: a click on a row, a filter or
    the opacity slider reruns this section alone, not the page around it (issue 19)."""
    true_filter, pred_filter, view_choice = st.columns([2, 2, 1], vertical_alignment="bottom")
    true_classes = true_filter.multiselect("True class", run.class_names, key="filter_true", placeholder="All")
    pred_classes = pred_filter.multiselect("Predicted class", run.class_names, key="filter_pred", placeholder="All")
    view = view_choice.segmented_control("View", ["Table", "Gallery"], default="Table", key="mis_view") or "Table"

    table = run.mispredictions(true_classes, pred_classes)
    listing, detail = st.columns([3, 2], gap="large")

    with listing:
        if table.empty:
            st.success("No mispredictions" + (" for these classes." if true_classes or pred_classes else "."))
        else:
            pages = tables.page_count(len(table), PAGE_SIZE)
            page = st.number_input(f"Page (of {pages:,}; {len(table):,} mistakes, most confident first)", 1, pages, 1, key=state.page_key(true_classes, pred_classes))
            side = ROW_HEIGHT - 4 if view == "Table" else 128
            shown = with_thumbnails(tables.page_of(table, page, PAGE_SIZE), run.info.images, side=side)
            if view == "Table":
                key = state.table_key(page, true_classes, pred_classes)
                clicked = panels.clicked_file(
                    shown,
                    ["thumbnail", "file", "true", "predicted", "confidence"],
                    key,
                    ROW_HEIGHT,
                    {
                        "file": st.column_config.TextColumn("file", width="medium"),
                        "confidence": panels.percent_column(),
                    },
                )
                if clicked:
                    state.select_file(clicked, scope="mispredictions")
            else:
                for start in range(0, len(shown), GALLERY_COLUMNS):
                    for cell, (_, row) in zip(st.columns(GALLERY_COLUMNS), shown.iloc[start : start + GALLERY_COLUMNS].iterrows()):
                        if row["thumbnail"]:
                            cell.image(row["thumbnail"], width="stretch")
                        cell.text(f"{row['true']} → {row['predicted']} ({row['confidence']:.0%})")
                        cell.button("Open", key=f"open-{row['index']}", on_click=state.select_file, args=(row["file"], "mispredictions"), width="stretch")

    with detail:
        selected = panels.opened_file(run, run_id, "mispredictions")
        if selected is None:
            st.info("Click a row (or Open in the gallery) to see the image large with its top-5 probabilities.")
        else:
            if run_id is not None:
                st.caption("The address bar now links to this image.")
            saliency.saliency_pair(run, selected, key="mispredictions-saliency")


browse_mistakes(run, run_id)
panels.downloads(run, key="mispredictions")
