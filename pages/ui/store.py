"""The run store as the app uses it: one ``RunStore`` per server and database file, cached
loading of stored runs, and saving an evaluation as it goes without ever risking its results.

The database path comes from ``GTPRED_DB`` (``gtpred_core.store.default_db_path``), read on every
call, so the cache holds one store per file.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import streamlit as st

from gtpred_core import GtpredError, Run, RunInfo
from gtpred_core.compare import RunComparison, compare_runs
from gtpred_core.store import RunStore, RunWriter, StoredRun, default_db_path

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
    return row.status in ("complete", "cancelled")


# ----- saving an evaluation as it goes ------------------------------------------------------------
class SavingSink:
    """``evaluate_folder``'s sink that streams the run into the store and never fails the run.

    Runs in the evaluation's worker thread (no Streamlit calls). The first store error is kept in
    ``error`` and saving stops (the partial stored run is marked failed); inference goes on, so
    the session keeps its results whatever happens to the database.
    """

    def __init__(self, writer: RunWriter | None, error: BaseException | None = None) -> None:
        self.writer = writer
        self.error = error

    @property
    def run_id(self) -> int | None:
        return self.writer.run_id if self.writer is not None and self.error is None else None

    def _guard(self, step: str, *args) -> None:
        if self.writer is None or self.error is not None:
            return
        try:
            getattr(self.writer, step)(*args)
        except Exception as err:  # noqa: BLE001 - kept and shown; the evaluation must go on
            log.warning("Saving the run in the store failed: %s", err)
            self.error = err
            if self.writer.run_id is not None and step != "fail":
                try:
                    self.writer.fail()
                except Exception:  # noqa: BLE001 - the store is already failing
                    pass

    def start(self, info: RunInfo, class_names: Sequence[str]) -> int | None:
        self._guard("start", info, class_names)
        return self.run_id

    def add_rows(self, paths: Sequence[str], y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray) -> None:
        self._guard("add_rows", paths, y_true, y_pred, probabilities)

    def finish(self, run: Run) -> int | None:
        self._guard("finish", run)
        return self.run_id

    def fail(self) -> None:
        self._guard("fail")


def saving_sink(name: str | None = None) -> SavingSink:
    """A sink saving into the server's store; when the store cannot open, one that only keeps
    the error (the evaluation still runs)."""
    try:
        return SavingSink(run_store().writer(name))
    except Exception as err:  # noqa: BLE001 - shown with the run; the evaluation must go on
        log.warning("The run store cannot be opened: %s", err)
        return SavingSink(None, err)


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
