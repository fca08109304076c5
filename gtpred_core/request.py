"""What to evaluate, as one typed value: built by the page, the CLI or the library, carried to
the worker process, the core and the Ray actors unchanged.

    request = EvaluationRequest(model="model.keras", images="val/", class_order="natural")
    run = evaluate(request, progress=print)

A request is checked when it is made (a wrong batch size, backend or head choice is refused
at the page, not in the worker), is frozen, and pickles: nothing else crosses those layers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .class_order import ClassOrder
from .errors import BackendError, GtpredError, ModelError, PreprocessError
from .folder import ImageFolder
from .model import HEAD_CHOICES, LoadedModel
from .preprocessing import PREPROCESS_MODES

#: Backend -> one line a user can choose by.
BACKENDS: dict[str, str] = {
    "local": "On this server (the default; fastest on one machine).",
    "ray": "On Ray Data workers (a cluster at GTPRED_RAY_ADDRESS, or a local Ray); needs "
    "pip install -r requirements-ray.txt.",
}

@dataclass(frozen=True)
class EvaluationRequest:
    """One evaluation: which model on which images, read how, run where, stored where.

    ``model`` is a ``.keras``/``.h5`` file or a SavedModel folder (a ``LoadedModel`` in-process
    only: it does not cross processes). ``images`` is a folder of class sub-folders, or an
    ``ImageFolder`` already indexed (the page indexes once to show the classes). ``class_order``
    is "keras" (folder sort), "natural", a labels file, or a resolved ``ClassOrder``.
    ``image_size`` (height, width) is for models that take any size. With ``store_path`` the
    run streams into that run store under ``run_name`` (a store failure never fails the run).
    ``embeddings`` also keeps a 2-D map of the model's penultimate features, taken in the same
    pass (``embeddings.py``); ``train_images`` (a folder) is searched for copies of the evaluated
    images (``leakage.py``).
    """

    model: Path | LoadedModel
    images: Path | ImageFolder
    class_order: str | Path | ClassOrder = "keras"
    preprocess: str = "none"
    batch_size: int = 32
    image_size: tuple[int, int] | None = None
    head: str = "auto"
    backend: str = "local"
    ray_address: str | None = None
    store_path: Path | None = None
    run_name: str | None = None
    embeddings: bool = False
    train_images: Path | None = None

    def __post_init__(self) -> None:
        for name in ("model", "images", "store_path", "train_images"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Path(value).expanduser())
        if isinstance(self.class_order, Path):
            object.__setattr__(self, "class_order", str(self.class_order))
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise GtpredError(
                f"The batch size must be a whole number of at least 1, got {self.batch_size!r}.",
                "Use e.g. 32.",
                received=repr(self.batch_size),
                expected="a whole number >= 1",
            )
        if self.image_size is not None:
            size = tuple(self.image_size)
            if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
                raise GtpredError(
                    f"The image size must be (height, width) in pixels, got {self.image_size!r}.",
                    "Use e.g. 224x224.",
                    received=repr(self.image_size),
                    expected="(height, width), both >= 1",
                )
            object.__setattr__(self, "image_size", (int(size[0]), int(size[1])))
        if self.preprocess not in PREPROCESS_MODES:
            raise PreprocessError(
                f"Unknown preprocessing {self.preprocess!r}.",
                f"Choose one of: {', '.join(PREPROCESS_MODES)}.",
                received=self.preprocess,
                expected=", ".join(PREPROCESS_MODES),
            )
        if self.head not in HEAD_CHOICES:
            raise ModelError(
                f"Unknown head choice {self.head!r}.",
                f"Choose one of: {', '.join(HEAD_CHOICES)}.",
                received=self.head,
                expected=", ".join(HEAD_CHOICES),
            )
        if self.backend not in BACKENDS:
            raise BackendError(
                f"Unknown backend {self.backend!r}.",
                f"Choose {' or '.join(BACKENDS)}.",
                received=self.backend,
                expected=" or ".join(BACKENDS),
            )
        if self.embeddings and self.backend != "local":
            raise BackendError(
                "The embedding map is made on this server only: the features come from the local "
                "ordered pass.",
                "Use the local backend with embeddings, or leave embeddings out on Ray.",
                received=self.backend,
                expected="local",
            )

    @property
    def model_path(self) -> Path:
        """The model's file or folder (a LoadedModel's own path)."""
        return self.model if isinstance(self.model, Path) else Path(self.model.path)

    def with_model(self, model: LoadedModel) -> "EvaluationRequest":
        """This request with its model already loaded (the worker's warm copy)."""
        return replace(self, model=model)

    def for_transport(self) -> "EvaluationRequest":
        """This request as it crosses a process: the model as its path (a loaded model holds
        TensorFlow objects)."""
        return replace(self, model=self.model_path)

    def open_sink(self) -> Any:
        """A guarded writer into ``store_path`` (None without one): the run streams in as it is
        made, and a store that fails keeps its error instead of failing the run."""
        if self.store_path is None:
            return None
        from .store import GuardedWriter

        return GuardedWriter.into(self.store_path, self.run_name)
