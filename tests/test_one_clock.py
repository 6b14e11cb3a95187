"""One clock for legal dates: domain code takes "today" as Beijing's date (``local_today``) and turns
an instant into a date with ``to_local_date``, never the machine's or UTC's date (行政处罚法 第85条
counts days from the legal date; a step between 00:00 and 08:00 Beijing time was dated a day early)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {Path("server/core/calendar.py")}  # where local_today and to_local_date are defined


def _offences(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, target = node.func.attr, node.func.value
        text = ast.unparse(target)
        if name == "today" and text.split(".")[-1] == "date":
            found.append((node.lineno, "date.today(): use local_today()"))
        elif name in {"now", "utcnow"} and text.split(".")[-1] == "datetime" and not node.args and not node.keywords:
            found.append((node.lineno, f"datetime.{name}() without a zone"))
        elif name == "date" and not node.args and (
                (isinstance(target, ast.Call) and ast.unparse(target.func).endswith("utcnow"))
                or text.endswith("_at") or text.endswith(".due")):
            found.append((node.lineno, f"{text}.date(): the UTC date of an instant; use to_local_date()"))
    return found


def test_domain_code_takes_legal_dates_from_one_clock():
    wrong = []
    for folder in ("server", "mobile_api", "sync"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative in ALLOWED:
                continue
            for line, why in _offences(ast.parse(path.read_text(encoding="utf-8"))):
                wrong.append(f"{relative}:{line}: {why}")
    assert not wrong, "\n".join(wrong)


def test_the_rule_finds_what_it_bans():
    code = ("import datetime as dt\nd = dt.date.today()\nn = dt.datetime.now()\nu = utcnow().date()\n"
            "a = row.archived_at.date()\nok = dt.datetime.now(CHINA).date()\n")
    assert [line for line, _ in _offences(ast.parse(code))] == [2, 3, 4, 5]
