import sqlalchemy as sa

import pytest

from server.modules.audit.models import AuditEntry
from server.modules.evidence import operations as ops
from server.modules.evidence.models import CustodyEvent, EvidenceStatus
from tests.evidence.helpers import make_device, make_team, manifest


@pytest.fixture()
def team(db_session):
    return make_team()


def _announce(db_session, team, body, device=None):
    return ops.announce(db_session, device=device or team.device, user=team.lead,
                        inspection_id=team.inspection.id, manifest=body)


def test_signed_manifest_is_announced_with_capture_and_receipt_events(db_session, team):
    body = manifest(team, b"photo bytes")
    item = _announce(db_session, team, body)
    db_session.commit()
    assert item.status is EvidenceStatus.ANNOUNCED
    assert item.signature_valid is True
    assert item.certificate_number  # taken from the inspection team
    assert [f.code for f in item.flags] == []
    events = db_session.scalars(sa.select(CustodyEvent).where(CustodyEvent.item_id == item.id)
                                .order_by(CustodyEvent.seq)).all()
    assert [(e.seq, e.action.value) for e in events] == [(1, "captured"), (2, "announced")]
    tags = db_session.scalars(sa.select(AuditEntry.tag).where(AuditEntry.tag.like("evidence:item:%"))).all()
    assert "evidence:item:announced" in tags and "evidence:item:captured" in tags


def test_announce_is_idempotent_on_client_id(db_session, team):
    body = manifest(team, b"same")
    first = _announce(db_session, team, body)
    again = _announce(db_session, team, dict(body))
    assert again.id == first.id
    other = dict(body, sha256="0" * 64)
    with pytest.raises(ops.ClientIdConflict):
        _announce(db_session, team, other)


def test_bad_signature_is_flagged_not_accepted_silently(db_session, team):
    _, other_key = make_device(team.member)
    item = _announce(db_session, team, manifest(team, b"x", key=other_key))
    assert item.signature_valid is False
    assert "signature_invalid" in [f.code for f in item.flags]
    unsigned = _announce(db_session, team, manifest(team, b"y", sign=False))
    assert "signature_missing" in [f.code for f in unsigned.flags]


def test_manifest_of_another_device_is_refused(db_session, team):
    other, other_key = make_device(team.lead)
    body = manifest(team, b"z", key=other_key, device_id=other.id)
    with pytest.raises(ops.DeviceMismatch):
        _announce(db_session, team, body)


def test_capture_outside_the_team_is_out_of_scope(db_session, team):
    device, key = make_device(team.outsider)
    body = manifest(team, b"q", key=key)
    with pytest.raises(ops.OutOfScope):
        ops.announce(db_session, device=device, user=team.outsider, inspection_id=team.inspection.id, manifest=body)


@pytest.mark.parametrize("field,value", [("sha256", "ABC"), ("size", -1), ("kind", "hologram"), ("lat", 123.0)])
def test_malformed_manifest_is_refused(db_session, team, field, value):
    body = manifest(team, b"m", sign=False)
    body[field] = value
    with pytest.raises(ops.ManifestInvalid):
        _announce(db_session, team, body)


def test_bodycam_manifest_is_a_video_registered_by_hash(db_session, team):
    item = _announce(db_session, team, manifest(team, b"clip", kind="bodycam", media_type="video/mp4",
                                                acquisition_method=None))
    assert item.kind.value == "video" and item.acquisition_method == "bodycam_dock"
    assert item.signature_valid is True
