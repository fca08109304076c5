"""What a session holds: the current run (surviving page switches), cached models and folders.

Runs are kept in a small in-memory registry shared by the server's sessions, keyed by a random
id that travels in the URL (``?run=...``): a refreshed page or a shared link to a
misprediction finds its run again without re-running inference, until the server restarts.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from gtpred_core import ClassOrder, GtpredError, ImageFolder, Run, index_image_folder
from gtpred_core.pool import InferencePool
from gtpred_core.worker import ModelFacts
from gtpred_core.settings import get_settings

from . import links, store
from .jobs import EvaluationJob, submit_job

RUN_PARAM = "run"
FILE_PARAM = "file"
MAX_RUNS = 16


class RunRegistry:
    """The last ``MAX_RUNS`` runs by id (oldest dropped first); thread-safe."""

    def __init__(self, capacity: int = MAX_RUNS) -> None:
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity

    def add(self, run: Run) -> str:
        run_id = secrets.token_urlsafe(9)
        with self._lock:
            self._runs[run_id] = run
            while len(self._runs) > self.capacity:
                self._runs.popitem(last=False)
        return run_id

    def get(self, run_id: str | None) -> Run | None:
        if not run_id:
            return None
        with self._lock:
            return self._runs.get(run_id)


@st.cache_resource
def run_registry() -> RunRegistry:
    return RunRegistry()


# ----- the current run --------------------------------------------------------------------------
def set_current_run(run: Run, previous_id: str | None = None) -> str:
    """Make ``run`` the session's run; ``previous_id`` lets the user go back (after relabelling)."""
    run_id = run_registry().add(run)
    st.session_state["run_id"] = run_id
    st.session_state["previous_run_id"] = previous_id
    st.session_state.pop("selected_file", None)
    st.query_params[RUN_PARAM] = run_id
    return run_id


def current_run_id() -> str | None:
    """The session's run id, adopting the URL's when the session has none (a fresh tab/link)."""
    run_id = st.session_state.get("run_id")
    url_id = st.query_params.get(RUN_PARAM)
    if run_id is None and url_id and run_registry().get(url_id) is not None:
        run_id = st.session_state["run_id"] = url_id
    if run_id is not None and url_id != run_id:
        st.query_params[RUN_PARAM] = run_id  # keep the URL shareable after a page switch
    return run_id


def current_run() -> Run | None:
    return run_registry().get(current_run_id())


def previous_run_id() -> str | None:
    return st.session_state.get("previous_run_id")


def restore_run(run_id: str) -> None:
    """Go back to an earlier run of this session (e.g. undo a relabelling)."""
    st.session_state["run_id"] = run_id
    st.session_state["previous_run_id"] = None
    st.query_params[RUN_PARAM] = run_id


def require_run() -> Run:
    """The current run, or a short note with the way to get one (and the page stops)."""
    run = current_run()
    if run is not None:
        return run
    url_id = st.query_params.get(RUN_PARAM)
    if url_id:
        st.warning(
            "This link points to a run the server no longer holds (runs are kept in memory "
            "until the server restarts). Evaluate the model again to see its results."
        )
    else:
        st.info("No results yet: evaluate a model first, or run the one-click demo.")
    st.page_link(links.screen("evaluate"), label="Go to Evaluate", icon=":material/play_arrow:")
    st.stop()


# ----- the selected misprediction (carried in the URL) ------------------------------------------
def selected_file(run: Run) -> str | None:
    """The file chosen on the Mispredictions page: from the URL, else from this session."""
    rel = st.query_params.get(FILE_PARAM) or st.session_state.get("selected_file")
    if rel is None or rel not in run.paths:
        return None
    if st.query_params.get(FILE_PARAM) != rel:
        st.query_params[FILE_PARAM] = rel
    st.session_state["selected_file"] = rel
    return rel


def select_file(rel: str) -> None:
    st.session_state["selected_file"] = rel
    st.query_params[FILE_PARAM] = rel


def new_selection(key: str, rows: list[int]) -> list[int]:
    """``rows`` if they differ from what this table reported last time, else [].

    A table keeps its selection across reruns; only a new click should move the detail view
    (a gallery click or a link may have chosen another file since).
    """
    seen = st.session_state.setdefault("_seen_selections", {})
    if seen.get(key) == rows:
        return []
    seen[key] = rows
    return rows


# ----- the server's inference workers and what they read from models ------------------------------
@st.cache_resource(show_spinner=False)
def worker_pool() -> InferencePool:
    """The server's inference workers, shared by every session: GTPRED_WORKERS warm processes
    (memory and time limits from the settings) behind a fair queue. The first session starts
    them, so TensorFlow's import is paid before anyone clicks, and never in the web server."""
    settings = get_settings()
    pool = InferencePool(
        settings.workers, memory_limit_mb=settings.worker_memory_mb, time_limit_s=settings.worker_time_limit_s
    )
    pool.start()
    return pool


def session_worker() -> InferencePool:
    """Where this session's models are read and run: the server's shared pool (``describe``
    never waits behind a run; evaluations queue, see ``start_evaluation``)."""
    return worker_pool()


def session_key() -> str:
    """This session's place in the pool's queue: one running evaluation per key."""
    return st.session_state.setdefault("worker_key", secrets.token_hex(8))


def _fingerprint(path: Path) -> tuple[int, int]:
    """(mtime_ns, size) of a model file, or of a SavedModel folder's files together."""
    if path.is_dir():
        stats = [p.stat() for p in sorted(path.rglob("*")) if p.is_file()]
        return max((s.st_mtime_ns for s in stats), default=0), sum(s.st_size for s in stats)
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def cached_model(path: str | Path) -> ModelFacts:
    """What the model says of itself (input size, channels, output width), read by the session's
    worker once per file version (path + modification time + size); the worker keeps the model
    loaded for the run. Uploads are stored under their content hash, so they are keyed by bytes."""
    path = Path(path)
    key = (str(path), *_fingerprint(path)) if path.exists() else (str(path),)
    facts = st.session_state.setdefault("model_facts", {})
    if key not in facts:
        with st.spinner("Loading the model…"):
            facts[key] = session_worker().describe(path)  # a missing/bad file raises its error
    return facts[key]


@st.cache_data(ttl=30, max_entries=16, show_spinner="Reading the image folder…")
def indexed_folder(path: str) -> ImageFolder:
    """``index_image_folder`` cached briefly: reruns are free, new files show within 30 s."""
    return index_image_folder(path)


def data_root() -> Path:
    return get_settings().data_root


# ----- running an evaluation ---------------------------------------------------------------------
def start_evaluation(
    model: ModelFacts,
    folder: ImageFolder,
    order: ClassOrder | str,
    *,
    preprocess: str,
    batch_size: int,
    label: str,
    origin: str = "",
    backend: str = "local",
) -> EvaluationJob:
    """Queue the evaluation in the server's worker pool; the Evaluate page follows the job
    (its place in the queue, then its progress). Nothing here waits for inference.

    The worker saves the run in the run store as it goes (a cancelled run with the part done); a
    store failure is kept on the job and shown, never losing the run itself.
    """
    source = order if isinstance(order, str) else order.source
    saved = SavedAs()
    ray_address, store_path = get_settings().ray_address, store.store_path()  # read in the page's thread
    run_name = f"{Path(str(model.path)).name} on {Path(folder.root).name}, {source} order"

    def evaluate(worker, progress, cancel) -> Run:
        run = worker.evaluate(
            model.path,
            folder,
            class_order=order,
            preprocess=preprocess,
            batch_size=batch_size,
            backend=backend,
            ray_address=ray_address,
            progress=progress,
            cancel=cancel,
            store_path=store_path,
            run_name=run_name,
        )
        # Read in the pool's lane thread right after the run: this worker is the lane's alone.
        saved.run_id = worker.last_run_id
        saved.error = GtpredError(worker.last_store_error) if worker.last_store_error else None
        return run

    job = submit_job(worker_pool(), session_key(), label, len(folder.files), evaluate, origin=origin)
    job.sink = saved
    st.session_state["job"] = job
    return job


@dataclass
class SavedAs:
    """Where the worker stored a run (filled in when the job finishes), or why it could not."""

    run_id: int | None = None
    error: BaseException | None = None


def current_job() -> EvaluationJob | None:
    """This session's last evaluation (queued, running, or finished and not yet collected)."""
    return st.session_state.get("job")


def clear_job() -> None:
    st.session_state["job"] = None


def _filters_tag(true_classes: list[str], pred_classes: list[str]) -> str:
    return f"{'+'.join(true_classes) or 'all'}|{'+'.join(pred_classes) or 'all'}"


def table_key(page: int, true_classes: list[str] = (), pred_classes: list[str] = ()) -> str:
    """The mispredictions table's widget key: a new page or filter is a new table, so an old
    row selection never points into different rows."""
    return f"mispredictions-{page}-{_filters_tag(list(true_classes), list(pred_classes))}"


def page_key(true_classes: list[str], pred_classes: list[str]) -> str:
    """The page number's key: each filter starts on page 1."""
    return f"mispredictions-page-{_filters_tag(true_classes, pred_classes)}"
