"""Inference on Ray Data: the same ordered predictions as the local backend, on many workers.

The file list is cut into work items of one batch each (aligned to the batch size, so every
forward pass sees exactly the batches the local backend would). Ray Data hands blocks of items
to an actor pool; each actor loads the model once and runs gtpred's own ``predict_files`` on
its items. Every result carries its file index, results are consumed in order, and the driver
checks that each index arrives once. Ray is optional: ``pip install -r requirements-ray.txt``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InvariantError, RayMissingError
from .inference import BatchCallback, ProgressCallback, RawPredictions
from .model import LoadedModel
from .request import EvaluationRequest

#: Work items (batches) handed to an actor per call.
ITEMS_PER_CALL = 8


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise RayMissingError(
            "The Ray backend needs Ray, which is not installed.",
            "Install it with: pip install -r requirements-ray.txt (or use --backend local).",
        ) from err
    return ray


def ensure_ray(address: str | None, num_cpus: int | None) -> Any:
    """Join ``address``, or start a local Ray with ``num_cpus``; reuse a running one."""
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(
            address=address,
            num_cpus=None if address else num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"py_modules": [str(Path(__file__).parent)]},
        )
    return ray


class _Predictor:
    """One per Ray actor: loads the request's model once, then predicts block after block."""

    def __init__(self, request: EvaluationRequest) -> None:
        from gtpred_core.model import load_model

        self.model = load_model(request.model_path)
        self.image_size = request.image_size
        self.preprocess = request.preprocess
        self.batch_size = request.batch_size

    def __call__(self, items: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from gtpred_core.inference import predict_files

        starts = items["start"].astype(np.int64)
        groups = [str(p).split("\n") for p in items["paths"]]
        paths = [p for group in groups for p in group]
        offsets = np.concatenate([np.full(len(g), s) + np.arange(len(g)) for s, g in zip(starts, groups)])
        raw = predict_files(self.model, paths, image_size=self.image_size, preprocess=self.preprocess, batch_size=self.batch_size)
        width = self.model.output_width
        outputs = np.zeros((len(paths), width), np.float32)
        outputs[raw.indices] = raw.outputs
        reasons = np.array([""] * len(paths), dtype=object)
        for i, reason in raw.skipped:
            reasons[i] = reason
        return {"index": offsets, "outputs": outputs, "reason": reasons}


def predict_files_on_ray(
    model: LoadedModel,
    paths: Sequence[str],
    request: EvaluationRequest,
    *,
    num_workers: int = 2,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    on_batch: BatchCallback | None = None,
) -> RawPredictions:
    """``predict_files`` on a Ray actor pool; same result, same order (see the module doc).

    Each actor gets the request itself (its model as a path, without the indexed file list:
    the paths travel in the work items), and joins ``request.ray_address`` if set."""
    batch_size = request.batch_size
    images_root = request.images if isinstance(request.images, Path) else Path(request.images.root)
    actor_request = replace(request.for_transport(), images=images_root, store_path=None, run_name=None)
    ray = ensure_ray(request.ray_address, num_workers)
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    total = len(paths)
    items = [
        {"start": start, "paths": "\n".join(paths[start : start + batch_size])}
        for start in range(0, total, batch_size)
    ]
    outputs = np.zeros((total, model.output_width), dtype=np.float32)
    evaluated = np.zeros(total, dtype=bool)
    skipped: list[tuple[int, str]] = []
    next_index, completed = 0, True
    if items:
        dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // ITEMS_PER_CALL, 10_000)))
        predictions = dataset.map_batches(
            _Predictor,
            fn_constructor_args=(actor_request,),
            batch_size=ITEMS_PER_CALL,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=num_workers),
            num_cpus=1,
        )
        for block in predictions.iter_batches(batch_size=None, batch_format="numpy"):
            if cancel is not None and cancel.is_set():
                completed = False
                break
            indices = block["index"].astype(np.int64)
            if not np.array_equal(indices, np.arange(next_index, next_index + len(indices))):
                raise InvariantError("Ray returned predictions out of order or twice; results would be mis-paired.")
            ok = block["reason"] == ""
            outputs[indices[ok]] = block["outputs"][ok]
            evaluated[indices[ok]] = True
            skipped.extend((int(i), str(r)) for i, r in zip(indices[~ok], block["reason"][~ok]))
            if on_batch is not None and ok.any():
                on_batch(indices[ok], block["outputs"][ok])
            next_index += len(indices)
            if progress is not None:
                progress(next_index, total)
    if completed and next_index != total:
        raise InvariantError(f"Ray returned {next_index} predictions for {total} files.")
    done = np.flatnonzero(evaluated)
    return RawPredictions(done, outputs[done], tuple(skipped), next_index, completed)
