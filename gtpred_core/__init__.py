"""gtpred: ordered, verified evaluation of Keras image classifiers.

Cheap to import: TensorFlow, Keras and scikit-learn are imported where they are used.

    >>> from gtpred_core import evaluate_folder
    >>> run = evaluate_folder("model.keras", "val/", class_order="natural")
    >>> run.metrics.accuracy, run.warnings
"""

from .class_order import ClassOrder, natural_order, keras_order, read_class_order_file, resolve_class_order
from .diagnostics import RunWarning
from .errors import (
    BackendError,
    ClassOrderError,
    ComparisonError,
    FolderError,
    GtpredError,
    InvariantError,
    ModelError,
    OutputWidthError,
    PreprocessError,
    RayMissingError,
    RunDeletedError,
    RunNameError,
    SourceShufflesError,
    StoreError,
    UnexpectedWorkerError,
    UploadError,
    WorkerError,
)
from .evaluation import check_model_fits, evaluate, evaluate_folder, outputs_to_probabilities
from .export import predictions_csv, summary_json, write_outputs
from .folder import ImageFolder, index_image_folder
from .inference import MAX_IMAGE_PIXELS, DecodeCache, SkippedFile, Throughput, decoding_once, predict_files
from .metrics import Interval, Metrics, compute_metrics, wilson_interval
from .calibration import Calibration, calibration, temperature_what_if
from .suspects import SuspectLabel, suspect_labels
from .model import Head, LoadedModel, load_model
from .preprocessing import PREPROCESS_MODES
from .request import EvaluationRequest
from .run import Run, RunInfo, assemble_run
from .sweep import evaluate_models
from .sources.labels_csv import LabelsCsvError, LabelsCsvReport, read_labels_csv
from .training_history import EpochRun, TrainingHistory
from .uploads import extract_zip_safely, list_subfolders, remove_scratch, resolve_inside_root, scratch_dir

__version__ = "0.1.0"

#: Names that need Keras at import time, loaded on first use so ``import gtpred_core`` stays cheap.
_LAZY = {
    "PredictionRecorder": "training",
    "predict_pairs": "training",
    "audit_data_source": "training",
    "RunStore": "store",
    "compare_runs": "compare",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gtpred_core' has no attribute {name!r}")

__all__ = [
    "PredictionRecorder",
    "RunStore",
    "SourceShufflesError",
    "audit_data_source",
    "compare_runs",
    "predict_pairs",
    "BackendError",
    "ComparisonError",
    "RayMissingError",
    "StoreError",
    "UnexpectedWorkerError",
    "WorkerError",
    "EvaluationRequest",
    "Head",
    "ClassOrder",
    "ClassOrderError",
    "EpochRun",
    "FolderError",
    "GtpredError",
    "ImageFolder",
    "InvariantError",
    "LabelsCsvError",
    "RunDeletedError",
    "RunNameError",
    "LabelsCsvReport",
    "LoadedModel",
    "MAX_IMAGE_PIXELS",
    "Metrics",
    "ModelError",
    "OutputWidthError",
    "PREPROCESS_MODES",
    "PreprocessError",
    "Run",
    "RunInfo",
    "RunWarning",
    "SkippedFile",
    "Throughput",
    "TrainingHistory",
    "UploadError",
    "assemble_run",
    "check_model_fits",
    "compute_metrics",
    "evaluate",
    "evaluate_folder",
    "extract_zip_safely",
    "index_image_folder",
    "keras_order",
    "list_subfolders",
    "load_model",
    "natural_order",
    "outputs_to_probabilities",
    "predict_files",
    "DecodeCache",
    "decoding_once",
    "evaluate_models",
    "predictions_csv",
    "read_class_order_file",
    "read_labels_csv",
    "remove_scratch",
    "resolve_class_order",
    "resolve_inside_root",
    "scratch_dir",
    "summary_json",
    "write_outputs",
    "Calibration",
    "Interval",
    "SuspectLabel",
    "calibration",
    "suspect_labels",
    "temperature_what_if",
    "wilson_interval",
    "__version__",
]
