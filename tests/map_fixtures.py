"""Small real runs for the embedding map, leakage and compare tests: 30 real PNG files in three
class folders, hand-set probabilities with planted confident mistakes, a hand-placed 2-D map
(class k around x = 10k, image i at y = i), and a training folder holding one exact copy and one
re-encoded copy of evaluated images. No model: the numbers under test are the ones set here."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from gtpred_core import Run, assemble_run
from gtpred_core.leakage import find_leakage
from gtpred_core.run import RunInfo

CLASSES = ("cat", "dog", "fox")
PER_CLASS = 10


def write_images(root: Path) -> list[str]:
    """30 distinct noise PNGs, ``<class>/img_<i>.png``; their relative paths in file order."""
    rng = np.random.default_rng(7)
    paths = []
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            rel = f"{name}/img_{i}.png"
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / rel)
            paths.append(rel)
    return paths


def write_train_folder(images: Path, train: Path) -> None:
    """A training folder with ``cat/img_0.png`` copied byte for byte, ``dog/img_3.png`` brightened
    by 1 and saved again (other bytes, same picture), and one unrelated image."""
    (train / "cat").mkdir(parents=True)
    (train / "dog").mkdir(parents=True)
    shutil.copy(images / "cat/img_0.png", train / "cat/copy.png")
    pixels = np.asarray(Image.open(images / "dog/img_3.png"), dtype=np.int16)
    Image.fromarray(np.clip(pixels + 1, 0, 255).astype(np.uint8)).save(train / "dog/resaved.png")
    Image.fromarray(np.random.default_rng(99).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(train / "dog/other.png")


def make_run(
    images: Path,
    paths: list[str],
    *,
    sure: float = 0.9,
    wrong: dict[str, int] | None = None,
    embedding: bool = True,
    method: str | None = "t-SNE of penultimate features",
    train: Path | None = None,
) -> Run:
    """Each image right with probability ``sure`` (the rest shared), except ``wrong``: file ->
    the class it is predicted as, with 0.95."""
    y_true = np.repeat(np.arange(len(CLASSES)), PER_CLASS)
    probabilities = np.full((len(paths), len(CLASSES)), (1 - sure) / 2, dtype=np.float32)
    probabilities[np.arange(len(paths)), y_true] = sure
    for rel, k in (wrong or {}).items():
        i = paths.index(rel)
        probabilities[i] = 0.025
        probabilities[i, k] = 0.95
    points = np.array([(10.0 * y_true[i] + 0.1 * (i % PER_CLASS), float(i % PER_CLASS)) for i in range(len(paths))])
    return assemble_run(
        class_names=CLASSES,
        paths=paths,
        y_true=y_true,
        y_pred=probabilities.argmax(axis=1),
        probabilities=probabilities,
        info=RunInfo(images=str(images), train_images=str(train) if train else None),
        embedding=points if embedding else None,
        embedding_method=method if embedding else None,
        leakage=find_leakage(images, paths, train) if train else None,
    )


#: The planted mistakes of runs A and B: ``cat/img_1.png`` is wrong in both.
WRONG_A = {"cat/img_1.png": 1, "fox/img_2.png": 0}
WRONG_B = {"cat/img_1.png": 1, "dog/img_5.png": 2}
