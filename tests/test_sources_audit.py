"""gtpred_core.sources.audit: one registry of the audit's finding kinds, read by the audit and the help."""

from __future__ import annotations

import re

from gtpred_core.sources.audit import AUDIT_EXAMPLE, AuditFinding, DataSourceAudit, Evidence, FindingKind


def test_every_kind_has_one_code_a_problem_and_a_fix():
    codes = [kind.code for kind in FindingKind]
    assert len(codes) == len(set(codes)) == 6
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)+", code) for code in codes)
    assert all(kind.problem.endswith(".") and kind.fix.endswith(".") for kind in FindingKind)


def test_a_finding_says_the_general_problem_then_what_was_seen_and_the_fix_in_the_sources_terms():
    finding = FindingKind.SHUFFLE_ON.found(Evidence("the iterator was made with shuffle=True", "flow_from_directory(..., shuffle=False)"))
    assert finding.code == "shuffle-on" and finding.kind is FindingKind.SHUFFLE_ON
    assert finding.message == f"{FindingKind.SHUFFLE_ON.problem} Found: the iterator was made with shuffle=True."
    assert finding.fix == f"{FindingKind.SHUFFLE_ON.fix} Here: flow_from_directory(..., shuffle=False)."
    plain = FindingKind.GENERATOR_WITH_WORKERS.found(Evidence("a plain generator shared by 4 workers"))
    assert plain.fix == FindingKind.GENERATOR_WITH_WORKERS.fix  # no source-specific fix: the general one alone


def test_an_audit_lists_its_codes_in_order_and_is_ok_only_without_findings():
    drop = FindingKind.STEPS_DROP_SAMPLES.found(Evidence("steps=9 x batch size 32 = 288 < 300 samples"))
    audit = DataSourceAudit("iterator", 300, 32, (drop, FindingKind.AUGMENTATION_ON.found(Evidence("flips"))))
    assert audit.codes() == ["steps-drop-samples", "augmentation-on"] and not audit.ok
    assert DataSourceAudit("arrays", 10, None, ()).ok
    assert isinstance(drop, AuditFinding)


def test_the_example_is_valid_python_calling_the_audit():
    compile(AUDIT_EXAMPLE, "example", "exec")
    assert "audit_data_source(" in AUDIT_EXAMPLE and "shuffle=False" in AUDIT_EXAMPLE
