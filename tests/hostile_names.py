"""A data root whose every name is hostile, evaluated for real and stored: the AppTests and the
browser walk over all pages use it (issue 14, item 1).

Each name is one a person could give a class folder, an image, a model file, a data set or a
run, and each is one Markdown (GitHub's flavour, as Streamlit renders it) would turn into
something else: a live link off the site, bold, a code span, an image, a heading, an e-mail
link, maths, raw HTML. The demo model (10 outputs, trained in natural order on digits) is
evaluated on the demo digits copied into ten class folders named so: Keras' folder order then
reads the outputs wrongly, so the run carries a class-order warning, a suggested order (the
re-label button and its help text list the class names), many mispredictions, an empty class
and a skipped file with a hostile name.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

LINK = "[Session expired: sign in again](https:evil.example)"
BOLD = "**x**"
BACKTICK = "a`b` ``c``"
HTML = "<img src=x onerror=alert(1)>"
URL = "https://evil.example/login"  # holds '/': a run name only
WWW = "www.evil.example"

#: Class folder per demo class (Class_d holds digit d, Class_10 the zeros). The empty one keeps
#: its place as a class (10 outputs, 10 classes), as Keras keeps an empty folder.
CLASS_FOR = {
    "Class_1": LINK,
    "Class_2": BOLD,
    "Class_3": BACKTICK,
    "Class_4": HTML,
    "Class_5": WWW,
    "Class_6": "user@evil.example",
    "Class_7": "_it_ ~~gone~~",
    "Class_8": "# heading",
    "Class_9": "![p](https:evil.example)",
    "Class_10": "$x^2$ | a |",
}
EMPTY_CLASS = CLASS_FOR["Class_10"]
DATASET = LINK  # the data-set folder under the data root
MODEL_FILE = f"{LINK}.keras"
#: Image files renamed to hostile names (in the first classes that hold images).
HOSTILE_FILES = [f"{LINK}.png", f"{BOLD}.png", "a`b`.png", f"{HTML}.png", f"{WWW}.png"]
#: A file that cannot be decoded, so the skipped-files warning names it.
BROKEN_FILE = f"{BOLD} {LINK}.png"

RUN_A_NAME = f"{LINK} {BOLD}"
RUN_B_NAME = f"{URL} {WWW} `y`"
TRAINING_NAME = f"{HTML} {LINK}"
RELABEL_SOURCE = f"labels {LINK}.txt"  # a class-order file's name, shown as the order in use

#: Everything a name could turn into if it were read as Markdown: these texts must never be the
#: whole text of a <strong>, <em>, <del>, <code> or heading (our own bold labels hold more).
FORMATTED_FRAGMENTS = {"x", "it", "gone", "b", "c", "heading", "y", "Session expired: sign in again", "p"}


def write_hostile_data_root(root: Path) -> Path:
    """``root``/DATASET/<hostile class>/<files> and ``root``/models/MODEL_FILE; returns the data set."""
    from gtpred_core.demo import DEMO_MODEL, demo_folder

    dataset = root / DATASET
    for demo_class, name in CLASS_FOR.items():
        target = dataset / name
        target.mkdir(parents=True)
        if name == EMPTY_CLASS:
            continue
        for image in sorted((demo_folder() / demo_class).glob("*.png")):
            shutil.copy(image, target / image.name)
    for demo_class, file_name in zip(CLASS_FOR, HOSTILE_FILES):
        first = sorted((dataset / CLASS_FOR[demo_class]).glob("*.png"))[0]
        first.rename(first.with_name(file_name))
    (dataset / LINK / BROKEN_FILE).write_bytes(b"not a png")
    (root / "models").mkdir()
    shutil.copy(DEMO_MODEL, root / "models" / MODEL_FILE)
    return dataset


@dataclass(frozen=True)
class HostileRuns:
    """Stored ids: run A (Keras order), run B (A re-labelled, from a hostile labels file), and a
    training whose two epochs are A and B."""

    run_a: int
    run_b: int
    training: int
    mispredicted_file: str  # a file A gets wrong, relative to the data set: a hostile name


def store_hostile_runs(data_root: Path, db: Path) -> HostileRuns:
    """Evaluate the model on the hostile data set (real inference) and store the runs."""
    from gtpred_core import evaluate_folder
    from gtpred_core.store import RunStore

    dataset = data_root / DATASET
    run_a = evaluate_folder(data_root / "models" / MODEL_FILE, dataset, class_order="keras")
    store = RunStore(db)
    a_id = store.save(run_a, name=RUN_A_NAME)
    order = run_a.suggested_class_order or tuple(reversed(run_a.class_names))
    run_b = run_a.relabel(order, source=RELABEL_SOURCE)
    run_b = replace(run_b, info=replace(run_b.info, relabelled_from=a_id))
    b_id = store.save(run_b, name=RUN_B_NAME)
    training = store.start_training(TRAINING_NAME, str(dataset))
    store.save(run_a, name=RUN_A_NAME, training_id=training, epoch=1, logs={"loss": 2.0})
    store.save(run_b, name=RUN_B_NAME, training_id=training, epoch=2, logs={"loss": 1.0})
    store.finish_training(training)
    wrong = [p for p, ok in zip(run_a.paths, run_a.correct) if not ok]
    hostile_wrong = [p for p in wrong if Path(p).name in HOSTILE_FILES]
    return HostileRuns(a_id, b_id, training, (hostile_wrong or wrong)[0])
