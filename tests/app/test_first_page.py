"""The first page of a fresh server is drawn without the heavy libraries (issue 13, item 2).

In a fresh interpreter (as a fresh server is), an audit hook records every module imported for the
first time and by which thread. The Evaluate page's own run must not import pandas, pyarrow,
Altair, PIL, scikit-learn, SciPy, TensorFlow or Keras; after it, the Results page's libraries are
imported by the background preload thread, so the first demo's results need not wait for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys, threading

first_imports = []  # (top-level module, thread name), in order
def record(event, args):
    if event == "import":
        first_imports.append((args[0].split(".")[0], threading.current_thread().name))
sys.addaudithook(record)

from streamlit.testing.v1 import AppTest

at = AppTest.from_file("app.py", default_timeout=60).run()
assert not at.exception, at.exception
buttons = [b.label for b in at.button]
from gtpred_app import navigation
loaded = navigation.results_modules_loaded.wait(120)
print(json.dumps({
    "buttons": buttons,
    "imports": first_imports,
    "preload_thread": navigation.PRELOAD_THREAD,
    "loaded": loaded,
    "altair": "altair" in sys.modules,
}))
"""

HEAVY = {"pandas", "pyarrow", "altair", "PIL", "sklearn", "scipy", "tensorflow", "keras"}


def test_the_evaluate_page_draws_without_heavy_imports_and_preloads_them_after(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GTPRED_DB": str(tmp_path / "runs.sqlite3"),
        "GTPRED_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert "Run the demo" in seen["buttons"]
    by_the_page = sorted({module for module, thread in seen["imports"] if module in HEAVY and thread != seen["preload_thread"]})
    assert by_the_page == [], f"the first page imported {by_the_page}"
    preloaded = {module for module, thread in seen["imports"] if thread == seen["preload_thread"]}
    assert {"pandas", "altair", "PIL"} <= preloaded
    assert seen["loaded"] and seen["altair"]
    assert not preloaded & {"sklearn", "tensorflow", "keras"}
