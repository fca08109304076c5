"""Calibration: does a 90% confidence mean 90% right? The calibration numbers, a reliability
diagram (click a bin to list its images, e.g. the confident and wrong; click a row to open one),
calibration per class, and what a temperature would change. ``?run=ID`` names the stored run;
``&file=`` opens an image."""

from __future__ import annotations

import streamlit as st

from gtpred_core import Run
from gtpred_core.calibration import (
    N_BINS,
    Calibration,
    bin_files,
    calibration,
    per_class_calibration,
    temperature_what_if,
    what_if_sentence,
)

from gtpred_app.ui import charts, panels, state, tables
from gtpred_app.ui.images import with_thumbnails

PAGE_SIZE = 20
ROW_HEIGHT = 44

run = state.require_run()
run_id = state.current_run_id()

st.title("Calibration")
panels.stored_status(run_id, "calibration")
st.write(
    "A well-calibrated model is right 90% of the time when it says 90%. Its confidences can then be "
    "used as they are: to send unsure images to a person, or to trust sure ones."
)
if "class-order-mismatch" in run.warning_codes():
    st.warning(
        "The class order looks wrong (see Results): these numbers read every prediction under the "
        "wrong names. Re-label the run on Results first.",
        icon=":material/swap_vert:",
    )

numbers = calibration(run.probabilities, run.y_true)
if numbers.ece is None:
    st.info("This run has no evaluated image, so there is nothing to calibrate.")
    st.stop()
ece, mce, brier, nll = st.columns(4)
ece.metric(
    "Calibration error (ECE)",
    f"{100 * numbers.ece:.1f} points",
    help=f"How far the model's confidence is from how often it is right, on average over {N_BINS} "
    "confidence bins weighted by their images. 0 is perfect.",
)
mce.metric("Largest gap in one bin", f"{100 * numbers.mce:.1f} points", help="The worst bin's gap between confidence and share right.")
brier.metric("Brier score", f"{numbers.brier:.3f}", help="Mean squared distance between the probabilities and the true class: 0 is perfect, lower is better.")
nll.metric("Log loss", f"{numbers.nll:.3f}", help="Mean −ln p(true class): a confident mistake costs a lot. Lower is better.")

st.header("Reliability diagram")
st.caption(
    "Each column is a confidence bin. Blue: the share of its predictions that are right; the dark tick: "
    "how sure they were on average, red above a bar where they were surer than right (over-confident). "
    "On the dashed diagonal a model is exactly as sure as it is right. The number is the bin's images. "
    "Click a bin to list its images (double-click clears)."
)
@st.fragment
def browse_bins(run: Run, run_id: int | None, numbers: Calibration) -> None:
    """The diagram, the clicked bin's images and the open one. A fragment: a click on a bin or an
    image reruns this section alone, not the page around it (issue 19)."""
    diagram, listing = st.columns(2, gap="large")
    with diagram:
        event = st.altair_chart(charts.reliability_diagram(numbers.bins), on_select="rerun", key="reliability", width="stretch")
        opened = st.container()
    picked = event["selection"].get(charts.BIN) or []
    with listing:
        if not picked:
            st.info("Click a bin of the diagram to list its images. The bins at the right hold the sure predictions: their wrong ones are the confident mistakes.")
        else:
            number = int(picked[0]["bin"])
            chosen = numbers.bins[number]
            only_wrong = st.toggle("Only the wrong ones", key=f"bin-wrong-{number}")
            files = bin_files(run, number, only_wrong=only_wrong)
            st.text(
                f"Confidence {chosen.lower:.0%}–{chosen.upper:.0%}: {chosen.count:,} images, "
                f"{chosen.accuracy:.1%} right at a mean confidence of {chosen.confidence:.1%}"
                + (f"; {len(files):,} wrong" if only_wrong else "")
            )
            if files.empty:
                st.success("None wrong in this bin.")
            else:
                pages = tables.page_count(len(files), PAGE_SIZE)
                page = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key=f"bin-page-{number}-{only_wrong}") if pages > 1 else 1
                shown = with_thumbnails(tables.page_of(files, page, PAGE_SIZE), run.info.images, side=ROW_HEIGHT - 4)
                clicked = panels.clicked_file(
                    shown,
                    ["thumbnail", "file", "true", "predicted", "confidence", "right"],
                    f"bin-files-{number}-{only_wrong}-{page}",
                    ROW_HEIGHT,
                    {
                        "true": st.column_config.TextColumn("true", width="small"),
                        "predicted": st.column_config.TextColumn("predicted", width="small"),
                        "confidence": st.column_config.NumberColumn("confidence", format="percent", width="small"),
                        "right": st.column_config.CheckboxColumn("right", width="small", help="Whether the predicted class is the true class."),
                    },
                )
                if clicked:
                    state.select_file(clicked, scope="calibration")
    with opened:
        panels.opened_file(run, run_id, "calibration")


browse_bins(run, run_id, numbers)

st.header("Per class")
st.caption("For the images predicted as each class: when the model says this class, is it right as often as it is sure?")
st.dataframe(
    [c.to_dict() for c in per_class_calibration(run.probabilities, run.y_true, run.class_names)],
    hide_index=True,
    column_config={
        "label": "class",
        "n_predicted": st.column_config.NumberColumn("images predicted as it"),
        "confidence": st.column_config.NumberColumn("mean confidence", format="percent"),
        "accuracy": st.column_config.NumberColumn("share right", format="percent", help="Of the images predicted as this class, the share that are of it (its precision)."),
        "gap": st.column_config.NumberColumn(
            "confidence − right", format="%+.3f",
            help="Positive: over-confident (surer than it is right); negative: under-confident.",
        ),
        "ece": st.column_config.NumberColumn("ECE", format="%.3f", help=f"The calibration error over these images, in the same {N_BINS} bins (0 is perfect)."),
    },
)

st.header("What if the probabilities were softened?")
st.write(what_if_sentence(temperature_what_if(run.probabilities, run.y_true)))
st.caption("The temperature is fitted on every other image and the calibration error measured on the rest, so the figure is not flattered by fitting and measuring on the same images.")
