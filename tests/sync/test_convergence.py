"""Property: several devices edit offline, sync over a link that drops requests, loses
responses, duplicates, reorders and replays old batches, while the server restarts (a new app
on the same database). Afterwards every operation is stored exactly once, no written value is
lost (it is in the record's history or kept in a conflict), and all devices converge."""
from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.extensions import db
from server.modules.sync.models import (InspectionNote, InspectionRecord, InspectionRecordVersion, SyncConflict,
                                        SyncOperation)
from sync import demo
from sync.client import FlaskTransport, LossyTransport, SyncClient, TransportError
from tests import db as testdb

FIELDS = ["findings", "measures", "place"]
EXAMPLES = 3 if testdb.postgres_url() else 6


@pytest.fixture(scope="module")
def servers():
    tmp = Path(tempfile.mkdtemp(prefix="sync-prop-"))
    first = testdb.fresh_app(tmp, "syncprop")
    second = testdb.make_app(first.config["DATABASE_URL"], tmp)  # a restarted server, same database
    yield [first, second]
    for app in (first, second):
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


class Relay:
    """Between the lossy link and the server: reorders a push's operations and sometimes
    delivers an old push again before the current one."""

    def __init__(self, servers, rng: random.Random) -> None:
        self.clients = [FlaskTransport(app.test_client()) for app in servers]
        self.current = 0
        self.rng = rng
        self.old: list[tuple[str, str, bytes | None, dict[str, str]]] = []

    def request(self, method, path, body, headers):
        server = self.clients[self.current]
        if path.endswith("/sync/push") and body is not None:
            payload = json.loads(_plain(body, headers))
            self.rng.shuffle(payload["ops"])
            body, headers = json.dumps(payload).encode(), {k: v for k, v in headers.items() if k != "Content-Encoding"}
            if self.old and self.rng.random() < 0.3:
                server.request(*self.rng.choice(self.old))
            self.old.append((method, path, body, headers))
        return server.request(method, path, body, headers)


def _plain(body: bytes, headers: dict[str, str]) -> bytes:
    from sync import codec

    return codec.decompress(body, headers.get("Content-Encoding", ""), 1 << 26)


ACTION = st.one_of(
    st.tuples(st.just("note"), st.integers(0, 2)),
    st.tuples(st.just("check_in"), st.integers(0, 2)),
    st.tuples(st.just("edit"), st.integers(0, 2), st.sampled_from(FIELDS)),
    st.tuples(st.just("sync"), st.integers(0, 2)),
    st.tuples(st.just("restart")),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(actions=st.lists(ACTION, min_size=4, max_size=24), seed=st.integers(0, 2**32 - 1))
def test_devices_converge_and_nothing_is_lost(servers, actions, seed):
    rng = random.Random(seed)
    with servers[0].app_context():
        team = demo.make_team(db.session, inspectors=3)
        db.session.commit()
        db.session.remove()
    inspection = team.inspection_ids[0]
    relay = Relay(servers, rng)
    workdir = Path(tempfile.mkdtemp(prefix="sync-prop-dev-"))
    devices = [SyncClient(str(workdir / f"{i}.db"), LossyTransport(relay, rng, drop=0.2, lose=0.2, duplicate=0.1),
                          d.access_token, d.device_id, private_key=d.private_key, batch_size=3, max_attempts=3,
                          sleep=lambda s: None, rng=rng)
               for i, d in enumerate(team.devices)]
    written: list[tuple[str, object]] = []  # (field, value) every device wrote
    notes: list[str] = []
    counter = 0
    for action in actions:
        kind = action[0]
        if kind == "restart":
            relay.current = 1 - relay.current
            continue
        device = devices[action[1]]
        counter += 1
        if kind == "note":
            notes.append(device.note(inspection, f"n{counter}")["data"]["id"])
        elif kind == "check_in":
            device.check_in(inspection, 33.8, 109.9, 3.0)
        elif kind == "edit":
            value = f"d{action[1]}-{counter}"
            device.edit_record(inspection, {action[2]: value})
            written.append((action[2], value))
        else:
            try:
                device.sync()
            except TransportError:
                pass  # the link gave up; the outbox keeps everything

    for lossy in devices:  # back in town: a reliable link
        lossy.transport = relay
    for _ in range(2):
        for device in devices:
            device.sync()

    with servers[0].app_context():
        session = db.session
        enqueued = sum(int(d._meta("device_seq", "0") or 0) for d in devices)
        stored = session.scalars(sa.select(SyncOperation.op_id).where(
            SyncOperation.device_id.in_([d.device_id for d in team.devices]))).all()
        assert len(stored) == len(set(stored)) == enqueued  # every operation exactly once
        assert all(d.outbox_depth() == 0 for d in devices)
        assert {r["status"] for d in devices for r in d.results().values()} <= {"applied", "merged", "conflict"}
        assert sorted(session.scalars(sa.select(InspectionNote.id).where(
            InspectionNote.inspection_id == inspection)).all()) == sorted(notes)
        record = session.scalars(sa.select(InspectionRecord).where(InspectionRecord.inspection_id == inspection)).first()
        history = {(name, value) for snapshot in session.scalars(sa.select(InspectionRecordVersion.fields).where(
            InspectionRecordVersion.record_id == (record.id if record else None))) for name, value in snapshot.items()}
        kept = {(c.field, v["value"]) for c in session.scalars(sa.select(SyncConflict).where(
            SyncConflict.inspection_id == inspection)) for v in c.values}
        for pair in written:
            assert pair in history or pair in kept, pair  # never silently overwritten
        server_view = {"record": (record.version, record.fields) if record else None, "notes": sorted(notes)}
        db.session.remove()
    for device in devices:
        local = device.entities("inspection_record")
        mine = next(iter(local.values()), None)
        assert ((mine["version"], mine["fields"]) if mine else None) == server_view["record"]
        assert sorted(device.entities("note")) == server_view["notes"]
        device.close()
