"""An evaluation the page follows: queued in the server's worker pool, then running, then done.

Streamlit cannot update a page from inside a long call, and a Cancel click only reaches the
server between reruns. So the evaluation runs elsewhere (a lane thread of
``gtpred_core.pool.InferencePool`` calling a worker process) and records its place in the queue
and its progress on the job; the page's polling panel (``running``) draws them, and Cancel drops
a queued job or stops a running one after its current batch, keeping the part done.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from gtpred_core import Run, Throughput
from gtpred_core.pool import InferencePool, PoolJob


@dataclass(eq=False)
class EvaluationJob(PoolJob[Run]):
    """A pool job with what the page needs to draw it: which button started it, a rate clock,
    and where the worker stored the run (``sink``: ``state.SavedAs``)."""

    origin: str = ""  # which button started it: the page draws the progress next to it
    sink: Any = None
    clock: Throughput = field(default_factory=Throughput, repr=False)

    @property
    def running(self) -> bool:
        """Not finished yet: queued or running (one evaluation at a time per session)."""
        return not self.is_done

    @property
    def queued(self) -> bool:
        return self.state == "queued"

    @property
    def run(self) -> Run | None:
        return self.result

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def seconds(self) -> float | None:
        """From the click to the results, the wait in the queue included."""
        return None if self.finished is None else self.finished - self.submitted

    def run_with(self, worker: Any) -> None:
        self.clock = Throughput()  # images/s from the start of the run, not of the wait
        super().run_with(worker)

    def progress_text(self) -> str:
        """``Waiting: 2 runs ahead of yours …`` while queued, then
        ``120 / 797 images · 310 images/s · about 2 s left`` (or cancelling…)."""
        place = self.place() if self.queued else None
        if place is not None:
            return place.text()
        rate = self.clock.rate(self.done)
        eta = self.clock.eta_seconds(self.done, self.total)
        parts = [f"{self.done:,} / {self.total:,} images", f"{rate:,.0f} images/s" if self.done else "starting…"]
        if eta is not None and self.done:
            parts.append(f"about {eta:,.0f} s left")
        if self.cancel.is_set():
            parts.append("cancelling after this batch…")
        return " · ".join(parts)


def submit_job(
    pool: InferencePool,
    session: str,
    label: str,
    total: int,
    task: Callable[..., Run],
    origin: str = "",
) -> EvaluationJob:
    """Queue ``task(worker, progress, cancel)`` for ``session`` in the server's pool."""
    return pool.submit_job(EvaluationJob(session=session, task=task, label=label, total=total, origin=origin))


def start_job(label: str, total: int, evaluate: Callable[..., Run], origin: str = "") -> EvaluationJob:
    """Run an in-process ``evaluate(progress=..., cancel=...)`` in a thread (tests; the library's
    callers), drawn by the same panel as a pool job. The app itself submits to the pool."""
    job = EvaluationJob(
        session="in-process",
        task=lambda _worker, progress, cancel: evaluate(progress=progress, cancel=cancel),
        label=label,
        total=total,
        origin=origin,
    )
    threading.Thread(target=job.run_with, args=(None,), name=f"gtpred-eval-{label}", daemon=True).start()
    return job
