"""Scale benchmark (prints figures; not a test).

    python bench/scale.py [--sizes 1000 10000 100000] [--ray-size 10000] [--no-ray]

For each size, a folder of small 64x64 JPEGs (generated once under /tmp/gtpred-bench) is
evaluated with the local backend in a fresh process, streaming rows into a run store as the app
does: images/s, peak RSS, RSS after the model is loaded and warmed up, and the growth between
them next to the size of the probability matrix (N x classes x 4 bytes). Then, on one folder,
the local Ray backend with 2 workers against the local backend, side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("GTPRED_BENCH_DIR", "/tmp/gtpred-bench"))
N_CLASSES = 10


def make_folder(n: int) -> Path:
    """``n`` 64x64 JPEGs of scikit-learn digits (with noise) in 10 class folders; made once.

    Smaller folders are hard links to the first files of the 100,000 master, so making all
    sizes costs one encode per image.
    """
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from gtpred_core.demo import class_name_for_digit, digit_images

    master = CACHE / "scale-master"
    done = master.with_suffix(".complete")
    images, digits = digit_images()
    if not done.exists() or int(done.read_text()) < n:
        rng = np.random.default_rng(0)
        for i in range(n):
            k = i % len(images)
            path = master / class_name_for_digit(int(digits[k])) / f"img_{i:06d}.jpg"
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            big = np.kron(images[k], np.ones((2, 2), np.uint8)).astype(np.int16) + rng.integers(-20, 20, (64, 64))
            Image.fromarray(big.clip(0, 255).astype(np.uint8)).convert("RGB").save(path, quality=90)
        done.write_text(str(n))
    folder = CACHE / f"scale-{n}"
    if not folder.exists():
        for i in range(n):
            k = i % len(images)
            name = f"{class_name_for_digit(int(digits[k]))}/img_{i:06d}.jpg"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(master / name, folder / name)
    return folder


WORKER = r"""
import json, os, resource, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
folder, backend = sys.argv[2], sys.argv[3]
from gtpred_core import evaluate_folder, load_model
from gtpred_core.demo import DEMO_MODEL
from gtpred_core.store import RunStore

def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3

model = load_model(DEMO_MODEL)
warm = sorted(os.listdir(folder))[:1]
from gtpred_core.inference import predict_files
first = [os.path.join(folder, warm[0], f) for f in sorted(os.listdir(os.path.join(folder, warm[0])))[:64]]
predict_files(model, first, batch_size=64)  # trace and warm up outside the timing
if backend == "ray":
    from gtpred_core.ray_backend import ensure_ray
    ensure_ray(None, 2)
baseline = peak_rss_mb()  # peak so far: TensorFlow, the model, one warm batch
with tempfile.TemporaryDirectory() as tmp:
    store = RunStore(os.path.join(tmp, "runs.sqlite3"))
    sink = store.writer("bench")
    started = time.perf_counter()
    run = evaluate_folder(model, folder, batch_size=64, sink=sink, backend=backend)
    seconds = time.perf_counter() - started
    db_mb = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp)) / 1e6
peak = peak_rss_mb()
print(json.dumps({"n": run.n_images, "seconds": seconds, "baseline_mb": baseline, "peak_mb": peak,
                  "prob_mb": run.probabilities.nbytes / 1e6, "db_mb": db_mb}))
"""


def measure(folder: Path, backend: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", WORKER, str(ROOT), str(folder), backend], capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--ray-size", type=int, default=10_000)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; model: the demo digits CNN (32x32 input, 10 classes); images: 64x64 JPEG")
    started = time.perf_counter()
    folders = {n: make_folder(n) for n in sorted(set(args.sizes + ([] if args.no_ray else [args.ray_size])))}
    print(f"folders ready in {time.perf_counter() - started:.0f} s\n")
    print(f"{'backend':8} {'images':>8} {'img/s':>8} {'peak RSS':>9} {'after load':>10} {'growth':>8} {'probs':>8} {'store':>7}")
    print("(after load: peak RSS once TensorFlow, the model and one warm batch are in; growth: peak - that;")
    print(" probs: the N x classes float32 matrix; store: the run store file with its rows; ray: incl. actor start-up)")
    for n in args.sizes:
        r = measure(folders[n], "local")
        _row("local", r)
    if not args.no_ray:
        print(f"\nside by side on the same {args.ray_size:,}-image folder:")
        local = measure(folders[args.ray_size], "local")
        ray = measure(folders[args.ray_size], "ray")
        _row("local", local)
        _row("ray x2", ray)
        print(f"ray (2 workers) / local: {(ray['n'] / ray['seconds']) / (local['n'] / local['seconds']):.2f}x")


def _row(name: str, r: dict) -> None:
    print(
        f"{name:8} {r['n']:>8,} {r['n'] / r['seconds']:>8.0f} {r['peak_mb']:>7.0f}MB {r['baseline_mb']:>8.0f}MB "
        f"{r['peak_mb'] - r['baseline_mb']:>6.0f}MB {r['prob_mb']:>6.2f}MB {r['db_mb']:>5.1f}MB"
    )


if __name__ == "__main__":
    main()
