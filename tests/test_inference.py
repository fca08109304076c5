"""Ordered inference: one prediction per file, paired right, at every batch size; bad files skipped."""

from __future__ import annotations

import io
import shutil
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gtpred_core import MAX_IMAGE_PIXELS, evaluate_folder, index_image_folder, load_model, predict_files
from tests.conftest import keras_reference_predictions


def test_each_file_gets_the_prediction_the_model_gives_it_alone(softmax_model, digits_dir):
    reference = keras_reference_predictions(softmax_model, digits_dir)
    run = evaluate_folder(softmax_model, digits_dir, class_order="natural", batch_size=32)
    assert list(run.paths) == list(reference)  # same files, same order as Keras' loader
    for i, path in enumerate(run.paths):
        np.testing.assert_allclose(run.probabilities[i], reference[path], atol=1e-5, err_msg=path)


@pytest.mark.parametrize("batch_size", [1, 7, 32, 64, 299, 300, 301, 1000])
def test_no_file_dropped_or_doubled_at_any_batch_size(softmax_model, digits_dir, batch_size):
    folder = index_image_folder(digits_dir)
    model = load_model(softmax_model)
    raw = predict_files(model, folder.absolute_paths(), batch_size=batch_size)
    assert raw.completed and raw.skipped == ()
    assert raw.indices.tolist() == list(range(len(folder.files)))  # each index once, in order
    baseline = predict_files(model, folder.absolute_paths(), batch_size=50)
    np.testing.assert_allclose(raw.outputs, baseline.outputs, atol=1e-5)


def test_progress_is_reported_in_order_up_to_the_total(softmax_model, digits_dir):
    calls: list[tuple[int, int]] = []
    evaluate_folder(softmax_model, digits_dir, batch_size=64, progress=lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 300
    assert {t for _, t in calls} == {300}
    assert len(calls) == 5  # ceil(300 / 64) batches


def test_cancel_keeps_the_part_done_and_marks_the_run_cancelled(softmax_model, digits_dir):
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 64:
            cancel.set()

    run = evaluate_folder(softmax_model, digits_dir, batch_size=32, progress=progress, cancel=cancel)
    assert run.info.status == "cancelled"
    assert 64 <= run.n_images < 300
    folder = index_image_folder(digits_dir)
    assert list(run.paths) == list(folder.files[: run.n_images])  # the done part is a prefix
    assert "cancelled" in run.warning_codes()


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


@pytest.fixture()
def messy_dir(tmp_path, digits_dir) -> Path:
    """Good digits plus every kind of bad file a real folder holds."""
    root = tmp_path / "messy"
    shutil.copytree(digits_dir, root)
    good = Image.open(root / "Class_3" / sorted(p.name for p in (root / "Class_3").iterdir())[0])
    jpeg = io.BytesIO()
    good.convert("RGB").save(jpeg, "JPEG")
    bad = root / "Class_3"
    (bad / "zz_empty.png").write_bytes(b"")
    (bad / "zz_truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (bad / "zz_text.jpg").write_text("this is not an image\n")
    (bad / "zz_random.PNG").write_bytes(np.random.default_rng(0).bytes(500))
    (bad / "zz_bomb.png").write_bytes(_png_declaring(30_000, 30_000))
    (bad / "notes.txt").write_text("not an image")
    (bad / ".hidden.png").write_bytes(b"")
    (root / ".git").mkdir()
    (root / ".git" / "x.png").write_bytes(b"")
    (root / "__MACOSX").mkdir()
    (root / "README.md").write_text("root file")
    # Files that are fine and must be evaluated: other formats and colour modes.
    good.convert("RGBA").save(bad / "zz_ok_rgba.png")
    good.convert("P").save(bad / "zz_ok_palette.gif")
    good.convert("RGB").save(bad / "zz_ok.BMP")
    frames = [good.convert("P"), good.rotate(90).convert("P")]
    frames[0].save(bad / "zz_ok_animated.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(np.asarray(good, dtype=np.uint16) * 257).save(bad / "zz_ok_16bit.png")
    good.resize((1, 1)).save(bad / "zz_ok_1x1.png")
    return root


def test_bad_files_are_skipped_with_reasons_and_the_run_goes_on(softmax_model, messy_dir):
    run = evaluate_folder(softmax_model, messy_dir, class_order="natural", batch_size=16)
    reasons = {s.path: s.reason for s in run.skipped}
    assert set(reasons) == {
        "Class_3/zz_empty.png",
        "Class_3/zz_truncated.jpg",
        "Class_3/zz_text.jpg",
        "Class_3/zz_random.PNG",
        "Class_3/zz_bomb.png",
    }
    assert reasons["Class_3/zz_empty.png"] == "empty file (0 bytes)"
    assert "900,000,000 pixels" in reasons["Class_3/zz_bomb.png"] and f"{MAX_IMAGE_PIXELS:,}" in reasons["Class_3/zz_bomb.png"]
    assert "cannot be decoded" in reasons["Class_3/zz_text.jpg"]
    assert run.n_images == 300 + 6  # every good digit plus the six odd-but-valid images
    odd_but_valid = ["zz_ok.BMP", "zz_ok_16bit.png", "zz_ok_1x1.png", "zz_ok_animated.gif", "zz_ok_palette.gif", "zz_ok_rgba.png"]
    assert [p for p in run.paths if p.startswith("Class_3/zz_")] == [f"Class_3/{n}" for n in odd_but_valid]
    assert set(run.ignored) == {"README.md", "Class_3/notes.txt", "Class_3/.hidden.png"}
    assert not any(p.startswith((".git", "__MACOSX")) for p in run.paths + run.ignored)
    assert {"skipped-files", "ignored-files"} <= set(run.warning_codes())
    # The good digits keep their right predictions: nothing shifted by the skipped files.
    assert run.metrics.accuracy > 0.8


def test_a_bomb_header_is_refused_without_decoding(softmax_model, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bomb.png").write_bytes(_png_declaring(30_000, 30_000))
    model = load_model(softmax_model)
    raw = predict_files(model, [str(tmp_path / "a" / "bomb.png")])
    assert raw.skipped and "safety limit" in raw.skipped[0][1]


def _declaring(kind: str, width: int, height: int) -> bytes:
    """A small real image whose header is patched to declare width x height pixels."""
    if kind == "png":
        return _png_declaring(width, height)
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, {"jpg": "JPEG", "gif": "GIF"}.get(kind, "BMP"))
    data = bytearray(out.getvalue())
    if kind == "jpg":
        sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
        data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    elif kind == "gif":
        data[6:10] = struct.pack("<HH", width, height)  # logical screen size
    else:  # bmp, "bmp-top-down": a negative height means rows stored top to bottom
        data[18:26] = struct.pack("<ii", width, -height if kind == "bmp-top-down" else height)
    return bytes(data)


@pytest.mark.parametrize("kind", ["jpg", "png", "gif", "bmp", "bmp-top-down"])
def test_every_format_declaring_too_many_pixels_is_skipped_with_its_count(softmax_model, tmp_path, kind):
    (tmp_path / "a").mkdir()
    suffix = kind.split("-")[0]
    bomb = tmp_path / "a" / f"bomb.{suffix}"
    bomb.write_bytes(_declaring(kind, 10_000, 9_000))  # 90,000,000: just over Pillow's limit
    good = tmp_path / "a" / f"good.{suffix}"
    Image.new("RGB", (40, 30), (10, 200, 10)).save(good)
    raw = predict_files(load_model(softmax_model), [str(good), str(bomb)])
    assert raw.indices.tolist() == [0]  # the real image is evaluated, the bomb is not
    assert len(raw.skipped) == 1 and raw.skipped[0][0] == 1
    assert "declares 90,000,000 pixels" in raw.skipped[0][1]


def test_grayscale_model_gets_single_channel_images(gray_model, digits_dir):
    reference = keras_reference_predictions(gray_model, digits_dir, channels=1)
    run = evaluate_folder(gray_model, digits_dir, class_order="natural")
    assert run.info.channels == 1
    for i in (0, 150, 299):
        np.testing.assert_allclose(run.probabilities[i], reference[run.paths[i]], atol=1e-5)
