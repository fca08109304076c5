"""What ``audit_data_source`` reports, in words a screen can show (no Keras import here).

``training.audit_data_source`` finds these problems in a user's own data pipeline; this module
only describes them, so the app's help can list every check and its fix without importing Keras.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AuditCheck:
    code: str  # the AuditFinding code audit_data_source reports
    problem: str
    fix: str


#: Every finding ``audit_data_source`` can report, in the order it checks them.
AUDIT_CHECKS: tuple[AuditCheck, ...] = (
    AuditCheck(
        "shuffle-on",
        "The source shuffles, so predictions come out in another order than the files and labels "
        "they are paired with: accuracy and every per-file result are wrong.",
        "Evaluate with shuffle=False (flow_from_directory / image_dataset_from_directory), or no "
        ".shuffle() in the pipeline; or use gtpred's predict_pairs, which keeps each batch's labels.",
    ),
    AuditCheck(
        "steps-drop-samples",
        "steps × batch size is smaller than the number of samples (steps = n // batch_size): the "
        "last partial batch is never predicted.",
        "Use steps = ceil(n / batch_size), or leave steps out.",
    ),
    AuditCheck(
        "steps-repeat-samples",
        "steps × batch size is larger than the number of samples: the source wraps around and the "
        "first samples are predicted twice.",
        "Use steps = ceil(n / batch_size), or leave steps out.",
    ),
    AuditCheck(
        "augmentation-on",
        "Random augmentation is active at evaluation: every read of an image differs, so the "
        "numbers change from run to run.",
        "Evaluate with a generator or pipeline without random transforms (only the rescaling).",
    ),
    AuditCheck(
        "class-order-string-sort",
        "Classes are indexed in string order (Class_10 before Class_2), which differs from natural "
        "order: if the model was trained with another order, accuracy looks like chance.",
        "Save class_indices (or class_names) with the model and evaluate with that file.",
    ),
    AuditCheck(
        "generator-with-workers",
        "A plain Python generator shared by several workers hands out batches in whatever order "
        "the workers finish: predictions and labels no longer line up.",
        "Wrap the data in a keras.utils.PyDataset (indexed batches keep their order), or use one worker.",
    ),
)

#: A short example of auditing one's own pipeline before trusting its numbers.
AUDIT_EXAMPLE = '''\
from gtpred_core import audit_data_source

val = keras.utils.image_dataset_from_directory("val/", shuffle=False, batch_size=32)
audit = audit_data_source(val, steps=len(val))
for finding in audit.findings:
    print(finding.code, "-", finding.message, "Fix:", finding.fix)
'''
