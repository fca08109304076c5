"""Runs of any number of classes over real PNG files, without a model: ``assemble_run`` pairs
made-up predictions with real images, as a stored run of a 100-class model would look."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gtpred_core import Run, RunInfo, assemble_run

#: Class-name endings, one long (it must end in "…" on the matrix axes, never overlap).
WORDS = ("tench", "goldfish", "great_grey_owl_strix_nebulosa", "jay", "magpie", "bald_eagle", "hen")


def synthetic_run(root: Path, n_classes: int, per_class: int = 6, seconds: float = 2.1, seed: int = 0) -> Run:
    """``n_classes`` classes (``000_tench``, ``001_goldfish``, …) of ``per_class`` real 16x16
    PNGs each under ``root``; about 1 in 5 predicted wrong (as the next class), confident when
    right; evaluated in ``seconds``."""
    rng = np.random.default_rng(seed)
    names = tuple(f"{k:03d}_{WORDS[k % len(WORDS)]}" for k in range(n_classes))
    y_true = np.repeat(np.arange(n_classes), per_class)
    wrong = rng.random(len(y_true)) < 0.2
    y_pred = np.where(wrong, (y_true + 1) % n_classes, y_true)
    probabilities = rng.dirichlet(np.ones(n_classes), size=len(y_true))
    probabilities[np.arange(len(y_true)), y_pred] += np.where(wrong, 0.5, 8.0)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    paths = []
    for i, t in enumerate(y_true):
        rel = f"{names[t]}/img_{i:05d}.png"
        (root / names[t]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8), mode="L").save(root / rel)
        paths.append(rel)
    return assemble_run(
        class_names=names,
        paths=paths,
        y_true=y_true,
        y_pred=y_pred,
        probabilities=probabilities.astype(np.float32),
        info=RunInfo(model="model.keras", images=str(root), seconds=seconds, n_files=len(paths)),
    )
