"""Loading benchmark versions, finding the one in force, recording a calculation on a case."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.canonical import canonical_json
from server.modules.audit import operations as audit
from server.modules.discretion import calculator as calc
from server.modules.discretion.models import DiscretionBenchmark, DiscretionRecord

VersionExists = errors.error_code("discretion.version_exists", 409, "该裁量基准版本已存在",
                                  "That benchmark version is already loaded")
SHIPPED = Path(__file__).with_name("benchmarks")


def load(session: Session, data: Mapping[str, Any], *, loaded_by: str) -> DiscretionBenchmark:
    """Store a new benchmark version (行政处罚法 第34条: benchmarks are published and versioned by
    effective date). A loaded version is never changed; a revision is a new version."""
    bench = calc.parse(data)
    exists = session.scalar(sa.select(DiscretionBenchmark.id).where(
        DiscretionBenchmark.violation_code == bench.violation_code, DiscretionBenchmark.version == bench.version))
    if exists:
        raise VersionExists(violation_code=bench.violation_code, version=bench.version)
    body = canonical_json(dict(data))
    row = DiscretionBenchmark(violation_code=bench.violation_code, version=bench.version,
                              effective_from=bench.effective_from, effective_until=bench.effective_until,
                              method=bench.method.value, legal_basis=bench.legal_basis, data=json.loads(body),
                              sha256=hashlib.sha256(body).hexdigest(), loaded_by=loaded_by)
    session.add(row)
    session.flush()
    audit.record(session, "admin:discretion_benchmark:loaded", subjects={"discretion_benchmark": row.id},
                 payload={"violation_code": row.violation_code, "version": row.version, "sha256": row.sha256,
                          "effective_from": row.effective_from.isoformat()})
    return row


def load_shipped(session: Session, *, loaded_by: str = "console") -> list[DiscretionBenchmark]:
    """Load the benchmarks shipped with the code that are not loaded yet (idempotent)."""
    loaded = []
    for path in sorted(SHIPPED.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if session.scalar(sa.select(DiscretionBenchmark.id).where(
                DiscretionBenchmark.violation_code == data["violation_code"],
                DiscretionBenchmark.version == str(data["version"]))) is None:
            loaded.append(load(session, data, loaded_by=loaded_by))
    return loaded


_PARSED: dict[tuple[int, str], calc.Benchmark] = {}


def parsed(row: DiscretionBenchmark) -> calc.Benchmark:
    key = (row.id, row.sha256)
    if key not in _PARSED:
        _PARSED[key] = calc.parse(row.data)
    return _PARSED[key]


def versions(session: Session, violation_code: str) -> list[DiscretionBenchmark]:
    return list(session.scalars(sa.select(DiscretionBenchmark).where(
        DiscretionBenchmark.violation_code == violation_code).order_by(DiscretionBenchmark.effective_from)))


def in_force(session: Session, violation_code: str, day: dt.date) -> DiscretionBenchmark:
    """DOMAIN-RULES rule 38: the version in force on ``day``."""
    rows = versions(session, violation_code)
    chosen = calc.in_force([parsed(r) for r in rows], violation_code, day)
    return next(r for r in rows if r.version == chosen.version)


def calculate(session: Session, *, case_id: str, violation_code: str, on: dt.date,
              inputs: Mapping[str, Mapping[str, Any]], corrections: Iterable[str] = (),
              circumstance: str = "ordinary", reduction: Mapping[str, Any] | None = None,
              version: str | None = None, by_user_id: int | None = None) -> DiscretionRecord:
    """Record a calculation with the benchmark in force on ``on`` (rule 38). Naming a ``version`` that
    is not the one in force is refused (行政处罚法 第34条). A later calculation supersedes this one."""
    row = in_force(session, violation_code, on)
    if version is not None and version != row.version:
        named = next((r for r in versions(session, violation_code) if r.version == version), None)
        raise calc.NotInForce(version=version, date=on.isoformat(), in_force=row.version,
                              known=named is not None)
    result = calc.calculate(parsed(row), inputs, corrections=corrections, circumstance=circumstance,
                            reduction=reduction)
    previous = latest(session, case_id)
    record = DiscretionRecord(case_id=case_id, benchmark_id=row.id, amount=result.amount, method=result.method,
                              formula_version=result.formula_version, calculated_on=on, result=result.as_dict(),
                              by_user_id=by_user_id, supersedes_id=previous.id if previous else None)
    session.add(record)
    session.flush()
    audit.record(session, "web:discretion:calculated", subjects={"case": case_id, "discretion_record": record.id},
                 payload={"benchmark": f"{row.violation_code}@{row.version}", "amount": result.amount,
                          "method": result.method, "clamped": result.clamped, "reduction": result.reduction,
                          "factors": {f["code"]: [f["level"], f["evidence"]] for f in result.factors}})
    return record


def latest(session: Session, case_id: str) -> DiscretionRecord | None:
    return session.scalar(sa.select(DiscretionRecord).where(DiscretionRecord.case_id == case_id)
                          .order_by(DiscretionRecord.id.desc()).limit(1))


def benchmark_of(session: Session, record: DiscretionRecord) -> DiscretionBenchmark:
    return session.get(DiscretionBenchmark, record.benchmark_id)  # type: ignore[return-value]
