"""The app's routing and shared sidebar: what every request runs first, whichever screen it asks for."""

from __future__ import annotations

import importlib
import logging
import threading

import streamlit as st

from gtpred_app.ui import links, running, state
from gtpred_app.ui.errors import errors_shown
from gtpred_app.ui.text import md


def main() -> None:
    """Set up the page, route to the screen the URL asks for, draw the shared sidebar."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    st.set_page_config(page_title="gtpred", page_icon=":material/fact_check:", layout="wide")

    evaluate = _page("evaluate", "Evaluate", ":material/play_arrow:")
    page = st.navigation(
        [
            evaluate,
            _page("results", "Results", ":material/insights:"),
            _page("mispredictions", "Mispredictions", ":material/report:"),
            _page("class_mapping", "Class mapping", ":material/swap_vert:"),
            _page("suspect_labels", "Suspect labels", ":material/label_off:"),
            _page("calibration", "Calibration", ":material/speed:"),
            _page("embedding_map", "Embedding map", ":material/scatter_plot:"),
            _page("leakage", "Leakage", ":material/content_copy:"),
            _page("history", "History", ":material/history:"),
            _page("compare", "Compare", ":material/compare_arrows:"),
            _page("training", "Training", ":material/monitoring:"),
        ]
    )

    state.worker_pool()  # the first session starts the server's inference workers, ahead of any click
    if running.collect_finished():
        if page.url_path == evaluate.url_path:
            # The run ended between two reruns of the page that follows it (a rerun interrupted
            # its polling loop just then): go where that loop would have gone.
            running.open_results()
        both = st.session_state.pop("compare_pair", None) is not None  # two models: their runs are on Compare
        st.toast(f"The evaluation has finished: see {'Compare' if both else 'Results'}.", icon=":material/check_circle:")

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
            st.caption(f"Evaluating {md(job.label)}: {job.fraction:.0%}")
        running.show_workers_starting()

    with errors_shown():
        page.run()
    _preload_results_modules()


#: What the Results page imports first (pandas, pyarrow, Altair, PIL: about 1 s of a 2-core
#: server's CPU, more when busy). The first page never needs them.
RESULTS_MODULES = ("pandas", "pyarrow", "altair", "PIL.Image", "gtpred_app.ui.panels", "gtpred_app.ui.tables")
PRELOAD_THREAD = "gtpred-preload"
#: Set once ``RESULTS_MODULES`` are imported (or failed to import: the page then imports them).
results_modules_loaded = threading.Event()
_preload_started = threading.Lock()


def _preload_results_modules() -> None:
    """Import ``RESULTS_MODULES`` in a background thread once per server process, after the first
    page is drawn: the first demo's results then do not wait for them, and the first page did
    not either."""
    if results_modules_loaded.is_set() or not _preload_started.acquire(blocking=False):
        return
    threading.Thread(target=_import_results_modules, name=PRELOAD_THREAD, daemon=True).start()


def _import_results_modules() -> None:
    try:
        for name in RESULTS_MODULES:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a preload is an optimisation: the page imports them itself
        logging.getLogger("gtpred.app").warning("Preloading the Results page's modules failed", exc_info=True)
    finally:
        results_modules_loaded.set()


def _page(name: str, title: str, icon: str) -> st.Page:
    """Screen ``name`` at its pinned address (``links.url_path``): shared links stay valid."""
    if name == links.DEFAULT_SCREEN:
        return st.Page(links.screen(name), title=title, icon=icon, default=True)
    return st.Page(links.screen(name), title=title, icon=icon, url_path=links.url_path(name))
