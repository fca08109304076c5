"""gtpred as a user installs it: `pip install .` into a fresh virtualenv, then the `gtpred`
command from a folder outside the checkout — the CLI, the demo, and `gtpred app` serving the web
app in Chromium, with the demo run through the installed package's own inference worker.

The virtualenv sees this machine's packages (`--system-site-packages`, nothing is downloaded) and
builds with them (`--no-build-isolation --no-index`: setuptools from requirements-dev.txt).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from live_server import ARTIFACTS, ROOT, chromium_page, free_port, require_browser, running_server, wait_idle

from gtpred_app import launch

#: What `git clone` would bring; build leftovers and caches stay behind.
NOT_IN_A_CLONE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "build", "*.egg-info", "artifacts", ".venv", ".pytest_cache", "data")


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with gtpred installed from a copy of this checkout."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "gtpred-src"
    shutil.copytree(ROOT, source, ignore=NOT_IN_A_CLONE)
    # --without-pip: the venv uses this machine's pip and setuptools (ensurepip's are older)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", base / "venv"], check=True)
    python = base / "venv" / "bin" / "python"
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--no-index", source],
        capture_output=True, text=True, timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return base / "venv"


@pytest.fixture()
def elsewhere(tmp_path) -> Path:
    """A working folder outside the checkout, with no `.streamlit/` of its own."""
    folder = tmp_path / "somewhere-else"
    folder.mkdir()
    return folder


def user_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user who never saw the checkout: no PYTHONPATH, fresh cache and store."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GTPRED_DATA_ROOT")}
    env.update(GTPRED_CACHE_DIR=str(tmp_path / "cache"), GTPRED_DB=str(tmp_path / "runs.sqlite3"), HOME=str(tmp_path / "home"))
    return env


def test_pip_install_gives_the_gtpred_command(venv, elsewhere, tmp_path):
    result = subprocess.run([venv / "bin" / "gtpred", "--help"], cwd=elsewhere, env=user_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: gtpred ")
    for command in ("evaluate", "evaluate-checkpoints", "runs", "demo", "app"):
        assert command in result.stdout
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "gtpred_core" / "demo_assets" / "digits_cnn.keras").is_file()
    assert (site / "gtpred_app" / "server_defaults.toml").is_file()
    assert (site / "gtpred_app" / "screens" / "results.py").is_file()
    license_file = next(site.glob("gtpred-*.dist-info/licenses/LICENSE"))
    assert "Apache License" in license_file.read_text() and "Version 2.0, January 2004" in license_file.read_text()


def test_the_installed_demo_runs_from_any_folder(venv, elsewhere, tmp_path):
    env = user_env(tmp_path)
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import gtpred_core.demo as d; print(d.DEMO_MODEL)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr  # not the checkout's copy
    result = subprocess.run([venv / "bin" / "gtpred", "demo", "--out", "demo-out"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "797 images evaluated, accuracy 8.66%" in result.stdout
    assert (elsewhere / "demo-out" / "predictions.csv").is_file() and (elsewhere / "demo-out" / "summary.json").is_file()
    assert result.stderr == ""  # no TensorFlow start-up noise either


def test_gtpred_app_serves_the_app_from_the_installed_copy(venv, elsewhere, tmp_path):
    require_browser()
    port = free_port()
    command = [str(venv / "bin" / "gtpred"), "app", "--server.port", str(port)]
    with running_server(command, port=port, cwd=elsewhere, env=user_env(tmp_path), log_name="installed-app-server.log") as (server, url):
        # the process is now Streamlit itself, running the installed package's entry script
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        script = Path(os.fsdecode(cmdline[cmdline.index(b"run") + 1]))
        assert script.is_relative_to(venv) and script.name == "streamlit_app.py", cmdline
        assert b"--runner.postScriptGC" in cmdline and b"--client.showErrorDetails" in cmdline  # gtpred's defaults

        with chromium_page() as page:
            page.goto(url)
            page.get_by_role("heading", name="Evaluate an image classifier").wait_for()
            wait_idle(page)
            page.get_by_role("button", name="Run the demo").click()
            page.get_by_role("heading", name="Confusion matrix").wait_for(timeout=180_000)
            assert page.get_by_text("The class order looks wrong").first.is_visible()
            wait_idle(page)
            page.screenshot(path=ARTIFACTS / "installed-app-demo.png")


def test_gtpred_app_passes_only_the_defaults_the_user_did_not_set(tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    (cwd / ".streamlit").mkdir(parents=True)
    (cwd / ".streamlit" / "config.toml").write_text("[server]\nmaxUploadSize = 100\n")
    args = launch.streamlit_arguments(
        ["--server.port", "9000", "--server.address=127.0.0.1"],
        env={"STREAMLIT_SERVER_BASE_URL_PATH": "gtpred"},
        cwd=cwd,
        home=home,
    )
    assert args[:2] == ["run", str(launch.ENTRY_SCRIPT)]
    flags = args[2:]
    assert flags[-3:] == ["--server.port", "9000", "--server.address=127.0.0.1"]  # the user's, last
    assert flags.count("--server.port") == 1
    for chosen_elsewhere in ("--server.baseUrlPath", "--server.maxUploadSize"):  # a variable, a config file
        assert chosen_elsewhere not in flags
    assert flags[flags.index("--runner.postScriptGC") + 1] == "false"
    assert flags[flags.index("--client.showErrorDetails") + 1] == "none"


def test_the_packaged_server_defaults_are_the_checkouts_streamlit_config():
    checkout = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    packaged = tomllib.loads(launch.SERVER_DEFAULTS.read_text())
    assert packaged == checkout, "copy the settings of .streamlit/config.toml into gtpred_app/server_defaults.toml"


def test_no_pages_folder_sits_next_to_an_entry_script():
    # Streamlit lists such a folder by itself until st.navigation has run once: on a fresh server a
    # page URL opened first would skip the entry script's set-up (tests/browser/test_restart.py).
    for entry in (ROOT / "app.py", launch.ENTRY_SCRIPT):
        assert entry.is_file()
        assert not (entry.parent / "pages").exists(), f"a pages/ folder next to {entry.name}"
