"""Issue 15 item 10: custody appends never collide. Sixteen reviewers open one item's detail view
(each view is a custody event) while its bytes are uploaded (received, verified) and processed
(the thumbnail's derived events), on PostgreSQL behind a real gunicorn of two worker processes."""
from __future__ import annotations

import base64
import hashlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from server.core.storage import get_store
from server.extensions import db
from server.modules.auth.operations import staff_token
from server.modules.evidence import operations as ops
from server.modules.evidence.models import Blob, CustodyEvent, EvidenceItem
from tests import db as testdb
from tests.evidence.gunicorn import gunicorn
from tests.evidence.helpers import manifest
from tests.evidence.live import seed_team
from tests.evidence.media import photo_with_exif

VIEWERS = 16
VIEWS_EACH = 4


@pytest.fixture()
def served(app, tmp_path):
    """An app on its own committed database (PostgreSQL or SQLite, as the suite runs) and a team."""
    own = testdb.fresh_app(tmp_path, "custody")
    app.extensions["celery"].set_current()
    app.extensions["celery"].set_default()
    values = seed_team(own)
    try:
        yield own, values
    finally:
        app.extensions["celery"].set_current()
        app.extensions["celery"].set_default()
        with own.app_context():
            db.session.remove()
            db.engine.dispose()


def _announce(own, values, data: bytes, *, stored: bool) -> str:
    team = values["team"]
    with own.app_context():
        team = type(team)(*(db.session.merge(getattr(team, f)) if hasattr(getattr(team, f), "_sa_instance_state")
                            else getattr(team, f) for f in team.__dataclass_fields__))
        if stored:
            digest = hashlib.sha256(data).hexdigest()
            with tempfile.NamedTemporaryFile() as tmp:
                tmp.write(data)
                tmp.flush()
                get_store().put_file(digest, Path(tmp.name))
            db.session.add(Blob(sha256=digest, size=len(data), media_type="image/jpeg"))
            db.session.flush()
        item = ops.announce(db.session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                            manifest=manifest(team, data))
        db.session.commit()
        item_id = item.id
        db.session.remove()
    return item_id


def test_sixteen_viewers_and_an_upload_never_collide_on_postgres(served):
    if testdb.postgres_url() is None:
        pytest.skip("PostgreSQL only: SQLite has one writer at a time")
    own, values = served
    stored = _announce(own, values, photo_with_exif("2026:12:01 10:00:00", 33.87, 109.94, size=(90, 60)), stored=True)
    data = photo_with_exif("2026:12:01 10:05:00", 33.87, 109.94, size=(800, 600))
    uploading = _announce(own, values, data, stored=False)
    with own.app_context():
        from server.modules.users.models import User

        member = db.session.get(User, values["member_id"])
        staff = {"Authorization": f"Bearer {staff_token(member)['access_token']}"}
        db.session.remove()

    with gunicorn(own) as base:
        def view(item_id: str) -> list[int]:
            with requests.Session() as http:
                return [http.get(f"{base}/api/v1/evidence/{item_id}?purpose=review", headers=staff,
                                 timeout=60).status_code for _ in range(VIEWS_EACH)]

        def upload() -> int:
            digest = hashlib.sha256(data).hexdigest()
            meta = f"sha256 {base64.b64encode(digest.encode()).decode()},filename {base64.b64encode(b'a.jpg').decode()}"
            return requests.post(f"{base}/mobile/v1/uploads/", data=data, timeout=120, headers={
                "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": meta,
                "Content-Type": "application/offset+octet-stream", **values["auth"]}).status_code

        with ThreadPoolExecutor(VIEWERS + 1) as pool:
            targets = [uploading if i % 2 else stored for i in range(VIEWERS)]
            views = [pool.submit(view, target) for target in targets]
            uploaded = pool.submit(upload)
            statuses = [s for future in views for s in future.result()]
            assert uploaded.result() == 201
    assert statuses == [200] * (VIEWERS * VIEWS_EACH)

    with own.app_context():
        for item_id in (stored, uploading):
            events = db.session.execute(sa.select(CustodyEvent.seq, CustodyEvent.action).where(
                CustodyEvent.item_id == item_id).order_by(CustodyEvent.seq)).all()
            assert [seq for seq, _ in events] == list(range(1, len(events) + 1))  # gap-free, no collision
            assert sum(action.value == "viewed" for _, action in events) == VIEWERS // 2 * VIEWS_EACH
        item = db.session.get(EvidenceItem, uploading)
        assert item.status.value == "verified"
        assert [d.derivation.value for d in item.derivatives] == ["thumbnail"]  # the task ran to its end
        assert item.media_metadata["width"] == 800
        db.session.remove()


def test_the_processing_task_retries_a_transient_failure(db_session, monkeypatch):
    """A lost connection or a deadlock in the processing task is retried (with backoff on a
    worker; at once in the eager default), so the item does not stay without flags and thumbnail.
    The fault is injected at the pipeline's entry: the first run fails as a dropped PostgreSQL
    connection does, the retry runs the real pipeline."""
    from server.modules.evidence import pipeline
    from server.modules.evidence.models import Derivation
    from tests.evidence.helpers import make_team

    team = make_team()
    real, runs = pipeline.process_blob, []

    def flaky(*args):
        runs.append(args[-1])
        if len(runs) == 1:
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        return real(*args)

    monkeypatch.setattr(pipeline, "process_blob", flaky)
    data = photo_with_exif("2026:12:01 10:00:00", 33.87, 109.94, size=(70, 50))
    digest = hashlib.sha256(data).hexdigest()
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(data)
        tmp.flush()
        get_store().put_file(digest, Path(tmp.name))
    db_session.add(Blob(sha256=digest, size=len(data), media_type="image/jpeg"))
    db_session.flush()
    item = ops.announce(db_session, device=team.device, user=team.lead, inspection_id=team.inspection.id,
                        manifest=manifest(team, data))
    db_session.commit()  # sends the task, which fails once and is retried
    db_session.expire_all()
    item = db_session.get(EvidenceItem, item.id)
    assert len(runs) == 2
    assert [d.derivation for d in item.derivatives] == [Derivation.THUMBNAIL]
    assert item.media_metadata is not None


def test_a_refused_file_over_a_real_server_stops_the_device_retrying(served):
    """Items 11 and 18 through gunicorn and the official tus client: tuspy gets the refusal,
    ``media/missing`` stops asking and says why."""
    import io

    from tusclient import client as tus_client
    from tusclient.exceptions import TusCommunicationError

    own, values = served
    page = b"<!doctype html><html><body>not a photo</body></html>" * 20
    original, edited = photo_with_exif("2026:12:01 10:00:00", size=(40, 30)), photo_with_exif(
        "2026:12:01 10:00:01", size=(40, 30))
    html_id, edited_id = _announce(own, values, page, stored=False), _announce(own, values, original, stored=False)
    with own.app_context():
        capture_id = db.session.get(EvidenceItem, edited_id).client_id
        db.session.remove()
    with gunicorn(own, workers=1, threads=4) as base:
        def send(data: bytes, **metadata: str) -> int:
            uploader = tus_client.TusClient(f"{base}/mobile/v1/uploads/", headers=dict(values["auth"])).uploader(
                file_stream=io.BytesIO(data), chunk_size=len(data), retries=0,
                metadata={"sha256": hashlib.sha256(data).hexdigest(), "filename": "photo.jpg", **metadata})
            with pytest.raises(TusCommunicationError) as refused:
                uploader.upload()
            return refused.value.status_code

        assert send(page) == 415
        assert send(edited, capture_id=capture_id) == 422
        answer = requests.post(f"{base}/mobile/v1/media/missing", timeout=30, headers=values["auth"], json={
            "hashes": [hashlib.sha256(page).hexdigest(), hashlib.sha256(original).hexdigest()]}).json()
    assert answer["missing"] == []
    assert sorted(r["code"] for r in answer["rejected"]) == ["evidence.manifest_hash_mismatch",
                                                             "evidence.unsupported_type"]
    with own.app_context():
        assert {db.session.get(EvidenceItem, i).status.value for i in (html_id, edited_id)} == {"rejected"}
        assert db.session.get(Blob, hashlib.sha256(edited).hexdigest()) is None
        db.session.remove()
