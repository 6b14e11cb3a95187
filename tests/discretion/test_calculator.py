"""The pure discretion calculator against DOMAIN-RULES §2 worked examples, exactly."""
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from server.modules.discretion import calculator as calc

DATA = Path(calc.__file__).with_name("benchmarks")


def bench(name):
    return calc.parse(json.loads((DATA / name).read_text(encoding="utf-8")))


AIR_W = bench("air-99-2.weight-sum.json")
AIR_L = bench("air-99-2.two-dim.json")
HW = bench("solid-waste-112.range.json")
WATER = bench("water-83.weight-sum.json")
EV = "ev-monitoring-1"

# The brick kiln of §2: NOx 60 % over, 30,000 Nm³/h, mixed residential area, normal period,
# second violation in two years, pollution confined to the county.
KILN_W = {"exceedance": {"value": 60, "evidence": EV}, "location": {"level": 3, "evidence": "ev-zoning"},
          "violations_2y": {"value": 2, "evidence": "ev-record"}, "period": {"level": 1, "evidence": "n/a"}}
KILN_L = {"location": {"level": 3, "evidence": "ev-zoning"}, "gas_type": {"level": 3, "evidence": "ev-permit"},
          "exceedance": {"value": 60, "evidence": EV}, "flow": {"value": 30000, "evidence": EV},
          "period": {"level": 1, "evidence": "n/a"}, "violations_2y": {"value": 2, "evidence": "ev-record"},
          "regional_impact": {"level": 1, "evidence": "ev-report"}}


@pytest.mark.parametrize("name, benchmark, inputs, corrections, amount, raw, clamped", [
    # Example 1: 10 % start + 10 % exceedance + 0 % location + 5 % repeat = 25 % × 1,000,000
    ("example 1", AIR_W, KILN_W, (), 250_000, "250000", None),
    # Example 1 during a heavy-pollution alert: +15 % → 40 %
    ("example 1 alert", AIR_W, KILN_W, ("heavy_pollution_alert",), 400_000, "400000", None),
    # Example 1 shape with a sum of 5 % (minimal facts, mitigated): 50,000 is clamped up to the minimum
    ("example 1 clamp", AIR_W, {**KILN_W, "exceedance": {"value": 5, "evidence": EV},
                                 "violations_2y": {"value": 1, "evidence": "r"}}, ("actively_removed_harm",),
     100_000, "50000", "up_to_min"),
    # Example 2: S = 2.6, C = 1.5, X = 3.9, p = 0.1208…, 208,750 → 209,000 (rounded to 1,000)
    ("example 2", AIR_L, KILN_L, (), 209_000, "208750", None),
    # Example 2 during an alert: period level 5 → S = 3.4, X = 5.1, 253,750
    ("example 2 alert", AIR_L, {**KILN_L, "period": {"level": 5, "evidence": "ev-alert"}}, (), 254_000, "253750", None),
])
def test_worked_examples(name, benchmark, inputs, corrections, amount, raw, clamped):
    result = calc.calculate(benchmark, inputs, corrections=corrections)
    assert result.amount == amount, name
    assert result.raw_amount == Decimal(raw), (name, result.raw_amount)
    assert result.clamped == clamped
    assert result.benchmark_version == benchmark.version and result.formula_version


def test_example_2_trace_shows_s_c_x():
    trace = calc.calculate(AIR_L, KILN_L).trace
    assert (Decimal(trace["S"]), Decimal(trace["C"]), Decimal(trace["X"])) == (
        Decimal("2.6"), Decimal("1.5"), Decimal("3.9"))


def test_shaoxing_weights_without_start_point():
    # §2: medium impact 6 % + 4 months 5 % + second violation 5 % + verified complaint 15 % = 31 % of 100,000
    shaoxing = calc.parse({
        "violation_code": "sx", "name_zh": "绍兴示例", "legal_basis": "示例", "version": "t", "effective_from": "2020-01-01",
        "source": "绍兴 [S]", "method": "WEIGHT_SUM", "stat_min": 30000, "stat_max": 100000, "factors": [
            {"code": "impact", "name_zh": "影响", "levels": [{"level": 1, "label": "小", "weight": 0},
                                                         {"level": 2, "label": "中", "weight": 0.06}]},
            {"code": "duration", "name_zh": "持续", "levels": [{"level": 1, "label": "<3", "weight": 0},
                                                           {"level": 2, "label": "3–6", "weight": 0.05}]},
            {"code": "repeat", "name_zh": "次数", "levels": [{"level": 1, "label": "1", "weight": 0},
                                                         {"level": 2, "label": "2", "weight": 0.05}]},
            {"code": "complaint", "name_zh": "投诉", "levels": [{"level": 1, "label": "无", "weight": 0},
                                                            {"level": 2, "label": "有", "weight": 0.15}]}]})
    result = calc.calculate(shaoxing, {k: {"level": 2, "evidence": "e"} for k in ("impact", "duration", "repeat", "complaint")})
    assert result.amount == 31_000 and result.clamped is None


def test_factor_without_evidence_takes_the_lowest_level():
    result = calc.calculate(AIR_W, {**KILN_W, "exceedance": {"value": 150}})
    factor = next(f for f in result.factors if f["code"] == "exceedance")
    assert factor["level"] == 1 and "lowest" in factor["note"]
    assert result.amount == 150_000  # 10 % + 0 + 0 + 5 %


def test_range_midpoint_positions():
    assert calc.calculate(HW, {}).amount == 550_000
    assert calc.calculate(HW, {}, corrections=["repeat_3_in_2y"]).amount == 775_000
    assert calc.calculate(HW, {}, corrections=["actively_removed_harm"]).amount == 325_000
    only_max = calc.parse({**json.loads((DATA / "solid-waste-112.range.json").read_text()), "stat_min": None,
                           "positions": {}})
    assert calc.calculate(only_max, {}).amount == 500_000
    assert calc.calculate(only_max, {}, circumstance="lighter").amount == 200_000


def test_reduction_below_minimum_needs_a_basis():
    with pytest.raises(calc.ReductionWithoutBasis):
        calc.calculate(AIR_W, KILN_W, reduction={"amount": 50_000, "basis": ""})
    result = calc.calculate(AIR_W, KILN_W, reduction={"amount": 50_000, "basis": "行政处罚法 第32条第1项: 主动消除危害后果"})
    assert result.amount == 50_000 and result.reduction["needs_collective_discussion"]


def test_version_in_force_on_a_date():
    assert calc.in_force([AIR_W, AIR_L], "air_99_2", dt.date(2026, 3, 1)) is AIR_W
    assert calc.in_force([AIR_W, AIR_L], "air_99_2", dt.date(2026, 7, 1)) is AIR_L
    with pytest.raises(calc.NoBenchmark):
        calc.in_force([AIR_W, AIR_L], "air_99_2", dt.date(2025, 12, 31))
    with pytest.raises(calc.NotInForce):
        calc.require_in_force(AIR_W, dt.date(2026, 7, 2))


def test_water_benchmark_and_bad_data():
    result = calc.calculate(WATER, {"exceedance": {"value": 120, "evidence": "e"},
                                    "receiving_water": {"level": 5, "evidence": "e"}})
    assert result.amount == 440_000  # 10 % + 16 % + 18 %
    with pytest.raises(calc.BenchmarkInvalid):
        calc.parse({"violation_code": "x"})
    with pytest.raises(calc.FactorMissing):
        calc.calculate(WATER, {"nope": {"level": 1, "evidence": "e"}})
