"""Several models on one image folder, decoded once.

Decoding is most of an evaluation for a small model (bench/sweep.py: decoding a 224x224 JPEG
costs about six times the digits CNN's forward pass), so evaluating N models one after the other
pays for N decodes. ``evaluate_models`` makes one ordered pass for all the models that take the
same input: each batch is decoded once and goes through every model in one compiled call
(``predict_files_together``). Each Run is exactly the one ``evaluate_folder`` gives for that model
alone: the same checks and assembly (``PreparedEvaluation``) on each side of the same batches.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from .class_order import ClassOrder, resolve_class_order
from .evaluation import PreparedEvaluation, RunSink
from .folder import ImageFolder, index_image_folder
from .inference import DecodeCache, decoding_once, predict_files_together
from .model import LoadedModel, load_model
from .request import EvaluationRequest
from .run import Run

#: Models loaded and evaluated in one pass. Each holds its weights and its outputs for every
#: file; a later group replays the batches the first kept (within ``GTPRED_DECODE_CACHE_MB``),
#: so a long list of checkpoints never has every model in memory together.
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

    Models that take the same input size and channels share one pass; others get their own.
    Options are those of ``evaluate_folder``. If a model does not fit the classes (or its pass
    fails), the others still finish, then the first failure is raised; a model that cannot be
    loaded stops the ones after it (those before it are evaluated first). ``cache`` keeps the
    decoded batches for later calls (by default they are dropped at the end).
    """
    folder = images if isinstance(images, ImageFolder) else index_image_folder(images)
    order = (
        class_order
        if isinstance(class_order, ClassOrder)
        else resolve_class_order(class_order, folder.class_names, folder.counts)
    )
    requests = [
        EvaluationRequest(
            model=model if isinstance(model, LoadedModel) else Path(model), images=folder, class_order=order,
            preprocess=preprocess, batch_size=batch_size, image_size=image_size,
        )  # fmt: skip
        for model in models
    ]
    return evaluate_requests(requests, progress=progress, cancel=cancel, cache=cache)


def evaluate_requests(
    requests: Sequence[EvaluationRequest],
    *,
    sinks: Sequence[RunSink | None] | None = None,
    progress: ModelsProgress | None = None,
    cancel: threading.Event | None = None,
    cache: DecodeCache | None = None,
) -> list[Run]:
    """``evaluate`` of each request, in one pass for those that take the same input; one Run each.

    The requests must differ only in their model, store and run name (same images, class order,
    preprocessing, batch size and image size; local backend). ``sinks`` holds one sink (or None:
    the request's own store, if any) per request, as ``evaluate``'s ``sink``. Failures as in
    ``evaluate_models``.
    """
    if not requests:
        return []
    first = requests[0]
    shared = ("images", "class_order", "preprocess", "batch_size", "image_size", "embeddings", "train_images")
    for request in requests[1:]:
        differing = [name for name in shared if getattr(request, name) != getattr(first, name)]
        if differing:
            raise ValueError(f"requests evaluated together must share their {', '.join(differing)}")
    if any(request.backend != "local" for request in requests):
        raise ValueError("requests evaluated together run on the local backend")
    folder = first.images if isinstance(first.images, ImageFolder) else index_image_folder(first.images)
    order = (
        first.class_order
        if isinstance(first.class_order, ClassOrder)
        else resolve_class_order(first.class_order, folder.class_names, folder.counts)
    )
    requests = [replace(request, images=folder, class_order=order) for request in requests]  # indexed once
    sink_list = list(sinks) if sinks is not None else [None] * len(requests)
    paths = folder.absolute_paths()
    runs: list[Run] = []
    failures: list[BaseException] = []
    with decoding_once(cache) as kept:
        for start in range(0, len(requests), MODELS_AT_ONCE):
            head_start = _HeadStart(kept, paths, first.image_size, first.batch_size)
            try:
                prepared, load_failure = _prepare_group(requests, sink_list, start, head_start, failures)
                finished = _evaluate_together(prepared, paths, progress, cancel, failures)
            finally:
                head_start.stop()
            runs.extend(finished[index] for index in sorted(finished))
            if load_failure is not None:
                failures.append(load_failure)
                break
    if failures:
        raise failures[0]
    return runs


class _HeadStart:
    """Decoding started while the rest of a group loads (``DecodeCache.decode_ahead``): about 40 ms
    per checkpoint file and 0.14 s to trace five models' pass, which the decode would otherwise wait for."""

    def __init__(self, cache: DecodeCache, paths: list[str], image_size: tuple[int, int] | None, batch_size: int) -> None:
        self.cache, self.paths, self.image_size, self.batch_size = cache, paths, image_size, batch_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, model: LoadedModel) -> None:
        """Start decoding for ``model``'s input, unless started already or its size is unknown."""
        size = self.image_size or model.input_size
        if self._thread is None and size[0] is not None and size[1] is not None:
            size = (int(size[0]), int(size[1]))
            self._thread = self.cache.decode_ahead(self.paths, size, model.channels, self.batch_size, self._stop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _prepare_group(
    requests: Sequence[EvaluationRequest],
    sinks: Sequence[RunSink | None],
    start: int,
    head_start: _HeadStart,
    failures: list[BaseException],
) -> tuple[dict[int, PreparedEvaluation], BaseException | None]:
    """Load and check the models of the group from ``start``: the prepared ones by index, and the
    load failure that ended the group early, if any (a model that does not fit goes to ``failures``)."""
    group = requests[start : start + MODELS_AT_ONCE]
    prepared: dict[int, PreparedEvaluation] = {}
    for index, request in enumerate(group, start=start):
        try:
            loaded = request.model if isinstance(request.model, LoadedModel) else load_model(request.model)
        except Exception as err:  # noqa: BLE001 - raised after the models before it ran
            return prepared, err
        if any(not isinstance(later.model, LoadedModel) for later in group[index - start + 1 :]):
            head_start.begin(loaded)
        try:
            prepared[index] = PreparedEvaluation(request.with_model(loaded), sinks[index])
        except Exception as err:  # noqa: BLE001 - the others still run
            failures.append(err)
    return prepared, None


def _evaluate_together(
    prepared: dict[int, PreparedEvaluation],
    paths: list[str],
    progress: ModelsProgress | None,
    cancel: threading.Event | None,
    failures: list[BaseException],
) -> dict[int, Run]:
    """One ordered pass per input (size, channels) over the prepared evaluations; their Runs by index."""
    passes: dict[object, list[int]] = {}
    for index, evaluation in prepared.items():
        size = evaluation.request.image_size or evaluation.model.input_size
        shared = None not in size  # a model taking any size is refused alone, not with the others
        key = (size, evaluation.model.channels, evaluation.with_features)
        passes.setdefault(key if shared else index, []).append(index)
    runs: dict[int, Run] = {}
    for indices in passes.values():
        evaluations = [prepared[index] for index in indices]
        request = evaluations[0].request

        def report(done: int, total: int, indices: list[int] = indices) -> None:
            for index in indices:
                progress(index, done, total)  # type: ignore[misc]  # only passed on when given

        try:
            raws = predict_files_together(
                [evaluation.model for evaluation in evaluations],
                paths,
                image_size=request.image_size,
                preprocess=request.preprocess,
                batch_size=request.batch_size,
                progress=report if progress is not None else None,
                cancel=cancel,
                on_batch=[evaluation.on_batch for evaluation in evaluations],
                with_features=evaluations[0].with_features,
            )
        except Exception as err:  # noqa: BLE001 - the other passes still run; raised at the end
            for evaluation in evaluations:
                evaluation.fail()
            failures.append(err)
            continue
        for index, evaluation, raw in zip(indices, evaluations, raws):
            runs[index] = evaluation.finish(raw)
    return runs
