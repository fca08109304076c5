"""Embedding map: every image of the run placed in 2-D so that images the model sees alike lie
close. Coloured right/wrong or by class; click a point to open its image, drag a region to list
its images (click a row to open one). ``?run=ID`` names the stored run; ``&file=`` opens an image."""

from __future__ import annotations

import streamlit as st

from gtpred_core.embeddings import embedding_points, maps_probabilities, region_files

from gtpred_app.ui import charts, links, panels, state, tables
from gtpred_app.ui.images import with_thumbnails
from gtpred_app.ui.text import md

PAGE_SIZE = 20
ROW_HEIGHT = 44
SCOPE = "embedding_map"

run = state.require_run()
run_id = state.current_run_id()

st.title("Embedding map")
panels.stored_status(run_id, SCOPE)
points = embedding_points(run)
if points is None:
    st.info(
        "This run has no embedding map: it was evaluated without one. Evaluate again on the command "
        "line with `--embeddings` (e.g. `python -m gtpred_core evaluate --model M --images D --out O "
        "--embeddings`): the map is made from the same pass as the predictions and stored with the run.",
        icon=":material/scatter_plot:",
    )
    st.stop()

st.write(
    "Each dot is one image. Images the model sees alike lie close together: a wrong image inside "
    "another class's cluster is one the model takes for that class; a cluster of wrong images is a "
    "kind of picture the model has not learnt."
)
if maps_probabilities(run.embedding_method):
    st.warning(
        "This model is a TensorFlow SavedModel: it has no layers to read features from, so the map "
        "places its probability vectors. Images lie close when the model *predicted* them alike.",
        icon=":material/info:",
    )
elif run.embedding_method:
    st.caption(f"Map: {md(run.embedding_method)}.")

colour_by = st.radio("Colour by", ["right", "class"], format_func={"right": "right / wrong", "class": "true class"}.get, horizontal=True, key="map-colour")
n_wrong = int((~points["right"]).sum())
st.caption(
    f"{len(points):,} images on the map, {n_wrong:,} wrong. Hover a dot for its file; click one to open it; "
    "drag to select a region and list its images (double-click clears)."
)
chart, side = st.columns([3, 2], gap="large")
with chart:
    event = st.altair_chart(charts.embedding_scatter(points, colour_by), on_select="rerun", key="embedding-map", width="stretch")
selection = event["selection"]
picked = selection.get(charts.POINT) or []
if picked:
    clicked = points["file"][points["index"] == int(picked[0]["index"])]
    if len(clicked) and st.session_state.get("_map_point") != int(picked[0]["index"]):
        st.session_state["_map_point"] = int(picked[0]["index"])
        state.select_file(clicked.iloc[0], scope=SCOPE)

region = selection.get(charts.REGION) or {}
with side:
    if region.get("x") and region.get("y"):
        files = region_files(run, region["x"], region["y"])
        n_region_wrong = int((files["true"] != files["predicted"]).sum())
        st.text(f"{len(files):,} images in the region, {n_region_wrong:,} wrong")
        if not files.empty:
            pages = tables.page_count(len(files), PAGE_SIZE)
            page = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key="map-region-page") if pages > 1 else 1
            shown = with_thumbnails(tables.page_of(files, page, PAGE_SIZE), run.info.images, side=ROW_HEIGHT - 4)
            row_file = panels.clicked_file(
                shown,
                ["thumbnail", "file", "true", "predicted", "confidence"],
                f"map-region-{page}",
                ROW_HEIGHT,
                {
                    "true": st.column_config.TextColumn("true", width="small"),
                    "predicted": st.column_config.TextColumn("predicted", width="small"),
                    "confidence": panels.percent_column(),
                },
            )
            if row_file:
                state.select_file(row_file, scope=SCOPE)
    else:
        st.info("Drag over the map to select a region: its images are listed here.")

    selected = state.selected_file(run, scope=SCOPE)
    if selected is not None:
        link = links.page_url(SCOPE, **{links.RUN: run_id, links.FILE: selected}) if run_id is not None else None
        panels.image_detail(run, selected, link, key="map-image")
