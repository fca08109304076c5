"""What a new user waits for on a fresh server, in a real browser (a figure, not a test).

For each of ``--servers`` fresh servers (``streamlit run app.py`` with its own empty run store and
cache, so the demo images are written on first use, as on a new install), Debian's Chromium opens
the app as soon as the server answers and times:

- **first page**: navigation starts -> the "Run the demo" button is visible;
- **first demo**: "Run the demo" clicked -> Results shows its "Confusion matrix" heading;
- **warm demo**: back to Evaluate in the same session, clicked again -> Results again.

It prints each server's figures and their medians against the targets of issue 13
(first page <= 2.5 s, first demo <= 8 s, warm <= 1.5 s). The browser starts before the server, so
its own start-up is not counted; the server's start (process -> ``/_stcore/health`` answers) is
printed apart. Figures depend on what else the machine runs: the load average is printed too.

    python bench/app_start.py [--servers 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from live_server import chromium_page, free_port, running_server  # noqa: E402

TARGETS = {"first page": 2.5, "first demo": 8.0, "warm demo": 1.5}
#: Long enough for a first demo on a busy 2-core machine; a stuck page fails rather than hangs.
TIMEOUT_MS = 180_000


def one_fresh_server(number: int) -> dict[str, float]:
    """Start a fresh server, time its first page and demos in a new browser, stop it."""
    with tempfile.TemporaryDirectory(prefix="gtpred-app-start-") as tmp, chromium_page(1500, 1200) as page:
        page.set_default_timeout(TIMEOUT_MS)
        port = free_port()
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "GTPRED_DB": str(Path(tmp) / "runs.sqlite3"),
            "GTPRED_CACHE_DIR": str(Path(tmp) / "cache"),
        }
        command = [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.headless", "true", "--server.port", str(port),
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        ]
        launched = time.perf_counter()
        with running_server(command, port=port, cwd=ROOT, env=env, log_name=f"app-start-{number}.log") as (_, url):
            figures = {"server up": time.perf_counter() - launched}

            started = time.perf_counter()
            page.goto(url)
            demo = page.get_by_role("button", name="Run the demo")
            demo.wait_for()
            figures["first page"] = time.perf_counter() - started

            figures["first demo"] = _demo_seconds(page)
            page.get_by_role("link", name="Evaluate").click()
            page.get_by_role("button", name="Run the demo").wait_for()
            _wait_idle(page)
            figures["warm demo"] = _demo_seconds(page)
            page.screenshot(path=ROOT / "tests" / "artifacts" / f"app-start-{number}.png")
    return figures


def _demo_seconds(page) -> float:
    """Click "Run the demo" once it can be clicked; seconds until Results shows its matrix."""
    button = page.get_by_role("button", name="Run the demo")
    button.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('button')].some(b => b.innerText.includes('Run the demo') && !b.disabled)"
    )
    clicked = time.perf_counter()
    button.click()
    page.get_by_role("heading", name="Confusion matrix").wait_for()
    return time.perf_counter() - clicked


def _wait_idle(page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def _line(figures: dict[str, float]) -> str:
    return " · ".join(f"{name} {seconds:.1f} s" for name, seconds in figures.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=3, help="fresh servers to start, one after another (default 3)")
    args = parser.parse_args()

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    rounds = []
    for number in range(1, args.servers + 1):
        figures = one_fresh_server(number)
        rounds.append(figures)
        print(f"fresh server {number}/{args.servers}: {_line(figures)}", flush=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"\nmedian of {len(rounds)} fresh servers:")
    for name in rounds[0]:
        median = statistics.median(r[name] for r in rounds)
        target = TARGETS.get(name)
        verdict = "" if target is None else f"   (target <= {target:g} s: {'met' if median <= target else 'NOT met'})"
        print(f"  {name:<11} {median:5.1f} s{verdict}")


if __name__ == "__main__":
    main()
