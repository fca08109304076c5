"""The CLI's --head: a one-unit linear output is refused unless the user says it is a logit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gtpred(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "gtpred_core", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_head_logit_makes_a_one_unit_linear_model_evaluable_and_a_corrupt_file_is_named(binary_dir, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.save(tmp_path / "score.keras")
    refused = gtpred("evaluate", "--model", tmp_path / "score.keras", "--images", binary_dir, "--out", tmp_path / "a")
    assert refused.returncode == 2 and "not a sigmoid" in refused.stderr and "--head logit" in refused.stderr
    assert not (tmp_path / "a" / "predictions.csv").exists()
    accepted = gtpred("evaluate", "--model", tmp_path / "score.keras", "--images", binary_dir, "--out", tmp_path / "b", "--head", "logit")
    assert accepted.returncode == 0, accepted.stderr
    assert "logits-output" in accepted.stdout
    header, *rows = (tmp_path / "b" / "predictions.csv").read_text().splitlines()
    assert len(header.split(",")) == 7 + 2 and all(len(row.split(",")) == 9 for row in rows)

    (tmp_path / "cut.keras").write_bytes((tmp_path / "score.keras").read_bytes()[:300])
    corrupt = gtpred("evaluate", "--model", tmp_path / "cut.keras", "--images", binary_dir, "--out", tmp_path / "c")
    assert corrupt.returncode == 2
    assert "cut.keras is not a Keras model file (it is a truncated or damaged zip archive)" in corrupt.stderr
