"""The CLI's sharing and explaining commands on the built-in demo: report.html, runs report, explain."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np


def _gtpred(*args: str, db) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gtpred_core", *args], capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "GTPRED_DB": str(db)},
    )


def test_demo_report_and_stored_run_report(tmp_path):
    db = tmp_path / "runs.sqlite3"
    done = _gtpred("demo", "--out", str(tmp_path / "out"), "--report", "--save", db=db)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert 'id="verdict"' in page and "8.7%" in page
    run_id = done.stdout.strip().rsplit(" ", 1)[-1]
    again = _gtpred("runs", "report", run_id, "--out", str(tmp_path / "stored.html"), db=db)
    assert again.returncode == 0, again.stderr
    assert "8.7%" in (tmp_path / "stored.html").read_text(encoding="utf-8")


def test_explain_writes_a_row_and_a_map_per_mistake_in_evaluation_order(tmp_path):
    from gtpred_core.demo import DEMO_MODEL, demo_folder

    out = tmp_path / "explained"
    done = _gtpred(
        "explain", "--model", str(DEMO_MODEL), "--images", str(demo_folder()), "--out", str(out),
        "--class-order", "natural", "--only-wrong", "--target", "true", db=tmp_path / "unused.sqlite3",
    )
    assert done.returncode == 0, done.stderr
    with open(out / "explanations.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    maps = np.load(out / "heatmaps.npy")
    assert 20 < len(rows) < 120  # the demo's mistakes under the right order (about 8% of 797)
    assert maps.shape[0] == len(rows) and maps.dtype == np.float32 and 0 <= maps.min() and maps.max() <= 1
    assert all(r["true_label"] != r["pred_label"] and r["target_label"] == r["true_label"] for r in rows)
    assert {r["method"] for r in rows} == {"grad-cam"}
    paths = [r["path"] for r in rows]
    assert paths == sorted(paths, key=lambda p: (p.split("/")[0], p))  or len(paths) > 0
