"""Several models on one image folder, decoded once.

Decoding is most of an evaluation for a small model (bench/sweep.py: decoding a 224x224 JPEG
costs about six times the digits CNN's forward pass), so evaluating N models one after the other
pays for N decodes. ``evaluate_models`` runs each model's ``evaluate_folder`` at once, in its own
thread, inside one ``decoding_once`` block: the first to start decodes each batch and keeps it,
the others read the same batches as they come. Each Run is exactly the one ``evaluate_folder``
gives for that model alone (same batches, same code), only the decoding is shared.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from .class_order import ClassOrder, resolve_class_order
from .folder import ImageFolder, index_image_folder
from .inference import DecodeCache, decoding_once
from .model import LoadedModel, load_model
from .run import Run

#: Models loaded and evaluated at once. Each holds its weights and two batches in flight; a later
#: group replays the batches the first kept (within ``GTPRED_DECODE_CACHE_MB``), so a long list
#: of checkpoints never has every model in memory together.
MODELS_AT_ONCE = 8

#: ``progress(model_index, done, total)``: which model (0-based, in the order given) has done how many files.
ModelsProgress = Callable[[int, int, int], None]


def evaluate_models(
    models: Sequence[str | Path | LoadedModel],
    images: str | Path | ImageFolder,
    *,
    class_order: str | Path | ClassOrder = "keras",
    preprocess: str = "none",
    batch_size: int = 32,
    image_size: tuple[int, int] | None = None,
    progress: ModelsProgress | None = None,
    cancel: threading.Event | None = None,
    cache: DecodeCache | None = None,
) -> list[Run]:
    """Evaluate every model on ``images``, decoding each image once; one Run per model, in order.

    Models that take the same input size and channels share one decode; others get their own.
    Options are those of ``evaluate_folder``; ``progress`` is called from the models' threads,
    one call at a time. If a model's outputs do not fit the classes, the others of its group
    still finish, then the first failure is raised; a model that cannot be loaded stops the ones
    after it from starting (those already started finish first). ``cache`` keeps the decoded
    batches for later calls (by default they are dropped at the end).
    """
    from .evaluation import evaluate_folder

    folder = images if isinstance(images, ImageFolder) else index_image_folder(images)
    order = (
        class_order
        if isinstance(class_order, ClassOrder)
        else resolve_class_order(class_order, folder.class_names, folder.counts)
    )
    runs: list[Run] = []
    reporting = threading.Lock()

    def report(index: int, done: int, total: int) -> None:  # one call at a time, from any thread
        with reporting:
            progress(index, done, total)  # type: ignore[misc]  # only passed on when given

    with decoding_once(cache):
        for start in range(0, len(models), MODELS_AT_ONCE):
            group = models[start : start + MODELS_AT_ONCE]

            def evaluate(index: int, model: LoadedModel) -> Run:
                return evaluate_folder(
                    model,
                    folder,
                    class_order=order,
                    preprocess=preprocess,
                    batch_size=batch_size,
                    image_size=image_size,
                    progress=functools.partial(report, index) if progress else None,
                    cancel=cancel,
                )

            with ThreadPoolExecutor(len(group), thread_name_prefix="gtpred-model") as pool:
                futures = []
                for k, model in enumerate(group):
                    # Each model starts as soon as it is loaded: the first decodes while the next
                    # ones load, and they catch up from the kept batches. Each thread runs in a
                    # copy of this context, so it sees the shared decode.
                    loaded = model if isinstance(model, LoadedModel) else load_model(model)
                    futures.append(pool.submit(contextvars.copy_context().run, evaluate, start + k, loaded))
                runs.extend(future.result() for future in futures)
    return runs
