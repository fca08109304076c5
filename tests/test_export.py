"""CSV exports are safe to open in a spreadsheet; summary.json keeps every name exactly."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from gtpred_core.demo import digit_images
from gtpred_core.export import FORMULA_STARTS, csv_text, spreadsheet_safe

#: Class folder and file names that Excel / LibreOffice would run as formulas.
HOSTILE_CLASSES = ("=HYPERLINK(\"http:evil.example\")", "+1+cmd", "-2+3", "@SUM(A1)")
HOSTILE_FILES = ("=1+2.png", "\tx.png", "-x.png", "@x.png", "+x.png")


def test_a_formula_start_gets_a_quote_and_numbers_pass_unchanged():
    assert spreadsheet_safe("=1+2") == "'=1+2"
    assert spreadsheet_safe("\rx") == "'\rx"
    assert spreadsheet_safe("plain.png") == "plain.png"
    assert spreadsheet_safe(-0.5) == -0.5  # a number is not a formula in a CSV cell
    text = csv_text(["@a", "b"], [["-1", 2]])
    assert list(csv.reader(io.StringIO(text))) == [["'@a", "b"], ["'-1", "2"]]


def _hostile_folder(root: Path) -> Path:
    from PIL import Image

    images, labels = digit_images()
    for k, name in enumerate(HOSTILE_CLASSES):
        folder = root / name
        folder.mkdir(parents=True)
        picks = np.flatnonzero(labels == k)[: len(HOSTILE_FILES)]
        for file_name, n in zip(HOSTILE_FILES, picks):
            Image.fromarray(np.kron(images[n], np.ones((4, 4), np.uint8)), mode="L").save(folder / file_name)
    return root


def test_cli_predictions_csv_has_no_formula_cell_and_summary_keeps_names(tmp_path):
    import keras

    images = _hostile_folder(tmp_path / "val")
    out = tmp_path / "out"
    keras.utils.set_random_seed(0)  # an untrained 4-way classifier: what is checked is how names are written
    inputs = keras.Input((16, 16, 1))
    four = keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(inputs))
    path = tmp_path / "four.keras"
    keras.Model(inputs, four).save(path)

    done = subprocess.run(
        [sys.executable, "-m", "gtpred_core", "evaluate", "--model", str(path), "--images", str(images), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    with open(out / "predictions.csv", newline="", encoding="utf-8") as f:
        cells = [cell for row in csv.reader(f) for cell in row]
    assert len(cells) > 20
    assert not [c for c in cells if c.startswith(FORMULA_STARTS)]
    assert "'" + HOSTILE_CLASSES[0] + "/=1+2.png" in cells  # a path cell, quoted once, otherwise exact
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert sorted(summary["class_names"]) == sorted(HOSTILE_CLASSES)  # exact, no quote added
