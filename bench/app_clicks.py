"""Server-side time of the app's clicks on a run with 10,000 mistakes (a figure, not a test).

Builds a synthetic Run with ``assemble_run`` over real PNG files (12,000 images, 10 classes,
10,000 of them predicted wrong), stores it in a run store as the app does, and times Streamlit's own
script runs (``AppTest``) for: opening Mispredictions, clicking a row (the detail view with
its image and top-5 chart), turning a page (25 new thumbnails), filtering, and a click on the
Results page's confusion matrix.

    python bench/app_clicks.py [--images 12000] [--wrong 10000] [--repeat 15]

At scale (issue 17: 1,000 classes, 100,000 images), ``--core-only`` times what the pages will
call, without writing image files or starting Streamlit: the confusion counts, the top
confusions, a matrix over 20 chosen classes, the long-form cells the Results page draws today,
and the run store's save, file size and load:

    python bench/app_clicks.py --classes 1000 --images 100000 --wrong 30000 --core-only

``--results-only`` times the Results page's clicks on such a run with ``AppTest``: opening it, a
top-confusion row, a class chosen in the picker, a cell of the chosen classes' matrix and a
misprediction (an image of that cell). Only the mistakes' image files are written (those are the
ones these clicks show). The run is handed to the session as a run the store could not save
(``--store`` saves it and opens it by ``?run=`` instead, which adds the store's save and load,
minutes at this size, and nothing per click: the loaded run is cached per server):

    python bench/app_clicks.py --classes 1000 --images 100000 --wrong 30000 --results-only
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gtpred_core import RunInfo, assemble_run  # noqa: E402


def synthetic_run(root: Path, n_images: int, n_wrong: int, n_classes: int = 10, seed: int = 0, write_files: bool | str = True):
    """``n_images`` real 32x32 PNGs in class folders (unless ``write_files`` is False: paths
    only; ``"wrong"``: the mistakes' files only); ``n_wrong`` of them, picked at random, predicted wrong."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    width = len(str(n_classes - 1))
    names = tuple(f"class_{k:0{max(2, width)}d}" for k in range(n_classes))
    y_true = np.arange(n_images) % n_classes
    y_pred = y_true.copy()
    wrong = rng.permutation(n_images)[:n_wrong]
    y_pred[wrong] = (y_true[wrong] + rng.integers(1, n_classes, size=n_wrong)) % n_classes
    probabilities = rng.normal(size=(n_images, n_classes)).astype(np.float32)  # logits, then softmax in place
    probabilities[np.arange(n_images), y_pred] += rng.uniform(0.5, 6.0, size=n_images).astype(np.float32)
    probabilities -= probabilities.max(axis=1, keepdims=True)
    np.exp(probabilities, out=probabilities)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    paths = []
    if write_files:
        for k in range(n_classes):
            (root / names[k]).mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        rel = f"{names[y_true[i]]}/img_{i:06d}.png"
        if write_files is True or (write_files == "wrong" and y_pred[i] != y_true[i]):
            Image.fromarray(rng.integers(0, 255, size=(32, 32), dtype=np.uint8), mode="L").save(root / rel)
        paths.append(rel)
    info = RunInfo(model="synthetic.keras", images=str(root), folder_classes=names, class_counts=tuple(int(c) for c in np.bincount(y_true, minlength=n_classes)))
    return assemble_run(class_names=names, paths=paths, y_true=y_true, y_pred=y_pred, probabilities=probabilities, info=info)


def timed(action, repeat: int) -> list[float]:
    seconds = []
    for i in range(repeat):
        started = time.perf_counter()
        action(i)
        seconds.append(time.perf_counter() - started)
    return seconds


def report(name: str, seconds: list[float]) -> None:
    print(f"{name:<44} median {statistics.median(seconds) * 1000:7.1f} ms   max {max(seconds) * 1000:7.1f} ms   (n={len(seconds)})")


def core_queries(run, repeat: int, tmp: Path) -> None:
    """What the pages call on a large run, and the run store's size and load time."""
    from gtpred_core import RunStore, views

    chosen = list(run.class_names[:: max(1, len(run.class_names) // 20)][:20])
    report("confusion counts (np.bincount)", timed(lambda i: run.confusion_counts(), repeat))
    report("top 20 confusions", timed(lambda i: run.top_confusions(20), repeat))
    report("matrix over 20 chosen classes", timed(lambda i: run.confusion_among(chosen), repeat))
    report("search the class picker ('_12')", timed(lambda i: [c for c in run.class_names if "_12" in c], repeat))
    report("views.confusion_cells (all cells, today's page)", timed(lambda i: views.confusion_cells(run), min(repeat, 3)))
    report("views.mispredictions_table", timed(lambda i: views.mispredictions_table(run), min(repeat, 3)))
    store = RunStore(tmp / "runs.sqlite3")
    ids: list[int] = []
    report("store: save the run", timed(lambda i: ids.append(store.save(run, name=f"scale {i}")), 1))
    size = sum(p.stat().st_size for p in tmp.glob("runs.sqlite3*"))
    print(f"{'store: file size':<44} {size / 2**20:9.1f} MB")
    report("store: load the run", timed(lambda i: store.load(ids[0]), min(repeat, 3)))


def results_clicks(run, repeat: int, tmp: Path, through_store: bool) -> None:
    """The Results page's clicks on a large run, each the whole server-side rerun (``AppTest``)."""
    from streamlit.testing.v1 import AppTest

    from gtpred_app.ui import panels, state

    os.environ["GTPRED_DB"] = str(tmp / "runs.sqlite3")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    if through_store:
        from gtpred_core.store import RunStore

        started = time.perf_counter()
        at.query_params["run"] = str(RunStore(os.environ["GTPRED_DB"]).save(run, "scale"))
        print(f"{'store: save the run':<44} {time.perf_counter() - started:9.1f} s")
        size = sum(p.stat().st_size for p in tmp.glob("runs.sqlite3*"))
        print(f"{'store: file size':<44} {size / 2**20:9.1f} MB")
    else:
        at.session_state["unsaved_run"] = state.UnsavedRun(run, None)
    at.switch_page("gtpred_app/screens/results.py")
    report("open Results (first: loads the run, counts)", timed(lambda i: at.run(), 1))
    assert not at.exception, [e.value for e in at.exception]
    report("rerun Results (warm)", timed(lambda i: at.run(), repeat))
    top = run.top_confusions(panels.TOP_CONFUSIONS)

    def click_top(i: int) -> None:
        at.session_state["confusion-top"] = {"selection": {"rows": [], "columns": [], "cells": [[i % len(top), "true"]]}}
        at.run()

    report("click a top-confusion row", timed(click_top, repeat))
    true, predicted, count = top[(repeat - 1) % len(top)]
    assert any(t.value.startswith(f"True {true}, predicted {predicted}: {count:,} images") for t in at.text), "the row did not open its cell"
    chosen = list(at.multiselect(key="confusion-classes").value)
    extra = [c for c in run.class_names if c not in chosen]
    report("choose one more class in the picker", timed(lambda i: at.multiselect(key="confusion-classes").set_value(chosen + [extra[i]]).run(), repeat))

    def click_cell(i: int) -> None:
        t, p, _ = top[i % len(top)]
        at.session_state["confusion"] = {"selection": {"cell": [{"true": t, "predicted": p}]}}
        at.run()

    report("click a cell of the chosen classes' matrix", timed(click_cell, repeat))
    assert any(t.value.startswith(f"True {top[(repeat - 1) % len(top)][0]},") for t in at.text), "the cell did not open"
    t, p, _ = top[(repeat - 1) % len(top)]

    def click_image(i: int) -> None:
        at.session_state[f"cell_files-{t}-{p}-1"] = {"selection": {"rows": [], "columns": [], "cells": [[0, "file" if i % 2 else "confidence"]]}}
        at.run()

    report("click a misprediction (an image of the cell)", timed(click_image, repeat))
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("image")) >= 1, "the image did not open"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12_000)
    parser.add_argument("--wrong", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--core-only", action="store_true", help="time the core queries and the store only (no files, no Streamlit)")
    parser.add_argument(
        "--post-script-gc",
        action="store_true",
        help="keep Streamlit's default garbage collection after every rerun (.streamlit/config.toml turns it off)",
    )
    parser.add_argument("--results-only", action="store_true", help="time the Results page's clicks on a large run (AppTest)")
    parser.add_argument("--store", action="store_true", help="with --results-only: save the run and open it by ?run= (slow at scale)")
    args = parser.parse_args()
    if args.results_only:
        from streamlit import config

        config.set_option("runner.postScriptGC", args.post_script_gc)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            run = synthetic_run(Path(tmp) / "images", args.images, args.wrong, args.classes, write_files="wrong")
            print(f"synthetic run: {run.n_images:,} images, {args.classes:,} classes, "
                  f"{int((~run.correct).sum()):,} mistakes, built in {time.perf_counter() - started:.1f} s")  # fmt: skip
            results_clicks(run, args.repeat, Path(tmp), args.store)
        return
    if args.core_only:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            run = synthetic_run(Path(tmp) / "images", args.images, args.wrong, args.classes, write_files=False)
            print(f"synthetic run: {run.n_images:,} images, {args.classes:,} classes, "
                  f"{int((~run.correct).sum()):,} mistakes, built in {time.perf_counter() - started:.1f} s")  # fmt: skip
            core_queries(run, args.repeat, Path(tmp))
        return

    from streamlit import config
    from streamlit.testing.v1 import AppTest

    from gtpred_app.ui import state

    config.set_option("runner.postScriptGC", args.post_script_gc)
    # As on a real server: models load and run in the inference worker process, so the web
    # server never imports TensorFlow and Streamlit has no Keras session to clear per rerun.

    from gtpred_core.store import RunStore

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run = synthetic_run(Path(tmp) / "images", args.images, args.wrong, args.classes)
        print(f"synthetic run: {run.n_images:,} images, {int((~run.correct).sum()):,} mistakes, "
              f"built in {time.perf_counter() - started:.1f} s")
        os.environ["GTPRED_DB"] = str(Path(tmp) / "runs.sqlite3")  # the app opens the same store
        run_id = str(RunStore(os.environ["GTPRED_DB"]).save(run, "synthetic"))
        table = run.mispredictions()

        def app(page: str) -> AppTest:
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
            at.query_params["run"] = run_id
            at.switch_page(page)
            return at

        at = app("gtpred_app/screens/mispredictions.py")
        report("open Mispredictions (first, cold thumbnails)", timed(lambda i: at.run(), 1))
        report("rerun Mispredictions (warm)", timed(lambda i: at.run(), args.repeat))

        def click_row(i: int) -> None:
            at.session_state[state.table_key(1)] = {"selection": {"rows": [], "columns": [], "cells": [[i % 25, "file"]]}}
            at.run()

        clicks = timed(click_row, args.repeat)
        assert at.query_params["file"] == table["file"][(args.repeat - 1) % 25], "the click did not select"
        report("click a misprediction row (server side)", clicks)

        page_key = state.page_key([], [])
        report("turn a page (25 new thumbnails)", timed(lambda i: at.number_input(key=page_key).set_value(i + 2).run(), args.repeat))
        report("filter by a true class", timed(lambda i: at.multiselect(key="filter_true").set_value([run.class_names[i % 10]]).run(), args.repeat))

        results = app("gtpred_app/screens/results.py")
        results.run()

        def click_cell(i: int) -> None:
            t, p = run.class_names[i % 10], run.class_names[(i + 1) % 10]
            results.session_state["confusion"] = {"selection": {"cell": [{"true": t, "predicted": p}]}}
            results.run()

        report("click a confusion-matrix cell (Results)", timed(click_cell, args.repeat))
        print(f"\nrunner.postScriptGC={args.post_script_gc}. Each figure is the whole server-side rerun")
        print("for that click, including Streamlit's cleanup after it (Keras clear_session, GC);")
        print("the browser's round trip and drawing come on top.")


if __name__ == "__main__":
    main()
