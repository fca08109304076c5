"""What ``audit_data_source`` can find in a data source: one registry of finding kinds.

Each kind has its code, the problem in general words and the general fix, written once here.
The audit builds every finding from its kind (adding what it saw in this source), and the app's
help lists the same kinds, so the two can never drift apart. No Keras import: a screen reads this.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Evidence:
    """What an adapter saw in one source: the facts, and the fix in that source's own terms."""

    facts: str
    fix_here: str = ""


@dataclass(frozen=True)
class AuditFinding:
    """One problem found in a source: its kind, the message with this source's facts, the fix."""

    kind: FindingKind
    message: str
    fix: str

    @property
    def code(self) -> str:
        return self.kind.code


class FindingKind(Enum):
    """Every finding the audit can report, in the order it checks them."""

    SHUFFLE_ON = (
        "shuffle-on",
        "Shuffling is on: predictions come out in another order than the files and labels they "
        "are paired with, so accuracy and every per-file result are wrong.",
        "Evaluate with shuffle=False (flow_from_directory, image_dataset_from_directory) and no "
        ".shuffle() in the pipeline, or use gtpred's predict_pairs, which keeps each batch's "
        "labels beside its predictions.",
    )
    STEPS_DROP_SAMPLES = (
        "steps-drop-samples",
        "steps × batch size is smaller than the number of samples (steps = n // batch_size drops "
        "the partial batch): the last samples are never predicted.",
        "Use steps = ceil(n / batch_size), or leave steps out.",
    )
    STEPS_REPEAT_SAMPLES = (
        "steps-repeat-samples",
        "steps × batch size is larger than the number of samples: the source wraps around and the "
        "first samples are predicted twice.",
        "Use steps = ceil(n / batch_size), or leave steps out.",
    )
    AUGMENTATION_ON = (
        "augmentation-on",
        "Random augmentation is active at evaluation: every read of an image differs, so the "
        "numbers change from run to run and do not describe the real images.",
        "Evaluate without random transforms: an ImageDataGenerator that only rescales, and random "
        "layers (RandomFlip, RandomRotation, ...) only in the training pipeline or inside the model.",
    )
    CLASS_ORDER_STRING_SORT = (
        "class-order-string-sort",
        "The classes are indexed in string order (Class_10 before Class_2), which differs from "
        "natural order: if the model was trained with another order, accuracy looks like chance.",
        "Save class_indices (or class_names) with the model and evaluate with that file "
        "(--class-order FILE).",
    )
    GENERATOR_WITH_WORKERS = (
        "generator-with-workers",
        "A plain Python generator shared by several workers hands out batches in whatever order "
        "the workers finish, and may duplicate them: predictions and labels no longer line up.",
        "Wrap the data in a keras.utils.PyDataset (indexed batches keep their order), or use one worker.",
    )

    code: str
    problem: str
    fix: str

    def __init__(self, code: str, problem: str, fix: str) -> None:
        self.code = code
        self.problem = problem
        self.fix = fix

    def found(self, evidence: Evidence) -> AuditFinding:
        """This kind of finding, with what was seen in this source (and its own fix, if any)."""
        fix_here = f" Here: {evidence.fix_here}." if evidence.fix_here else ""
        return AuditFinding(self, f"{self.problem} Found: {evidence.facts}.", self.fix + fix_here)


@dataclass(frozen=True)
class DataSourceAudit:
    """What a data source will really feed ``predict``/``evaluate``, and what is wrong with it."""

    kind: str
    n_samples: int | None
    batch_size: int | None
    findings: tuple[AuditFinding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]


#: A short example of auditing one's own pipeline before trusting its numbers.
AUDIT_EXAMPLE = '''\
from gtpred_core import audit_data_source

val = keras.utils.image_dataset_from_directory("val/", shuffle=False, batch_size=32)
audit = audit_data_source(val, steps=len(val))
for finding in audit.findings:
    print(finding.code, "-", finding.message, "Fix:", finding.fix)
'''
