"""Discretion calculator (行政处罚自由裁量权基准): pure functions, no database.

A benchmark (``Benchmark``) is data: the violation type, its statutory basis and fine range, the
factors with their levels (and the evidence each level needs), the combination method, the
aggravating/mitigating corrections, version and effective date. ``calculate`` turns factor
levels into a fine and returns everything needed to record and review it (DOMAIN-RULES rule 38).

Methods (DOMAIN-RULES §F rule 36 and §2):
- ``WEIGHT_SUM``: fine = clamp(min(100%, start + Σ weights) × statutory max) — 广东 第6条.
- ``TWO_DIM``: S = mean individual level, C = mean common level, X = S × C ∈ [1, 25],
  p = (X − 1)/24, fine = min + p × (max − min) — placeholder for the MEE 二维叠加 [R].
- ``RANGE_MIDPOINT``: ordinary = midpoint, lighter < midpoint, aggravated ≥ midpoint; with only
  a maximum lighter = 20 %, ordinary = 50 % of it; with only a minimum ordinary = 2×, aggravated
  = 5× — 广东 第12条.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping

from server.core import errors

BenchmarkInvalid = errors.error_code("discretion.benchmark_invalid", 422, "裁量基准数据格式错误",
                                     "The discretion benchmark data is malformed")
FactorMissing = errors.error_code("discretion.factor_invalid", 422, "裁量因素或等级不在基准中",
                                  "A factor or level is not in the benchmark")
ReductionWithoutBasis = errors.error_code(
    "discretion.reduction_without_basis", 422,
    "罚款低于法定最低额须有减轻处罚的法定依据并经集体讨论（行政处罚法第32条）",
    "A fine below the statutory minimum needs a recorded legal basis for reduction (Administrative Penalty Law art. 32)")
NotInForce = errors.error_code("discretion.benchmark_not_in_force", 422,
                               "该裁量基准版本在决定日期不生效（行政处罚法第34条；DOMAIN-RULES 第38条）",
                               "That benchmark version is not in force on the decision date (Administrative Penalty Law art. 34)")
NoBenchmark = errors.error_code("discretion.no_benchmark", 404, "没有适用的裁量基准", "No discretion benchmark applies")


class Method(str, enum.Enum):
    WEIGHT_SUM = "WEIGHT_SUM"
    TWO_DIM = "TWO_DIM"
    RANGE_MIDPOINT = "RANGE_MIDPOINT"


FORMULA_VERSION = {Method.WEIGHT_SUM: "weight-sum/1", Method.TWO_DIM: "two-dim-placeholder/1",
                   Method.RANGE_MIDPOINT: "range-midpoint/1"}


@dataclass(frozen=True)
class Level:
    level: int
    label: str
    weight: Decimal = Decimal(0)
    evidence: str = ""  # what proves this level (证据要求)
    min: float | None = None  # numeric value bands: min <= value < max
    max: float | None = None


@dataclass(frozen=True)
class Factor:
    code: str
    name_zh: str
    group: str  # individual | common
    levels: tuple[Level, ...]

    def lowest(self) -> Level:
        return min(self.levels, key=lambda lv: lv.level)

    def by_level(self, level: int) -> Level:
        for lv in self.levels:
            if lv.level == level:
                return lv
        raise FactorMissing(factor=self.code, level=level)

    def by_value(self, value: float) -> Level:
        for lv in self.levels:
            if (lv.min is None or value >= lv.min) and (lv.max is None or value < lv.max):
                return lv
        raise FactorMissing(factor=self.code, value=value)


@dataclass(frozen=True)
class Correction:
    code: str
    name_zh: str
    kind: str  # aggravating | mitigating
    adjust: Decimal  # WEIGHT_SUM: added weight; TWO_DIM: added to p; RANGE_MIDPOINT: sets circumstance
    source: str


@dataclass(frozen=True)
class Benchmark:
    violation_code: str
    name_zh: str
    legal_basis: str
    version: str
    effective_from: dt.date
    effective_until: dt.date | None
    source: str
    method: Method
    stat_min: int | None
    stat_max: int | None
    rounding: int
    start_weight: Decimal
    factors: tuple[Factor, ...]
    corrections: tuple[Correction, ...]
    positions: Mapping[str, Decimal] = field(default_factory=dict)

    def factor(self, code: str) -> Factor:
        for f in self.factors:
            if f.code == code:
                return f
        raise FactorMissing(factor=code)

    def in_force_on(self, day: dt.date) -> bool:
        return self.effective_from <= day and (self.effective_until is None or day <= self.effective_until)


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def parse(data: Mapping[str, Any]) -> Benchmark:
    """Benchmark from its JSON form; any missing or wrong field raises ``discretion.benchmark_invalid``."""
    try:
        method = Method(data["method"])
        factors = tuple(
            Factor(code=f["code"], name_zh=f["name_zh"], group=f.get("group", "individual"),
                   levels=tuple(Level(level=int(lv["level"]), label=lv["label"], weight=_dec(lv.get("weight", 0)),
                                      evidence=lv.get("evidence", ""), min=lv.get("min"), max=lv.get("max"))
                                for lv in f["levels"]))
            for f in data.get("factors", []))
        corrections = tuple(Correction(code=c["code"], name_zh=c["name_zh"], kind=c["kind"], adjust=_dec(c["adjust"]),
                                       source=c["source"]) for c in data.get("corrections", []))
        bench = Benchmark(
            violation_code=data["violation_code"], name_zh=data["name_zh"], legal_basis=data["legal_basis"],
            version=str(data["version"]), effective_from=dt.date.fromisoformat(data["effective_from"]),
            effective_until=dt.date.fromisoformat(data["effective_until"]) if data.get("effective_until") else None,
            source=data["source"], method=method, stat_min=data.get("stat_min"), stat_max=data.get("stat_max"),
            rounding=int(data.get("rounding", 1)), start_weight=_dec(data.get("start_weight", 0)),
            factors=factors, corrections=corrections,
            positions={k: _dec(v) for k, v in data.get("positions", {}).items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchmarkInvalid(str(exc)) from None
    problems = []
    if bench.stat_min is None and bench.stat_max is None:
        problems.append("stat_min or stat_max is required")
    if bench.stat_min is not None and bench.stat_max is not None and bench.stat_min > bench.stat_max:
        problems.append("stat_min > stat_max")
    if method is Method.TWO_DIM and (bench.stat_min is None or bench.stat_max is None
                                     or not {f.group for f in factors} >= {"individual", "common"}):
        problems.append("TWO_DIM needs both bounds and individual and common factors")
    if method is Method.WEIGHT_SUM and bench.stat_max is None:
        problems.append("WEIGHT_SUM needs stat_max")
    for f in factors:
        if len({lv.level for lv in f.levels}) != len(f.levels) or not f.levels:
            problems.append(f"factor {f.code}: levels must be distinct and non-empty")
    if problems:
        raise BenchmarkInvalid("; ".join(problems))
    return bench


@dataclass
class Result:
    amount: int  # the fine to propose, whole yuan
    raw_amount: Decimal  # before rounding and clamping
    method: str
    formula_version: str
    benchmark_version: str
    violation_code: str
    legal_basis: str
    stat_min: int | None
    stat_max: int | None
    factors: list[dict[str, Any]]
    corrections: list[dict[str, Any]]
    clamped: str | None = None  # "up_to_min" | "down_to_max"
    reduction: dict[str, Any] | None = None  # 减轻处罚: basis and amount (needs collective discussion)
    trace: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["raw_amount"] = str(self.raw_amount)
        return data


def _round(value: Decimal, step: int) -> int:
    return int((value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step)


def calculate(bench: Benchmark, inputs: Mapping[str, Mapping[str, Any]], *, corrections: Iterable[str] = (),
              circumstance: str = "ordinary", reduction: Mapping[str, Any] | None = None) -> Result:
    """Fine for one violation.

    ``inputs``: factor code → {"level": n} or {"value": x}, plus "evidence" (a reference). A factor
    without evidence, or not given, takes its lowest level (广东 第5条). The result is clamped to the
    statutory range (DOMAIN-RULES rule 38) unless ``reduction`` = {"basis", "amount"} records a
    reasoned 减轻处罚 (行政处罚法 第32条); a reduction without a basis is refused.
    """
    chosen: list[tuple[Factor, Level, dict[str, Any]]] = []
    unknown = set(inputs) - {f.code for f in bench.factors}
    if unknown:
        raise FactorMissing(factors=sorted(unknown))
    for factor in bench.factors:
        given = inputs.get(factor.code) or {}
        evidence = given.get("evidence")
        if not evidence:
            level, note = factor.lowest(), "no evidence: lowest level (广东 第5条)"
        elif "level" in given:
            level, note = factor.by_level(int(given["level"])), ""
        elif "value" in given:
            level, note = factor.by_value(float(given["value"])), f"value {given['value']}"
        else:
            level, note = factor.lowest(), "no level: lowest level"
        chosen.append((factor, level, {"code": factor.code, "name_zh": factor.name_zh, "group": factor.group,
                                       "level": level.level, "label": level.label, "weight": str(level.weight),
                                       "evidence": evidence, "evidence_required": level.evidence, "note": note}))
    applied = []
    by_code = {c.code: c for c in bench.corrections}
    for code in corrections:
        if code not in by_code:
            raise FactorMissing(correction=code)
        applied.append(by_code[code])
    trace: dict[str, str] = {}

    if bench.method is Method.WEIGHT_SUM:
        total = bench.start_weight + sum((lv.weight for _, lv, _ in chosen), Decimal(0)) + sum(
            (c.adjust for c in applied), Decimal(0))
        total = max(Decimal(0), min(Decimal(1), total))
        raw = total * bench.stat_max  # type: ignore[operator]
        trace = {"start": str(bench.start_weight), "sum": str(total)}
    elif bench.method is Method.TWO_DIM:
        ind = [lv.level for f, lv, _ in chosen if f.group == "individual"]
        com = [lv.level for f, lv, _ in chosen if f.group == "common"]
        s = Decimal(sum(ind)) / len(ind)
        c = Decimal(sum(com)) / len(com)
        x = s * c
        p = (x - 1) / 24 + sum((c_.adjust for c_ in applied), Decimal(0))
        p = max(Decimal(0), min(Decimal(1), p))
        raw = bench.stat_min + p * (bench.stat_max - bench.stat_min)  # type: ignore[operator]
        trace = {"S": str(s), "C": str(c), "X": str(x), "p": str(p)}
    else:
        for c_ in applied:
            circumstance = "aggravated" if c_.kind == "aggravating" else "lighter"
        raw = _range_position(bench, circumstance)
        trace = {"circumstance": circumstance}

    amount = _round(raw, bench.rounding)
    clamped = None
    reduced = None
    if bench.stat_max is not None and amount > bench.stat_max:
        amount, clamped = bench.stat_max, "down_to_max"
    if reduction is not None:
        if not reduction.get("basis"):
            raise ReductionWithoutBasis()
        reduced_amount = int(reduction["amount"])
        if bench.stat_min is not None and reduced_amount >= bench.stat_min:
            raise ReductionWithoutBasis("减轻处罚的罚款应低于法定最低额 / a reduced fine lies below the statutory minimum")
        amount = reduced_amount
        reduced = {"basis": reduction["basis"], "amount": reduced_amount, "needs_collective_discussion": True}
    elif bench.stat_min is not None and amount < bench.stat_min:
        amount, clamped = bench.stat_min, "up_to_min"
    return Result(amount=amount, raw_amount=raw, method=bench.method.value,
                  formula_version=FORMULA_VERSION[bench.method], benchmark_version=bench.version,
                  violation_code=bench.violation_code, legal_basis=bench.legal_basis,
                  stat_min=bench.stat_min, stat_max=bench.stat_max, factors=[d for _, _, d in chosen],
                  corrections=[{"code": c.code, "kind": c.kind, "adjust": str(c.adjust), "source": c.source}
                               for c in applied],
                  clamped=clamped, reduction=reduced, trace=trace)


def _range_position(bench: Benchmark, circumstance: str) -> Decimal:
    """广东 第12条 fallback positions; ``positions`` in the data may override the shares."""
    lo, hi = bench.stat_min, bench.stat_max
    shares = {"lighter": Decimal("0.25"), "ordinary": Decimal("0.5"), "aggravated": Decimal("0.75"),
              **bench.positions}
    if circumstance not in shares:
        raise FactorMissing(circumstance=circumstance)
    if lo is not None and hi is not None:
        return lo + shares[circumstance] * (hi - lo)
    if hi is not None:
        return hi * {"lighter": Decimal("0.2"), "ordinary": Decimal("0.5"), "aggravated": Decimal(1)}[circumstance]
    return lo * {"lighter": Decimal(1), "ordinary": Decimal(2), "aggravated": Decimal(5)}[circumstance]  # type: ignore[operator]


def in_force(benchmarks: Iterable[Benchmark], violation_code: str, day: dt.date) -> Benchmark:
    """The version in force on ``day`` (rule 38): the latest effective_from not after it."""
    candidates = [b for b in benchmarks if b.violation_code == violation_code and b.in_force_on(day)]
    if not candidates:
        raise NoBenchmark(violation_code=violation_code, date=day.isoformat())
    return max(candidates, key=lambda b: b.effective_from)


def require_in_force(bench: Benchmark, day: dt.date, current: Benchmark | None = None) -> None:
    """DOMAIN-RULES rule 38: the benchmark version in force on the decision date applies."""
    if not bench.in_force_on(day) or (current is not None and current.version != bench.version):
        raise NotInForce(version=bench.version, date=day.isoformat(),
                         in_force=current.version if current is not None else None)
