"""gtpred_core.audit_help: the app's description of the audit names exactly what the audit reports."""

from __future__ import annotations

import re
from pathlib import Path

import gtpred_core
from gtpred_core.audit_help import AUDIT_CHECKS, AUDIT_EXAMPLE


def test_every_code_the_audit_reports_is_described_once_with_a_fix():
    # Read training.py as text: importing it costs a Keras import.
    source = (Path(gtpred_core.__file__).parent / "training.py").read_text()
    audit = source[source.index("def audit_data_source") :]
    reported = set(re.findall(r'AuditFinding\(\s*"([a-z-]+)"', audit))
    described = [check.code for check in AUDIT_CHECKS]
    assert len(described) == len(set(described))
    assert set(described) == reported
    assert all(check.problem and check.fix for check in AUDIT_CHECKS)


def test_the_example_is_valid_python_calling_the_audit():
    compile(AUDIT_EXAMPLE, "example", "exec")
    assert "audit_data_source(" in AUDIT_EXAMPLE and "shuffle=False" in AUDIT_EXAMPLE
