"""Rules as data: a tiny predicate language over a flat dict of case facts (pure, no database).

A predicate is ``{"field": f, "op": op, "value": v}`` or ``{"all": [...]}`` / ``{"any": [...]}``.
Ops: ``==``, ``>=``, ``>``, ``<=``, ``in``, ``intersects`` (list field shares an element with v),
``max_of>=`` (largest value among keys v["keys"] of a dict field is ≥ v["min"]).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping


def holds(predicate: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    if "all" in predicate:
        return all(holds(p, facts) for p in predicate["all"])
    if "any" in predicate:
        return any(holds(p, facts) for p in predicate["any"])
    value, op, expected = facts.get(predicate["field"]), predicate["op"], predicate.get("value")
    if op == "==":
        return bool(value == expected)
    if value is None:
        return False
    if op == ">=":
        return bool(value >= expected)
    if op == ">":
        return bool(value > expected)
    if op == "<=":
        return bool(value <= expected)
    if op == "in":
        return value in expected
    if op == "intersects":
        return bool(set(value) & set(expected))
    if op == "max_of>=":
        numbers = [float(value[k]) for k in expected["keys"] if isinstance(value, dict) and value.get(k) is not None]
        return bool(numbers) and max(numbers) >= expected["min"]
    raise ValueError(f"unknown predicate op {op!r}")


def evaluate(rules: list[Mapping[str, Any]], facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rules that hold, each as {code, name_zh, source}."""
    return [{"code": r["code"], "name_zh": r["name_zh"], "source": r["source"]}
            for r in rules if holds(r["predicate"], facts)]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
