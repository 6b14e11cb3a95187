"""Risk class from entry criteria held as data (DOMAIN-RULES §A rule 4: categories and their
criteria are configuration). Pure: facts and criteria in, class and the criteria met out."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from server.modules.directory.models import RiskClass

CRITERIA_FILE = Path(__file__).with_name("risk_criteria.json")


@lru_cache(maxsize=1)
def default_criteria() -> dict[str, Any]:
    return json.loads(CRITERIA_FILE.read_text(encoding="utf-8"))


def _met(condition: dict[str, Any], facts: dict[str, Any]) -> bool:
    if condition.get("always"):
        return True
    value = facts.get(condition["fact"])
    if "equals" in condition:
        return bool(value == condition["equals"])
    if "in" in condition:
        return value in condition["in"]
    if "at_least" in condition:
        return value is not None and value >= condition["at_least"]
    raise ValueError(f"unknown condition {condition}")


def classify(facts: dict[str, Any], criteria: dict[str, Any] | None = None) -> tuple[RiskClass, list[str]]:
    """The first class in ``order`` with a criterion met, and the labels of the criteria met."""
    criteria = criteria or default_criteria()
    for name in criteria["order"]:
        labels = [c["label"] for c in criteria["classes"][name]["any_of"] if _met(c, facts)]
        if labels:
            return RiskClass(name), labels
    raise ValueError("criteria have no catch-all class")
