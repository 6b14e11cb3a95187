"""The pure draw algorithm: table-driven, no database."""
import copy
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from server.modules.draws import algorithm as A

REGIONS = ["611002", "611021", "611022"]


def make_doc(n_targets=300, n_inspectors=30, conflicts=(), rules=None, options=None, secrets=("a" * 32, "b" * 32),
             public_value="2026-11-30 福彩3D 123", inspectors=None):
    targets = [[i, f"U{i:017d}", REGIONS[i % 3], ("key", "general", "special")[i % 7 % 3], i % 11 == 0]
               for i in range(1, n_targets + 1)]
    inspectors = inspectors or [[1000 + j, f"CERT{j}", REGIONS[j % 3]] for j in range(n_inspectors)]
    parties = [f"user:{k}" for k in range(1, len(secrets) + 1)]
    doc = {
        "format": A.FORMAT, "algorithm_version": A.ALGORITHM_VERSION, "draw_id": "draw-1",
        "targets": targets, "inspectors": inspectors, "conflicts": sorted([list(c) for c in conflicts]),
        "rules": rules if rules is not None else {f"{r}|{c}": {"basis": "percent", "value": "10",
                                                             "positive_list_factor": "0.5"}
                                                  for r in REGIONS for c in ("key", "general", "special")},
        "options": {"team_size": 2, "cross_region": False, "local_regions": [], "joint_agencies": [],
                    **(options or {})},
        "commitments": [{"party": p, "commitment": A.commitment("draw-1", p, s)} for p, s in zip(parties, secrets)],
        "reveals": [{"party": p, "secret": s} for p, s in zip(parties, secrets)],
        "public_value": public_value,
    }
    return A.run(doc)


def test_stream_known_answer():
    """Pins the stream: changing it silently would make published draws unverifiable."""
    stream = A.Stream("00" * 32, "targets|611002|key|0")
    first = [stream.word() for _ in range(5)]
    assert first == _KNOWN_WORDS
    assert [A.Stream("00" * 32, "x").below(10) for _ in range(3)] == [A.Stream("00" * 32, "x").below(10)] * 3


_KNOWN_WORDS = [12121276348354006603, 15846994219926248235, 8164064324173575403, 3761075312717002005,
                16811055646697865967]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 1000, 2**33 + 1])
def test_below_stays_in_range_and_is_roughly_uniform(n):
    stream = A.Stream("11" * 32, f"t{n}")
    values = [stream.below(n) for _ in range(2000)]
    assert all(0 <= v < n for v in values)
    if n == 7:
        counts = Counter(values)
        assert set(counts) == set(range(7)) and max(counts.values()) < 2 * min(counts.values())


def test_same_inputs_same_result_and_any_secret_changes_it():
    one, two = make_doc(), make_doc()
    assert one["result"] == two["result"] and one["seed"] == two["seed"]
    other = make_doc(secrets=("a" * 32, "c" * 32))
    assert other["seed"] != one["seed"] and other["result"] != one["result"]
    assert make_doc(public_value="124")["result"] != one["result"]


@pytest.mark.parametrize("rule,listed_factor,expected", [
    ({"basis": "percent", "value": "10"}, "1", {"0": 10, "1": 1}),  # ceil(91*10%)=10, ceil(9*10%)=1
    ({"basis": "percent", "value": "10"}, "0", {"0": 10}),  # positive list left out
    ({"basis": "percent", "value": "12.5"}, "0.5", {"0": 12, "1": 1}),
    ({"basis": "fixed", "value": "4"}, "1", {"0": 4}),
    ({"basis": "ratio", "value": "0.5"}, "1", {"0": 5}),  # 10 inspectors in the region × 0.5
])
def test_quotas_follow_the_rules(rule, listed_factor, expected):
    # region 611002 holds 100 targets, 9 of them on the positive list (ids divisible by 11 and by 3)
    rules = {"611002|general": {**rule, "positive_list_factor": listed_factor}}
    targets = [[i, f"U{i}", "611002", "general", i % 11 == 0 and i <= 99] for i in range(1, 101)]
    doc = {"targets": targets, "inspectors": [[j, "c", "611002"] for j in range(10)], "rules": rules}
    got = {key.rsplit("|", 1)[1]: quota for key, (_, quota) in A.quotas(doc).items()}
    assert got == expected


def test_fixed_rule_asking_for_more_targets_than_exist_is_an_error():
    with pytest.raises(A.DrawError) as exc:
        make_doc(rules={"611002|key": {"basis": "fixed", "value": "1000"}})
    assert exc.value.code == "draw.not_enough_targets"


def test_teams_are_two_distinct_admissible_inspectors_with_balanced_load():
    conflicts = {(1000 + j, t) for t in range(1, 300, 5) for j in range(0, 30, 4)}
    doc = make_doc(conflicts=conflicts)
    region_of = {row[0]: row[2] for row in doc["inspectors"]}
    target_region = {row[0]: row[2] for row in doc["targets"]}
    load = Counter()
    for a in doc["result"]["assignments"]:
        assert len(set(a["team"])) == 2
        assert all((i, a["target"]) not in conflicts for i in a["team"])
        assert all(region_of[i] == target_region[a["target"]] for i in a["team"])
        load.update(a["team"])
    for region in REGIONS:
        counts = [load[i] for i, r in region_of.items() if r == region]
        assert max(counts) - min(counts) <= 2


def test_city_inspectors_shared_by_every_county_carry_an_even_load():
    """qf-draw-2: one load count across regions. 20 city inspectors (local to every county) serve
    the drawn targets of three counties with no inspectors of their own: loads differ by one at most
    (with a queue per county, one inspector could lead the round in each county)."""
    doc = make_doc(inspectors=[[2000 + j, f"CITY{j}", "611000"] for j in range(20)],
                   options={"local_regions": ["611000"]})
    load = Counter(i for a in doc["result"]["assignments"] for i in a["team"])
    assert len(doc["result"]["assignments"]) >= 20 and set(load) == {row[0] for row in doc["inspectors"]}
    assert max(load.values()) - min(load.values()) <= 1
    assert A.verify(doc)[0]


def test_a_ratio_rule_counts_the_inspectors_who_may_serve_the_region():
    rules = {f"{r}|general": {"basis": "ratio", "value": "2", "positive_list_factor": "1"} for r in REGIONS}
    doc = make_doc(rules=rules, options={"local_regions": ["611000"]},
                   inspectors=[[2000 + j, f"CITY{j}", "611000"] for j in range(4)] + [[3000, "OWN", "611002"]])
    quotas = {key: quota for key, (_m, quota) in A.quotas(doc).items()}
    assert quotas == {"611002|general|0": 10, "611021|general|0": 8, "611022|general|0": 8}


def test_cross_region_teams_come_from_another_region_and_joint_agencies_are_named():
    doc = make_doc(options={"cross_region": True, "joint_agencies": ["商洛市水利局"]})
    region_of = {row[0]: row[2] for row in doc["inspectors"]}
    target_region = {row[0]: row[2] for row in doc["targets"]}
    for a in doc["result"]["assignments"]:
        assert all(region_of[i] != target_region[a["target"]] for i in a["team"])
        assert a["joint_with"] == ["商洛市水利局"]


def test_too_few_admissible_inspectors_is_an_error():
    conflicts = {(1000 + j, t) for t in range(1, 301) for j in range(30) if j % 3 != 0 or j > 3}
    with pytest.raises(A.DrawError) as exc:
        make_doc(conflicts=conflicts)
    assert exc.value.code == "draw.not_enough_inspectors"


def test_reveal_not_matching_its_commitment_is_refused():
    doc = make_doc()
    doc["reveals"][0]["secret"] = "z" * 32
    with pytest.raises(A.DrawError) as exc:
        A.run(doc)
    assert exc.value.code == "draw.reveal_mismatch"


def test_one_party_alone_cannot_make_the_seed():
    with pytest.raises(A.DrawError) as exc:
        make_doc(secrets=("a" * 32,))
    assert exc.value.code == "draw.too_few_parties"


@pytest.mark.parametrize("tamper", [
    lambda d: d["result"]["assignments"][0]["team"].reverse(),
    lambda d: d["targets"].pop(),
    lambda d: d.update(public_value="999"),
    lambda d: d["conflicts"].append([1000, 1]),
    lambda d: d["rules"]["611002|key"].update(value="50"),
    lambda d: d["reveals"][1].update(secret="q" * 32),
    lambda d: d.update(algorithm_version="qf-draw-0"),
])
def test_verify_detects_any_change(tamper):
    doc = make_doc()
    assert A.verify(copy.deepcopy(doc))[0]
    tampered = copy.deepcopy(doc)
    tamper(tampered)
    ok, checks = A.verify(tampered)
    assert not ok and any(not passed for _, passed, _ in checks)


def test_standalone_verifier_runs_with_only_the_standard_library(tmp_path):
    doc = make_doc()
    shutil.copy(Path(A.__file__), tmp_path / "algorithm.py")
    (tmp_path / "draw.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    python = shutil.which("python3") or sys.executable
    ok = subprocess.run([python, "-I", "algorithm.py", "verify", "draw.json"], cwd=tmp_path,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "MATCH" in ok.stdout
    doc["result"]["assignments"].pop()
    (tmp_path / "draw.json").write_text(json.dumps(doc), encoding="utf-8")
    bad = subprocess.run([python, "-I", "algorithm.py", "verify", "draw.json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "MISMATCH" in bad.stdout
