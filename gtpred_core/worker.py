"""Isolated inference: models are loaded and run in a worker process, never in the caller.

A model file is code-adjacent and can exhaust memory or hang; in a worker, the damage stops at
the worker. The worker has an address-space limit (``RLIMIT_AS``) and each request a time limit;
a worker that dies or overruns is replaced, and the caller gets a plain ``WorkerError``. A live
worker is reused for the next request (TensorFlow's import, ~4 s, is paid once per worker).

    worker = InferenceWorker(memory_limit_mb=8192, time_limit_s=3600)
    result = worker.evaluate(EvaluationRequest("model.keras", "val/", class_order="natural"), progress=print)
    result.run, result.run_id

What crosses the pipe is typed, both ways: ``Evaluate`` / ``Describe`` / ``Explain`` / ``Stop``
in; ``Progress``, then ``Result`` / ``Described`` / ``Explained`` or ``Failure`` out. A ``GtpredError`` raised in
the worker arrives in the caller as the same class with the same fields (a ``ClassOrderError``
keeps ``missing_in_folder``); anything else is logged in the worker with its traceback and
arrives as an ``UnexpectedWorkerError`` naming the log line's reference.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import GtpredError, StoreError, UnexpectedWorkerError, WorkerError
from .inference import ProgressCallback
from .model import Head
from .request import EvaluationRequest
from .run import Run

log = logging.getLogger("gtpred.worker")

#: Models a warm worker keeps loaded (least recently used dropped first): its memory stays bounded.
MODEL_CACHE_SIZE = 2


@dataclass(frozen=True)
class ModelFacts:
    """What the worker read from a model (a LoadedModel without its callable), for display."""

    path: Path
    kind: str
    input_size: tuple[int | None, int | None]
    channels: int
    output_width: int
    activation: str | None
    rescales_itself: bool | None
    head: Head | None = None  # decided from the graph; None when it cannot tell (see model.py)

    @property
    def name(self) -> str:
        return self.path.name


def describe_model(model: Any) -> ModelFacts:
    return ModelFacts(
        path=model.path, kind=model.kind, input_size=model.input_size, channels=model.channels,
        output_width=model.output_width, activation=model.activation, rescales_itself=model.rescales_itself,
        head=model.head,
    )


# ----- the messages: pickled dataclasses, one per kind ---------------------------------------------
@dataclass(frozen=True)
class Evaluate:
    """Caller -> worker: run this evaluation."""

    request: EvaluationRequest


@dataclass(frozen=True)
class EvaluateTogether:
    """Caller -> worker: run these evaluations (same images and options, other models) in one
    ordered pass (``sweep.evaluate_requests``); the reply is one Result per request, in order."""

    requests: tuple[EvaluationRequest, ...]


@dataclass(frozen=True)
class Results:
    """Worker -> caller: the Results of an ``EvaluateTogether``, in its order."""

    results: tuple["Result", ...]


@dataclass(frozen=True)
class Describe:
    """Caller -> worker: load this model (kept warm) and say what it is."""

    model: Path


@dataclass(frozen=True)
class Explain:
    """Caller -> worker: saliency maps of one image for these classes (e.g. the predicted and
    the true one), read as the run read it (size, preprocessing, head)."""

    model: Path
    image: Path
    targets: tuple[int, ...]
    input_size: tuple[int, int]
    preprocess: str
    head: str

    @classmethod
    def for_file(cls, run: Run, rel_path: str) -> "Explain":
        """The maps a misprediction's detail view shows: file ``rel_path`` of ``run``, for its
        predicted class, then its true class."""
        index = run.file_position(rel_path)
        if index is None:
            raise GtpredError(f"The run has no file {rel_path}.", "Choose one of the run's files.")
        return cls(
            model=Path(run.info.model),
            image=run.image_path(rel_path),
            targets=(int(run.y_pred[index]), int(run.y_true[index])),
            input_size=(int(run.info.input_size[0]), int(run.info.input_size[1])),
            preprocess=run.info.preprocess,
            head=str(run.info.head),
        )


@dataclass(frozen=True)
class Stop:
    """Caller -> worker: end the loop."""


@dataclass(frozen=True)
class Progress:
    """Worker -> caller, after each batch."""

    done: int
    total: int


@dataclass(frozen=True)
class Result:
    """Worker -> caller: the finished (or cancelled) run, and where it was stored or why not."""

    run: Run
    run_id: int | None = None
    store_error: GtpredError | None = None


@dataclass(frozen=True)
class Described:
    """Worker -> caller: what the model says of itself."""

    facts: ModelFacts


@dataclass(frozen=True)
class Explained:
    """Worker -> caller: one map per asked class, (len(targets), H, W) float32 in [0, 1] at the
    model's input size, in the order asked; ``method`` (grad-cam or occlusion) and ``layer``."""

    maps: Any
    targets: tuple[int, ...]
    method: str
    layer: str
    seconds: float


@dataclass(frozen=True)
class Failure:
    """Worker -> caller: the request failed; ``error`` keeps its class and fields.

    ``worker_exits``: the worker ends after this reply (it ran out of memory, so its state is
    not to be trusted); the caller waits for that and starts a fresh one for the next request.
    """

    error: GtpredError
    worker_exits: bool = False


Reply = Progress | Result | Results | Described | Explained | Failure


def _log_unexpected(err: BaseException, what: str) -> UnexpectedWorkerError:
    """Log ``err`` with its traceback under a fresh reference; the caller gets the reference."""
    ref = f"worker-{os.getpid()}-{secrets.token_hex(4)}"
    log.error("unexpected error [%s] while %s", ref, what, exc_info=err)
    return UnexpectedWorkerError(type(err).__name__, ref)


def _memory_error(memory_limit_mb: int | None) -> WorkerError:
    limit = f" (limit {memory_limit_mb} MB)" if memory_limit_mb else ""
    return WorkerError(
        f"The model needed more memory than the evaluation may use{limit}.",
        "Use a smaller batch size, or ask the server's admin for a higher GTPRED_WORKER_MEMORY_MB.",
        limit=f"{memory_limit_mb} MB" if memory_limit_mb else None,
    )


def _as_failure(err: Exception, what: str, memory_limit_mb: int | None) -> Failure:
    if isinstance(err, GtpredError):
        return Failure(err)
    if isinstance(err, MemoryError) or type(err).__name__ == "ResourceExhaustedError":
        return Failure(_memory_error(memory_limit_mb), worker_exits=True)
    return Failure(_log_unexpected(err, what))


def _store_error(err: BaseException | None, store_path: Path | None) -> GtpredError | None:
    if err is None or isinstance(err, GtpredError):
        return err
    return StoreError(f"The run could not be stored: {err}.", "Check the run store's file and disk.", store_path)


def _die_with_parent(fd: int) -> None:
    """End this worker when the process that started it ends, even mid-import (a killed server
    left its workers running, importing TensorFlow, under PID 1).

    Linux: ``PR_SET_PDEATHSIG`` has the kernel SIGKILL us when the parent *thread* that started us
    ends, so start workers from a long-lived thread (``gtpred_core.pool`` does), never a request's.
    Everywhere: a watcher thread exits when the parent's end of our socket closes; that also
    covers a parent that died before ``prctl`` ran (its end is closed already).
    """
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # no prctl: the socket watcher below still ends us
    import select

    if not hasattr(select, "poll"):
        return
    hangup = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, hangup)
        while True:
            if any(events & hangup for _, events in poller.poll()):
                os._exit(0)  # the server is gone: nobody will read what we would compute

    threading.Thread(target=watch, name="gtpred-parent-watch", daemon=True).start()


def _lower_priority(nice: int) -> None:
    """Run ``nice`` below the web server (its pages' clicks come first on a shared core).

    Linux keeps a nice value per thread and a new thread inherits its creator's, so every thread
    that exists now (numpy's BLAS threads start at import) is lowered, and those started later
    (the watcher, TensorFlow's) inherit it. Raising it back would need privileges: set once.
    """
    if nice <= 0:
        return
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        os.nice(nice)
        return
    for task in tasks.iterdir():
        try:
            tid = int(task.name)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except (OSError, ValueError):
            continue  # a thread that ended meanwhile


def _serve(fd: int, memory_limit_mb: int | None, idle_timeout_s: float = 1800.0, nice: int = 0) -> None:
    """The worker loop (``python -m gtpred_core.worker FD LIMIT [NICE]``): one request at a time."""
    _lower_priority(nice)  # before any thread of ours starts: they inherit it
    _die_with_parent(fd)  # before TensorFlow's seconds-long import
    from multiprocessing.connection import Connection

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s gtpred-worker[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    if memory_limit_mb:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cancel = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: cancel.set())  # the caller's Cancel button
    connection = Connection(fd)
    from .evaluation import evaluate
    from .fingerprints import file_sha256
    from .model import load_model

    models: OrderedDict[str, Any] = OrderedDict()  # content sha256 -> model, least recently used first
    hashes: dict[tuple, str] = {}  # (realpath, size, mtime) -> sha256: each file version is hashed once

    def cached_model(path: Path) -> Any:
        """A warm worker keeps its last MODEL_CACHE_SIZE models, keyed by their bytes, so the same
        model under another name (an upload, a copy on the server) is not loaded again."""
        if not os.path.isfile(path):
            return load_model(path)  # a SavedModel folder, or a missing file (load_model explains)
        stat = os.stat(path)
        identity = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
        if identity not in hashes:
            hashes[identity] = file_sha256(path)
        digest = hashes[identity]
        if digest in models:
            models.move_to_end(digest)
        else:
            models[digest] = load_model(path)
            while len(models) > MODEL_CACHE_SIZE:
                models.popitem(last=False)
        # The model loaded from another file with these bytes, named as the caller named it.
        return dataclasses.replace(models[digest], path=Path(path))

    def handle(message: Evaluate | EvaluateTogether | Describe | Explain) -> Result | Results | Described | Explained:
        if isinstance(message, EvaluateTogether):
            from .sweep import evaluate_requests

            cancel.clear()
            requests = [request.with_model(cached_model(request.model_path)) for request in message.requests]
            sinks = [request.open_sink() for request in requests]  # guarded writers, as for one run
            sent = [-1]

            def relay(_index: int, done: int, total: int) -> None:  # every model reports each batch: send it once
                if done != sent[0]:
                    sent[0] = done
                    connection.send(Progress(done, total))

            runs = evaluate_requests(requests, sinks=sinks, progress=relay, cancel=cancel)
            return Results(tuple(
                Result(run) if sink is None else Result(run, sink.run_id, _store_error(sink.error, request.store_path))
                for run, sink, request in zip(runs, sinks, requests)
            ))  # fmt: skip
        if isinstance(message, Describe):
            return Described(describe_model(cached_model(message.model)))
        if isinstance(message, Explain):
            from .explain import explain_file

            started = time.perf_counter()
            maps = explain_file(
                cached_model(message.model), message.image, message.targets,
                input_size=message.input_size, preprocess=message.preprocess, head=message.head,
            )
            return Explained(maps.maps, message.targets, maps.method, maps.layer, time.perf_counter() - started)
        request = message.request
        cancel.clear()
        sink = request.open_sink()  # a guarded writer: a failing store never fails the run
        run = evaluate(
            request.with_model(cached_model(request.model_path)),
            progress=lambda done, total: connection.send(Progress(done, total)),
            cancel=cancel,
            sink=sink,
        )
        if sink is None:
            return Result(run)
        return Result(run, sink.run_id, _store_error(sink.error, request.store_path))

    while True:
        try:
            if not connection.poll(idle_timeout_s):
                return  # nobody has asked for a while (an abandoned session): free the memory
            message = connection.recv()
        except EOFError:
            return
        if isinstance(message, Stop) or message is None:
            return
        if isinstance(message, Evaluate):
            what = f"evaluating {message.request.model_path}"
        elif isinstance(message, EvaluateTogether):
            what = "evaluating " + ", ".join(str(request.model_path) for request in message.requests)
        elif isinstance(message, Explain):
            what = f"explaining {message.image} with {message.model}"
        else:
            what = f"describing {message.model}"
        try:
            reply: Reply = handle(message)
        except Exception as err:  # noqa: BLE001 - every failure goes back typed; bugs are logged here
            reply = _as_failure(err, what, memory_limit_mb)
        connection.send(reply)
        if isinstance(reply, Failure) and reply.worker_exits:
            return


class InferenceWorker:
    """One worker process, started on first use and reused while it lives. Thread-safe.

    ``log_file``: where the worker's log (and tracebacks of unexpected errors) go; by default
    the caller's stderr, i.e. the server's log.
    """

    def __init__(
        self,
        memory_limit_mb: int | None = 8192,
        time_limit_s: float | None = 3600,
        log_file: str | Path | None = None,
        nice: int = 0,
    ) -> None:
        """``nice``: how far below the caller's CPU priority the worker runs (0: the same)."""
        self.memory_limit_mb = memory_limit_mb
        self.nice = nice
        self.time_limit_s = time_limit_s
        self.log_file = Path(log_file) if log_file is not None else None
        self._process: subprocess.Popen | None = None
        self._connection: Any = None
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def busy(self) -> bool:
        """True while a request is being served."""
        return self._lock.locked()

    @property
    def pid(self) -> int | None:
        """The live worker's process id (None before it starts or after it ends)."""
        return self._process.pid if self.alive and self._process is not None else None

    def start(self) -> None:
        """Start the worker now (its TensorFlow import then overlaps whatever comes next)."""
        with self._lock:
            if not self.alive:
                self._start()

    def _start(self) -> None:
        """A fresh interpreter (not a fork of this one, which may hold TF or server threads)."""
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        log_stream: IO[bytes] | None = self.log_file.open("ab") if self.log_file is not None else None
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "gtpred_core.worker", str(theirs.fileno()), str(self.memory_limit_mb or 0), str(self.nice)],
                pass_fds=(theirs.fileno(),),
                cwd=str(Path(__file__).resolve().parents[1]),
                stderr=log_stream,
            )
        finally:
            if log_stream is not None:
                log_stream.close()  # the child has its own copy
        theirs.close()
        self._connection = Connection(ours.detach())

    def stop(self) -> None:
        """End the worker (politely, then by force)."""
        if self._process is None:
            return
        try:
            self._connection.send(Stop())
            self._process.wait(timeout=5)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        self._process = None

    def evaluate(
        self,
        request: EvaluationRequest,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Result:
        """``evaluate(request)`` in the worker: the run, and where it was stored (with
        ``request.store_path``; a store failure never fails the run: ``store_error`` says why)."""
        reply = self._ask(Evaluate(request.for_transport()), progress, cancel)
        assert isinstance(reply, Result)
        return reply

    def evaluate_together(
        self,
        requests: list[EvaluationRequest],
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[Result, ...]:
        """``evaluate_requests(requests)`` in the worker: one decode for all, one Result each."""
        reply = self._ask(EvaluateTogether(tuple(r.for_transport() for r in requests)), progress, cancel)
        assert isinstance(reply, Results)
        return reply.results

    def describe(self, model: str | Path) -> ModelFacts:
        """Load ``model`` in the worker (kept warm for the run) and return what it reads from it."""
        reply = self._ask(Describe(Path(model)), None, None)
        assert isinstance(reply, Described)
        return reply.facts

    def explain(self, message: Explain) -> Explained:
        """Saliency maps of one image in the worker (the model kept warm there): see ``Explain``."""
        reply = self._ask(message, None, None)
        assert isinstance(reply, Explained)
        return reply

    def _ask(self, message: Evaluate | EvaluateTogether | Describe | Explain, progress: ProgressCallback | None, cancel: threading.Event | None) -> Reply:
        with self._lock:
            if not self.alive:
                self._start()
            self._connection.send(message)
            reply = self._wait(time.monotonic(), progress, cancel)
            if isinstance(reply, Failure) and reply.worker_exits:
                self._reap()
        if isinstance(reply, Failure):
            raise reply.error
        return reply

    def _reap(self) -> None:
        """Wait for a worker that said it ends (by force if it does not), so the next request
        starts a fresh one instead of writing to a closing pipe."""
        assert self._process is not None
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _wait(self, started: float, progress: ProgressCallback | None, cancel: threading.Event | None) -> Reply:
        """Relay progress and cancel until the worker answers; a dead or late worker is replaced."""
        assert self._process is not None
        cancel_sent = False
        while True:
            if cancel is not None and cancel.is_set() and not cancel_sent:
                self._process.send_signal(signal.SIGUSR1)  # stops after the current batch
                cancel_sent = True
            if self.time_limit_s is not None and time.monotonic() - started > self.time_limit_s:
                self._process.kill()
                self._process.wait()
                self._process = None
                raise WorkerError(
                    f"The evaluation ran past its time limit of {self.time_limit_s:.0f} s and was stopped.",
                    "Evaluate fewer images at once, or ask the server's admin for a higher GTPRED_WORKER_TIME_LIMIT_S.",
                    limit=f"{self.time_limit_s:g} s",
                )
            if not self._connection.poll(0.1):
                if self._process.poll() is not None:
                    raise self._died()
                continue
            try:
                reply = self._connection.recv()
            except (EOFError, ConnectionResetError):
                raise self._died() from None
            if isinstance(reply, Progress):
                if progress is not None:
                    progress(reply.done, reply.total)
                continue
            return reply

    def _died(self) -> WorkerError:
        code = self._process.wait(timeout=5) if self._process is not None else None
        self._process = None
        memory = f" or ran out of its {self.memory_limit_mb} MB memory limit" if self.memory_limit_mb else ""
        return WorkerError(
            f"The evaluation process stopped unexpectedly (exit code {code}): the model crashed{memory}.",
            "Check the model file; if it is very large, ask the server's admin for a higher GTPRED_WORKER_MEMORY_MB. "
            "Nothing else was affected.",
            limit=f"{self.memory_limit_mb} MB" if self.memory_limit_mb else None,
        )


if __name__ == "__main__":
    # Run the imported module's loop, so what it sends pickles as gtpred_core.worker.X, not __main__.X.
    from gtpred_core.worker import _serve as serve

    serve(int(sys.argv[1]), int(sys.argv[2]) or None, nice=int(sys.argv[3]) if len(sys.argv) > 3 else 0)
