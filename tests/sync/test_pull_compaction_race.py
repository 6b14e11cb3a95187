"""A device's pull racing the change-log compaction, interleaved on purpose rather than hoped for.

A hook on the pulling request's statements runs the scheduled compaction (the Celery task's code,
in another thread: its own session, connection and real commits) to its end at a chosen point of
``GET /mobile/v1/sync/changes``: after the pull read the head but before it read the rows (the
rows are gone before being read), or after it read the rows but before it read the floor again.
A compaction that takes the cursor's rows must answer ``410 sync.cursor_expired``, never a page
with rows missing; one that leaves the cursor above its floor must not disturb the page.

Both databases: PostgreSQL reads each statement at READ COMMITTED; pysqlite opens no transaction
for a SELECT, so until the request first writes each read sees the latest commit (WAL), which is
what a concurrent compaction looks like there too.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from server.extensions import db
from server.modules.sync import operations as ops
from server.modules.sync import tasks
from server.modules.sync.models import InspectionNote, SyncChange, SyncDevice, SyncHead
from sync import demo

CHANGES = "/mobile/v1/sync/changes"


class Live:
    """A fresh migrated database with a team of two (device a pushes notes, device b pulls)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        with app.app_context():
            team = demo.make_team(db.session, inspectors=2)
            db.session.commit()
        self.inspection = team.inspection_ids[0]
        self.a, self.b = ({"Authorization": f"Bearer {d.access_token}"} for d in team.devices)
        self.b_id = team.devices[1].device_id
        self.http = app.test_client()
        self.seq = 0

    def push_notes(self, *texts: str) -> list[int]:
        """Device a pushes one note per request (one commit each); returns their change seqs."""
        seqs = []
        for text in texts:
            self.seq += 1
            note_id = str(uuid.uuid4())
            op = {"op_id": str(uuid.uuid4()), "seq": self.seq, "entity": "note", "action": "append",
                  "data": {"id": note_id, "inspection_id": self.inspection, "text": text}}
            answer = self.http.post("/mobile/v1/sync/push", json={"ops": [op]}, headers=self.a)
            assert answer.status_code == 200 and answer.json["results"][0]["status"] == "applied", answer.json
            seqs.append(self.query(lambda s: s.scalar(sa.select(SyncChange.seq).where(SyncChange.entity_id == note_id))))
        return seqs

    def query(self, read: Any) -> Any:
        with self.app.app_context():
            return read(db.session)

    def log(self, after: int = 0) -> list[dict[str, Any]]:
        """The change log after ``after`` as devices receive it (every change is of b's inspection)."""
        bodies = self.query(lambda s: s.scalars(sa.select(SyncChange.body).where(SyncChange.seq > after)
                                                .order_by(SyncChange.seq)).all())
        return [json.loads(body) for body in bodies]

    def head(self) -> tuple[int, int]:
        return self.query(lambda s: tuple(s.execute(sa.select(SyncHead.last_seq, SyncHead.floor_seq)).one()))

    def expire_up_to(self, seq: int) -> None:
        """Changes up to ``seq`` were committed longer ago than the retention: the compaction's prey."""
        days = self.app.config["SYNC_CHANGE_RETENTION_DAYS"] + 10

        def age(session: Any) -> None:
            session.execute(sa.update(SyncChange).where(SyncChange.seq <= seq).values(
                committed_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days)))
            session.commit()
        self.query(age)


@pytest.fixture()
def live(fresh_app: Any) -> Live:
    return Live(fresh_app())


def _step(statement: str) -> str | None:
    """Which read of ``ops.pull`` a statement is (None: not one of them)."""
    text = " ".join(statement.split())
    if text.startswith("SELECT sync_head.last_seq, sync_head.floor_seq FROM sync_head"):
        return "head"
    if text.startswith("SELECT") and " FROM sync_change" in text:  # the page (a keyset union on PostgreSQL)
        return "rows"
    if text.startswith("SELECT sync_head.floor_seq FROM sync_head"):
        return "floor"
    return None


@contextmanager
def compaction_during_pull(app: Any, point: str) -> Iterator[dict[str, Any]]:
    """Run the scheduled compaction to its end (committed) on another connection just before the
    pull reads its rows (``point="before_rows"``) or just after (``"after_rows"``). Yields the
    pull's trace of reads with the compaction's place in it, and the compaction's result."""
    caller = threading.get_ident()
    seen: dict[str, Any] = {"trace": [], "result": None, "error": None}

    def compact() -> None:
        try:
            with app.app_context():
                seen["result"] = tasks.compact_change_log()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            seen["error"] = exc

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.get_ident() != caller:
            return  # the compaction's own statements
        step = _step(statement)
        due = step == "rows" if point == "before_rows" else seen["trace"][-1:] == ["rows"]
        if due and "compaction" not in seen["trace"]:
            worker = threading.Thread(target=compact)
            worker.start()
            worker.join(60)
            assert not worker.is_alive(), "the compaction did not finish"
            seen["trace"].append("compaction")
        if step:
            seen["trace"].append(step)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
    if seen["error"] is not None:
        raise seen["error"]


def test_a_compaction_before_the_row_read_takes_rows_and_the_pull_answers_410(live: Live) -> None:
    _expired_mid_pull(live, "before_rows")


def test_a_compaction_after_the_row_read_is_seen_by_the_floor_read_and_the_pull_answers_410(live: Live) -> None:
    _expired_mid_pull(live, "after_rows")


def _expired_mid_pull(live: Live, point: str) -> None:
    live.push_notes("一", "二", "三")
    first = live.http.get(CHANGES, headers=live.b).json
    cursor = ops.decode_cursor(first["cursor"])
    later = live.push_notes("四", "五", "六")
    live.expire_up_to(later[1])  # the compaction's floor lands above b's cursor

    with compaction_during_pull(live.app, point) as seen:
        answer = live.http.get(CHANGES, query_string={"cursor": first["cursor"]}, headers=live.b)

    expected_trace = {"before_rows": ["head", "compaction", "rows", "floor"],
                      "after_rows": ["head", "rows", "compaction", "floor"]}[point]
    assert seen["trace"] == expected_trace
    assert seen["result"]["floor_seq"] == later[1] > cursor and seen["result"]["deleted"] == later[1]
    assert answer.status_code == 410, answer.json
    error = answer.json
    assert error["code"] == "sync.cursor_expired" and error["context"]["cursor_seq"] == cursor
    assert "离线包" in error["message_zh"] and "download the offline package" in error["message_en"]
    # the refused pull changed nothing: b's last pull is still the first one
    assert live.query(lambda s: s.get(SyncDevice, live.b_id).last_pull_seq) == cursor

    # The documented full resync: the offline package, then the changes after its cursor.
    package = live.http.get("/mobile/v1/sync/package", headers=live.b)
    assert package.status_code == 200
    package = package.json
    since_package = live.push_notes("七")
    resumed = live.http.get(CHANGES, query_string={"cursor": package["cursor"]}, headers=live.b)
    assert resumed.status_code == 200 and resumed.json["more"] is False
    package_seq = ops.decode_cursor(package["cursor"])
    last, floor = live.head()
    assert floor == later[1] <= package_seq < since_package[0] == last
    assert resumed.json["changes"] == live.log(after=package_seq)
    assert ops.decode_cursor(resumed.json["cursor"]) == last
    # every change still in the log reached b: in the package's state or in the pull after it
    held = ({("inspection", i["id"]) for i in package["inspections"]}
            | {("note", n["id"]) for n in package["notes"]}
            | {(c["entity"], c["id"]) for c in resumed.json["changes"]})
    remaining = live.log(after=floor)
    assert remaining and {(c["entity"], c["id"]) for c in remaining} <= held
    # and b's view holds every note ever pushed, the compacted ones included
    notes = {n["id"]: n["text"] for n in package["notes"]}
    notes |= {c["id"]: c["data"]["text"] for c in resumed.json["changes"] if c["entity"] == "note"}
    stored = live.query(lambda s: dict(s.execute(sa.select(InspectionNote.id, InspectionNote.text)).all()))
    assert notes == stored and sorted(stored.values()) == sorted("一二三四五六七")


@pytest.mark.parametrize("point", ["before_rows", "after_rows"])
def test_a_compaction_below_the_cursor_leaves_the_page_whole(live: Live, point: str) -> None:
    early = live.push_notes("一", "二", "三")
    first = live.http.get(CHANGES, headers=live.b).json
    cursor = ops.decode_cursor(first["cursor"])
    live.push_notes("四", "五", "六")
    live.expire_up_to(early[1])  # the floor stays below b's cursor
    after_cursor = live.log(after=cursor)
    last, _ = live.head()

    with compaction_during_pull(live.app, point) as seen:
        answer = live.http.get(CHANGES, query_string={"cursor": first["cursor"]}, headers=live.b)

    assert "compaction" in seen["trace"] and seen["trace"][-1] == "floor"
    assert seen["result"]["floor_seq"] == early[1] < cursor and seen["result"]["deleted"] == early[1]
    assert answer.status_code == 200, answer.json
    assert [c["data"]["text"] for c in answer.json["changes"]] == ["四", "五", "六"]
    assert answer.json["changes"] == after_cursor and answer.json["more"] is False
    assert ops.decode_cursor(answer.json["cursor"]) == last
    assert live.head() == (last, early[1]) and live.log()[0]["seq"] == early[1] + 1
    assert live.query(lambda s: s.get(SyncDevice, live.b_id).last_pull_seq) == last
