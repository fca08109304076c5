"""Real-world image files: 200 good and 20 problem files; each evaluated as Keras would, or skipped
with its reason, never fatal. A decompression bomb is refused fast, without decoding."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import keras_reference_predictions
from tests.test_inference import _png_declaring

ROOT = Path(__file__).resolve().parents[1]

SKIPPED = {  # file name -> words its reason must contain
    "bad_empty_1.png": "empty file", "bad_empty_2.jpg": "empty file",
    "bad_truncated_1.jpg": "cannot be decoded", "bad_truncated_2.png": "cannot be decoded",
    "bad_crc_1.png": "cannot be decoded", "bad_crc_2.png": "cannot be decoded",
    "bad_text_1.jpg": "cannot be decoded", "bad_text_2.png": "cannot be decoded",
    "bad_random_1.gif": "cannot be decoded", "bad_random_2.bmp": "header declares",  # garbage BMP header
    "bad_bomb_1.png": "safety limit", "bad_bomb_2.png": "safety limit",
}
ODD_BUT_VALID = ["odd_cmyk_1.jpg", "odd_cmyk_2.jpg", "odd_16bit.png", "odd_rgba.png", "odd_palette.png", "odd_animated.gif", "odd_1x1_1.png", "odd_1x1_2.png"]


def _bad_crc_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    at = data.find(b"IDAT")
    length = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 + length] ^= 0xFF  # flip a byte of the IDAT chunk's CRC
    return bytes(data)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, digits):
    """Class folders with 200 good digits, plus 20 problem files in Class_5, and the good-only twin."""
    from gtpred_core.demo import write_digits_folder

    images, labels = digits
    base = tmp_path_factory.mktemp("zoo")
    good = write_digits_folder(base / "good", images[:200], labels[:200])
    root = base / "zoo"
    shutil.copytree(good, root)
    sample = Image.fromarray(images[5]).convert("RGB").resize((32, 32))
    target = root / "Class_5"
    jpeg = io.BytesIO()
    sample.save(jpeg, "JPEG")
    png = io.BytesIO()
    sample.save(png, "PNG")
    writes = {
        "bad_empty_1.png": b"", "bad_empty_2.jpg": b"",
        "bad_truncated_1.jpg": jpeg.getvalue()[:200], "bad_truncated_2.png": png.getvalue()[:100],
        "bad_crc_1.png": _bad_crc_png(sample), "bad_crc_2.png": _bad_crc_png(sample.convert("L")),
        "bad_text_1.jpg": b"<html>not an image</html>\n", "bad_text_2.png": b"just text\n" * 50,
        "bad_random_1.gif": np.random.default_rng(1).bytes(300), "bad_random_2.bmp": b"BM" + np.random.default_rng(2).bytes(300),
        "bad_bomb_1.png": _png_declaring(20_000, 20_000), "bad_bomb_2.png": _png_declaring(100_000, 1_000),
    }
    for name, data in writes.items():
        (target / name).write_bytes(data)
    sample.convert("CMYK").save(target / "odd_cmyk_1.jpg", "JPEG")
    Image.fromarray(images[15]).convert("RGB").convert("CMYK").save(target / "odd_cmyk_2.jpg", "JPEG")
    Image.fromarray(images[5].astype(np.uint16) * 257).save(target / "odd_16bit.png")
    sample.convert("RGBA").save(target / "odd_rgba.png")
    sample.convert("P").save(target / "odd_palette.png")
    frames = [sample.convert("P"), sample.rotate(45).convert("P")]
    frames[0].save(target / "odd_animated.gif", save_all=True, append_images=frames[1:])
    sample.resize((1, 1)).save(target / "odd_1x1_1.png")
    Image.new("L", (1, 1), 255).save(target / "odd_1x1_2.png")
    odd_only = base / "odd" / "Class_5"
    odd_only.mkdir(parents=True)
    for name in ODD_BUT_VALID:
        shutil.copy(target / name, odd_only / name)
    return root, good, odd_only.parent


def test_200_good_and_20_problem_files(zoo, softmax_model, tmp_path):
    root, good, odd = zoo
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "gtpred_core", "evaluate", "--model", str(softmax_model), "--images", str(root), "--out", str(tmp_path), "--class-order", "natural"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == set(SKIPPED)
    for name, words in SKIPPED.items():
        assert words in reasons[name], (name, reasons[name])
    import csv

    with open(tmp_path / "predictions.csv", newline="") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    assert len(rows) == 200 + len(ODD_BUT_VALID)
    # The 200 good files: each gets exactly the prediction Keras' own loader gives it.
    reference = keras_reference_predictions(softmax_model, good)
    names = [c for c in next(iter(rows.values())) if c.startswith("prob_")]
    for path, expected in reference.items():
        got = np.array([float(rows[path][c]) for c in names])
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=path)
    # The odd-but-valid files: evaluated as Keras' loader decodes them.
    odd_reference = keras_reference_predictions(softmax_model, odd)
    for path, expected in odd_reference.items():
        got = np.array([float(rows[path][c]) for c in names])
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=path)


def test_a_bomb_png_is_refused_within_2_s_without_growing_the_process(tmp_path, softmax_model):
    bomb = tmp_path / "Class_1" / "bomb.png"
    bomb.parent.mkdir()
    bomb.write_bytes(_png_declaring(30_000, 30_000))  # 900 megapixels declared, < 1 MB on disk
    assert bomb.stat().st_size < 1_000_000
    warm = tmp_path / "Class_1" / "warm.png"
    Image.new("RGB", (32, 32)).save(warm)
    script = textwrap.dedent(
        f"""
        import json, resource, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from gtpred_core import load_model, predict_files
        model = load_model({str(softmax_model)!r})
        predict_files(model, [{str(warm)!r}])  # import, trace and warm up first
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        raw = predict_files(model, [{str(bomb)!r}])
        seconds = time.perf_counter() - started
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(json.dumps({{"seconds": seconds, "grown_mb": grown_mb, "skipped": raw.skipped}}))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["seconds"] < 2.0 and facts["grown_mb"] < 200, facts
    assert "900,000,000 pixels" in facts["skipped"][0][1]
