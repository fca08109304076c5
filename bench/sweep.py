"""Many models on one folder, and recorded epochs: what decoding once saves.

Run ``python bench/sweep.py`` (about 4 minutes on 2 quiet cores) or ``--quick`` (a smoke run).
Not a test: it prints a table, the ratios side by side, and PASS/MISS for issue 17's targets:

* five checkpoints evaluated together <= 1.6x one evaluation (decode-bound: the digits CNN
  resizing 4,000 224x224 JPEGs to 32x32, the folder ``bench/throughput.py`` writes);
* a recorded epoch after the first costs about what predicting the images from memory costs.

Rows (all in ONE process, every method warmed up first, then ``--repeats`` rounds with the order
rotated each round, so a busy phase of a shared machine hits all rows alike; medians; the two
from-file rows have their own rounds, after the others, so their fresh models do not push the
loaded ones' traced forward passes out of gtpred's cache):

* ``one``: ``evaluate_folder`` of one loaded checkpoint (one evaluation, as the app runs it);
* ``together``: ``evaluate_models`` of the five loaded checkpoints (one pass: each batch decoded
  once and run through all five in one compiled call);
* ``one after another``: five ``evaluate_folder`` calls, each decoding (what it cost before);
* ``after another, replayed``: the five one after another inside ``decoding_once`` (the first
  decodes and keeps, the next four replay): the other way to decode once, measured to choose;
* ``checkpoints from files``: ``evaluate_checkpoints`` as the CLI runs it, loading the five
  ``.keras`` files (loading and tracing each model included; decoding starts after the first
  loads), against ``one from file``;
* ``epoch: decoded`` / ``epoch: replayed``: one recorded epoch of ``PredictionRecorder`` on the
  folder before (decoding every epoch) and now (replaying the kept batches), against
  ``predict from memory``: a compiled forward loop over the decoded batches held in memory.

The five checkpoints are gtpred's digits CNN with seeded noise added to its weights (written once
into ``--cache-dir``): same architecture and cost as five epochs of one training.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from throughput import BATCH_SIZE, ensure_folder, list_images, rate, timed  # noqa: E402

N_CHECKPOINTS = 5
ROWS = {
    "one": "one: evaluate_folder, 1 loaded checkpoint",
    "together": "together: evaluate_models, 5 loaded",
    "after-another": "one after another: 5 x evaluate_folder",
    "replayed": "after another, replayed (decoding_once)",
    "one-file": "one from file: evaluate_folder(path)",
    "checkpoints": "checkpoints from files: evaluate_checkpoints",
    "epoch-decoded": "epoch: decoded each time (before)",
    "epoch-replayed": "epoch: replayed from memory (now)",
    "from-memory": "predict from memory (compiled loop)",
}


def ensure_checkpoints(cache: Path) -> list[Path]:
    """Five copies of the digits CNN, each with its own seeded noise on the weights."""
    from gtpred_core.demo import DEMO_MODEL

    folder = cache / "digits-checkpoints"
    paths = [folder / f"ckpt_{k}.keras" for k in range(1, N_CHECKPOINTS + 1)]
    if all(p.exists() for p in paths):
        return paths
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    model = keras.saving.load_model(DEMO_MODEL, compile=False)
    original = model.get_weights()
    for k, path in enumerate(paths, start=1):
        rng = np.random.default_rng(k)
        model.set_weights([w + 0.02 * k * rng.standard_normal(w.shape).astype(w.dtype) for w in original])
        model.save(path)
    return paths


def setups(folder: Path, warm: Path, checkpoints: list[Path]) -> dict[str, Callable[[], int]]:
    """Each row's timed pass (returning how many images it predicted), set up and warmed up."""
    from gtpred_core import evaluate_folder, index_image_folder, load_model
    from gtpred_core.inference import DecodeCache, build_dataset, decoding_once, make_forward
    from gtpred_core.sweep import evaluate_models
    from gtpred_core.training import evaluate_checkpoints

    models = [load_model(p) for p in checkpoints]
    kept = DecodeCache()  # the recorder's: filled once here, replayed by every timed epoch

    def one(images: Path) -> int:
        return evaluate_folder(models[0], images, batch_size=BATCH_SIZE).n_images

    def after_another(images: Path) -> int:
        return sum(evaluate_folder(m, images, batch_size=BATCH_SIZE).n_images for m in models)

    def replayed(images: Path) -> int:
        with decoding_once():
            return after_another(images)

    def epoch_replayed(images: Path) -> int:  # as PredictionRecorder does (the folder indexed once)
        with decoding_once(kept):
            return one(images)

    rows: dict[str, Callable[[Path], int]] = {
        "one": one,
        "together": lambda images: sum(r.n_images for r in evaluate_models(models, images, batch_size=BATCH_SIZE)),
        "after-another": after_another,
        "replayed": replayed,
        "one-file": lambda images: evaluate_folder(checkpoints[0], images, batch_size=BATCH_SIZE).n_images,
        "checkpoints": lambda images: sum(r.n_images for r in evaluate_checkpoints(checkpoints, images, batch_size=BATCH_SIZE)[1]),
        "epoch-decoded": one,
        "epoch-replayed": epoch_replayed,
    }
    # warm-up on the small folder (traces, kernels, first calls), the from-file rows first so the
    # loaded checkpoints' traced forward passes are the most recently used in gtpred's cache
    for name in sorted(rows, key=lambda name: name not in ("one-file", "checkpoints")):
        rows[name](warm)
    indexed = index_image_folder(folder)
    epoch_replayed(indexed)  # type: ignore[arg-type]  # the first recorded epoch: decodes and keeps
    size = (int(models[0].input_size[0]), int(models[0].input_size[1]))
    in_memory = [images for _, images, _ in build_dataset(indexed.absolute_paths(), size, models[0].channels, BATCH_SIZE)]
    forward = make_forward(models[0], size, "none")
    runs: dict[str, Callable[[], int]] = {name: (lambda row=row: row(folder)) for name, row in rows.items()}
    runs["epoch-decoded"] = lambda: one(indexed)  # type: ignore[arg-type]
    runs["epoch-replayed"] = lambda: epoch_replayed(indexed)  # type: ignore[arg-type]
    runs["from-memory"] = lambda: sum(int(np.asarray(forward(images)).shape[0]) for images in in_memory)
    runs["from-memory"]()
    print(f"set up: {len(indexed.files)} images, {len(models)} checkpoints; the recorder's cache holds "
          f"{kept.images_held} images in {kept.bytes_held / 2**20:.0f} MB", file=sys.stderr)  # fmt: skip
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4000, help="JPEGs in the folder (default 4000)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved passes per row (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 400 images, one pass each")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("GTPRED_BENCH_DIR", "/tmp/gtpred-bench")))
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats = 400, 1
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    folder, warm = ensure_folder(args.cache_dir, args.images)
    checkpoints = ensure_checkpoints(args.cache_dir)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; folder {folder}")
    started = time.perf_counter()
    runs = {name: run for name, run in setups(folder, warm, checkpoints).items() if name in args.rows}
    passes: dict[str, list[dict]] = {name: [] for name in runs}
    # Rows loading models from files make new models, whose traced forward passes would push the
    # loaded checkpoints' out of gtpred's cache (8 entries) and make those rows trace again: the
    # from-file rows get their own interleaved rounds, after the others.
    from_files = {"one-file", "checkpoints"}
    for group in ([n for n in runs if n not in from_files], [n for n in runs if n in from_files]):
        for round_ in range(args.repeats if group else 0):
            shift = round_ % len(group)
            for name in group[shift:] + group[:shift]:
                passes[name].append(timed(runs[name]))
                r = passes[name][-1]
                print(f"  round {round_ + 1} {name:<16} {r['seconds']:>6.2f} s", file=sys.stderr, flush=True)
    seconds = {name: statistics.median(r["seconds"] for r in p) for name, p in passes.items()}
    print(f"\n== {args.images} JPEGs 224x224 -> digits CNN 32x32, batch {BATCH_SIZE}; median of {args.repeats} "
          f"interleaved pass(es) per row ==")  # fmt: skip
    print(f"{'row':<46} {'seconds':>8} {'images/s':>9} {'CPU ms/img':>10}  {'x one':>6}  passes (s)")
    for name, p in passes.items():
        cpu = statistics.median(1000 * r["cpu_seconds"] / r["images"] for r in p)
        base = seconds["one-file"] if name == "checkpoints" and "one-file" in seconds else seconds.get("one", float("nan"))
        each = " ".join(f"{r['seconds']:.2f}" for r in p)
        print(f"{ROWS[name]:<46} {seconds[name]:>8.2f} {statistics.median(rate(r) for r in p):>9.0f} {cpu:>10.3f}  "
              f"{seconds[name] / base:>5.2f}x  {each}")  # fmt: skip
    checks = []
    if {"together", "one"} <= set(seconds):
        checks.append(("5 checkpoints together <= 1.6x one evaluation", seconds["together"] / seconds["one"], 1.6))
    for name, text in (("after-another", "one after another (before)"), ("replayed", "after another, replayed"),
                       ("checkpoints", "evaluate_checkpoints from files, x one from file")):  # fmt: skip
        if name in seconds and ("one" in seconds or name == "checkpoints"):
            base = seconds["one-file"] if name == "checkpoints" else seconds["one"]
            print(f"info  {text}: {seconds[name] / base:.2f}x")
    if {"epoch-replayed", "epoch-decoded", "from-memory"} <= set(seconds):
        print(f"info  a recorded epoch: {seconds['epoch-decoded']:.2f} s decoded (before), "
              f"{seconds['epoch-replayed']:.2f} s replayed (now); predicting from memory {seconds['from-memory']:.2f} s "
              f"(replayed / from memory: {seconds['epoch-replayed'] / seconds['from-memory']:.2f}x; "
              f"before / now: {seconds['epoch-decoded'] / seconds['epoch-replayed']:.1f}x)")  # fmt: skip
    for text, ratio, target in checks:
        print(f"{'PASS' if ratio <= target else 'MISS'}  {text}: {ratio:.2f}x")
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s, load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
