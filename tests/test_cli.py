"""The command line contract: file names, columns and keys other tools rely on; clean failures."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


USAGE_ERRORS = [
    (["evaluate", "--model", "m", "--images", "d", "--out", "o", "--batch-size", "abc"], "error: --batch-size: must be a whole number ≥ 1, got 'abc'"),
    (["evaluate", "--model", "m", "--images", "d", "--out", "o", "--batch-size", "0"], "error: --batch-size: must be a whole number ≥ 1, got '0'"),
    (["evaluate", "--model", "m", "--images", "d", "--out", "o", "--image-size", "224"], "error: --image-size: must be HEIGHTxWIDTH in pixels such as 224x224, got '224'"),
    (["evaluate", "--model", "m", "--images", "d", "--out", "o", "--preprocess", "imagenet"], "error: --preprocess: must be one of none, rescale, tf, torch, caffe, got 'imagenet'"),
    (["evaluate", "--model", "m"], "error: python -m gtpred_core evaluate needs --out (see 'python -m gtpred_core evaluate --help')"),
    (["evaluate", "--model", "m", "--out", "o"], "error: Say where the images are. Give --images FOLDER (one sub-folder per class) or --labels CSV."),
    (["evaluate", "--model", "m", "--images", "d", "--out", "o", "--batch-sise", "8"], "error: python -m gtpred_core evaluate has no option --batch-sise (did you mean '--batch-size'?)"),
    (["evalute"], "error: python -m gtpred_core has no command 'evalute' (did you mean 'evaluate'?): choose from evaluate,"),
    ([], "error: python -m gtpred_core needs a command: evaluate,"),
    (["runs", "show", "seven"], "error: id: must be a run id (a whole number, see 'runs list'), got 'seven'"),
    (["runs", "list", "--db", "x.sqlite3"], "error: --db goes right after 'python -m gtpred_core runs', before the sub-command"),
]


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS, ids=[" ".join(a) or "nothing" for a, _ in USAGE_ERRORS])
def test_a_usage_error_is_one_line_that_says_what_to_type(args, message):
    result = gtpred(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr  # no usage block
    assert result.stderr.startswith(message), result.stderr
    assert "_positive_int" not in result.stderr and "usage:" not in result.stderr


def test_help_lists_every_command_and_the_global_flags():
    result = gtpred("--help")
    assert result.returncode == 0
    for word in ("evaluate", "evaluate-checkpoints", "runs", "demo", "app", "--verbose", "--debug"):
        assert word in result.stdout


TENSORFLOW_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]", re.MULTILINE)  # Abseil C++


def test_a_successful_demo_run_prints_nothing_on_stderr(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    env["GTPRED_CACHE_DIR"] = str(tmp_path / "cache")
    result = subprocess.run([sys.executable, "-m", "gtpred_core", "demo", "--out", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "797 images evaluated, accuracy 8.66%" in result.stdout
    assert result.stderr == ""  # no absl banner, oneDNN, CUDA or cuInit lines

    verbose = subprocess.run([sys.executable, "-m", "gtpred_core", "demo", "--out", str(tmp_path / "out"), "--verbose"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert verbose.returncode == 0, verbose.stderr
    assert TENSORFLOW_LOG_LINE.search(verbose.stderr), verbose.stderr  # --verbose brings them back


def test_the_filter_drops_only_lines_abseil_logs_before_it_is_initialised():
    from gtpred_core.quiet import PRE_INIT_NOISE

    noise = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        b"I0000 00:00:1795974350.158679   14810 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
        b"E0000 00:00:1795974367.271143   15342 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
        b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.",
    ]
    kept = [
        b"E1129 17:44:39.271143   15342 bfc_allocator.cc:485] Allocator ran out of memory trying to allocate 4.00GiB",
        b"error: Model not found: m.keras. Check the path.",
        b"[##########....] 300/797  2500 img/s",
    ]
    assert all(PRE_INIT_NOISE.match(line) for line in noise)
    assert not any(PRE_INIT_NOISE.match(line) for line in kept)


def test_importing_the_core_never_imports_streamlit_or_tensorflow():
    code = "import sys, gtpred_core; print(sorted(m for m in ('streamlit', 'tensorflow', 'keras', 'sklearn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
