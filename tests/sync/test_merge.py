"""The pure three-way merge rules, table-driven."""
import pytest

from sync.merge import three_way

CASES = [
    # name, base, current, patch, fields after, applied, conflicts (field), outcome(base=1, current)
    ("fast-forward", {"a": 1}, {"a": 1}, {"a": 2}, {"a": 2}, ["a"], [], 1),
    ("new field from empty base", {}, {}, {"a": "x"}, {"a": "x"}, ["a"], [], 1),
    ("different fields merge", {"a": 1, "b": 1}, {"a": 9, "b": 1}, {"b": 2}, {"a": 9, "b": 2}, ["b"], [], 2),
    ("same field, same value", {"a": 1}, {"a": 2}, {"a": 2}, {"a": 2}, [], [], 2),
    ("same field, different value", {"a": 1}, {"a": 2}, {"a": 3}, {"a": 2}, [], ["a"], 2),
    ("both created the field", {}, {"a": "x"}, {"a": "y"}, {"a": "x"}, [], ["a"], 2),
    ("clear vs edit conflicts", {"a": 1}, {"a": None}, {"a": 3}, {"a": None}, [], ["a"], 2),
    ("mixed", {"a": 1, "b": 1, "c": 1}, {"a": 5, "b": 1, "c": 1}, {"a": 6, "b": 7}, {"a": 5, "b": 7, "c": 1},
     ["b"], ["a"], 2),
    ("objects compare by value", {"o": {"k": 1}}, {"o": {"k": 1}}, {"o": {"k": 2}}, {"o": {"k": 2}}, ["o"], [], 1),
]


@pytest.mark.parametrize("name, base, current, patch, after, applied, conflicts, current_version", CASES,
                         ids=[c[0] for c in CASES])
def test_three_way(name, base, current, patch, after, applied, conflicts, current_version):
    result = three_way(base, current, patch)
    assert result.fields == after
    assert result.applied == applied
    assert [c.field for c in result.conflicts] == conflicts
    for c in result.conflicts:  # both values are kept
        assert c.current == current[c.field] and c.incoming == patch[c.field]
    expected = "conflict" if conflicts else ("applied" if current_version == 1 else "merged")
    assert result.outcome(1, current_version) == expected


def test_nothing_a_device_wrote_is_dropped():
    base, current, patch = {"a": 1, "b": 2}, {"a": 3, "b": 2}, {"a": 4, "b": 5}
    result = three_way(base, current, patch)
    kept = {c.field: c.incoming for c in result.conflicts}
    for name, value in patch.items():
        assert result.fields.get(name) == value or kept.get(name) == value
