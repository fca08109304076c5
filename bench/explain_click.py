"""One click's saliency: the time of one ``Explain`` (predicted and true class, both maps) in a
warm worker, for MobileNetV3Small at 224x224 (weights=None: no download; the time does not
depend on the weights).

    python bench/explain_click.py [--clicks 5]

The first explain of a model also traces and builds its two-output model; the figure that
matters is a warm worker's next clicks (the median is printed, with the load average: on a
shared machine other processes' load inflates it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from gtpred_core.worker import Explain, InferenceWorker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=5)
    args = parser.parse_args()
    import keras
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        model_path = Path(scratch) / "mobilenet_v3_small.keras"
        keras.applications.MobileNetV3Small(weights=None, input_shape=(224, 224, 3), classes=10).save(model_path)
        rng = np.random.default_rng(0)
        images = []
        for k in range(args.clicks + 1):
            images.append(Path(scratch) / f"img_{k}.jpg")
            Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(images[-1], quality=90)
        worker = InferenceWorker(memory_limit_mb=8192, time_limit_s=600)
        try:
            started = time.perf_counter()
            worker.describe(model_path)
            print(f"worker start + model load: {time.perf_counter() - started:.1f} s")

            def click(image: Path) -> float:
                started = time.perf_counter()
                reply = worker.explain(Explain(model_path, image, (3, 7), (224, 224), "none", "softmax"))
                assert reply.maps.shape == (2, 224, 224)
                return time.perf_counter() - started

            print(f"first explain (traces, builds the two-output model): {click(images[0]):.2f} s")
            times = [click(image) for image in images[1:]]
            print(f"warm explain, one click (both maps), round trip: median {statistics.median(times):.2f} s, "
                  f"min {min(times):.2f} s over {len(times)} clicks (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")
        finally:
            worker.stop()


if __name__ == "__main__":
    main()
