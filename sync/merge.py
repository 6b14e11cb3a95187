"""Pure merge rules for offline edits: no database, no Flask, table-driven tests.

A device edits an editable entity offline from a *base* version it pulled. It sends only the
fields it changed (``patch``) and the base version number. Against the server's *current*
fields and the fields of that base version, each patched field is decided on its own:

| server since base | device's value      | outcome                                              |
|-------------------|---------------------|------------------------------------------------------|
| unchanged         | anything            | take the device's value (``applied``)                |
| changed           | equal to server's   | nothing to do: both wrote the same (``same``)        |
| changed           | different           | keep the server's value current and keep the device's|
|                   |                     | value in a conflict for a supervisor (``conflict``)   |

Nothing a device wrote is dropped: it is current, equal to current, or held in a conflict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

MISSING: Any = None  # an absent field reads as null: "not filled in"


@dataclass(frozen=True)
class FieldConflict:
    field: str
    base: Any
    current: Any
    incoming: Any


@dataclass
class MergeResult:
    fields: dict[str, Any]  # the new current fields
    applied: list[str] = field(default_factory=list)  # fields whose value changed now
    same: list[str] = field(default_factory=list)  # already had the device's value
    conflicts: list[FieldConflict] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied)

    def outcome(self, base_version: int, current_version: int) -> str:
        """applied: a fast-forward; merged: combined with edits made since the base;
        conflict: at least one field is held for a supervisor."""
        if self.conflicts:
            return "conflict"
        return "applied" if base_version == current_version else "merged"


def three_way(base: Mapping[str, Any], current: Mapping[str, Any], patch: Mapping[str, Any]) -> MergeResult:
    """Merge ``patch`` (fields a device changed from ``base``) into ``current``."""
    result = MergeResult(fields=dict(current))
    for name in sorted(patch):
        incoming = patch[name]
        now = current.get(name, MISSING)
        if incoming == now:
            result.same.append(name)
        elif now == base.get(name, MISSING):
            result.fields[name] = incoming
            result.applied.append(name)
        else:
            result.conflicts.append(FieldConflict(name, base.get(name, MISSING), now, incoming))
    return result
