"""The shared inference pool: a fair queue, places and Cancel, describes that never wait behind
runs, a fixed number of worker processes however many sessions, and workers that die with the
server. Real worker processes, the real demo model and images; test tasks that must hold a worker
wait on an event first (a long run, without making the test slow)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gtpred_core import EvaluationRequest, GtpredError
from gtpred_core.demo import DEMO_MODEL, demo_folder
from gtpred_core.pool import InferencePool, PoolJob

ROOT = Path(__file__).resolve().parents[1]
DEMO_ACCURACY = 0.0866  # the demo under Keras' folder order: the class-order trap (8.7%)


@pytest.fixture(scope="module")
def pool():
    pool = InferencePool(2, memory_limit_mb=6144, time_limit_s=300)
    pool.start()
    assert pool.wait_warm(300), "the workers did not start within 5 minutes"
    yield pool
    pool.stop()


def evaluate_demo(worker, progress, cancel, **options):
    request = EvaluationRequest(DEMO_MODEL, demo_folder(), **options)
    return worker.evaluate(request, progress=progress, cancel=cancel).run


class Gates:
    """Tasks that say when they start and hold their worker until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.began: dict[str, threading.Event] = {}
        self.order: list[str] = []

    def task(self, name: str, hold: bool = True):
        self.began[name] = threading.Event()

        def run(worker, progress, cancel):
            self.order.append(name)
            self.began[name].set()
            if hold:
                assert self.gate.wait(300)
            return evaluate_demo(worker, progress, cancel)

        return run


def worker_processes(parent: int | None = None) -> set[int]:
    """PIDs of live ``gtpred_core.worker`` processes whose parent is ``parent`` (default: us)."""
    parent = os.getpid() if parent is None else parent
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == parent and b"gtpred_core.worker" in cmdline:
            found.add(int(entry.name))
    return found


def ended(pid: int) -> bool:
    """The process has exited (gone, or a zombie nobody reaped: it holds no memory and runs nothing)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_until(condition, timeout: float, what: str) -> None:
    """Poll ``condition`` (a /proc read, cheap) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.05)


def test_a_sessions_second_run_waits_behind_its_first_and_never_blocks_another_session(pool):
    gates = Gates()
    a1 = pool.submit("a", gates.task("a1"), label="a1", total=797)
    assert gates.began["a1"].wait(120)
    a2 = pool.submit("a", gates.task("a2"), label="a2", total=797)
    b1 = pool.submit("b", gates.task("b1"), label="b1", total=797)
    assert gates.began["b1"].wait(120)  # on the other worker, although a2 arrived first
    place = a2.place()
    assert a2.state == "queued" and place.behind_own_run and place.ahead == 0
    assert place.text() == "Waiting for your previous run to finish"
    gates.gate.set()
    for job in (a1, a2, b1):
        assert job.wait(120) and job.error is None
        assert job.result.accuracy == pytest.approx(DEMO_ACCURACY, abs=0.001)
    assert gates.order == ["a1", "b1", "a2"]


def test_a_queued_run_knows_how_many_are_ahead_and_cancelling_it_frees_its_place(pool):
    gates = Gates()
    running = [pool.submit(s, gates.task(s), total=797) for s in ("c", "d")]
    for name in ("c", "d"):
        assert gates.began[name].wait(120)
    e, f, g = (pool.submit(s, gates.task(s, hold=False), total=797) for s in ("e", "f", "g"))
    assert g.place().ahead == 2
    assert g.place().text() == "Waiting: 2 runs ahead of yours (2 workers, all busy)"
    f.request_cancel()
    assert f.wait(0) and f.cancelled_before_start and f.result is None and f.error is None
    assert g.place().text() == "Waiting: 1 run ahead of yours (2 workers, all busy)"
    gates.gate.set()
    for job in (*running, e, g):
        assert job.wait(120) and job.result.n_images == 797
    assert "f" not in gates.order and f.place() is None


def test_cancel_reaches_a_running_evaluation_through_its_worker_and_keeps_the_part_done(pool):
    job: PoolJob | None = None

    def cancel_after_the_first_batch(worker, progress, cancel):
        def report(done, total):
            progress(done, total)
            job.request_cancel()

        return evaluate_demo(worker, report, cancel, batch_size=4)

    job = pool.submit("h", cancel_after_the_first_batch, total=797)
    assert job.wait(120) and job.error is None
    assert job.result.info.status == "cancelled" and 4 <= job.result.n_images < 797
    assert 4 <= job.done < 797 and job.started is not None


def test_eight_sessions_share_the_warm_workers_no_process_is_started_for_them(pool):
    workers = worker_processes()
    seen: list[set[int]] = []

    def task(worker, progress, cancel):
        seen.append(worker_processes())
        return evaluate_demo(worker, progress, cancel)

    jobs = [pool.submit(f"session-{n}", task, total=797) for n in range(8)]
    for job in jobs:
        assert job.wait(300) and job.error is None
        assert job.result.accuracy == pytest.approx(DEMO_ACCURACY, abs=0.001)
    assert len(workers) >= 2 and all(snapshot <= workers for snapshot in seen)


def _thread_nice_values(pid: int) -> set[int]:
    """The nice value of every thread of process ``pid`` (field 19 of /proc/PID/task/TID/stat)."""
    values = set()
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            values.add(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return values


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads threads' priorities from /proc (Linux)")
def test_the_workers_and_every_thread_tensorflow_starts_in_them_run_below_the_servers_priority():
    """A click on a page must not wait for somebody's run on a shared core: every thread of a
    worker, TensorFlow's compute threads included (started after the priority was set), runs
    GTPRED_WORKER_NICE below the server."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    niced = InferencePool(1, time_limit_s=300, nice=7)
    niced.start()
    try:
        assert niced.wait_warm(300)
        job = niced.submit("session", evaluate_demo, total=797)  # the compute threads exist after a run
        assert job.wait(300) and job.error is None
        pid = niced._lanes[0].worker.pid
        assert pid is not None and len(list(Path(f"/proc/{pid}/task").iterdir())) > 2  # TensorFlow's threads
        assert _thread_nice_values(pid) == {min(19, ours + 7)}
    finally:
        niced.stop()


def test_an_error_comes_back_on_its_job_and_the_worker_serves_the_next(pool, tmp_path):
    missing = pool.submit("i", lambda worker, progress, cancel: worker.evaluate(EvaluationRequest(tmp_path / "gone.keras", demo_folder())).run)
    after = pool.submit("i", evaluate_demo)
    assert missing.wait(120) and after.wait(120)
    assert isinstance(missing.error, GtpredError) and "Model not found" in str(missing.error)
    assert after.result.n_images == 797


def test_describe_does_not_wait_behind_runs_that_hold_every_worker(pool, tmp_path):
    copy = tmp_path / "my model.keras"
    shutil.copy(DEMO_MODEL, copy)
    gates = Gates()
    jobs = [pool.submit(s, gates.task(s), total=797) for s in ("j", "k")]
    for name in ("j", "k"):
        assert gates.began[name].wait(120)
    answered = threading.Event()
    facts = []
    threading.Thread(target=lambda: (facts.append(pool.describe(copy)), answered.set()), daemon=True).start()
    try:
        assert answered.wait(300), "describe waited behind the runs"
        assert all(job.state == "running" for job in jobs)  # still held: the runs did not answer it
        assert (facts[0].name, facts[0].input_size, facts[0].output_width) == ("my model.keras", (32, 32), 10)
    finally:
        gates.gate.set()
    for job in jobs:
        assert job.wait(120)
    with pytest.raises(GtpredError, match="Model not found"):
        pool.describe(tmp_path / "gone.keras")


_PARENT = """
import sys
from gtpred_core.pool import InferencePool

pool = InferencePool(2, time_limit_s=300, warm_model=sys.argv[2])
pool.start()
if sys.argv[1] == "warm":
    assert pool.wait_warm(300)
print("ready", flush=True)
sys.stdin.read()  # until killed
"""


@pytest.mark.parametrize("when", ["starting", "warm"])
def test_the_workers_die_with_the_server_even_while_they_start(when, tmp_path):
    if when == "starting":
        # A start-up that never ends by itself (as a slow TensorFlow import or a huge model's
        # load, for ever): the warm-up "model" is a named pipe nobody writes, so loading blocks.
        warm_model = tmp_path / "never-loads.keras"
        os.mkfifo(warm_model)
    else:
        warm_model = DEMO_MODEL
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, when, str(warm_model)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert parent.stdout.readline().strip() == "ready"
        started = 1 if when == "starting" else 2  # workers start one after the other
        wait_until(lambda: len(worker_processes(parent.pid)) == started, 120, f"the pool did not start {started} workers")
        workers = worker_processes(parent.pid)
        parent.send_signal(signal.SIGKILL)  # no clean-up code runs: as when a server is killed
        parent.wait(30)
        wait_until(lambda: all(ended(pid) for pid in workers), 60, f"workers {sorted(workers)} outlived their server")
    finally:
        parent.kill()
        parent.wait()


def test_a_worker_exits_when_its_servers_end_of_the_socket_closes_even_mid_request():
    """The second guard, for where PR_SET_PDEATHSIG does not exist or came too late: a worker
    busy importing TensorFlow or running (here: waiting forever) still ends once the server's end
    of its socket closes."""
    ours, theirs = socket.socketpair()
    busy_worker = (
        "import sys, threading\n"
        "from gtpred_core.worker import _die_with_parent\n"
        "_die_with_parent(int(sys.argv[1]))\n"
        "print('busy', flush=True)\n"
        "threading.Event().wait()  # a request that never ends by itself\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", busy_worker, str(theirs.fileno())], pass_fds=(theirs.fileno(),), cwd=ROOT,
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    theirs.close()
    try:
        assert worker.stdout.readline().strip() == "busy"
        assert worker.poll() is None
        ours.close()  # the server is gone (its process, or just its end of the socket)
        assert worker.wait(60) == 0
    finally:
        worker.kill()
        worker.wait()


def test_the_servers_workers_run_ten_below_it_by_default_and_the_setting_is_kept_in_range():
    from gtpred_core.settings import Settings

    assert Settings.from_env({}).worker_nice == 10
    assert Settings.from_env({"GTPRED_WORKER_NICE": "0"}).worker_nice == 0  # an admin's choice: same priority
    assert Settings.from_env({"GTPRED_WORKER_NICE": "40"}).worker_nice == 19  # the most nice(2) accepts
    assert Settings.from_env({"GTPRED_WORKER_NICE": "-5"}).worker_nice == 0  # never above the server
