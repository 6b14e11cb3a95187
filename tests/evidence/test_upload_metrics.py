"""Upload bytes are counted for /metrics, and no upload is left counted as receiving (issue 16, item 5)."""
from __future__ import annotations

from prometheus_client import REGISTRY

from tests.evidence.media import jpeg_bytes
from tests.evidence.test_tus_protocol import create, patch, team  # noqa: F401  (team is a fixture)


def test_upload_bytes_are_counted(client, db_session, team):  # noqa: F811
    before = REGISTRY.get_sample_value("enforce_upload_bytes_total") or 0.0
    data = jpeg_bytes()
    location = create(client, team, data).headers["Location"]
    half = len(data) // 2
    assert patch(client, team, location, data[:half], 0).status_code == 204
    assert patch(client, team, location, data[half:], half).status_code == 204
    assert REGISTRY.get_sample_value("enforce_upload_bytes_total") - before == len(data)
    assert REGISTRY.get_sample_value("enforce_uploads_receiving") == 0
