"""The built-in demo: its shipped images are scikit-learn's held-out digits, unpacked on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from gtpred_core.demo import TRAIN_SPLIT, class_name_for_digit, demo_folder, digit_images

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_folder_holds_the_held_out_digits_pixel_for_pixel(tmp_path, monkeypatch):
    monkeypatch.setenv("GTPRED_CACHE_DIR", str(tmp_path / "cache"))
    folder = demo_folder()
    assert folder == tmp_path / "cache" / "demo-digits"

    images, digits = digit_images()
    files = sorted(folder.rglob("*.png"))
    assert len(files) == len(images) - TRAIN_SPLIT == 797
    for n in range(TRAIN_SPLIT, len(images)):
        path = folder / class_name_for_digit(int(digits[n])) / f"img_{n:04d}.png"
        with Image.open(path) as image:
            assert image.mode == "L"
            np.testing.assert_array_equal(np.asarray(image), images[n], err_msg=str(path))


def test_the_first_demo_does_not_import_scikit_learn(tmp_path):
    """scikit-learn costs seconds to import: the first demo click of a fresh server skips it."""
    code = (
        "import sys; from gtpred_core.demo import demo_folder; folder = demo_folder(); "
        "print(len(list(folder.rglob('*.png'))), 'sklearn' in sys.modules, 'PIL' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"GTPRED_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["797", "False", "False"]
