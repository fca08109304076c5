"""The run store as the app uses it: one ``RunStore`` per server and database file, stored runs
loaded once and cached by their id, and where the inference worker saves each evaluation as it
goes (a store failure never costs the results: the worker uses ``gtpred_core.store.GuardedWriter``).

The database path comes from ``GTPRED_DB`` (``gtpred_core.store.default_db_path``), read on every
call, so the cache holds one store per file.
"""

from __future__ import annotations

import logging

import streamlit as st

from gtpred_core import Run
from gtpred_core.run import RunStatus
from gtpred_core.compare import RunComparison, compare_runs
from gtpred_core.errors import StoreError
from gtpred_core.store import RunStore, StoredRun, default_db_path
from gtpred_core.training_history import EpochRun, TrainingHistory

log = logging.getLogger("gtpred.app")


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> RunStore:
    return RunStore(path)  # opens nothing for writing: pages that only read never change the file


def run_store() -> RunStore:
    """The server's store for the configured database file (a StoreError when it cannot open;
    its message names the file only, the full path goes to the server log)."""
    try:
        return _open_store(str(default_db_path()))
    except StoreError as err:
        log.warning("The run store %s cannot be used: %s", err.path, err)
        raise


@st.cache_resource(max_entries=16, show_spinner="Loading the stored run…")
def _load(path: str, run_id: int, status: str, n_images: int) -> Run:
    return _open_store(path).load(run_id)


def loaded_run(run_id: int) -> Run:
    """Stored run ``run_id``, loaded once per server while it is unchanged (a run still being
    written is keyed by its status and size, so it is reloaded as it grows). The store's error
    when it is not there (deleted, or never stored)."""
    row = run_store().get(run_id)
    return _load(str(run_store().path), run_id, row.status, row.n_images)


@st.cache_resource(max_entries=8, show_spinner="Comparing the runs…")
def _compare(path: str, a: int, a_key: tuple, b: int, b_key: tuple) -> RunComparison:
    return compare_runs(loaded_run(a), loaded_run(b))


def comparison(a: int, b: int) -> RunComparison:
    """``compare_runs`` of two stored runs, cached (a ComparisonError when they cannot compare)."""
    row_a, row_b = run_store().get(a), run_store().get(b)
    return _compare(str(run_store().path), a, (row_a.status, row_a.n_images), b, (row_b.status, row_b.n_images))


def training_history(training_id: int) -> TrainingHistory:
    """Stored training ``training_id``: each recorded epoch with its logs and its (cached) run."""
    epochs = run_store().training_epochs(training_id)
    return TrainingHistory(tuple(EpochRun(e.epoch, e.logs, loaded_run(e.run_id), run_id=e.run_id) for e in epochs))


def openable(row: StoredRun) -> bool:
    """A run still being written, or one that failed before its summary, cannot be opened."""
    return row.status in (RunStatus.COMPLETE, RunStatus.CANCELLED)


def store_path() -> str:
    """Where the inference worker streams runs: the configured store file (``GTPRED_DB``)."""
    return str(default_db_path())
