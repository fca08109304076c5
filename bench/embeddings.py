"""The embedding map's cost beyond inference, and how well it keeps neighbours.

    python bench/embeddings.py [--images 10000]

A folder of N digit images (the 1,797 scikit-learn digits, repeated with a little pixel noise so
no two files are equal) evaluated by the demo CNN twice, in one process, plain and with
``embeddings=True``; the difference is what the map costs (features kept from the same pass,
PCA, t-SNE on at most 5,000 points, the rest placed by neighbours). Wall and CPU seconds are both
printed: on a shared machine the wall figure is inflated by the other processes' load.
Then the issue's yardstick on the map: a 5-NN classifier of the true class (leave-one-out), on
PCA's 2-D projection of the same features and on the map.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from gtpred_core import evaluate_folder, load_model, predict_files  # noqa: E402
from gtpred_core.demo import DEMO_MODEL, digit_images, write_digits_folder  # noqa: E402
from gtpred_core.embeddings import embedding_map, neighbour_agreement  # noqa: E402
from gtpred_core.folder import index_image_folder  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, call):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = call()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    print(f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    return result, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    images, labels = digit_images()
    rng = np.random.default_rng(0)
    picks = np.arange(args.images) % len(images)
    noisy = np.clip(images[picks].astype(np.int16) + rng.integers(-8, 9, size=images[picks].shape), 0, 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_digits_folder(Path(scratch) / "val", noisy, labels[picks])
        print(f"{args.images} images, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        evaluate_folder(DEMO_MODEL, folder, class_order="natural")  # warm: TF, tracing, file cache
        plain, wall_plain, cpu_plain = timed("evaluate", lambda: evaluate_folder(DEMO_MODEL, folder, class_order="natural"))
        mapped, wall_map, cpu_map = timed(
            "evaluate --embeddings", lambda: evaluate_folder(DEMO_MODEL, folder, class_order="natural", embeddings=True)
        )
        print(f"the map's cost beyond inference: {wall_map - wall_plain:.1f} s wall, {cpu_map - cpu_plain:.1f} s CPU "
              f"(load average now {os.getloadavg()[0]:.1f})")
        from sklearn.decomposition import PCA

        raw = predict_files(load_model(DEMO_MODEL), index_image_folder(folder).absolute_paths(), with_features=True)
        y = mapped.y_true
        print(f"5-NN of the true class: PCA {neighbour_agreement(PCA(2).fit_transform(raw.features), y):.2f}, "
              f"{mapped.embedding_method} {neighbour_agreement(mapped.embedding, y):.2f}")
        # each digit once (file img_<n> holds digit n modulo 1,797): noisy copies of a digit are
        # each other's nearest neighbours and would flatter both maps
        number = np.array([int(Path(p).stem.split("_")[1]) for p in mapped.paths])
        once = np.flatnonzero(number < len(images))
        points = embedding_map(raw.features[once])
        print(f"on the {len(once)} distinct digits alone: PCA "
              f"{neighbour_agreement(PCA(2).fit_transform(raw.features[once]), y[once]):.2f}, t-SNE "
              f"{neighbour_agreement(points, y[once]):.2f}")


if __name__ == "__main__":
    main()
