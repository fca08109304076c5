"""The server's inference workers, shared by every session, with a fair queue in front of them.

One web server, many people. A worker per session (the old design) meant eight TensorFlow
imports and eight model loads fighting for the cores before any image was read, and memory that
grew with the number of people. Here a fixed number of warm workers (``GTPRED_WORKERS``, by
default the usable CPUs) run every evaluation:

- Jobs start in arrival order, one running job per session at a time: a session's second job
  waits behind its first and never blocks anyone else's.
- A queued job knows its place ("2 runs ahead of yours") and can be cancelled; a running one is
  cancelled through the worker (it stops after the current batch and keeps the part done).
- Each worker is warmed when the pool starts (TensorFlow imported, the demo model loaded; one
  after the other, so the first is ready sooner and a core stays free for pages), kept warm while
  idle, and warmed again after a crash, so a click never pays TensorFlow's import.
- Each worker is started and called only from its own long-lived lane thread: a worker dies with
  the thread that started it (``PR_SET_PDEATHSIG``), so that must never be a page's thread.
- ``describe`` (a model's facts for the Evaluate page) never waits behind a run: an idle worker
  answers it, else one extra describe-only worker. That extra worker costs memory only while it is
  needed (it is started on the first describe that finds every worker busy and exits after the
  worker's idle timeout), whereas sending describes into the run queue would make choosing a
  model wait minutes under load. Facts are cached by file version, so the demo's are read once.

    pool = InferencePool(2)
    pool.start()
    request = EvaluationRequest(model="model.keras", images="val/")
    job = pool.submit("session-a", lambda worker, progress, cancel: worker.evaluate(
        request, progress=progress, cancel=cancel).run, label="val", total=797)
    job.wait()
    job.result  # the Run, or job.error
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Literal, TypeVar

from .inference import ProgressCallback
from .settings import usable_cpus
from .worker import InferenceWorker, ModelFacts

log = logging.getLogger("gtpred.pool")

T = TypeVar("T")
#: What a job runs: given a warm worker, a progress callback and the job's cancel event.
Task = Callable[[InferenceWorker, ProgressCallback, threading.Event], T]
JobState = Literal["queued", "running", "finished"]
J = TypeVar("J", bound="PoolJob")

#: An idle worker is sent a cheap request this often, so it never reaches its idle timeout.
KEEPALIVE_S = 600.0
_FACTS_CACHED = 64


@dataclass(frozen=True)
class Place:
    """Where a queued job stands, for the page that waits on it."""

    ahead: int  # queued jobs that arrived before this one
    workers: int
    warm: int  # workers ready to run (TensorFlow imported)
    behind_own_run: bool  # the same session's earlier job is still running
    waited_s: float

    def text(self) -> str:
        """``Waiting: 2 runs ahead of yours (1 worker, busy)`` and the like."""
        workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        if self.warm == 0:
            text = (
                f"Starting the inference {'worker' if self.workers == 1 else 'workers'} (loading TensorFlow, "
                f"once after the server starts): {self.waited_s:.0f} s"
            )
            return text + (f" · {self._ahead_text()}" if self.ahead else "")
        if self.ahead:
            return f"Waiting: {self._ahead_text()} ({workers}, all busy)"
        if self.behind_own_run:
            return "Waiting for your previous run to finish"
        return f"Waiting: yours is next ({workers}, all busy)"

    def _ahead_text(self) -> str:
        return f"{self.ahead} run{'s' if self.ahead != 1 else ''} ahead of yours"


@dataclass(eq=False)
class PoolJob(Generic[T]):
    """One submitted task: its place in the queue, progress, and result or error when finished."""

    session: str
    task: Task = field(repr=False)
    label: str = ""
    total: int = 0
    done: int = 0
    state: JobState = "queued"
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    result: T | None = None
    error: BaseException | None = None
    _pool: "InferencePool | None" = field(default=None, repr=False)
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def is_done(self) -> bool:
        return self.state == "finished"

    @property
    def cancelled_before_start(self) -> bool:
        """Cancelled while queued: nothing ran, there is no result and no error."""
        return self.is_done and self.started is None

    def place(self) -> Place | None:
        """Where the job waits (None once it runs)."""
        return self._pool.place(self) if self._pool is not None else None

    def request_cancel(self) -> None:
        """Drop the job if it is still queued; stop it after the current batch if it runs."""
        if self._pool is not None:
            self._pool.cancel(self)
        else:
            self.cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until finished (tests and benchmarks); True when it has finished."""
        return self._ended.wait(timeout)

    def run_with(self, worker: Any) -> None:
        """Run the task now (in the caller's thread) and record its result or error; a job
        cancelled before this point ends without running."""
        if self.cancel.is_set():
            self._finish()
            return
        self.state, self.started = "running", time.monotonic()
        try:
            self.result = self.task(worker, self._progress, self.cancel)
        except BaseException as err:  # noqa: BLE001 - handed to whoever waits on the job
            self.error = err
        finally:
            self._finish()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _finish(self) -> None:
        self.finished = time.monotonic()
        self.state = "finished"
        self._ended.set()


@dataclass
class _Describe:
    """A quick question for a worker, answered without waiting behind runs: a model's facts, or
    (``explain`` set) the saliency maps of one image for the page that shows it."""

    path: str
    answer: Future = field(default_factory=Future)
    explain: Any = None  # a worker.Explain message


@dataclass
class _Lane:
    """A worker and the one thread that starts and calls it."""

    name: str
    worker: InferenceWorker
    describes_only: bool = False
    warm: bool = False
    busy: bool = False  # running a job or answering a describe (not: warming up, keeping warm)
    job: PoolJob | None = None
    thread: threading.Thread | None = None


@dataclass(frozen=True)
class PoolStatus:
    workers: int
    warm: int
    running: int
    queued: int


class InferencePool:
    """``size`` warm inference workers shared by every session, a fair queue in front. Thread-safe."""

    def __init__(
        self,
        size: int | None = None,
        *,
        memory_limit_mb: int | None = 8192,
        time_limit_s: float | None = 3600,
        warm_model: str | Path | None = "demo",
        keepalive_s: float = KEEPALIVE_S,
        nice: int = 0,
    ) -> None:
        """``warm_model`` is loaded by every worker as it starts ("demo": the shipped demo model;
        None: only start the interpreters). ``nice``: the workers' CPU priority below the server's
        (``GTPRED_WORKER_NICE``), so pages answer while runs go on the same cores."""
        if warm_model == "demo":
            from .demo import DEMO_MODEL

            warm_model = DEMO_MODEL
        self.size = max(1, size if size is not None else usable_cpus())
        self.warm_model = str(warm_model) if warm_model is not None else None
        self.keepalive_s = keepalive_s

        def worker() -> InferenceWorker:
            return InferenceWorker(memory_limit_mb=memory_limit_mb, time_limit_s=time_limit_s, nice=nice)

        self._lanes = [_Lane(f"gtpred-worker-{n}", worker()) for n in range(self.size)]
        self._describer = _Lane("gtpred-describer", worker(), describes_only=True)
        self._queue: list[PoolJob] = []
        self._describes: list[_Describe] = []
        self._facts: OrderedDict[tuple, ModelFacts] = OrderedDict()
        self._cond = threading.Condition()
        self._started = False
        self._stopping = False

    # ----- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start every worker (their imports run in the background); idempotent."""
        with self._cond:
            if self._started or self._stopping:
                return
            self._started = True
            for lane in [*self._lanes, self._describer]:
                lane.thread = threading.Thread(target=self._serve_lane, args=(lane,), name=lane.name, daemon=True)
                lane.thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel what is queued or running and end every worker."""
        with self._cond:
            self._stopping = True
            for job in self._queue:
                job.cancel.set()
                job._finish()
            self._queue.clear()
            for lane in self._lanes:
                if lane.job is not None:
                    lane.job.cancel.set()
            for request in self._describes:
                request.answer.set_exception(RuntimeError("The inference pool has been stopped."))
            self._describes.clear()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for lane in [*self._lanes, self._describer]:
            if lane.thread is not None:
                lane.thread.join(max(0.0, deadline - time.monotonic()))

    def status(self) -> PoolStatus:
        """How many workers are warm, running, and how many jobs wait (the sidebar, benchmarks)."""
        with self._cond:
            return PoolStatus(
                workers=self.size,
                warm=sum(lane.warm for lane in self._lanes),
                running=sum(lane.job is not None for lane in self._lanes),
                queued=len(self._queue),
            )

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Block until every worker is warm (benchmarks, tests); True when they are."""
        with self._cond:
            return self._cond.wait_for(lambda: all(lane.warm for lane in self._lanes), timeout)

    # ----- jobs ----------------------------------------------------------------------------------
    def submit(self, session: str, task: Task[T], *, label: str = "", total: int = 0) -> PoolJob[T]:
        """Queue ``task`` for ``session``; it runs on the first free worker after the jobs before
        it and after the session's running job, if any."""
        return self.submit_job(PoolJob(session=session, task=task, label=label, total=total))

    def submit_job(self, job: J) -> J:
        """Queue a job built by the caller (e.g. one carrying what a page needs to draw it)."""
        self.start()
        with self._cond:
            if self._stopping:
                raise RuntimeError("The inference pool has been stopped.")
            job._pool = job._pool or self
            self._queue.append(job)
            self._cond.notify_all()
        return job

    def cancel(self, job: PoolJob) -> None:
        """Drop a queued job now; ask a running one to stop after its current batch."""
        with self._cond:
            job.cancel.set()
            if job in self._queue:
                self._queue.remove(job)
                job._finish()
                self._cond.notify_all()

    def place(self, job: PoolJob) -> Place | None:
        """Where a queued job stands (None once it has left the queue)."""
        with self._cond:
            if job.state != "queued" or job not in self._queue:
                return None
            return Place(
                ahead=self._queue.index(job),
                workers=self.size,
                warm=sum(lane.warm for lane in self._lanes),
                behind_own_run=any(lane.job is not None and lane.job.session == job.session for lane in self._lanes),
                waited_s=time.monotonic() - job.submitted,
            )

    # ----- describe ------------------------------------------------------------------------------
    def describe(self, model: str | Path) -> ModelFacts:
        """What ``model`` says of itself, read in a worker without waiting behind any run; cached
        per file version (path, size, modification time). A bad model raises its error."""
        path = str(model)
        key = _file_version(path)
        with self._cond:
            if key is not None and key in self._facts:
                self._facts.move_to_end(key)
                return self._facts[key]
        self.start()
        request = _Describe(path)
        with self._cond:
            if self._stopping:
                raise RuntimeError("The inference pool has been stopped.")
            self._describes.append(request)
            self._cond.notify_all()
        facts = request.answer.result()
        self._remember(key, facts)
        return facts

    def explain(self, message: Any) -> Any:
        """Saliency maps of one image (``worker.Explain`` in, ``worker.Explained`` out), computed
        like a describe: by an idle worker, or the describe lane, never behind someone's run."""
        self.start()
        request = _Describe(str(message.model), explain=message)
        with self._cond:
            if self._stopping:
                raise RuntimeError("The inference pool has been stopped.")
            self._describes.append(request)
            self._cond.notify_all()
        return request.answer.result()

    # ----- the lanes -----------------------------------------------------------------------------
    def _serve_lane(self, lane: _Lane) -> None:
        if not lane.describes_only:
            position = self._lanes.index(lane)
            if position:  # one start-up at a time: the first worker is ready sooner, and a core
                with self._cond:  # stays free for the pages of a server that has just started
                    self._cond.wait_for(lambda: self._lanes[position - 1].warm or self._stopping)
            self._warm(lane)
        while True:
            work = self._next_work(lane)
            if work is _STOP:
                break
            if work is None:  # idle for keepalive_s: keep the worker (and its models) warm
                self._warm(lane)
            elif isinstance(work, _Describe):
                self._answer(lane, work)
            elif isinstance(work, PoolJob):
                work.run_with(lane.worker)
                with self._cond:
                    lane.job, lane.busy = None, False
                    self._cond.notify_all()
            if not lane.describes_only and not lane.worker.alive and not self._stopping:
                self._warm(lane)  # it crashed or ran out of time: the next job should not pay for it
        lane.worker.stop()

    def _next_work(self, lane: _Lane) -> "PoolJob | _Describe | object | None":
        """The lane's next describe or job, None after ``keepalive_s`` idle, or _STOP."""
        deadline = time.monotonic() + self.keepalive_s
        with self._cond:
            lane.busy = False
            self._cond.notify_all()  # the describe lane watches how many workers are busy
            while True:
                if self._stopping:
                    return _STOP
                if self._describes and (not lane.describes_only or self._all_workers_busy()):
                    lane.busy = True
                    return self._describes.pop(0)
                if not lane.describes_only:
                    job = self._first_startable_job()
                    if job is not None:
                        self._queue.remove(job)
                        job.state = "running"
                        lane.job, lane.busy = job, True
                        return job
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
                else:
                    self._cond.wait()

    def _all_workers_busy(self) -> bool:
        """Every worker is running something: a describe sent to one would wait for it to end.
        (A worker still warming up is not busy: it answers in seconds, without a new process.)"""
        return all(lane.busy for lane in self._lanes)

    def _first_startable_job(self) -> PoolJob | None:
        running = {lane.job.session for lane in self._lanes if lane.job is not None}
        for job in self._queue:
            if job.session not in running:
                return job
        return None

    def _answer(self, lane: _Lane, request: _Describe) -> None:
        try:
            if request.explain is not None:
                request.answer.set_result(lane.worker.explain(request.explain))
            else:
                request.answer.set_result(lane.worker.describe(request.path))
        except BaseException as err:  # noqa: BLE001 - raised in the caller's thread
            request.answer.set_exception(err)

    def _warm(self, lane: _Lane) -> None:
        """Start the lane's worker if it is not running and load the warm model in it (TensorFlow's
        import comes with it); on a live worker, the same cheap request resets its idle clock."""
        with self._cond:
            lane.warm = lane.warm and lane.worker.alive
        try:
            lane.worker.start()
            if self.warm_model is not None:
                facts = lane.worker.describe(self.warm_model)
                self._remember(_file_version(self.warm_model), facts)  # the demo's facts, ready for every page
        except Exception:  # noqa: BLE001 - a job on this worker will report the problem
            log.exception("warming %s failed", lane.name)
        with self._cond:
            lane.warm = True
            self._cond.notify_all()

    def _remember(self, key: tuple | None, facts: ModelFacts) -> None:
        if key is None:
            return
        with self._cond:
            self._facts[key] = facts
            while len(self._facts) > _FACTS_CACHED:
                self._facts.popitem(last=False)


_STOP = object()


def _file_version(path: str) -> tuple | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), stat.st_size, stat.st_mtime_ns) if os.path.isfile(path) else None
