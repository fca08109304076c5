"""Isolated inference: models are loaded and run in a worker process, never in the caller.

A model file is code-adjacent and can exhaust memory or hang; in a worker, the damage stops at
the worker. The worker has an address-space limit (``RLIMIT_AS``) and each request a time limit;
a worker that dies or overruns is replaced, and the caller gets a plain ``WorkerError``. A live
worker is reused for the next request (TensorFlow's import, ~4 s, is paid once per worker).

    worker = InferenceWorker(memory_limit_mb=8192, time_limit_s=3600)
    run = worker.evaluate("model.keras", "val/", class_order="natural", progress=print)
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GtpredError
from .inference import ProgressCallback
from .run import Run


#: Models a warm worker keeps loaded (least recently used dropped first): its memory stays bounded.
MODEL_CACHE_SIZE = 2


class WorkerError(GtpredError):
    """The worker process died, ran out of memory, or ran past its time limit."""


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

    @property
    def name(self) -> str:
        return self.path.name


def describe_model(model: Any) -> ModelFacts:
    return ModelFacts(
        path=model.path, kind=model.kind, input_size=model.input_size, channels=model.channels,
        output_width=model.output_width, activation=model.activation, rescales_itself=model.rescales_itself,
    )


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


def _serve(fd: int, memory_limit_mb: int | None, idle_timeout_s: float = 1800.0) -> None:
    """The worker loop (``python -m gtpred_core.worker FD LIMIT``): one request at a time."""
    _die_with_parent(fd)  # first, before TensorFlow's seconds-long import
    import signal
    from multiprocessing.connection import Connection

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if memory_limit_mb:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cancel = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: cancel.set())  # the caller's Cancel button
    connection = Connection(fd)
    from .evaluation import evaluate_folder
    from .fingerprints import file_sha256
    from .model import load_model

    models: OrderedDict[str, Any] = OrderedDict()  # content sha256 -> model, least recently used first
    hashes: dict[tuple, str] = {}  # (realpath, size, mtime) -> sha256: each file version is hashed once

    def cached_model(path: str) -> Any:
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

    while True:
        try:
            if not connection.poll(idle_timeout_s):
                return  # nobody has asked for a while (an abandoned session): free the memory
            request = connection.recv()
        except EOFError:
            return
        if request is None:
            return
        if request.get("describe"):
            try:
                model = cached_model(request["describe"])
                connection.send(("result", describe_model(model), None, None))
            except GtpredError as err:
                connection.send(("error", type(err).__name__, err.message, err.fix, err.path))
            except Exception as err:  # noqa: BLE001 - reported to the caller, who logs it
                connection.send(("error", "unexpected", f"{type(err).__name__}: {err}", "", None))
            continue
        cancel.clear()
        options = dict(request["options"])
        db, name = options.pop("store_path", None), options.pop("run_name", None)
        try:
            sink = None
            if db:
                from .store import GuardedWriter

                sink = GuardedWriter.into(db, name)  # a failing store never fails the run
            run = evaluate_folder(
                cached_model(request["model"]),
                request["images"],
                progress=lambda done, total: connection.send(("progress", done, total)),
                cancel=cancel,
                sink=sink,
                **options,
            )
            store_error = str(sink.error) if sink is not None and sink.error is not None else None
            connection.send(("result", run, getattr(sink, "run_id", None), store_error))
        except GtpredError as err:
            connection.send(("error", type(err).__name__, err.message, err.fix, err.path))
        except Exception as err:  # noqa: BLE001 - reported to the caller, who logs it
            if isinstance(err, MemoryError) or type(err).__name__ == "ResourceExhaustedError":
                limit = f" (limit {memory_limit_mb} MB)" if memory_limit_mb else ""
                connection.send(("error", "MemoryError", f"The model needed more memory than the evaluation may use{limit}.", "Use a smaller batch size, or ask the server's admin for a higher GTPRED_WORKER_MEMORY_MB.", None))
            else:
                connection.send(("error", "unexpected", f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}", "", None))


class InferenceWorker:
    """One worker process, started on first use and reused while it lives. Thread-safe."""

    def __init__(self, memory_limit_mb: int | None = 8192, time_limit_s: float | None = 3600) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.time_limit_s = time_limit_s
        self._process: subprocess.Popen | None = None
        self._connection: Any = None
        self._lock = threading.Lock()
        self.last_run_id: int | None = None
        self.last_store_error: str | None = None  # why the last run could not be stored, if so

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def busy(self) -> bool:
        """True while a request is being served."""
        return self._lock.locked()

    def start(self) -> None:
        """Start the worker now (its TensorFlow import then overlaps whatever comes next)."""
        with self._lock:
            if not self.alive:
                self._start()

    def _start(self) -> None:
        """A fresh interpreter (not a fork of this one, which may hold TF or server threads)."""
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gtpred_core.worker", str(theirs.fileno()), str(self.memory_limit_mb or 0)],
            pass_fds=(theirs.fileno(),),
            cwd=str(Path(__file__).resolve().parents[1]),
        )
        theirs.close()
        self._connection = Connection(ours.detach())

    def stop(self) -> None:
        """End the worker (politely, then by force)."""
        if self._process is None:
            return
        try:
            self._connection.send(None)
            self._process.wait(timeout=5)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        self._process = None

    def evaluate(
        self,
        model: str | Path,
        images: str | Path,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        store_path: str | Path | None = None,
        run_name: str | None = None,
        **options: Any,
    ) -> Run:
        """``evaluate_folder`` in the worker; same arguments (paths, not loaded objects).

        With ``store_path``, the worker streams the run into that store (``self.last_run_id``;
        a store failure never fails the run: ``self.last_store_error`` says why it was not saved).
        """
        with self._lock:
            if not self.alive:
                self._start()
            started = time.monotonic()
            self._connection.send(
                {
                    "model": str(getattr(model, "path", model)),
                    "images": str(images) if isinstance(images, (str, Path)) else images,  # or an ImageFolder
                    "options": {**options, "store_path": str(store_path) if store_path else None, "run_name": run_name},
                }
            )
            return self._wait(started, progress, cancel)

    def describe(self, model: str | Path) -> ModelFacts:
        """Load ``model`` in the worker (kept warm for the run) and return what it reads from it."""
        with self._lock:
            if not self.alive:
                self._start()
            self._connection.send({"describe": str(model)})
            return self._wait(time.monotonic(), None, None)

    def _wait(self, started: float, progress: ProgressCallback | None, cancel: threading.Event | None) -> Any:
        """Relay progress and cancel until the worker answers; a dead or late worker is replaced."""
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
                )
            if not self._connection.poll(0.1):
                if self._process.poll() is not None:
                    raise self._died()
                continue
            try:
                message = self._connection.recv()
            except (EOFError, ConnectionResetError):
                raise self._died() from None
            if message[0] == "progress" and progress is not None:
                progress(message[1], message[2])
            elif message[0] == "result":
                self.last_run_id, self.last_store_error = message[2], message[3]
                return message[1]
            elif message[0] == "error":
                _, kind, text, fix, path = message
                if kind == "unexpected":
                    raise RuntimeError(text)
                raise (WorkerError if kind == "MemoryError" else GtpredError)(text, fix, path)

    def _died(self) -> WorkerError:
        code = self._process.wait(timeout=5)
        self._process = None
        memory = f" or ran out of its {self.memory_limit_mb} MB memory limit" if self.memory_limit_mb else ""
        return WorkerError(
            f"The evaluation process stopped unexpectedly (exit code {code}): the model crashed{memory}.",
            "Check the model file; if it is very large, ask the server's admin for a higher GTPRED_WORKER_MEMORY_MB. "
            "Nothing else was affected.",
        )


if __name__ == "__main__":
    # Run the imported module's loop, so what it sends pickles as gtpred_core.worker.X, not __main__.X.
    from gtpred_core.worker import _serve as serve

    serve(int(sys.argv[1]), int(sys.argv[2]) or None)
