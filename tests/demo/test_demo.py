"""`enforce demo load` on a fresh database shows the product working: a published draw anyone
can verify, with its results; a draw still secret; inspector01's open work with inspector02;
a case in the legal reviewer's queue. A second load changes nothing."""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import sqlalchemy as sa

from server.core.calendar import local_today
from server.extensions import db
from server.modules.audit.cli import audit_cli
from server.modules.demo.cli import demo_cli
from server.modules.demo.operations import DEMO_PASSWORD
from server.modules.draws import algorithm
from server.modules.users.models import User
from tests.helpers import bearer, login
from tests.web.conftest import HTML, sign_in


def _rows_per_table() -> dict[str, int]:
    names = sa.inspect(db.engine).get_table_names()
    return {name: db.session.scalar(sa.select(sa.func.count()).select_from(sa.table(name))) for name in names}


def _get(client: Any, path: str, token: str | None = None) -> Any:
    response = client.get(path, headers=bearer(token) if token else {})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response


def test_demo_shows_draws_open_work_and_a_review_and_loads_once(fresh_app):
    app = fresh_app("demo")
    runner, client = app.test_cli_runner(), app.test_client()
    first = runner.invoke(demo_cli, ["load"])
    assert first.exit_code == 0, first.output
    assert "demo data loaded" in first.output
    today = local_today()

    # The public sees one published draw; its document replays to the same result.
    draws = _get(client, "/api/v1/public/draws").json
    assert sorted(d["status"] for d in draws) == ["executed", "published"]
    published = next(d for d in draws if d["status"] == "published")
    doc = json.loads(_get(client, f"/api/v1/public/draws/{published['id']}/document").data)
    ok, checks = algorithm.verify(doc)
    assert ok, checks
    assert len(doc["commitments"]) == len(doc["reveals"]) == 2 and doc["public_value"]
    drawn = doc["result"]["assignments"]
    assert 0 < len(drawn) <= 0.1 * len(doc["targets"])  # a few percent of one region
    # Every visit was reported done; all results but two are public, the rest on the 20-day board.
    uscc = {row[0]: row[1] for row in doc["targets"]}
    results = [r for r in _get(client, "/api/v1/public/results?page_size=100").json if r["draw_id"] == published["id"]]
    assert len(results) == len(drawn) - 2 and all(r["on_time"] for r in results)
    assert {r["target_uscc"] for r in results} < {uscc[a["target"]] for a in drawn}
    # The other draw has run, and stays secret until its visits are over.
    secret = next(d for d in draws if d["status"] == "executed")
    assert secret["seed"] is None and secret["drawn_count"] is None
    assert client.get(f"/api/v1/public/draws/{secret['id']}/document").status_code == 404

    with app.app_context():
        partner = db.session.scalar(sa.select(User.id).where(User.username == "inspector02"))
        assert runner.invoke(audit_cli, ["verify"]).exit_code == 0

    # inspector01: open inspections with inspector02, windows around today, on 我的工作.
    token = login(client, "inspector01", DEMO_PASSWORD)
    open_ = _get(client, "/api/v1/inspections?status=assigned&page_size=100", token).json
    together = [i for i in open_ if partner in {m["user_id"] for m in i["members"]}]
    assert len(together) >= 2
    for inspection in together:
        start, end = dt.date.fromisoformat(inspection["window_start"]), dt.date.fromisoformat(inspection["window_end"])
        assert start <= today + dt.timedelta(days=3) and today <= end <= today + dt.timedelta(days=30)
    sign_in(client, "inspector01", DEMO_PASSWORD)
    page = client.get("/console/my-work", headers=HTML).get_data(as_text=True)
    listed = set(re.findall(r'data-inspection="([^"]+)"', page))
    assert {i["id"] for i in together} <= listed

    # reviewer1: a penalty decision waiting for legal review.
    queue = _get(client, "/api/v1/legal-reviews", login(client, "reviewer1", DEMO_PASSWORD)).json
    assert [row["subject"] for row in queue] == ["decision"]

    with app.app_context():
        before = _rows_per_table()
        again = runner.invoke(demo_cli, ["load"])
        assert again.exit_code == 0 and "nothing changed" in again.output, again.output
        db.session.remove()
        assert _rows_per_table() == before
