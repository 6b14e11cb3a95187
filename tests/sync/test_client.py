"""The reference client against the app: outbox, retries over a lossy link, crash and resume,
full resync on an expired cursor, clock offset, compression."""
import datetime as dt
import gzip
import json
import random

import sqlalchemy as sa
import zstandard
from hypothesis import HealthCheck, given, settings, strategies as st

from server.modules.sync import operations as ops
from server.modules.sync.models import InspectionNote, SyncDevice, SyncOperation
from sync.client import FlaskTransport, LossyTransport, SyncClient


def make_client(client, phone, tmp_path, name, **kw):
    token = phone.headers["Authorization"].split()[1]
    return SyncClient(str(tmp_path / f"{name}.db"), FlaskTransport(client), token, phone.device.id,
                      private_key=phone.key.private_bytes_raw(), sleep=lambda s: None, **kw)


def test_lossy_link_still_delivers_everything_exactly_once(client, db_session, field, tmp_path):
    rng = random.Random(7)
    a = make_client(client, field.phone_a, tmp_path, "a", batch_size=5, max_attempts=50, rng=rng)
    a.full_resync()
    a.transport = LossyTransport(a.transport, rng, drop=0.3, lose=0.3, duplicate=0.2)
    for i in range(23):
        a.note(field.inspection.id, f"记录{i}")
    a.check_in(field.inspection.id, 33.87, 109.94, 5.0)
    a.manifest(field.inspection.id, kind="bodycam", sha256="ab" * 32, size=10_000_000, media_type="video/mp4")
    a.edit_record(field.inspection.id, {"findings": "废水直排"})
    a.sync()
    assert a.outbox_depth() == 0
    assert {r["status"] for r in a.results().values()} == {"applied"}
    assert db_session.scalar(sa.select(sa.func.count()).select_from(InspectionNote)) == 23
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SyncOperation)) == 26
    assert a.transport.lost + a.transport.dropped > 0
    assert len(a.entities("note")) == 23 and len(a.entities("inspection_record")) == 1


def test_crash_after_enqueue_resumes_with_the_same_ids(client, db_session, field, tmp_path):
    a = make_client(client, field.phone_a, tmp_path, "crash")
    op = a.note(field.inspection.id, "崩溃前记录")
    a.close()  # the app dies before pushing
    again = make_client(client, field.phone_a, tmp_path, "crash")
    assert again.outbox_depth() == 1
    again.sync()
    stored = db_session.scalars(sa.select(SyncOperation)).one()
    assert (stored.op_id, stored.device_seq) == (op["op_id"], op["seq"])


def test_expired_cursor_resyncs_and_keeps_the_outbox(client, db_session, field, tmp_path):
    a = make_client(client, field.phone_a, tmp_path, "old")
    a.sync()
    b = make_client(client, field.phone_b, tmp_path, "b")
    b.note(field.inspection.id, "队友的记录")
    b.sync()
    ops.compact(db_session, keep_after_seq=10**6)
    db_session.commit()
    a.note(field.inspection.id, "离线期间的记录")
    a.sync()
    assert a.stats.resyncs >= 2 and a.outbox_depth() == 0
    assert sorted(n["text"] for n in a.entities("note").values()) == ["离线期间的记录", "队友的记录"]


def test_handshake_measures_the_clock_offset_and_flags_device_times(client, db_session, field, tmp_path):
    skewed = lambda: (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()  # noqa: E731
    a = make_client(client, field.phone_a, tmp_path, "skew", clock=skewed)
    a.hello()
    a.hello()  # the second hello reports the offset measured by the first
    state = db_session.get(SyncDevice, field.phone_a.device.id)
    assert abs(state.clock_offset_ms - 86_400_000) < 60_000
    # a wrong-by-a-day clock is corrected by the offset: not flagged
    a.note(field.inspection.id, "时钟快一天")
    a.push()
    note = db_session.scalars(sa.select(InspectionNote)).one()
    assert note.time_flags is None and note.device_time - note.received_at > dt.timedelta(hours=23)
    # a time in the future even after correction, and one before the inspection window, are flagged
    future = field.phone_b.op("note", "append", {"id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                                                 "inspection_id": field.inspection.id, "text": "未来"},
                              device_time=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat())
    past = field.phone_b.op("note", "append", {"id": "2b4e28ba-2fa1-11d2-883f-0016d3cca427",
                                               "inspection_id": field.inspection.id, "text": "过去"},
                            device_time="2020-01-01T08:00:00+08:00")
    client.post("/mobile/v1/sync/push", json={"ops": [future, past]}, headers=field.phone_b.headers)
    flags = dict(db_session.execute(sa.select(InspectionNote.text, InspectionNote.time_flags)).all())
    assert flags["未来"] == ["future"]
    assert set(flags["过去"]) == {"before_window", "before_registration"}


def test_compressed_bodies_both_ways_and_bombs_are_refused(client, db_session, field):
    body = json.dumps({"ops": [field.phone_a.op("note", "append", {
        "id": "3b4e28ba-2fa1-11d2-883f-0016d3cca427", "inspection_id": field.inspection.id, "text": "压缩" * 500})]})
    for encoding, data in (("zstd", zstandard.ZstdCompressor().compress(body.encode())),
                           ("gzip", gzip.compress(body.encode()))):
        response = client.post("/mobile/v1/sync/push", data=data, headers={
            **field.phone_a.headers, "Content-Type": "application/json", "Content-Encoding": encoding,
            "Accept-Encoding": encoding})
        assert response.status_code == 200
        assert response.json is None or True
    pulled = client.get("/mobile/v1/sync/changes", headers={**field.phone_b.headers, "Accept-Encoding": "zstd"})
    assert pulled.headers["Content-Encoding"] == "zstd"
    assert b"\\u" not in zstandard.ZstdDecompressor().decompress(pulled.data, max_output_size=10**7)
    bomb = zstandard.ZstdCompressor().compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")
    refused = client.post("/mobile/v1/sync/push", data=bomb, headers={
        **field.phone_a.headers, "Content-Type": "application/json", "Content-Encoding": "zstd"})
    assert refused.status_code == 413 and refused.json["code"] == "request.too_large"
    odd = client.post("/mobile/v1/sync/push", data=b"x", headers={
        **field.phone_a.headers, "Content-Type": "application/json", "Content-Encoding": "br"})
    assert odd.status_code == 415 and odd.json["code"] == "sync.unsupported_encoding"


def test_package_and_health(client, db_session, field, tmp_path):
    a = make_client(client, field.phone_a, tmp_path, "pkg")
    pkg = a.full_resync()
    assert [i["id"] for i in pkg["inspections"]] == [field.inspection.id]
    target = pkg["targets"][0]
    assert target["uscc"] and target["past_violations"] == []
    assert {m["user_id"] for m in pkg["team"]} == {field.a.id, field.b.id}
    assert all(c["valid_today"] for m in pkg["team"] for c in m["certificates"])
    assert pkg["templates"][0]["name_zh"] == "现场检查笔录" and pkg["checklists"]
    numbers = [n["text"] for n in pkg["document_numbers"]]
    assert len(numbers) == ops.DOCUMENT_BLOCK and len(set(numbers)) == ops.DOCUMENT_BLOCK
    assert [n["text"] for n in a.full_resync()["document_numbers"]] == numbers  # topped up, not re-allocated
    a.use_document_number(field.inspection.id, numbers[0])
    a.note(field.inspection.id, "待上传")
    a.hello(pending_media_bytes=123456)
    a.push()
    assert a.results()  # all answered
    statuses = [r["status"] for r in a.results().values()]
    assert statuses == ["applied", "applied"]
    b = make_client(client, field.phone_b, tmp_path, "pkg-b")
    b.use_document_number(field.inspection.id, numbers[1])  # not b's number
    b.push()
    assert list(b.results().values())[0]["error"]["code"] == "sync.document_number_unknown"
    later = a.full_resync()["document_numbers"]
    assert numbers[0] not in [n["text"] for n in later] and len(later) == ops.DOCUMENT_BLOCK
    health = client.get("/api/v1/sync/devices", headers=field.staff).json
    mine = next(h for h in health if h["device_id"] == field.phone_a.device.id)
    assert mine["pending_media_bytes"] == 123456 and mine["last_contact_at"] and mine["acked_seq"] == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({"seq": st.integers(1, 10**9), "entity": st.sampled_from(["note", "check_in"]),
                                       "id": st.uuids().map(str), "op": st.just("append"),
                                       "inspection_id": st.text(max_size=8),
                                       "data": st.dictionaries(st.text(max_size=5), st.text() | st.floats(allow_nan=False)
                                                               | st.none(), max_size=3)}), max_size=6),
       st.booleans(), st.sampled_from([None, 0, 2]), st.booleans())
def test_a_page_is_walked_with_each_changes_own_text_whatever_its_layout(changes, more, indent, cursor_first):
    from sync.client import walk_page

    page = {"cursor": "djE6OQ", "more": more, "changes": changes} if cursor_first else \
        {"changes": changes, "cursor": "djE6OQ", "more": more}
    walked, members = walk_page(json.dumps(page, indent=indent, ensure_ascii=bool(indent)))
    assert [change for change, _ in walked] == changes
    assert [json.loads(text) for _, text in walked] == changes
    assert members == {"cursor": "djE6OQ", "more": more}
