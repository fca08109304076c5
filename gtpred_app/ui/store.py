"""The run store as the app uses it: one ``RunStore`` per server and database file, cached
loading of stored runs, and where the inference worker saves each evaluation as it goes (a store failure never costs
the results: the worker uses ``gtpred_core.store.GuardedWriter``).

The database path comes from ``GTPRED_DB`` (``gtpred_core.store.default_db_path``), read on every
call, so the cache holds one store per file.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import streamlit as st

from gtpred_core import GtpredError, Run, RunInfo
from gtpred_core.run import RunStatus
from gtpred_core.compare import RunComparison, compare_runs
from gtpred_core.store import RunStore, StoredRun, default_db_path

log = logging.getLogger("gtpred.app")


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> RunStore:
    return RunStore(path)


def run_store() -> RunStore:
    """The server's store for the configured database file (a StoreError when it cannot open)."""
    return _open_store(str(default_db_path()))


@st.cache_resource(max_entries=16, show_spinner="Loading the stored run…")
def _load(path: str, run_id: int, status: str, n_images: int) -> Run:
    return _open_store(path).load(run_id)


def loaded_run(run_id: int) -> Run:
    """A stored run, loaded once per server while it is unchanged (a run still being written is
    keyed by its status and size, so it is reloaded as it grows)."""
    row = run_store().get(run_id)
    return _load(str(run_store().path), run_id, row.status, row.n_images)


@st.cache_resource(max_entries=8, show_spinner="Comparing the runs…")
def _compare(path: str, a: int, a_key: tuple, b: int, b_key: tuple) -> RunComparison:
    return compare_runs(loaded_run(a), loaded_run(b))


def comparison(a: int, b: int) -> RunComparison:
    """``compare_runs`` of two stored runs, cached (a ComparisonError when they cannot compare)."""
    row_a, row_b = run_store().get(a), run_store().get(b)
    return _compare(str(run_store().path), a, (row_a.status, row_a.n_images), b, (row_b.status, row_b.n_images))


def openable(row: StoredRun) -> bool:
    """A run still being written, or one that failed before its summary, cannot be opened."""
    return row.status in (RunStatus.COMPLETE, RunStatus.CANCELLED)


# ----- saving an evaluation as it goes ------------------------------------------------------------
def store_path() -> str:
    """Where the inference worker streams runs: the configured store file (``GTPRED_DB``)."""
    return str(default_db_path())


# ----- which stored run the session's run is --------------------------------------------------------
def remember_stored(session_run_id: str, stored_id: int | None, error: BaseException | None = None) -> None:
    """Note that the session's run ``session_run_id`` is stored run ``stored_id`` (or why not)."""
    st.session_state.setdefault("stored_runs", {})[session_run_id] = (stored_id, error)


def forget_stored(stored_id: int) -> None:
    """A stored run was deleted: the session's runs made from it are no longer in the history."""
    remembered = st.session_state.get("stored_runs", {})
    for session_run_id, (saved_id, _) in list(remembered.items()):
        if saved_id == stored_id:
            del remembered[session_run_id]


def stored_status(session_run_id: str | None) -> tuple[int | None, BaseException | None] | None:
    """(stored id, error) for a session run saved or opened from the store, else None."""
    return st.session_state.get("stored_runs", {}).get(session_run_id)


def show_stored_status(session_run_id: str | None) -> None:
    """One line saying where the current run is stored, or why it could not be saved."""
    status = stored_status(session_run_id)
    if status is None:
        return
    stored_id, error = status
    if error is not None:
        reason = error.message if isinstance(error, GtpredError) else str(error) or type(error).__name__
        st.warning(
            f"**Not saved in the history:** {reason} The results stay in this session until the "
            "server restarts; download them from Results to keep them.",
            icon=":material/warning:",
        )
    elif stored_id is not None:
        st.caption(f"Saved in the history as run #{stored_id}.")
