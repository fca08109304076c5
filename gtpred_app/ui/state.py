"""What a session holds: the run it shows, the file it has open, its worker, cached models and folders.

A run has one identity: its id in the run store. It travels in the URL (``?run=12``), so a
refreshed page, a shared link or a link opened on a restarted server finds the same run, loaded
from the store (and cached). Only a run the store could not save lives in the session alone
(``keep_unsaved_run``): it is shown until the session ends and has no link.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import streamlit as st

from gtpred_core import ClassOrder, GtpredError, ImageFolder, Run, index_image_folder
from gtpred_core.pool import InferencePool
from gtpred_core.request import EvaluationRequest
from gtpred_core.worker import ModelFacts
from gtpred_core.settings import get_settings

from . import links, store
from .errors import show_error
from .jobs import EvaluationJob, submit_job
from .text import md

log = logging.getLogger("gtpred.app")

RUN_PARAM = links.RUN
FILE_PARAM = links.FILE


@dataclass(frozen=True)
class UnsavedRun:
    """A run the store could not save, and why: it stays in this session only."""

    run: Run
    error: BaseException | None


# ----- the current run ----------------------------------------------------------------------------
def open_run(run_id: int) -> None:
    """Make stored run ``run_id`` the session's run and put it in the URL (no file open yet)."""
    st.session_state["run_id"] = run_id
    st.session_state.pop("unsaved_run", None)
    _forget_open_files()
    st.query_params[RUN_PARAM] = str(run_id)
    st.query_params.pop(FILE_PARAM, None)


def keep_unsaved_run(run: Run, error: BaseException | None) -> None:
    """Show ``run``, which the store could not save, in this session (it has no id for a link)."""
    st.session_state["run_id"] = None
    st.session_state["unsaved_run"] = UnsavedRun(run, error)
    _forget_open_files()
    st.query_params.pop(RUN_PARAM, None)
    st.query_params.pop(FILE_PARAM, None)


def _forget_open_files() -> None:
    """Another run is shown: the files opened on its pages belonged to the previous one."""
    for key in [k for k in st.session_state if str(k).startswith("selected_file")]:
        del st.session_state[key]


def parse_id(value: str | None) -> int | None:
    """A stored id from the URL (``"12"``), None when absent or not a whole number ≥ 1."""
    if value is None or not value.strip().isdigit():
        return None
    number = int(value)
    return number if number >= 1 else None


def current_run_id() -> int | None:
    """The stored id of the run the session shows: the URL's ``?run=`` when given (a link, a
    refresh), else the session's own, which is then written back into the URL (page switches
    drop the query) so the address bar always links to what is shown."""
    if RUN_PARAM in st.query_params:
        run_id = parse_id(st.query_params.get(RUN_PARAM))
        if run_id is not None and run_id != st.session_state.get("run_id"):
            st.session_state["run_id"] = run_id  # a link to another run: the session follows it
            st.session_state.pop("unsaved_run", None)
            _forget_open_files()
        return run_id
    run_id = st.session_state.get("run_id")
    if run_id is not None:
        st.query_params[RUN_PARAM] = str(run_id)
    return run_id


def unsaved_run() -> UnsavedRun | None:
    """The session's run the store could not save, when that is what the session shows."""
    if RUN_PARAM in st.query_params:
        return None
    return st.session_state.get("unsaved_run")


def current_run() -> Run | None:
    """The run the session shows, or None (no run yet, or a link to a run that is not there)."""
    run_id = current_run_id()
    if run_id is None:
        unsaved = unsaved_run()
        return unsaved.run if unsaved is not None else None
    try:
        return store.loaded_run(run_id)
    except GtpredError:  # deleted, missing, or no store: ``require_run`` says which
        return None


def require_run() -> Run:
    """The run the page shows, or a note saying why there is none and what to do (the page stops)."""
    raw = st.query_params.get(RUN_PARAM)
    run_id = current_run_id()
    if run_id is not None:
        try:
            store.run_store()
        except GtpredError as err:  # the store itself cannot be opened: its own message and fix
            show_error(err)
            st.stop()
        try:
            return store.loaded_run(run_id)
        except GtpredError as err:
            explain_missing_run(run_id, err)
            st.stop()
    if raw is not None:
        st.warning(f"This link names no stored run (run={md(repr(raw))} is not a run number).", icon=":material/link_off:")
    else:
        unsaved = unsaved_run()
        if unsaved is not None:
            return unsaved.run
        st.info("No results yet: evaluate a model first, or run the one-click demo.")
    st.page_link(links.screen("evaluate"), label="Go to Evaluate", icon=":material/play_arrow:")
    st.stop()


def explain_missing_run(run_id: int, err: BaseException) -> None:
    """Why stored run ``run_id`` cannot be shown: deleted (restorable or not), or never here."""
    deleted_at = getattr(err, "deleted_at", None)
    if deleted_at is not None or hasattr(err, "restorable"):
        when = f" on {str(deleted_at).replace('T', ' ')[:16]} UTC" if deleted_at else ""
        if getattr(err, "restorable", False):
            how = (
                "It can still be restored: ask the people who run this server to restore it "
                "(deleted runs are kept for a while), and this link will work again."
            )
        else:
            how = "It cannot be restored: evaluate the model again to make a new run."
        st.warning(f"Run #{run_id} was deleted from the history{when}. {how}", icon=":material/delete:")
    else:
        st.warning(
            f"There is no run #{run_id} in this server's history: it was deleted for good, or the "
            "link was made on another server. Evaluate the model again to make a new run.",
            icon=":material/link_off:",
        )
    st.page_link(links.screen("history"), label="See the stored runs in History", icon=":material/history:")


def relabel_current(run: Run, order: Sequence[str]) -> None:
    """Re-read ``run``'s predictions under ``order`` (no inference) and store the result as a
    new run marked "re-labelled from run N", which becomes the session's run. When the store
    fails, the re-labelled run stays in this session (``keep_unsaved_run``)."""
    original_id = current_run_id()  # None for a run the store could not save
    relabelled = run.relabel(order)
    relabelled = replace(
        relabelled,
        info=replace(
            relabelled.info,
            relabelled_from=original_id,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        ),
    )
    name = f"re-labelled from run #{original_id}" if original_id is not None else "re-labelled"
    try:
        new_id = store.run_store().save(relabelled, name=f"{name}, {relabelled.info.class_order_source} order")
    except Exception as err:  # noqa: BLE001 - a store failure never costs the re-labelled run
        log.warning("Could not store a re-labelled run", exc_info=err)
        keep_unsaved_run(relabelled, err)
        return
    open_run(new_id)


# ----- the file open on a page (carried in the URL: ``&file=Class_3/img_0042.png``) ---------------
def selected_file(run: Run, scope: str = "") -> str | None:
    """The file open on this page, when ``run`` has it: the URL's ``?file=``, else the one this
    session opened last in ``scope`` (a page's own name, so pages do not share a choice)."""
    rel = st.query_params.get(FILE_PARAM) or st.session_state.get(f"selected_file{scope}")
    if not rel or run.file_position(rel) is None:
        return None
    if st.query_params.get(FILE_PARAM) != rel:
        st.query_params[FILE_PARAM] = rel
    st.session_state[f"selected_file{scope}"] = rel
    return rel


def select_file(rel: str, scope: str = "") -> None:
    """Open file ``rel`` (it goes in the URL: the address bar links to this image)."""
    st.session_state[f"selected_file{scope}"] = rel
    st.query_params[FILE_PARAM] = rel


def selected_row(selection: Mapping[str, Any]) -> int | None:
    """The row a table's selection points at: a clicked cell's row, else a ticked row."""
    cells = list(selection.get("cells") or [])
    rows = list(selection.get("rows") or [])
    if cells:
        return int(cells[0][0])
    return int(rows[0]) if rows else None


def clicked_row(key: str, selection: Mapping[str, Any]) -> int | None:
    """The row of a *new* click in table ``key`` (any cell of the row, or its checkbox), else None.

    A table keeps its selection across reruns; only a new click should move the detail view
    (a gallery click or a link may have opened another file since).
    """
    now = (tuple(tuple(c) for c in selection.get("cells") or []), tuple(selection.get("rows") or []))
    seen = st.session_state.setdefault("_seen_selections", {})
    before = seen.get(key, ((), ()))
    if now == before:
        return None
    seen[key] = now
    cells, rows = now
    if rows and rows != before[1]:
        return int(rows[0])  # the checkbox was ticked just now
    return int(cells[0][0]) if cells else (int(rows[0]) if rows else None)


# ----- the server's inference workers and what they read from models ------------------------------
@st.cache_resource(show_spinner=False)
def worker_pool() -> InferencePool:
    """The server's inference workers, shared by every session: GTPRED_WORKERS warm processes
    (memory and time limits from the settings) behind a fair queue. The first session starts
    them, so TensorFlow's import is paid before anyone clicks, and never in the web server. They
    run below the server's CPU priority (``GTPRED_WORKER_NICE``): a click waits for no one's run."""
    settings = get_settings()
    pool = InferencePool(
        settings.workers,
        memory_limit_mb=settings.worker_memory_mb,
        time_limit_s=settings.worker_time_limit_s,
        nice=settings.worker_nice,
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
    head: str = "auto",
    second_model: ModelFacts | None = None,
) -> EvaluationJob:
    """Queue the evaluation in the server's worker pool; the Evaluate page follows the job
    (its place in the queue, then its progress). Nothing here waits for inference.

    The page's choices become one ``EvaluationRequest`` per model (checked here, before the worker
    sees them). The worker saves each run in the run store as it goes (a cancelled run with the
    part done); a store failure is kept on the job and shown, never losing the run itself. With
    ``second_model`` both models run in one pass (each image decoded once) and the job ends on
    Compare with the two runs.
    """
    source = order if isinstance(order, str) else order.source
    requests = [
        EvaluationRequest(
            model=Path(facts.path),
            images=folder,
            class_order=order,
            preprocess=preprocess,
            batch_size=batch_size,
            head=head,
            backend=backend,
            ray_address=get_settings().ray_address,
            store_path=Path(store.store_path()),
            run_name=f"{Path(str(facts.path)).name} on {Path(folder.root).name}, {source} order",
        )
        for facts in ([model] if second_model is None else [model, second_model])
    ]
    saved = SavedAs()

    def evaluate(worker, progress, cancel) -> Run:  # in the pool's lane thread
        if len(requests) == 1:
            results = (worker.evaluate(requests[0], progress=progress, cancel=cancel),)
        else:
            results = worker.evaluate_together(requests, progress=progress, cancel=cancel)
        saved.run_id = results[0].run_id
        saved.compared_id = results[1].run_id if len(results) > 1 else None
        saved.error = next((result.store_error for result in results if result.store_error is not None), None)
        return results[0].run

    job = submit_job(worker_pool(), session_key(), label, len(folder.files), evaluate, origin=origin)
    job.sink = saved
    st.session_state["job"] = job
    return job


@dataclass
class SavedAs:
    """Where the worker stored a run (filled in when the job finishes), or why it could not."""

    run_id: int | None = None
    error: BaseException | None = None
    compared_id: int | None = None  # the second model's run, when two ran together (Compare opens both)


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
