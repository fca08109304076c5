"""History: every stored run, newest first. Click any cell of a run's row to act on it: open it
(no inference; the address becomes ``results?run=ID``), copy its link, rename it, delete it, or
download its predictions and summary. A re-labelled run says which run it re-reads."""

from __future__ import annotations

import streamlit as st

from pathlib import Path

from gtpred_app.ui import links, panels, state, store, tables
from gtpred_app.ui.errors import errors_shown, show_error
from gtpred_app.ui.text import md

#: Bumped when a run is deleted: a new table, so a row selection never points at another run.
VERSION = "history_version"


def _table_key() -> str:
    return f"history-{st.session_state.setdefault(VERSION, 0)}"


def _rename(run_id: int) -> None:
    name = st.session_state.get(f"rename-{run_id}", "").strip()
    try:
        store.run_store().rename(run_id, name or f"run {run_id}")
    except Exception as err:  # noqa: BLE001 - shown on the page by the one renderer below
        st.session_state["history_error"] = err


def _delete(run_id: int) -> None:
    try:
        store.run_store().delete(run_id)
    except Exception as err:  # noqa: BLE001 - shown on the page by the one renderer below
        st.session_state["history_error"] = err
    st.session_state["confirm_delete"] = None
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1
    st.session_state["history_deleted"] = run_id


def _ask_delete(run_id: int | None) -> None:
    st.session_state["confirm_delete"] = run_id


st.title("History")
st.write(
    "Every evaluation run in this app is saved here as it runs (a cancelled one with the part "
    "done). Open one to see it on Results, Mispredictions and Class mapping: no inference runs "
    "again. Compare two runs on the Compare page."
)

if "history_error" in st.session_state:
    show_error(st.session_state.pop("history_error"))
if "history_deleted" in st.session_state:
    st.success(f"Run #{st.session_state.pop('history_deleted')} was deleted.", icon=":material/delete:")

stored = None
with errors_shown():
    stored = store.run_store().list()
if stored is None:
    st.stop()
if not stored:
    st.info("No stored runs yet: evaluate a model (or run the demo) and it is saved here.")
    st.page_link(links.screen("evaluate"), label="Go to Evaluate", icon=":material/play_arrow:")
    st.stop()

table = tables.history_table(stored)
table.insert(table.columns.get_loc("accuracy") + 1, "accuracy_ci", tables.accuracy_intervals(stored))
event = st.dataframe(
    table,
    hide_index=True,
    on_select="rerun",
    selection_mode=["single-cell", "single-row"],
    key=_table_key(),
    height=min(500, 35 * (len(table) + 1) + 3),
    column_config={
        "id": st.column_config.NumberColumn("#", width="small"),
        "name": st.column_config.TextColumn("name", width="medium"),
        "n_images": st.column_config.NumberColumn("n images"),
        "created": st.column_config.TextColumn("created (UTC)"),
        "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
        "accuracy_ci": st.column_config.TextColumn(
            "95% CI", help="The range the accuracy very likely lies in, given how many images it was counted on."
        ),
        "top5": st.column_config.NumberColumn("top-5", format="percent"),
    },
)
st.caption(f"{len(table):,} stored run(s), newest first. Click a run (any cell of its row) to act on it.")

picked = state.selected_row(event["selection"])
if picked is None or picked >= len(stored):
    st.stop()
row = stored[picked]

st.subheader(f"#{row.id} · {md(row.name)}")
st.text(
    f"Model {Path(row.model).name} on {Path(row.images).name} · class order {row.class_order_source} · "
    f"preprocessing {row.preprocess} · {row.n_images:,} images · status {row.status}"
)
openable = store.openable(row)
if openable:
    with errors_shown():
        opened = store.loaded_run(row.id)
        if opened.info.relabelled_from is not None:
            order = opened.class_names
            shown = ", ".join(order[:12]) + (f", … ({len(order)} classes)" if len(order) > 12 else "")
            st.text(f"Re-labelled from run #{opened.info.relabelled_from}, class order {shown} (the same predictions; no inference ran).")
if st.button(
    "Open",
    type="primary",
    icon=":material/open_in_new:",
    key="history_open",
    disabled=not openable,
    help="Make this the current run; Results, Mispredictions and Class mapping show it."
    if openable
    else f"A {row.status} run has no complete results to open.",
):
    state.open_run(row.id)
    st.switch_page(links.screen("results"), query_params={links.RUN: str(row.id)})
if openable:
    links.copy_link(links.page_url("results", **{links.RUN: row.id}), key=f"history-link-{row.id}")

name_col, rename_col = st.columns([4, 1], vertical_alignment="bottom")
name_col.text_input("Name", value=row.name, key=f"rename-{row.id}", max_chars=200)
rename_col.button("Rename", key="history_rename", on_click=_rename, args=(row.id,), width="stretch")

if st.session_state.get("confirm_delete") == row.id:
    st.warning(f"Delete run #{row.id} **{md(row.name)}** ({row.n_images:,} images) from the history? This cannot be undone.")
    yes, no = st.columns(2)
    yes.button("Delete for good", type="primary", key="history_delete_yes", on_click=_delete, args=(row.id,), width="stretch")
    no.button("Keep it", key="history_delete_no", on_click=_ask_delete, args=(None,), width="stretch")
else:
    st.button("Delete…", icon=":material/delete:", key="history_delete", on_click=_ask_delete, args=(row.id,))

if openable:
    with errors_shown():
        panels.downloads(store.loaded_run(row.id), key=f"history-{row.id}")
