"""Rules kept as data whose source is not yet confirmed: a figure from a rule not checked against
its text, or one the bureau sets and has not told us. Each such entry carries ``"confirmed": false``
and the question to ask; administrators see the list (``GET /api/v1/system/unconfirmed-rules``) and
the README repeats it, so nothing unconfirmed passes for settled law."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

_MODULES = Path(__file__).resolve().parents[1]
DATA_FILES = {
    "deadlines": _MODULES / "deadlines/deadline_types.json",
    "procedure": _MODULES / "cases/procedure_rules.json",
    "legal_review_scope": _MODULES / "reviews/scope_rules.json",
}


def _walk(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("confirmed") is False:
            yield path, node
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, str(index)))


@lru_cache(maxsize=1)
def unconfirmed() -> list[dict[str, Any]]:
    """Every entry marked unconfirmed, with where it lives, what it sets and what to ask."""
    found = []
    for area, path in DATA_FILES.items():
        for where, entry in _walk(json.loads(path.read_text(encoding="utf-8")), ()):
            found.append({"area": area, "key": ".".join(where), "name_zh": entry.get("name_zh") or entry.get("code") or where[-1],
                          "source": entry.get("source") or entry.get("extensions_source") or "",
                          "question": entry["question"]})
    return found
