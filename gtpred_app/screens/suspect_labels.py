"""Suspect labels: images whose folder label the model finds least likely, most suspect first, to
review (thumbnail, label given, label suggested, the model's probability of each), exported as a
CSV for relabelling; click any cell of a row to see the image large. Review candidates, not
proof. The address names the stored run and the open image (``?run=12&file=Class_3/img_7.png``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gtpred_core import Run
from gtpred_core.export import suspects_csv
from gtpred_core.suspects import suspect_table

from gtpred_app.ui import links, panels, state, tables
from gtpred_app.ui.images import with_thumbnails

PAGE_SIZE = 25
ROW_HEIGHT = 56

run = state.require_run()
run_id = state.current_run_id()

st.title("Suspect labels")
panels.stored_status(run_id, "suspect_labels")
st.write(
    "Images whose folder label the model finds least likely, most suspect first: the model is "
    "confident they belong to another class. These are **review candidates, not proof**: a "
    "suspect may be a hard image the model gets wrong. Look at each before moving or relabelling it."
)

table, note = suspect_table(run)
if note is not None:
    st.warning(note, icon=":material/swap_vert:")
    if run.suggested_class_order:
        st.write(
            "Results can re-label this run under the suggested class order from the predictions "
            "already made (no inference runs): its button **Re-label under the suggested class "
            "order** saves a new run, whose suspect labels show here."
        )
    st.page_link(
        links.screen("results"),
        label="Go to Results to re-label",
        icon=":material/swap_vert:",
        query_params={links.RUN: str(run_id)} if run_id is not None else None,
    )
    st.stop()
if table.empty:
    st.success("No image looks mislabelled: wherever the model disagrees with a folder, it is not confident enough to suspect the label.")
    st.stop()

st.caption(f"{len(table):,} of {run.n_images:,} images are suspect.")
st.download_button(
    "Suspect labels CSV (for relabelling)",
    data=lambda: suspects_csv(run),
    file_name="suspect_labels.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
    key="suspects-csv",
    help="One row per suspect, most suspect first: path, label given, label suggested, and the model's probability of each.",
)

@st.fragment
def browse_suspects(run: Run, run_id: int | None, table: pd.DataFrame) -> None:
    """The page of suspects and the open one. A fragment: a click on a row reruns this section
    alone, not the page around it (issue 19)."""
    listing, detail = st.columns([3, 2], gap="large")
    with listing:
        pages = tables.page_count(len(table), PAGE_SIZE)
        page = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key="suspects-page") if pages > 1 else 1
        shown = with_thumbnails(tables.page_of(table, page, PAGE_SIZE), run.info.images, side=ROW_HEIGHT - 4)
        clicked = panels.clicked_file(
            shown,
            ["thumbnail", "file", "given", "suggested", "p_given", "p_suggested"],
            f"suspects-{page}",
            ROW_HEIGHT,
            {
                "given": st.column_config.TextColumn("label given", width="small", help="The class folder the image is in."),
                "suggested": st.column_config.TextColumn("suggested", width="small", help="The class the model is most sure of."),
                "p_given": st.column_config.NumberColumn(
                    "p(given)", format="percent", width="small",
                    help="How probable the model finds the label given: the lower, the more suspect.",
                ),
                "p_suggested": st.column_config.NumberColumn(
                    "p(suggested)", format="percent", width="small",
                    help="How probable the model finds the suggested label.",
                ),
            },
        )
        if clicked:
            state.select_file(clicked, scope="suspect_labels")

    with detail:
        if panels.opened_file(run, run_id, "suspect_labels") is None:
            st.info("Click a row (any cell) to see the image large with its top-5 probabilities.")


browse_suspects(run, run_id, table)
