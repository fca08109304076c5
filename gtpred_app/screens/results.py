"""Results: the numbers, the warnings, a clickable confusion matrix (click a cell, then any of
its images) and the confidence split. ``?run=ID`` names the stored run; ``&file=`` opens an image."""

from __future__ import annotations

import streamlit as st

from gtpred_core import Run
from gtpred_core.metrics import proportion_text
from gtpred_core.report import report_html

from gtpred_app.ui import charts, panels, state, tables
from gtpred_app.ui.images import with_thumbnails
from gtpred_app.ui.text import md

CELL_PAGE_SIZE = 25
CELL_ROW_HEIGHT = 52

run = state.require_run()
run_id = state.current_run_id()

st.title("Results")
st.markdown(panels.run_caption(run))
panels.stored_status(run_id, "results")
panels.run_warnings(run)
pair = st.session_state.get("cancelled_pair")
if pair is not None and pair[0] == run_id:
    st.info(
        f"The second model, evaluated in the same pass, stopped at the same image: its run is "
        f"#{pair[1]} in the History.",
        icon=":material/compare_arrows:",
    )

if run.suggested_class_order:
    if st.button(
        "Re-label under the suggested class order",
        type="primary",
        icon=":material/swap_vert:",
        key="relabel",
        help="Reads output k as the k-th class of the suggested order: "
        + ", ".join(md(c) for c in run.suggested_class_order)
        + ". Uses the predictions already made (no inference runs) and saves the result as a new run.",
    ):
        state.relabel_current(run, run.suggested_class_order)
        st.rerun()
elif run.info.relabelled_from is not None:
    st.success(
        f"Re-labelled from run #{run.info.relabelled_from} under the class order "
        f"**{md(run.info.class_order_source)}**, from the same predictions (no inference ran again)."
    )
    st.caption("Class order, output 0 first: " + ", ".join(md(c) for c in run.class_names))
    st.button(
        f"Back to run #{run.info.relabelled_from} (the original class order)",
        key="undo_relabel",
        on_click=state.open_run,
        args=(run.info.relabelled_from,),
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

ci = run.metrics.accuracy_ci
if ci is not None:
    st.markdown(
        f"Accuracy **{proportion_text(run.accuracy, ci, run.n_images)}**: with this many images, the "
        f"model's accuracy on images like these is very likely between {ci.low:.1%} and {ci.high:.1%}."
    )
    if run.metrics.top5_accuracy_ci is not None:
        st.caption(f"Top-5 accuracy {proportion_text(run.metrics.top5_accuracy, run.metrics.top5_accuracy_ci, run.n_images)}.")

panels.downloads(run, key="results")
st.download_button(
    "Report (HTML)",
    data=lambda: report_html(run),
    file_name="report.html",
    mime="text/html",
    icon=":material/description:",
    on_click="ignore",
    key="results-report",
    width="stretch",
    help="One self-contained page to send to someone who does not run gtpred: it opens offline in any "
    "browser, with the numbers and their intervals, the warnings, the confusion matrix, calibration, "
    "the most confident mistakes and the suspect labels.",
)

st.header("Confusion matrix")
if len(run.class_names) > panels.MANY_CLASSES:
    st.caption(
        f"{len(run.class_names):,} classes: too many for one matrix. Click a top confusion, or choose classes "
        "for the matrix (rows are the true class, columns the predicted class; colour is the share of the row) "
        "and click a cell, to see its images; then click an image to open it."
    )
else:
    st.caption("Rows are the true class, columns the predicted class; colour is the share of the row. Click a cell to see its images (double-click clears), then click an image to open it.")


@st.fragment
def confusion_section(run: Run, run_id: int | None) -> None:
    """The matrix and the cell's images, side by side. A fragment: a click on a cell or an image
    reruns this section alone, so the browser redraws two columns, not the whole page (issue 19:
    a full rerun of Results cost about a second of the browser's time per click)."""
    matrix_col, cell_col = st.columns([3, 2])
    with matrix_col:
        cell = panels.confusion_view(run, key="confusion")
    with cell_col:
        opened = st.container()  # the opened image goes above the list, where the eye is
        if cell is None:
            st.info("Click a cell of the matrix to see the images in it.")
        else:
            true_name, pred_name, files = cell.true, cell.predicted, cell.files
            class_total = int(run.metrics.per_class[run.class_names.index(true_name)].support)
            share = f" ({len(files) / class_total:.0%} of the {class_total:,} images of {true_name})" if class_total else ""
            st.text(f"True {true_name}, predicted {pred_name}: {len(files):,} images{share}")
            if len(files):
                pages = tables.page_count(len(files), CELL_PAGE_SIZE)
                page = st.number_input("Page", 1, pages, 1, key=f"cell_page-{true_name}-{pred_name}") if pages > 1 else 1
                shown = with_thumbnails(tables.page_of(files, page, CELL_PAGE_SIZE), run.info.images, side=CELL_ROW_HEIGHT - 4)
                clicked = panels.clicked_file(
                    shown,
                    ["thumbnail", "file", "confidence"],
                    f"cell_files-{true_name}-{pred_name}-{page}",
                    CELL_ROW_HEIGHT,
                    {"confidence": panels.percent_column()},
                )
                if clicked:
                    state.select_file(clicked, scope="results")
        with opened:
            panels.opened_file(run, run_id, "results")


confusion_section(run, run_id)

st.header("Per class")
st.caption("Each rate with its 95% interval: the range its true value very likely lies in, given how many images it was counted on.")
st.dataframe(
    run.per_class_table(),
    hide_index=True,
    column_config={
        "precision": st.column_config.NumberColumn(format="%.3f", help="Of the images predicted as this class, the share that are of it."),
        "precision_ci": st.column_config.TextColumn("precision 95% CI", help="Counted on the images predicted as this class."),
        "recall": st.column_config.NumberColumn(format="%.3f", help="Of this class's images, the share predicted as it."),
        "recall_ci": st.column_config.TextColumn("recall 95% CI", help="Counted on this class's images."),
        "f1": st.column_config.NumberColumn("F1", format="%.3f"),
        "support": st.column_config.NumberColumn("images"),
        "few_images": st.column_config.CheckboxColumn(
            "few images",
            help="Too few images to trust this class's figures: its precision or recall could be more "
            "than 20 points away from what is shown (the 95% interval is wider than 20 points). "
            "Add images of this class to know.",
        ),
    },
)

st.header("Confidence of right and wrong predictions")
st.caption("A good model is confident when right and unsure when wrong; confident mistakes are worth a look on the Mispredictions page.")
st.altair_chart(charts.confidence_histogram(run.confidence_histogram()), width="stretch")
