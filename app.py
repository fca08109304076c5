"""gtpred's web app: the entry script only routes (one file per screen in pages/)."""

from __future__ import annotations

import logging

import streamlit as st

from pages.ui import running, state
from pages.ui.errors import errors_shown
from pages.ui.panels import run_caption

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="gtpred", page_icon=":material/fact_check:", layout="wide")

page = st.navigation(
    [
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/play_arrow:", default=True),
        st.Page("pages/results.py", title="Results", icon=":material/insights:"),
        st.Page("pages/mispredictions.py", title="Mispredictions", icon=":material/report:"),
        st.Page("pages/class_mapping.py", title="Class mapping", icon=":material/swap_vert:"),
        st.Page("pages/history.py", title="History", icon=":material/history:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/training.py", title="Training", icon=":material/monitoring:"),
    ]
)

if running.collect_finished():
    st.toast("The evaluation has finished: see Results.", icon=":material/check_circle:")

with st.sidebar:
    run = state.current_run()
    if run is not None:
        accuracy = f"{run.accuracy:.1%}" if run.accuracy is not None else "n/a"
        st.caption(f"Current run: accuracy **{accuracy}** on {run.n_images:,} images")
        st.caption(run_caption(run))
    job = state.current_job()
    if job is not None and job.running:
        st.caption(f"Evaluating {job.label}: {job.fraction:.0%}")

with errors_shown():
    page.run()
