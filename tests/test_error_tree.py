"""The one error tree: every error class lives in gtpred_core.errors, is drawn in its docstring,
and crosses a process boundary (pickle) as the same class with the same fields."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import pytest

import gtpred_core
from gtpred_core import errors


def _all_gtpred_errors() -> set[type]:
    seen, todo = set(), [errors.GtpredError]
    while todo:
        cls = todo.pop()
        seen.add(cls)
        todo.extend(cls.__subclasses__())
    return seen


def test_every_error_class_of_the_core_lives_in_errors_and_is_drawn_in_its_tree():
    for module in pkgutil.walk_packages(gtpred_core.__path__, "gtpred_core."):
        if module.name.endswith(("__main__", "ray_backend")):
            continue  # __main__ runs the CLI; ray_backend imports only what is installed
        importlib.import_module(module.name)
    for cls in _all_gtpred_errors():
        assert cls.__module__ == "gtpred_core.errors", f"{cls.__name__} is defined in {cls.__module__}"
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} is missing from the tree in errors.py"
        assert getattr(gtpred_core, cls.__name__) is cls  # exported by the package


EXAMPLES = [
    errors.GtpredError("Something is off.", "Do this.", "/data/x", received="a", expected="b"),
    errors.FolderError("No class folders in val.", "One sub-folder per class.", "/data/val"),
    errors.ClassOrderError("labels.txt does not fit.", "Fix it.", "labels.txt", missing_in_folder=("cat",), missing_in_order=("dog",)),
    errors.ModelError("m.keras is not a Keras model file (it is a text file).", "Give the file.", "m.keras"),
    errors.OutputWidthError(1, 1, "m.keras", implied_classes=2, head="sigmoid"),
    errors.StoreError("The run store cannot be opened.", "Point GTPRED_DB elsewhere.", "runs.db"),
    errors.ComparisonError("Different classes.", "Compare like runs.", only_in_a=("cat",), only_in_b=("dog",)),
    errors.RayMissingError("No Ray.", "pip install -r requirements-ray.txt"),
    errors.WorkerError("Out of memory.", "Use a smaller batch.", limit="4096 MB"),
    errors.UnexpectedWorkerError("KeyError", "worker-1234-ab12cd"),
    errors.InvariantError("Mis-paired."),
]


@pytest.mark.parametrize("err", EXAMPLES, ids=[type(e).__name__ for e in EXAMPLES])
def test_errors_pickle_as_the_same_class_with_their_fields(err):
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and str(again) == str(err)
    assert vars(again) == vars(err)


def test_the_fields_say_what_was_received_and_expected():
    err = errors.OutputWidthError(1, 1, "m.keras", implied_classes=2, head="sigmoid")
    assert (err.received, err.expected, err.implied_classes, err.head) == ("1 class in the folder", "2 classes", 2, "sigmoid")
    assert str(err).startswith("The model outputs 1 values per image but the folder has 1 class: a sigmoid head means 2 classes.")
    unexpected = errors.UnexpectedWorkerError("KeyError", "worker-1234-ab12cd")
    assert "worker-1234-ab12cd" in unexpected.message and "worker-1234-ab12cd" in unexpected.fix
    assert isinstance(unexpected, errors.WorkerError) and inspect.getdoc(errors).count("UnexpectedWorkerError") == 1
