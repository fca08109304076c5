"""A real Streamlit server and a real headless Chromium for tests that need both (see
/work/shared/TESTING.md): start a server command, wait until it answers, open pages, stop it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def require(ok: bool, why: str) -> None:
    """Skip when a tool is missing — except under CI=true, where that is a failure."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (browser tests never skip under CI)")
    pytest.skip(why)


def require_browser() -> None:
    require(Path(CHROMIUM).exists() or shutil.which("chromium") is not None, "chromium is not installed")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require(False, "the playwright Python client is not installed")


def health_answers(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """Poll ``url``/_stcore/health until it answers ``ok`` (True), or the server exits or
    ``timeout`` seconds pass (False): the one way tests and benchmarks wait for a server."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen, wait_s: float = 15) -> None:
    """Stop a server (or any child): SIGTERM, then SIGKILL if it has not ended within ``wait_s``."""
    process.terminate()
    try:
        process.wait(wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(wait_s)


@contextmanager
def running_server(
    command: Sequence[str], *, port: int, cwd: Path, env: Mapping[str, str], log_name: str, timeout: float = 90
) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start ``command`` (a Streamlit server on ``port``), yield it and its URL once
    ``/_stcore/health`` answers ``ok``, stop it by its PID afterwards."""
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / log_name
    with log_path.open("w") as log:
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            if not health_answers(url, process, timeout):
                assert process.poll() is None, f"the server exited: see {log_path}\n{log_path.read_text()[-2000:]}"
                raise AssertionError(f"no answer on /_stcore/health within {timeout:.0f} s: see {log_path}")
            yield process, url
        finally:
            stop(process)


@contextmanager
def chromium_page(width: int = 1500, height: int = 1200) -> Iterator[object]:
    """A fresh headless Chromium page (Debian's chromium, never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(90_000)
            yield page
        finally:
            browser.close()


def wait_idle(page) -> None:
    """Until the app's script run has finished."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
