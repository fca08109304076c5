"""Ordered inference: one prediction per file, paired right, at every batch size; bad files skipped."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
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


# ----- files that hang or eat memory (issue 14) --------------------------------------------------
# A regression here hangs (a FIFO) or takes all memory (/dev/zero): each such check runs in a
# subprocess with a time limit and an address-space limit of its own, so it fails, not the suite.
ROOT = Path(__file__).resolve().parents[1]
GUARD_MB = 6144


def _limited(command: list[str], env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (GUARD_MB * 2**20, GUARD_MB * 2**20))

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, preexec_fn=cap)


def test_predict_files_skips_a_fifo_and_a_link_to_dev_zero_unread(softmax_model, digits_dir, tmp_path):
    good = sorted(str(p) for p in (digits_dir / "Class_3").iterdir())[:3]
    os.mkfifo(tmp_path / "x.png")
    os.symlink("/dev/zero", tmp_path / "z.png")
    paths = [good[0], str(tmp_path / "x.png"), good[1], str(tmp_path / "z.png"), good[2]]
    code = (
        "from gtpred_core import load_model, predict_files\n"
        f"raw = predict_files(load_model({str(softmax_model)!r}), {paths!r}, batch_size=2)\n"
        "print('evaluated', *raw.indices.tolist())\n"
        "for i, reason in raw.skipped: print('skipped', i, reason)\n"
    )
    result = _limited([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "evaluated 0 2 4" in lines
    assert "skipped 1 a named pipe (FIFO), not a regular file (not read)" in lines
    assert "skipped 3 a device, not a regular file (not read)" in lines


def test_a_file_over_the_per_image_cap_is_skipped_unread(softmax_model, digits_dir, tmp_path, monkeypatch):
    source = sorted((digits_dir / "Class_3").iterdir())[0]
    big = tmp_path / "big.png"
    big.write_bytes(source.read_bytes() + b"\0" * (2 * 2**20))  # decodes fine: PNG ends at IEND
    model = load_model(softmax_model)
    assert predict_files(model, [str(big)]).skipped == ()  # the default cap (256 MB) takes it
    monkeypatch.setenv("GTPRED_MAX_IMAGE_MB", "1")
    raw = predict_files(model, [str(source), str(big)])
    assert raw.indices.tolist() == [0]
    assert raw.skipped == ((1, "2 MB, over the per-image limit of 1 MB (GTPRED_MAX_IMAGE_MB; not read)"),)


def test_cli_evaluates_a_folder_holding_a_fifo_and_a_dev_zero_link(softmax_model, digits_dir, tmp_path):
    root = tmp_path / "val"
    shutil.copytree(digits_dir, root)
    os.mkfifo(root / "Class_3" / "x.png")
    os.symlink("/dev/zero", root / "Class_3" / "z.png")
    os.symlink(tmp_path / "secret", root / "Class_4" / "secret.png")
    command = [sys.executable, "-m", "gtpred_core", "evaluate", "--model", str(softmax_model), "--images", str(root), "--out", str(tmp_path / "out")]
    result = _limited(command)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "300 images evaluated" in result.stdout
    assert "a named pipe (FIFO), not a regular file (not read): 1 (first: Class_3/x.png)" in result.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {"Class_3/x.png", "Class_3/z.png", "Class_4/secret.png"} <= set(summary["ignored"])


@pytest.mark.parametrize(
    ("env", "expected_mb"),
    [({"GTPRED_CLI_MEMORY_MB": "3000"}, 3000), ({"GTPRED_WORKER_MEMORY_MB": "5000"}, 5000), ({}, 8192), ({"GTPRED_CLI_MEMORY_MB": "0"}, None)],
)
def test_the_cli_runs_under_its_memory_cap(tmp_path, env, expected_mb):
    code = (
        "import resource\n"
        "from gtpred_core.cli import main\n"
        f"code = main(['runs', '--db', {str(tmp_path / 'runs.sqlite3')!r}, 'list'])\n"
        "print('exit', code, 'limit', resource.getrlimit(resource.RLIMIT_AS)[0])\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("GTPRED_CLI_MEMORY_MB", "GTPRED_WORKER_MEMORY_MB")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120)
    expected = resource.RLIM_INFINITY if expected_mb is None else expected_mb * 2**20
    assert f"exit 0 limit {expected}" in result.stdout, result.stderr


def test_a_file_that_is_not_an_image_gets_the_decoders_sentence_without_tensorflow_plumbing(tmp_path):
    from gtpred_core.inference import describe_failure

    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all\n")
    reason = describe_failure(str(fake), 3)
    assert reason.startswith("cannot be decoded as an image: ") and "Unknown image file format" in reason
    assert "function_node" not in reason and "[Op:" not in reason and "device:CPU" not in reason
