"""Isolated inference's cost: the worker process against in-process inference, side by side.

    python bench/worker_overhead.py [--repeats 5]

On the demo folder (797 images): a cold worker's first run (interpreter + TensorFlow import +
model load), then warm runs of each kind interleaved, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from gtpred_core import EvaluationRequest, evaluate_folder, load_model  # noqa: E402
from gtpred_core.demo import DEMO_MODEL, demo_folder  # noqa: E402
from gtpred_core.worker import InferenceWorker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = demo_folder()
    worker = InferenceWorker()
    request = EvaluationRequest(DEMO_MODEL, folder)
    started = time.perf_counter()
    worker.evaluate(request)
    cold = time.perf_counter() - started
    model = load_model(DEMO_MODEL)
    evaluate_folder(model, folder)  # warm the in-process path too
    local, isolated = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        evaluate_folder(model, folder)
        local.append(time.perf_counter() - started)
        started = time.perf_counter()
        worker.evaluate(request)
        isolated.append(time.perf_counter() - started)
    worker.stop()
    in_process, in_worker = statistics.median(local), statistics.median(isolated)
    print(f"demo folder, 797 images, median of {args.repeats} interleaved warm runs:")
    print(f"  in-process          {in_process:6.2f} s")
    print(f"  worker (warm)       {in_worker:6.2f} s   overhead {in_worker - in_process:+.2f} s ({in_worker / in_process:.2f}x)")
    print(f"  worker (cold start) {cold:6.2f} s   (new interpreter, TensorFlow import, model load, trace)")


if __name__ == "__main__":
    main()
