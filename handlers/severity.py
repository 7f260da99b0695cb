"""Severity from rules.yaml: start at the kind's base (or at nothing), thresholds can only raise it."""
from collections.abc import Mapping

from schemas.config import KindRule
from schemas.enums import Severity

# Measures are differences and ratios of decimal readings (4.2 m - 4.5 m = -0.2999..., 1.2 - 1.5 =
# -0.30000000000000004): a reading exactly at a threshold must reach it whatever the float rounding.
EPSILON = 1e-9


def grade(rule: KindRule, measures: Mapping[str, float | None]) -> Severity | None:
    """None: below every threshold of a kind whose base is `none`, so not an incident at all."""
    severity = rule.base
    for threshold in rule.thresholds:
        value = measures.get(threshold.measure)
        if value is not None and value >= threshold.at_least - EPSILON:
            severity = threshold.severity if severity is None else severity.raise_to(threshold.severity)
    return severity
