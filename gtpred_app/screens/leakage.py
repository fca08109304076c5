"""Leakage: evaluated images that also sit in the training folder (exact copies, then near
duplicates), side by side. Such images make accuracy look better than it is. ``?run=ID`` names
the stored run; ``&file=`` opens a pair. Paths are shown relative to each folder."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from gtpred_core.leakage import leakage_table

from gtpred_app.ui import links, panels, state, tables
from gtpred_app.ui.images import enlarged_image, thumbnail_data_uri, with_thumbnails

PAGE_SIZE = 20
ROW_HEIGHT = 56
SCOPE = "leakage"

run = state.require_run()
run_id = state.current_run_id()

st.title("Leakage")
panels.stored_status(run_id, SCOPE)
if run.leakage is None or not run.info.train_images:
    st.info(
        "This run was not checked for leakage. To find evaluated images that are also in the training "
        "folder, evaluate on the command line with `--train-images FOLDER` (e.g. `python -m gtpred_core "
        "evaluate --model M --images D --out O --train-images TRAIN`): exact copies and near duplicates "
        "are listed with the run.",
        icon=":material/content_copy:",
    )
    st.stop()

pairs = leakage_table(run.leakage)
if pairs.empty:
    st.success("No evaluated image was found in the training folder: no exact copy, no near duplicate.")
    st.stop()

n_exact = int((pairs["kind"] == "exact").sum())
n_files = pairs["file"].nunique()
st.warning(
    f"{n_files:,} of {run.n_images:,} evaluated images are also in the training folder "
    f"({n_exact:,} exact copies, {len(pairs) - n_exact:,} near-duplicate pairs). The model may have "
    "learnt these very images: the accuracy on them says little about new images.",
    icon=":material/content_copy:",
)
st.caption(
    "Exact: the same bytes. Near: the same picture re-encoded, resized or slightly edited (a perceptual "
    "hash within a few bits; similarity 1.0 is identical). Click a row to see both images large."
)

train_root = Path(run.info.train_images)
pages = tables.page_count(len(pairs), PAGE_SIZE)
page = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key="leakage-page") if pages > 1 else 1
shown = with_thumbnails(tables.page_of(pairs, page, PAGE_SIZE), run.info.images, side=ROW_HEIGHT - 4)
shown.insert(2, "train_thumbnail", [thumbnail_data_uri(train_root / rel, ROW_HEIGHT - 4) for rel in shown["train_file"]])
event = st.dataframe(
    shown[["thumbnail", "file", "train_thumbnail", "train_file", "kind", "similarity"]],
    hide_index=True,
    row_height=ROW_HEIGHT,
    height=ROW_HEIGHT * len(shown) + 38,
    on_select="rerun",
    selection_mode=["single-cell", "single-row"],
    key=f"leakage-{page}",
    column_config={
        "thumbnail": st.column_config.ImageColumn("evaluated", width="small"),
        "file": st.column_config.TextColumn("evaluated file", help="Relative to the evaluated folder."),
        "train_thumbnail": st.column_config.ImageColumn("training", width="small"),
        "train_file": st.column_config.TextColumn("training file", help="Relative to the training folder."),
        "kind": st.column_config.TextColumn("kind", width="small"),
        "similarity": st.column_config.NumberColumn("similarity", format="%.3f", width="small"),
    },
)
row = state.clicked_row(f"leakage-{page}", event["selection"])
if row is not None and row < len(shown):
    st.session_state["_leak_pair"] = (shown["file"][row], shown["train_file"][row])
    state.select_file(shown["file"][row], scope=SCOPE)

selected = state.selected_file(run, scope=SCOPE)
if selected is not None:
    pair = st.session_state.get("_leak_pair")
    train_file = pair[1] if pair and pair[0] == selected else next(iter(pairs["train_file"][pairs["file"] == selected]), None)
    evaluated, training = st.columns(2, gap="large")
    with evaluated:
        st.subheader("Evaluated")
        link = links.page_url(SCOPE, **{links.RUN: run_id, links.FILE: selected}) if run_id is not None else None
        panels.image_detail(run, selected, link, key="leak-image")
    with training:
        st.subheader("Training")
        if train_file is not None:
            st.text(train_file)  # relative to the training folder: never the server's path
            try:
                st.image(enlarged_image(train_root / train_file, 256), width=256)
            except OSError:
                st.warning("The training image can no longer be read on the server.")
