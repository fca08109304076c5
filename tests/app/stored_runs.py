"""Real runs for the History, Compare and Training AppTests, and a fresh run store per test.

The demo model evaluated once per test process in Keras' folder order (the class-order trap,
about 10% right) and the same predictions relabelled in natural order (about 95% right): two
real runs of the same images with hundreds of flips between them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from gtpred_core import Run, evaluate_folder, natural_order
from gtpred_core.demo import DEMO_MODEL, demo_folder
from gtpred_core.store import RunStore


@lru_cache(maxsize=1)
def demo_runs() -> tuple[Run, Run]:
    """(Keras-order run, natural-order relabelling of it) of the shipped demo."""
    keras_run = evaluate_folder(DEMO_MODEL, demo_folder(), class_order="keras")
    return keras_run, keras_run.relabel(natural_order(keras_run.class_names), source="natural")


def fresh_store(tmp_path: Path, monkeypatch) -> RunStore:
    """An empty store at a new $GTPRED_DB (the app opens the same file)."""
    path = tmp_path / "runs.sqlite3"
    monkeypatch.setenv("GTPRED_DB", str(path))
    return RunStore(path)
