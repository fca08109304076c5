"""The command line contract: file names, columns and keys other tools rely on; clean failures."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gtpred(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "gtpred_core", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_evaluate_writes_predictions_csv_and_summary_json(softmax_model, digits_dir, tmp_path):
    out = tmp_path / "out"
    result = gtpred("evaluate", "--model", softmax_model, "--images", digits_dir, "--out", out, "--batch-size", "7")
    assert result.returncode == 0, result.stderr
    assert "300 images evaluated" in result.stdout and "class-order-mismatch" in result.stdout
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 300
    columns = list(rows[0])
    assert columns[:7] == ["path", "true_label", "true_index", "pred_label", "pred_index", "confidence", "correct"]
    assert len(columns) == 7 + 10
    assert rows[0]["path"] == "Class_1/img_0001.png" and rows[0]["true_label"] == "Class_1"
    assert len({r["path"] for r in rows}) == 300
    summary = json.loads((out / "summary.json").read_text())
    for key in ("n_images", "accuracy", "top5_accuracy", "class_names", "per_class", "confusion_matrix", "warnings", "suggested_class_order", "skipped", "ignored"):
        assert key in summary
    assert summary["n_images"] == 300 and summary["class_names"][1] == "Class_10"
    assert sum(map(sum, summary["confusion_matrix"])) == 300
    assert summary["suggested_class_order"][-1] == "Class_10"
    correct = sum(r["correct"] == "true" for r in rows)
    assert summary["accuracy"] == correct / 300


def test_fatal_problems_print_one_line_and_exit_non_zero(softmax_model, sigmoid_model, digits_dir, tmp_path):
    cases = [
        (["--model", tmp_path / "missing.keras", "--images", digits_dir], "Model not found"),
        (["--model", softmax_model, "--images", tmp_path], "No class folders"),
        (["--model", sigmoid_model, "--images", digits_dir], "outputs 1 values per image but the folder has 10 classes"),
        (["--model", softmax_model, "--images", digits_dir, "--class-order", tmp_path / "nope.txt"], "Class order file not found"),
    ]
    for args, message in cases:
        result = gtpred("evaluate", *args, "--out", tmp_path / "o")
        assert result.returncode == 2, (args, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0]
        assert "Traceback" not in result.stderr


def test_bad_arguments_are_refused_by_the_parser(tmp_path):
    result = gtpred("evaluate", "--model", "m", "--images", "d", "--out", tmp_path, "--preprocess", "imagenet")
    assert result.returncode == 2 and "invalid choice: 'imagenet'" in result.stderr


def test_importing_the_core_never_imports_streamlit_or_tensorflow():
    code = "import sys, gtpred_core; print(sorted(m for m in ('streamlit', 'tensorflow', 'keras', 'sklearn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
