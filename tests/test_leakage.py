"""Leakage: exact copies and re-encoded near copies of evaluation images in the training folder."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from gtpred_core.demo import digit_images
from gtpred_core.leakage import difference_hash, find_leakage, image_files


def scenes(root, n: int, seed: int):
    """``n`` distinct photo-like images (smooth random colour fields) in two class folders."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        coarse = rng.uniform(0, 255, size=(6, 6, 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((64, 64), Image.Resampling.BICUBIC)
        folder = root / ("a" if k % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{seed}_{k:03d}.png")
    return root


def test_exact_and_near_copies_are_found_and_nothing_else(tmp_path):
    val = scenes(tmp_path / "val", 100, seed=1)
    train = scenes(tmp_path / "train", 300, seed=2)
    val_files = image_files(val)
    exact, near = val_files[3], val_files[50]
    shutil.copy(val / exact, train / "leaked_exact.png")
    with Image.open(val / near) as image:  # re-encoded as JPEG and slightly brightened
        np_image = np.clip(np.asarray(image, dtype=np.int16) + 6, 0, 255).astype(np.uint8)
        Image.fromarray(np_image).resize((96, 96)).save(train / "leaked_near.jpg", quality=90)

    pairs = find_leakage(val, val_files, train)
    found = {(p.path, p.train_path, p.kind) for p in pairs}
    assert (exact, "leaked_exact.png", "exact") in found
    assert (near, "leaked_near.jpg", "near") in found
    assert pairs[0].kind == "exact" and pairs[0].similarity == 1.0
    assert len(pairs) == 2  # 400 distinct images: no false alarm


def test_a_hash_ignores_size_and_encoding_but_not_content(tmp_path):
    images, _ = digit_images()
    Image.fromarray(images[0]).save(tmp_path / "a.png")
    Image.fromarray(images[0]).resize((64, 64)).save(tmp_path / "b.jpg", quality=85)
    Image.fromarray(np.rot90(images[0])).save(tmp_path / "c.png")
    a, b, c = (difference_hash(tmp_path / n) for n in ("a.png", "b.jpg", "c.png"))
    assert bin(a ^ b).count("1") <= 6 < bin(a ^ c).count("1")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert difference_hash(tmp_path / "broken.png") is None


def test_evaluate_with_train_images_lists_the_leaked_pairs_in_summary_json_and_the_store(softmax_model, digits_dir, tmp_path):
    """The CLI wiring: --train-images puts the pairs (both paths, kind, similarity) in
    summary.json, keeps them with the stored run, and runs export writes them again."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def gtpred(*args):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        return subprocess.run([sys.executable, "-m", "gtpred_core", *map(str, args)], cwd=root, env=env, capture_output=True, text=True, timeout=300)

    train = scenes(tmp_path / "train", 40, seed=5)
    evaluated = image_files(digits_dir)
    shutil.copy(digits_dir / evaluated[7], train / "a" / "copied.png")
    db = tmp_path / "runs.db"
    result = gtpred("evaluate", "--model", softmax_model, "--images", digits_dir, "--out", tmp_path / "out", "--train-images", train, "--save", "--db", db)
    assert result.returncode == 0, result.stderr
    assert "look like the same picture (1 exact copies)" in result.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["leakage"][0] == {"path": evaluated[7], "train_path": "a/copied.png", "kind": "exact", "similarity": 1.0}
    # 8x8 digits are coarse: other ones of the same class hash alike, as near copies of it only
    assert {p["train_path"] for p in summary["leakage"]} == {"a/copied.png"}
    assert all(p["kind"] == "near" and p["similarity"] >= 1 - 6 / 64 for p in summary["leakage"][1:])
    assert summary["run"]["train_images"] == str(train.resolve())
    assert gtpred("runs", "--db", db, "export", "1", "--out", tmp_path / "again").returncode == 0
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["leakage"] == summary["leakage"]
    plain = gtpred("evaluate", "--model", softmax_model, "--images", digits_dir, "--out", tmp_path / "plain")
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["leakage"] is None  # not searched


def test_a_missing_training_folder_is_refused_before_anything_runs(softmax_model, digits_dir, tmp_path):
    import pytest

    from gtpred_core import evaluate_folder
    from gtpred_core.errors import FolderError

    with pytest.raises(FolderError, match="The training folder nowhere .* does not exist. Give the folder the model was trained on"):
        evaluate_folder(softmax_model, digits_dir, train_images=tmp_path / "nowhere")
