"""Class mapping: which output index each class folder gets under each class order."""

from __future__ import annotations

import streamlit as st

from gtpred_core.class_order import class_indices_json, labels_txt

from gtpred_app.ui import panels, state
from gtpred_app.ui.text import md

run = state.require_run()
in_use = run.info.class_order_source

st.title("Class mapping")
panels.stored_status(state.current_run_id(), "class_mapping")
st.write(
    "A model's output k means whichever class was k-th in its training order. Keras numbers "
    "class folders in plain string order (`Class_10` before `Class_2`); a model trained from a "
    "list in natural order numbers them differently. Reading the outputs in the wrong order "
    "silently swaps class names."
)

table = run.class_mapping()
differs = int(table["differs"].sum())
if differs:
    st.warning(
        f"**{differs} of {len(table)} classes get a different index under these orders** "
        "(highlighted). For those classes the names depend on which order the model was trained "
        f"with; this run reads the outputs in the **{md(in_use)}** order. If that is not the "
        "training order, their results are someone else's."
    )
else:
    st.success("Every class has the same index under Keras' order, natural order and the order in use: the class order cannot be mixed up here.")

highlight = "background-color: rgba(255, 193, 7, 0.25)"
st.dataframe(
    table.style.apply(lambda row: [highlight if row["differs"] else ""] * len(row), axis=1),
    hide_index=True,
    height=min(600, 35 * (len(table) + 1) + 3),
    column_config={
        "class": "class folder",
        "keras_index": st.column_config.NumberColumn("Keras order"),
        "natural_index": st.column_config.NumberColumn("natural order"),
        "in_use_index": st.column_config.NumberColumn(f"in use ({in_use})"),
        "differs": st.column_config.CheckboxColumn("differs"),
    },
)

st.subheader("Save the order in use")
st.caption("Keep these next to the model so the next evaluation (or deployment) reads its outputs the same way.")
left, right = st.columns(2)
left.download_button(
    "class_indices.json",
    class_indices_json(run.class_names),
    file_name="class_indices.json",
    mime="application/json",
    icon=":material/download:",
    on_click="ignore",
    width="stretch",
)
right.download_button(
    "labels.txt",
    labels_txt(run.class_names),
    file_name="labels.txt",
    mime="text/plain",
    icon=":material/download:",
    on_click="ignore",
    width="stretch",
)
