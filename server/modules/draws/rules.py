"""Sampling rules as data: which rule applies, and the default rules with their sources. Pure
except ``load_defaults``, which writes the shipped rules (DOMAIN-RULES §A rule 5) once."""
from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.modules.audit import operations as audit
from server.modules.directory.models import RiskClass
from server.modules.draws.models import Basis, Level, Period, SamplingRule

DEFAULTS_FILE = Path(__file__).with_name("default_rules.json")
CITY = "611000"


@dataclass(frozen=True)
class RuleView:
    """The fields of a rule that selection and the draw need (so selection is testable without a DB)."""

    id: int | None
    level: str
    region_code: str
    category: str
    effective_from: dt.date
    effective_until: dt.date | None


def applies(rule: RuleView, level: str, region: str, category: str, on: dt.date) -> bool:
    return (rule.level == level and rule.category == category and rule.region_code in (region, CITY)
            and rule.effective_from <= on and (rule.effective_until is None or on <= rule.effective_until))


def pick(rules: Iterable[Any], level: str, region: str, category: str, on: dt.date) -> Any | None:
    """The rule in force on ``on``: a region's own rule beats the city-wide one; among those, the
    latest ``effective_from`` wins (a new version supersedes the old one from its date)."""
    candidates = [r for r in rules if applies(r, level, region, category, on)]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r.region_code == region, r.effective_from))


def months_back(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_start(day: dt.date, period: Period, back: int = 0) -> dt.date:
    """First day of the period containing ``day``, ``back`` periods earlier."""
    if period is Period.MONTH:
        return months_back(dt.date(day.year, day.month, 1), back)
    if period is Period.QUARTER:
        return months_back(dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1), 3 * back)
    return dt.date(day.year - back, 1, 1)


def to_document(rule: SamplingRule) -> dict[str, Any]:
    """A rule as the draw document carries it (decimals as exact strings)."""
    return {"rule_id": rule.id, "basis": rule.basis.value, "value": _dec(rule.value),
            "positive_list_factor": _dec(rule.positive_list_factor), "period": rule.period.value,
            "source": rule.source}


def _dec(value: decimal.Decimal) -> str:
    text = format(decimal.Decimal(value).normalize(), "f")
    return text


def load_defaults(session: Session) -> int:
    """Write the shipped default rules if no rule exists yet; returns the number written."""
    if session.scalar(sa.select(sa.func.count(SamplingRule.id))):
        return 0
    data = json.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
    start = dt.date.fromisoformat(data["effective_from"])
    rows = []
    for spec in data["rules"]:
        rows.append(SamplingRule(
            level=Level(spec["level"]), region_code=spec["region_code"], category=RiskClass(spec["category"]),
            basis=Basis(spec["basis"]), value=decimal.Decimal(spec["value"]), period=Period(spec["period"]),
            positive_list_factor=decimal.Decimal(spec["positive_list_factor"]),
            exclude_recent_periods=spec["exclude_recent_periods"], cap_per_year=spec["cap_per_year"],
            coverage_goal=spec["coverage_goal"], effective_from=start, source=spec["source"]))
    session.add_all(rows)
    session.flush()
    audit.record(session, "draws:sampling_rule:defaults_loaded", subjects=[("sampling_rule", r.id) for r in rows],
                 payload={"file": DEFAULTS_FILE.name, "rules": len(rows), "effective_from": start.isoformat()})
    return len(rows)
