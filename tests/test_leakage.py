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
