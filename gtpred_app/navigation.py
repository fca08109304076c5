"""The app's routing and shared sidebar: what every request runs first, whichever screen it asks for."""

from __future__ import annotations

import logging

import streamlit as st

from gtpred_app.ui import links, running, state
from gtpred_app.ui.errors import errors_shown


def main() -> None:
    """Set up the page, route to the screen the URL asks for, draw the shared sidebar."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    st.set_page_config(page_title="gtpred", page_icon=":material/fact_check:", layout="wide")

    page = st.navigation(
        [
            _page("evaluate", "Evaluate", ":material/play_arrow:"),
            _page("results", "Results", ":material/insights:"),
            _page("mispredictions", "Mispredictions", ":material/report:"),
            _page("class_mapping", "Class mapping", ":material/swap_vert:"),
            _page("history", "History", ":material/history:"),
            _page("compare", "Compare", ":material/compare_arrows:"),
            _page("training", "Training", ":material/monitoring:"),
        ]
    )

    if running.collect_finished():
        st.toast("The evaluation has finished: see Results.", icon=":material/check_circle:")

    with st.sidebar:
        run = state.current_run()
        if run is not None:
            # panels imports pandas and Altair (about 1 s on a fresh server): only once there is a
            # run to describe, so the first page of a fresh session does not wait for them.
            from gtpred_app.ui.panels import run_caption

            accuracy = f"{run.accuracy:.1%}" if run.accuracy is not None else "n/a"
            run_id = state.current_run_id()
            which = f"Run #{run_id}" if run_id is not None else "Current run (not saved)"
            st.caption(f"{which}: accuracy **{accuracy}** on {run.n_images:,} images")
            st.caption(run_caption(run))
        job = state.current_job()
        if job is not None and job.running:
            st.caption(f"Evaluating {job.label}: {job.fraction:.0%}")

    with errors_shown():
        page.run()


def _page(name: str, title: str, icon: str) -> st.Page:
    """Screen ``name`` at its pinned address (``links.url_path``): shared links stay valid."""
    if name == links.DEFAULT_SCREEN:
        return st.Page(links.screen(name), title=title, icon=icon, default=True)
    return st.Page(links.screen(name), title=title, icon=icon, url_path=links.url_path(name))
