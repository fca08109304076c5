"""An evaluation running in a worker thread, so the page can poll its progress and cancel it.

Streamlit cannot update a page from inside a long call, and a Cancel click only reaches the
server between reruns. So inference runs in a plain thread (no Streamlit calls in it) that
records progress here; a polling fragment draws it, and Cancel sets ``cancel``, which the
core checks between batches and then returns the part already done.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from gtpred_core import Run, Throughput


@dataclass
class EvaluationJob:
    """One evaluation in progress; ``run`` or ``error`` is set when it has finished."""

    label: str
    total: int
    origin: str = ""  # which button started it: the page draws the progress next to it
    done: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    clock: Throughput = field(default_factory=Throughput)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    run: Run | None = None
    error: BaseException | None = None
    sink: Any = None  # where the run was stored (``state.SavedAs``: run_id, error), if anywhere
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def progress_text(self) -> str:
        """``120 / 797 images · 310 images/s · about 2 s left`` (or cancelling...)."""
        rate = self.clock.rate(self.done)
        eta = self.clock.eta_seconds(self.done, self.total)
        parts = [f"{self.done:,} / {self.total:,} images", f"{rate:,.0f} images/s" if self.done else "starting…"]
        if eta is not None and self.done:
            parts.append(f"about {eta:,.0f} s left")
        if self.cancel.is_set():
            parts.append("cancelling after this batch…")
        return " · ".join(parts)

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def wait(self, timeout: float | None = None) -> bool:
        """Block until finished (for tests and benchmarks); True when it has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running


def start_job(label: str, total: int, evaluate: Callable[..., Run], origin: str = "") -> EvaluationJob:
    """Start ``evaluate(progress=..., cancel=...)`` in a daemon thread and return its job.

    ``evaluate`` is typically ``functools.partial(evaluate_folder, model, folder, ...)``.
    """
    job = EvaluationJob(label=label, total=total, origin=origin)

    def work() -> None:
        try:
            job.run = evaluate(progress=job._progress, cancel=job.cancel)
        except BaseException as err:  # noqa: BLE001 - handed to the page, which shows or logs it
            job.error = err
        finally:
            job.finished = time.perf_counter()

    job._thread = threading.Thread(target=work, name=f"gtpred-eval-{label}", daemon=True)
    job._thread.start()
    return job
