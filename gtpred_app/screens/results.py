"""Results: the numbers, the warnings, a clickable confusion matrix and the confidence split."""

from __future__ import annotations

import streamlit as st

from gtpred_core import views

from gtpred_app.ui import charts, panels, state, store

CELL_PAGE_SIZE = 60

run = state.require_run()

st.title("Results")
st.markdown(panels.run_caption(run))
store.show_stored_status(state.current_run_id())
panels.run_warnings(run)

if run.suggested_class_order:
    if st.button(
        "Re-label under the suggested class order",
        type="primary",
        icon=":material/swap_vert:",
        key="relabel",
        help="Reads output k as the k-th class of the suggested order: "
        + ", ".join(run.suggested_class_order)
        + ". Uses the predictions already made; no inference runs.",
    ):
        state.set_current_run(run.relabel(run.suggested_class_order), previous_id=state.current_run_id())
        st.rerun()
elif state.previous_run_id():
    st.success(
        f"Re-labelled under the class order **{run.info.class_order_source}**, from the same "
        "predictions (no inference ran again)."
    )
    st.button(
        "Back to the original class order",
        key="undo_relabel",
        on_click=state.restore_run,
        args=(state.previous_run_id(),),
    )

accuracy, top5, evaluated, skipped = st.columns(4)
accuracy.metric("Accuracy", f"{run.accuracy:.1%}" if run.accuracy is not None else "n/a")
top5.metric(
    "Top-5 accuracy",
    f"{run.metrics.top5_accuracy:.1%}" if run.metrics.top5_accuracy is not None else "n/a",
    help=None if run.metrics.top5_accuracy is not None else "Only with more than 5 classes.",
)
evaluated.metric("Images evaluated", f"{run.n_images:,}")
skipped.metric("Skipped", f"{len(run.skipped):,}")
if run.skipped:
    with st.expander("Skipped files and why"):
        st.dataframe([{"file": s.path, "reason": s.reason} for s in run.skipped], hide_index=True)

panels.downloads(run, key="results")

st.header("Confusion matrix")
st.caption("Rows are the true class, columns the predicted class; colour is the share of the row. Click a cell to see its images (double-click clears).")
matrix_col, cell_col = st.columns([3, 2])
with matrix_col:
    cell = panels.clicked_confusion_cell(run, key="confusion")
with cell_col:
    if cell is None:
        st.info("Click a cell of the matrix to see the images in it.")
    else:
        true_name, pred_name = cell
        files = views.cell_files(run, true_name, pred_name)
        st.markdown(f"**True {true_name}, predicted {pred_name}: {len(files):,} images**")
        if len(files):
            pages = views.page_count(len(files), CELL_PAGE_SIZE)
            page = st.number_input("Page", 1, pages, 1, key=f"cell_page-{true_name}-{pred_name}") if pages > 1 else 1
            shown = views.with_thumbnails(views.page_of(files, page, CELL_PAGE_SIZE), run.info.images, side=48)
            st.dataframe(
                shown[["thumbnail", "file", "confidence"]],
                hide_index=True,
                row_height=52,
                key="cell_files",
                column_config={
                    "thumbnail": st.column_config.ImageColumn("image", width="small"),
                    "confidence": st.column_config.ProgressColumn("confidence", format="percent", min_value=0, max_value=1),
                },
            )

st.header("Per class")
st.dataframe(
    views.per_class_table(run),
    hide_index=True,
    column_config={
        "precision": st.column_config.NumberColumn(format="%.3f"),
        "recall": st.column_config.NumberColumn(format="%.3f"),
        "f1": st.column_config.NumberColumn("F1", format="%.3f"),
    },
)

st.header("Confidence of right and wrong predictions")
st.caption("A good model is confident when right and unsure when wrong; confident mistakes are worth a look on the Mispredictions page.")
st.altair_chart(charts.confidence_histogram(views.confidence_histogram(run)), width="stretch")
