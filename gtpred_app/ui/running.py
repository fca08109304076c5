"""The progress panel of an evaluation: its place in the queue, then bar, images/s, time left; Cancel.

Inference runs in the server's worker pool (see ``jobs``); this panel keeps the page's script
alive in a short polling loop that redraws the bar, so the page updates without reruns. The loop
only reads the job's fields: no lock is held while the run goes, and other pages (and other
people's sessions) answer from the store meanwhile. Why not a
``st.fragment(run_every=...)``: after every script or fragment run Streamlit calls
``keras.backend.clear_session()`` and a full garbage collection, and doing that several times a
second starved the worker thread (the demo stalled at 0 images). A Cancel click interrupts the
loop with a rerun; the rerun sees the click, drops a queued job at once, or sets a running job's
cancel event and keeps following it until the core stops after its current batch and returns
the part already done.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Mapping

import streamlit as st

from gtpred_core.run import RunStatus

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

from . import links, state
from .errors import show_error

POLL_SECONDS = 0.25


def show_job(places: Mapping[str, "DeltaGenerator"]) -> None:
    """Follow the current job in the place of the button that started it (``places``: origin ->
    container); a finished run opens Results. Call it last on the page: it loops while the run goes."""
    job = state.current_job()
    if job is None or job.origin not in places:
        return
    with places[job.origin]:
        if job.running:
            _follow(job)
        if job.error is not None:
            show_error(job.error)
        elif job.cancelled_before_start:
            st.info("Cancelled before it started: nothing was evaluated.", icon=":material/stop:")
            state.clear_job()
        elif collect_finished():
            open_results()


def open_results() -> None:
    """Go to Results of the session's run (the one a finished job just became), or to Compare
    when two models ran together."""
    pair = st.session_state.pop("compare_pair", None)
    if pair is not None:
        st.switch_page(links.screen("compare"), query_params={links.RUN_A: str(pair[0]), links.RUN_B: str(pair[1])})
    run_id = st.session_state.get("run_id")
    st.switch_page(links.screen("results"), query_params={state.RUN_PARAM: str(run_id)} if run_id is not None else None)


def _follow(job) -> None:
    with st.container(border=True):
        st.text(f"Evaluating {job.label}")  # a folder's name is text, never Markdown
        bar = st.progress(job.fraction, text=job.progress_text())
        st.button(
            "Cancel",
            key="cancel_run",
            icon=":material/stop:",
            on_click=job.request_cancel,  # callbacks run first in the rerun: no wait for the page
            disabled=job.cancel.is_set(),
            help="Leave the queue, or stop after the current batch and keep the results so far.",
        )
        while job.running:
            time.sleep(POLL_SECONDS)
            bar.progress(job.fraction, text=job.progress_text())


def collect_finished() -> bool:
    """Adopt a finished job's run as the session's run (on whichever page the user is): the run
    the worker stored, by its id; or, when the store failed, the run itself, in this session only."""
    job = state.current_job()
    if job is None or job.running or job.run is None:
        return False
    saved = job.sink
    if saved is not None and saved.run_id is not None and saved.error is None:
        state.open_run(saved.run_id)
        if saved.compared_id is not None and job.run.info.status == RunStatus.COMPLETE:
            st.session_state["compare_pair"] = (saved.run_id, saved.compared_id)  # Compare opens both
        elif saved.compared_id is not None:
            # A cancelled pair opens on the first model's Results (Compare wants complete runs);
            # Results says where the second model's run is.
            st.session_state["cancelled_pair"] = (saved.run_id, saved.compared_id)
    else:
        state.keep_unsaved_run(job.run, saved.error if saved is not None else None)
    st.session_state["last_run_seconds"] = round(job.seconds or 0.0, 2)
    state.clear_job()
    return True


def is_busy() -> bool:
    """True while this session's evaluation is queued or runs (one at a time per session)."""
    job = state.current_job()
    return job is not None and job.running


def show_workers_starting() -> None:
    """A line in the sidebar while the server's inference workers are still starting (the first
    minute after the server starts): the first run waits for TensorFlow's import, say so."""
    slot = st.empty()  # always drawn, so a rerun replaces an earlier note instead of leaving it grey
    if state.worker_pool().status().warm == 0:
        slot.caption(":material/hourglass_top: Starting the inference workers (TensorFlow loads once after the server starts)…")
