"""N people at once: real browser sessions against one server, "Run the demo" pressed in all together.

A figure, not a pass/fail test (``tests/browser/test_load.py`` runs it small and checks results
and isolation only). What it does:

1. starts ``streamlit run app.py`` pinned to one CPU with ``taskset`` (its inference workers
   inherit the pin), then pins this process, and so the browser it starts, to another CPU:
   people's browsers run on their own machines, and eight headless Streamlit tabs would otherwise
   take most of a 2-core machine (renderers ignore ``nice``);
2. an observer session runs the demo alone first (the workers are warm after it), and opens its
   Results and Mispredictions pages in two tabs;
3. opens N sessions on the Evaluate page, then presses **Run the demo** in all of them at once;
4. while those runs go, the observer clicks confusion-matrix cells and misprediction rows and
   reloads its Results page, and each session that already has its results clicks cells too;
5. prints each session's time from its click to its results, click latency percentiles, reload
   times, and memory: each warm worker's RSS after the observer's run, and the peak RSS of the
   server with its workers during the load.

    python bench/load.py --sessions 8 [--workers W] [--server-cpu 0] [--browser-cpu 1]
        [--observer-cpu 0 [--observer-nice 10]] [--json out.json] [--verbose]

Each observer action is timed three ways, from the moment it is made: *answered* (the server's
last message of the rerun arrived), *shown* (what was asked for is on the screen) and *idle* (the
page is done updating). On this machine the observer's browser shares a core with the server or
with the crowd, so *shown* and *idle* include its own drawing under that load; *answered* is the
server's part, the one a visitor's browser on their own machine would wait for.

Also printed: the CPU seconds the web server, the workers and the browsers used during the load,
which tells whose core was the bottleneck (on a busy shared machine, it is often the browsers').
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from live_server import health_answers, stop  # noqa: E402  (the one way to wait for and stop a server)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
#: Two confusion cells of the demo under Keras order, and the caption a click on each shows.
CELLS = [
    ('path[aria-label^="Predicted class: Class_9; True class: Class_10;"]', "True Class_10, predicted Class_9:"),
    ('path[aria-label^="Predicted class: Class_5; True class: Class_6;"]', "True Class_6, predicted Class_5:"),
]
MISPREDICTION_ROW_HEIGHT = 56  # gtpred_app/screens/mispredictions.py
TABLE_HEADER_HEIGHT = 35
DEMO_ACCURACY = "8.7%"
RESULTS_TIMEOUT_S = 900
VERBOSE = False  # --verbose: print each click as it is measured


@dataclass
class Timing:
    """One action, in milliseconds from the moment it was made (the mouse button went down, the
    reload was asked for): ``answered``, the server's last message of the rerun it caused arrived;
    ``shown``, what the person asked for is on the screen; ``idle``, the page is done updating.
    ``server``: from the browser's message that asked (a click's widget value, a reload's new
    session) to the server's last message: the server's part alone."""

    answered: float
    shown: float
    idle: float
    server: float


@dataclass
class SessionResult:
    """One person's demo: seconds from the click to the results, what they saw, their run's id."""

    seconds_to_results: float | None = None
    accuracy: str | None = None
    run_id: str | None = None
    error: str | None = None


@dataclass
class LoadResult:
    sessions: list[SessionResult]
    observer_run_id: str | None
    workers: int
    observer_where: str = "a browser on the crowd's core"
    cell_clicks: list[Timing] = field(default_factory=list)
    crowd_clicks: list[Timing] = field(default_factory=list)  # the N sessions' own clicks
    misprediction_clicks: list[Timing] = field(default_factory=list)
    reloads: list[Timing] = field(default_factory=list)
    warm_worker_rss_mb: list[float] = field(default_factory=list)
    server_rss_mb: float = 0.0
    peak_total_rss_mb: float = 0.0
    load_seconds: float = 0.0  # from the clicks to the last session's results
    server_cpu_s: float = 0.0  # CPU the web server used meanwhile (pages, charts, thumbnails)
    workers_cpu_s: float = 0.0  # CPU the inference workers used meanwhile
    browsers_cpu_s: float = 0.0  # CPU the browser (all its processes) used meanwhile
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"{len(self.sessions)} sessions, {self.workers} inference worker(s)"]
        times = sorted(s.seconds_to_results for s in self.sessions if s.seconds_to_results is not None)
        for n, s in enumerate(self.sessions, 1):
            seen = f"{s.seconds_to_results:6.1f} s  accuracy {s.accuracy}  run {s.run_id}" if s.error is None else f"ERROR {s.error}"
            lines.append(f"  session {n}: {seen}")
        if times:
            lines.append(f"time to results: first {times[0]:.1f} s, median {statistics.median(times):.1f} s, last {times[-1]:.1f} s")
        clicks = self.cell_clicks + self.misprediction_clicks
        lines.append(f"observer's actions ({self.observer_where}), each started while the runs went;")
        lines.append("  server = from the browser's request to the server's last message; answered = from the click to that")
        lines.append("  message; shown = on the screen; idle = the page done:")
        for name, values in (
            ("all clicks", clicks), ("  matrix cell", self.cell_clicks), ("  misprediction", self.misprediction_clicks),
            ("reload Results", self.reloads),
        ):
            for what in ("server", "answered", "shown", "idle"):
                label = name if what == "server" else ""
                lines.append(f"{label:<17}{what:<9}{_percentiles([getattr(t, what) for t in values], 'ms')}")
        lines.append(f"{'crowd clicks':<17}{'shown':<9}{_percentiles([t.shown for t in self.crowd_clicks], 'ms')}"
                     "  (the N sessions, their browsers sharing one core)")
        rss = ", ".join(f"{mb:.0f}" for mb in self.warm_worker_rss_mb) or "n/a"
        lines.append(f"memory: warm worker(s) {rss} MB RSS each; server {self.server_rss_mb:.0f} MB; "
                     f"server + workers peak {self.peak_total_rss_mb:.0f} MB")
        lines.append(f"CPU during the load ({self.load_seconds:.1f} s): web server {self.server_cpu_s:.1f} s, "
                     f"inference workers {self.workers_cpu_s:.1f} s, browsers {self.browsers_cpu_s:.1f} s")
        lines += [f"problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


def _percentiles(values: list[float], unit: str) -> str:
    ordered = sorted(v for v in values if v == v)  # NaN: the answer was not seen
    if not ordered:
        return "no samples"
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.0f} {unit}   p95 {p95:6.0f} {unit}   max {ordered[-1]:6.0f} {unit}   (n={len(ordered)})"


# ----- the server and its memory --------------------------------------------------------------------
def start_server(port: int, cpu: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    if not health_answers(f"http://127.0.0.1:{port}", process, 120):
        process.kill()
        raise RuntimeError(f"streamlit did not start; see {log}")
    return process


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        children = _children(frontier.pop())
        found += children
        frontier += children
    return found


def rss_mb(pid: int) -> float:
    try:
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pids(server: int) -> list[int]:
    return [pid for pid in _children(server) if b"gtpred_core.worker" in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


# ----- the browser sessions ---------------------------------------------------------------------------
async def _idle(page) -> None:
    await page.wait_for_selector(IDLE)


async def _open_evaluate(context, url: str):
    page = await context.new_page()
    _listen(page)
    page.set_default_timeout(RESULTS_TIMEOUT_S * 1000)
    await page.goto(url)
    await page.get_by_role("button", name="Run the demo").wait_for()
    await _idle(page)
    return page


async def _run_demo(page, result: SessionResult) -> None:
    try:
        await page.get_by_role("button", name="Run the demo").click()
        clicked = time.perf_counter()
        await page.get_by_role("heading", name="Confusion matrix").wait_for()
        result.seconds_to_results = time.perf_counter() - clicked
        result.accuracy = (await page.locator('[data-testid="stMetricValue"]').first.inner_text()).strip()
        result.run_id = parse_qs(urlparse(page.url).query).get("run", [None])[0]
    except Exception as err:  # noqa: BLE001 - reported per session, the others go on
        result.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def _listen(page) -> None:
    """Keep the arrival time of the page's last websocket message (``page.last_message``): the
    end of the server's answer to an action (Streamlit sends a rerun's elements, then its end);
    and the time the browser first sent one after the action began (``page.first_sent``)."""
    page.last_message = page.first_sent = page.action_started = 0.0

    def on_received(_frame) -> None:
        page.last_message = time.perf_counter()

    def on_sent(_frame) -> None:
        if page.first_sent < page.action_started:
            page.first_sent = time.perf_counter()

    page.on("websocket", lambda ws: (ws.on("framereceived", on_received), ws.on("framesent", on_sent)))


def _begin(page) -> float:
    page.action_started = time.perf_counter()
    return page.action_started


async def _timed(page, what: str, started: float, shown) -> Timing:
    """Wait for ``shown`` (the answer on the screen), then for the page to be idle."""
    await shown
    shown_ms = (time.perf_counter() - started) * 1000
    await _idle(page)
    idle_ms = (time.perf_counter() - started) * 1000
    answered_ms = (page.last_message - started) * 1000 if page.last_message > started else float("nan")
    server_ms = (page.last_message - page.first_sent) * 1000 if page.last_message > page.first_sent > started else float("nan")
    if VERBOSE:
        print(f"{time.strftime('%H:%M:%S')} {what}: server {server_ms:.0f} ms, answered {answered_ms:.0f} ms, "
              f"shown {shown_ms:.0f} ms, idle {idle_ms:.0f} ms", flush=True)
    return Timing(answered_ms, shown_ms, idle_ms, server_ms)


async def _click_cell(page, n: int) -> Timing:
    """Click the n-th demo cell (alternating, so each click changes the caption). The clock starts
    when the mouse button goes down, once the cell can take a click (Playwright's actionability
    wait -- the chart settling after a reload -- is not the server's time nor the person's)."""
    selector, caption = CELLS[n % len(CELLS)]
    cell = page.locator(f'[data-testid="stVegaLiteChart"] {selector}')
    await cell.click(trial=True)
    box = await cell.bounding_box()
    started = _begin(page)
    await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    return await _timed(page, "matrix cell", started, page.get_by_text(caption).wait_for())


async def _click_misprediction(page, n: int) -> Timing:
    """Click a row of the Mispredictions table (rows 0 and 1 in turn); shown when its file is in
    the URL and its detail is drawn."""
    table = page.locator('[data-testid="stDataFrame"]').first
    box = await table.bounding_box()
    before = parse_qs(urlparse(page.url).query).get("file", [None])[0]
    row = n % 2

    async def detail_drawn() -> None:
        await page.wait_for_function("before => new URLSearchParams(location.search).get('file') !== before", arg=before)
        selected = parse_qs(urlparse(page.url).query)["file"][0]
        detail = page.locator('[data-testid="stColumn"]').filter(has_text="Top-5 probabilities")
        await detail.get_by_text(selected, exact=True).wait_for()

    started = _begin(page)
    await page.mouse.click(box["x"] + 18, box["y"] + TABLE_HEADER_HEIGHT + MISPREDICTION_ROW_HEIGHT * row + MISPREDICTION_ROW_HEIGHT / 2)
    return await _timed(page, "misprediction", started, detail_drawn())


async def _reload(page) -> Timing:
    started = _begin(page)
    await page.reload()
    return await _timed(page, "reload Results", started, page.get_by_role("heading", name="Confusion matrix").wait_for())


def _niced_chromium(nice: int, folder: Path) -> str:
    """A launcher that starts Chromium ``nice`` below normal priority, its whole process tree."""
    launcher = folder / "chromium-niced"
    launcher.write_text(f'#!/bin/sh\nexec nice -n {nice} {CHROMIUM} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


async def measure(
    url: str, n_sessions: int, server_pid: int, workers: int, observer_cpu: int | None = None, observer_nice: int = 0,
) -> LoadResult:
    from playwright.async_api import ViewportSize, async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        viewport: ViewportSize = {"width": 1500, "height": 1900}
        observer_browser, where = browser, "a browser on the crowd's core"
        if observer_cpu is not None:
            # A person's browser runs on their own machine: the observer's gets a core the crowd's
            # eight renderers do not saturate, so its clicks time the server, not the crowd. On the
            # server's core it runs at the workers' priority (--observer-nice): at normal priority
            # it would take that core from the niced workers, which no real visitor's browser does.
            crowd = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {observer_cpu})
            with tempfile.TemporaryDirectory(prefix="gtpred-observer-") as folder:
                executable = _niced_chromium(observer_nice, Path(folder)) if observer_nice else CHROMIUM
                observer_browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            os.sched_setaffinity(0, crowd)
            where = f"its own browser on CPU {observer_cpu}" + (f" at nice {observer_nice}" if observer_nice else "")

        # The observer: one run alone first (the workers are warm after it), then its results open
        # in two windows that it clicks in while everybody else's runs go.
        observer = await observer_browser.new_context(viewport=viewport)
        first = await _open_evaluate(observer, url)
        mine = SessionResult()
        await _run_demo(first, mine)
        if mine.error is not None:
            raise RuntimeError(f"the observer's demo failed: {mine.error}")
        await _idle(first)
        warm_rss = [rss_mb(pid) for pid in worker_pids(server_pid)]
        # Its own context (window): a second tab of one window is hidden, and Chromium hardly
        # draws hidden tabs (a click on one took 11 s on an idle machine).
        results_tab, mispredictions_tab = first, await (await observer_browser.new_context(viewport=viewport)).new_page()
        _listen(mispredictions_tab)
        mispredictions_tab.set_default_timeout(120_000)
        await mispredictions_tab.goto(f"{url}/mispredictions?run={mine.run_id}")
        await mispredictions_tab.get_by_role("heading", name="Mispredictions").wait_for()
        await mispredictions_tab.locator('[data-testid="stDataFrame"]').first.wait_for()
        await _idle(mispredictions_tab)
        await mispredictions_tab.wait_for_timeout(500)  # the table's canvas draws after its element
        # One click each before the load: a window's first click also pays one-off costs (the
        # chart's first event, cold thumbnails) that are not what this measures.
        await _click_cell(results_tab, 1)
        await _click_misprediction(mispredictions_tab, 1)

        # N people on the Evaluate page, then the demo pressed in all at once.
        contexts = [await browser.new_context(viewport=viewport) for _ in range(n_sessions)]
        pages = await asyncio.gather(*(_open_evaluate(context, url) for context in contexts))
        result = LoadResult(sessions=[SessionResult() for _ in pages], observer_run_id=mine.run_id, workers=workers,
                            warm_worker_rss_mb=warm_rss, observer_where=where)
        result.server_rss_mb = rss_mb(server_pid)
        runs_going = True

        async def sample_memory() -> None:
            while runs_going:
                total = rss_mb(server_pid) + sum(rss_mb(pid) for pid in _children(server_pid))
                result.peak_total_rss_mb = max(result.peak_total_rss_mb, total)
                await asyncio.sleep(0.5)

        async def session(page, outcome: SessionResult) -> None:
            await _run_demo(page, outcome)
            n = 0
            while runs_going and outcome.error is None:  # a person with results looks around
                result.crowd_clicks.append(await _click_cell(page, n))  # clicked while runs went
                n += 1

        async def observe() -> None:
            n = 0
            while runs_going:  # each sample is of an action started while the runs went
                result.cell_clicks.append(await _click_cell(results_tab, n))
                if runs_going:
                    result.misprediction_clicks.append(await _click_misprediction(mispredictions_tab, n))
                if n % 3 == 2 and runs_going:
                    result.reloads.append(await _reload(results_tab))
                n += 1

        workers_before = {pid: cpu_seconds(pid) for pid in worker_pids(server_pid)}
        browsers_before = {pid: cpu_seconds(pid) for pid in _descendants(os.getpid())}
        server_before, load_started = cpu_seconds(server_pid), time.perf_counter()
        sampler, watcher = asyncio.create_task(sample_memory()), asyncio.create_task(observe())
        sessions = [asyncio.create_task(session(page, outcome)) for page, outcome in zip(pages, result.sessions)]

        async def all_have_results() -> None:
            while any(s.seconds_to_results is None and s.error is None for s in result.sessions):
                await asyncio.sleep(0.1)

        await all_have_results()
        runs_going = False
        result.load_seconds = time.perf_counter() - load_started
        result.server_cpu_s = cpu_seconds(server_pid) - server_before
        result.workers_cpu_s = sum(cpu_seconds(pid) - workers_before.get(pid, 0.0) for pid in worker_pids(server_pid))
        result.browsers_cpu_s = sum(cpu_seconds(pid) - browsers_before.get(pid, 0.0) for pid in _descendants(os.getpid()))
        for outcome in await asyncio.gather(*sessions, watcher, sampler, return_exceptions=True):
            if isinstance(outcome, Exception):  # a click that timed out: say so, keep the figures
                result.problems.append(f"{type(outcome).__name__}: {str(outcome).splitlines()[0] if str(outcome) else ''}")
        await browser.close()
        if observer_browser is not browser:
            await observer_browser.close()
        return result


def run(
    n_sessions: int, workers: int | None = None, server_cpu: int | None = None, browser_cpu: int | None = None,
    observer_cpu: int | None = None, observer_nice: int | None = None,
) -> LoadResult:
    """Start a server, measure, stop it. Pins this process to ``browser_cpu`` (run it as a script)."""
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0] if server_cpu is None else server_cpu
    browser_cpu = (cpus[1] if len(cpus) > 1 else cpus[0]) if browser_cpu is None else browser_cpu
    with tempfile.TemporaryDirectory(prefix="gtpred-load-") as tmp:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GTPRED_DB": str(Path(tmp) / "runs.sqlite3")}
        if workers is not None:
            env["GTPRED_WORKERS"] = str(workers)
        else:
            env.pop("GTPRED_WORKERS", None)  # the default: the server's usable CPUs (one, pinned)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = Path(tmp) / "server.log"
        server = start_server(port, server_cpu, env, log)
        try:
            os.sched_setaffinity(0, {browser_cpu})  # the browser and its renderers start from here
            nice = int(env.get("GTPRED_WORKER_NICE", "10")) if observer_nice is None else observer_nice
            result = asyncio.run(measure(f"http://127.0.0.1:{port}", n_sessions, server.pid, workers or 1, observer_cpu, nice))
            result.workers = len(worker_pids(server.pid))
            return result
        finally:
            stop(server)
            if server.returncode not in (0, -15):
                sys.stderr.write(log.read_text()[-4000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="GTPRED_WORKERS for the server (default: its usable CPUs)")
    parser.add_argument("--server-cpu", type=int, default=None)
    parser.add_argument("--browser-cpu", type=int, default=None)
    parser.add_argument("--observer-cpu", type=int, default=None, help="the measuring browser's own CPU (e.g. the server's: "
                        "a person's browser runs on their own machine, not among the crowd's renderers)")
    parser.add_argument("--observer-nice", type=int, default=None, help="with --observer-cpu: the measuring browser's "
                        "nice value (default: the workers', GTPRED_WORKER_NICE or 10, so it does not starve the runs)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--verbose", action="store_true", help="print each click as it is measured")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    result = run(args.sessions, args.workers, args.server_cpu, args.browser_cpu, args.observer_cpu, args.observer_nice)
    print(result.report())
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=1))


if __name__ == "__main__":
    main()
