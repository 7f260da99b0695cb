"""Severity from rules.yaml: start at the kind's base, thresholds can only raise it."""
from collections.abc import Mapping

from schemas.config import KindRule
from schemas.enums import Severity


def grade(rule: KindRule, measures: Mapping[str, float | None]) -> Severity:
    severity = rule.base
    for threshold in rule.thresholds:
        value = measures.get(threshold.measure)
        if value is not None and value >= threshold.at_least:
            severity = severity.raise_to(threshold.severity)
    return severity
