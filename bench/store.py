"""Store and reload a large run: seconds and file size (a benchmark that prints, not a test).

    python bench/store.py [--images 100000] [--classes 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gtpred_core import assemble_run  # noqa: E402
from gtpred_core.run import RunInfo  # noqa: E402
from gtpred_core.store import RunStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, c = args.images, args.classes
    probabilities = rng.dirichlet(np.full(c, 0.1), n).astype(np.float32)
    started = time.perf_counter()
    run = assemble_run(
        class_names=[f"class_{i:03d}" for i in range(c)],
        paths=[f"class_{i % c:03d}/img_{i:07d}.jpg" for i in range(n)],
        y_true=np.arange(n) % c,
        y_pred=probabilities.argmax(1),
        probabilities=probabilities,
        info=RunInfo(model="bench.keras", images="/data/bench"),
    )
    assemble_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs.sqlite3")
        started = time.perf_counter()
        run_id = store.save(run)
        save_s = time.perf_counter() - started
        store.close()
        started = time.perf_counter()
        again = RunStore(Path(tmp) / "runs.sqlite3").load(run_id)
        load_s = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        assert again.probabilities.tobytes() == run.probabilities.tobytes()
    print(f"run of {n:,} images x {c} classes (probabilities {probabilities.nbytes / 1e6:.0f} MB float32)")
    print(f"  build Run (metrics+checks) {assemble_s:6.2f} s")
    print(f"  store                      {save_s:6.2f} s")
    print(f"  reload (bit-exact)         {load_s:6.2f} s")
    print(f"  database size              {size / 1e6:6.1f} MB")


if __name__ == "__main__":
    main()
