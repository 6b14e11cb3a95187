"""Issue 15 item 25: a pull page on PostgreSQL is a keyset read. The rows it reads from the change
log are bounded by the page size, wherever the cursor stands and however long the backlog is
(the plan is checked with EXPLAIN ANALYZE of the very statement the pull ran; no timings)."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from server.extensions import db
from tests import db as testdb
from tests.sync.test_push_pull import push

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(testdb.postgres_url() is None, reason="needs ENFORCE_DATABASE_URL=postgresql://…")]


def _rows_read(plan: dict[str, Any]) -> int:
    """Rows the plan's scans of sync_change produced, over all loops."""
    own = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) if plan.get("Relation Name") == "sync_change" else 0
    return own + sum(_rows_read(child) for child in plan.get("Plans", []))


def test_a_pull_page_reads_about_one_page_of_the_change_log(client, db_session, field):
    for _ in range(3):
        batch = [field.phone_a.op("note", "append", {"id": str(uuid.uuid4()), "inspection_id": field.inspection.id,
                                                     "text": "现场记录"}) for _ in range(1000)]
        assert push(client, field.phone_a, batch).status_code == 200
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        text = " ".join(statement.split())
        if text.startswith("SELECT") and " FROM sync_change" in text:
            seen.append((statement, parameters))

    engine = db_session.get_bind().engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        page = client.get("/mobile/v1/sync/changes?limit=100", headers=field.phone_b.headers)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert page.status_code == 200 and len(page.json["changes"]) == 100 and page.json["more"] is True
    [(statement, parameters)] = seen
    explained = db_session.connection().exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement,
                                                        parameters).scalar_one()
    plan = (explained if isinstance(explained, list) else json.loads(explained))[0]["Plan"]
    assert _rows_read(plan) <= 2 * 100 + 1, json.dumps(plan, indent=1)[:3000]
