"""Data the browser tests start from, made through the real operations on the demo database."""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from server.extensions import db
from server.modules.cases.models import Case, CaseState
from server.modules.users.models import User
from tests import clock


def user(username: str) -> User:
    return db.session.scalars(sa.select(User).where(User.username == username)).one()


def second_case_in_review() -> None:
    """The demo has one case in legal review; send the notified one too, as its handler would."""
    from server.modules.cases import operations as cases
    from server.modules.reviews import operations as reviews

    case = db.session.scalars(sa.select(Case).where(Case.state == CaseState.NOTIFIED)).first()
    a = user("inspector01")
    on = case.notice_served_on + dt.timedelta(days=1)
    cases.waive_statement(db.session, case, by=a, on=on, note="当事人书面放弃陈述申辩和听证", hearing_too=True)
    reviews.submit(db.session, case, by=a, on=on + dt.timedelta(days=1))
    db.session.commit()


def handed_over_transfer(app: Any) -> tuple[str, str]:
    """The demo's transfer (handed over to the police, copied to the procuratorate) and a built package."""
    from server.modules.transfers import package as package_ops
    from server.modules.transfers.models import Transfer

    t = db.session.scalars(sa.select(Transfer).order_by(Transfer.created_at)).first()
    assert t is not None and t.handed_over_at is not None, "the demo data has a handed-over transfer"
    package = package_ops.request(db.session, case_id=t.case_id, transfer_id=t.id, by_user_id=user("inspector01").id,
                                  max_volume_bytes=None)
    db.session.commit()
    package_ops.build(db.session, package.id, app.config, commit=db.session.commit)
    return t.id, package.id


def open_sync_conflict(app: Any) -> None:
    """Two inspectors of the supervisor's unit edit the same field of a record offline."""
    from server.modules.inspections import operations as inspections
    from server.modules.inspections.models import InspectionKind, OutsidePlanReason
    from server.modules.directory.models import Target
    from tests.sync.conftest import make_phone

    head = user("supervisor")
    a, b = user("inspector01"), user("inspector09")
    target = db.session.scalars(sa.select(Target).order_by(Target.id.desc())).first()
    today = clock.today()
    inspection = inspections.create(db.session, target_id=target.id, lead_id=a.id, member_ids=[b.id],
                                    window_start=today - dt.timedelta(days=1), window_end=today + dt.timedelta(days=7),
                                    kind=InspectionKind.ROUTINE, created_by=head,
                                    outside_plan_reason=OutsidePlanReason.SUPERIOR_ASSIGNMENT)
    phone_a, phone_b = make_phone(db.session, a), make_phone(db.session, b)
    db.session.commit()
    client = app.test_client()

    def edit(phone: Any, base: int, **fields: Any) -> Any:
        op = phone.op("inspection_record", "edit", {"inspection_id": inspection.id, "template": "on_site_record",
                                                    "base_version": base, "fields": fields})
        response = client.post("/mobile/v1/sync/push", json={"ops": [op]}, headers=phone.headers)
        assert response.status_code == 200, response.json
        return response.json["results"][0]

    assert edit(phone_a, 0, findings="废水经暗管直排")["status"] == "applied"
    assert edit(phone_b, 0, findings="废水未经处理外排")["status"] == "conflict"


def audit_checkpoint(app: Any) -> None:
    from server.modules.audit import checkpoints

    checkpoints.publish(db.session, app.config)
    db.session.commit()


def inspector_at_work() -> dict[str, Any]:
    """inspector01's day: a drawn (confidential) inspection with inspector09 and a photo their phone
    announced but has not uploaded yet."""
    from server.modules.directory.models import Target
    from server.modules.evidence import operations as evidence
    from server.modules.inspections import operations as inspections
    from server.modules.inspections.models import InspectionKind
    from tests import factories
    from tests.evidence.helpers import Team, manifest
    from tests.sync.conftest import make_phone

    head, a, b = user("supervisor"), user("inspector01"), user("inspector09")
    target = db.session.scalars(sa.select(Target).order_by(Target.id).offset(40)).first()
    today = clock.today()
    drawn = inspections.create(db.session, target_id=target.id, lead_id=a.id, member_ids=[b.id],
                               window_start=today, window_end=today + dt.timedelta(days=10),
                               kind=InspectionKind.RANDOM, secret=True, created_by=head,
                               draw_id=factories.DrawFactory(unit_id=head.unit_id, created_by=head.id).id,
                               purpose="废气排放与在线监测设施检查")
    phone = make_phone(db.session, a)
    team = Team(head, a, b, None, drawn, phone.device, phone.key, target)
    evidence.announce(db.session, device=phone.device, user=a, inspection_id=drawn.id,
                      manifest=manifest(team, b"outlet photo, still on the phone"))
    db.session.commit()
    return {"inspection_id": drawn.id, "target": target.name}
