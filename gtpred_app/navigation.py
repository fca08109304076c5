"""The app's routing and shared sidebar: what every request runs first, whichever screen it asks for."""

from __future__ import annotations

import logging

import streamlit as st

from gtpred_app.ui import links, running, state
from gtpred_app.ui.errors import errors_shown
from gtpred_app.ui.panels import run_caption


def main() -> None:
    """Set up the page, route to the screen the URL asks for, draw the shared sidebar."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    st.set_page_config(page_title="gtpred", page_icon=":material/fact_check:", layout="wide")

    page = st.navigation(
        [
            st.Page(links.screen("evaluate"), title="Evaluate", icon=":material/play_arrow:", default=True),
            st.Page(links.screen("results"), title="Results", icon=":material/insights:"),
            st.Page(links.screen("mispredictions"), title="Mispredictions", icon=":material/report:"),
            st.Page(links.screen("class_mapping"), title="Class mapping", icon=":material/swap_vert:"),
            st.Page(links.screen("history"), title="History", icon=":material/history:"),
            st.Page(links.screen("compare"), title="Compare", icon=":material/compare_arrows:"),
            st.Page(links.screen("training"), title="Training", icon=":material/monitoring:"),
        ]
    )

    state.worker_pool()  # the first session starts the server's inference workers, ahead of any click
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
        running.show_workers_starting()

    with errors_shown():
        page.run()
