"""Expired uploads are freed in every deployment (issue 15 item 5): DELETE of an expired upload and
``enforce uploads expire``; the in-process job is tested against gunicorn (test_tus_gunicorn.py)."""
from __future__ import annotations

import datetime as dt

import pytest

from server.core.db import utcnow
from server.modules.evidence import uploads as ops
from server.modules.evidence.cli import uploads_cli
from server.modules.evidence.models import Upload, UploadStatus
from tests.evidence.helpers import device_auth, make_team
from tests.evidence.media import jpeg_bytes
from tests.evidence.test_tus_protocol import create, patch


@pytest.fixture()
def team(db_session):
    team = make_team()
    db_session.commit()
    return team


def _expired_upload(client, db_session, team):
    data = jpeg_bytes((30, 30))
    location = create(client, team, data).headers["Location"]
    assert patch(client, team, location, data[:20], 0).status_code == 204
    upload = db_session.get(Upload, location.rsplit("/", 1)[1])
    upload.expires_at = utcnow() - dt.timedelta(days=1)
    db_session.commit()
    return location, upload


def test_delete_of_an_expired_upload_frees_it(client, db_session, team):
    location, upload = _expired_upload(client, db_session, team)
    assert ops.partial_path(upload.id).exists()
    response = client.delete(location, headers={"Tus-Resumable": "1.0.0", **device_auth(team.device)})
    assert response.status_code == 204
    assert not ops.partial_path(upload.id).exists()
    assert db_session.get(Upload, upload.id, populate_existing=True).status is UploadStatus.TERMINATED


def test_enforce_uploads_expire_removes_expired_partial_files(app, client, db_session, team):
    _, upload = _expired_upload(client, db_session, team)
    result = app.test_cli_runner().invoke(uploads_cli, ["expire"])
    assert result.exit_code == 0, result.output
    assert "expired uploads removed: 1" in result.output
    assert not ops.partial_path(upload.id).exists()
    assert db_session.get(Upload, upload.id, populate_existing=True).status is UploadStatus.TERMINATED
