"""Demo draws, made through the real ceremony so every rule and audit entry applies. Both are run
by the detachment head with reviewer2 as the legal observer (create, commit, freeze, public value,
reveal, run), a few percent of one county each; 商州区 is left for a newcomer's own draw (a
county's strata are drawn once per quarter):

- 丹凤县: each team's tablet reports its visit through sync (check-in, on-site record, completed);
  the draw is published and all but two results are disclosed (those two wait on the 20-working-day
  board). Anyone can replay it from /public/draws.
- 洛南县: executed and still secret; its teams have the visits ahead of them.

The parties' secrets are fixed (they are published with the draw anyway), so a reader can
recompute the commitments by hand.
"""
from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from server.core.calendar import get_calendar
from server.core.db import utcnow
from server.modules.devices import operations as devices
from server.modules.devices.models import Device
from server.modules.disclosure import operations as disclosure
from server.modules.disclosure.models import Outcome
from server.modules.draws import algorithm
from server.modules.draws import operations as draws
from server.modules.draws.models import AnnualPlan, Draw, Level
from server.modules.inspections.models import Inspection, TeamRole
from server.modules.sync import operations as sync
from server.modules.users.models import User

SECRETS = {"supervisor": "qinling-demo-secret-supervisor", "reviewer2": "qinling-demo-secret-observer"}
UNDISCLOSED = 2  # results left for the supervisor's disclosure board
CHECKLIST = ("permit", "eia", "facilities", "outlets", "monitoring", "solid_waste", "ledger", "emergency")


def load(session: Session, today: dt.date) -> tuple[Draw, Draw]:
    """The published draw and the secret one."""
    people = {u.username: u for u in session.scalars(sa.select(User).where(User.username.in_(list(SECRETS))))}
    observer = people["reviewer2"]
    plan_id = session.scalar(sa.select(AnnualPlan.id).where(AnnualPlan.year == today.year).order_by(AnnualPlan.id))
    quarter = f"{today.year}Q{(today.month - 1) // 3 + 1}"
    calendar = get_calendar()

    head = people["supervisor"]
    published = _ceremony(session, head, observer, title=f"{quarter} 丹凤县生态环境双随机抽查（演示）",
                          region="611022", period=quarter, plan_id=plan_id,
                          window=(today, calendar.add_working_days(today, 10)))
    drawn = list(session.scalars(sa.select(Inspection).where(Inspection.draw_id == published.id)
                                 .order_by(Inspection.id).options(selectinload(Inspection.target))))
    # Most drawn enterprises are clean; every fourth had a problem put right on the spot.
    findings = {i.id: ("危险废物贮存场所标识不规范，已当场责令整改", Outcome.RECTIFICATION_ORDERED) if n % 4 == 3
                else ("未发现环境违法行为", Outcome.NO_PROBLEM) for n, i in enumerate(drawn)}
    _visit(session, drawn, findings)
    draws.publish(session, published, today=today)
    # 一公开 within 20 working days of the visit (DOMAIN-RULES §A rule 8); two are left on the board.
    for inspection in drawn[:max(0, len(drawn) - UNDISCLOSED)]:
        text, outcome = findings[inspection.id]
        disclosure.publish_result(session, inspection_id=inspection.id, findings=text, outcome=outcome,
                                  by_user_id=head.id, today=today)

    secret = _ceremony(session, head, observer, title=f"{quarter} 洛南县生态环境双随机抽查（演示）",
                       region="611021", period=quarter, plan_id=plan_id,
                       window=(today, calendar.add_working_days(today, 15)))
    return published, secret


def _ceremony(session: Session, head: User, observer: User, *, title: str, region: str, period: str,
              plan_id: int | None, window: tuple[dt.date, dt.date]) -> Draw:
    """create → commit (head, observer) → freeze → public value → reveal → run."""
    draw = draws.create(session, head, title=title, region_codes=[region], level=Level.COUNTY, period_label=period,
                        window_start=window[0], window_end=window[1], plan_id=plan_id)
    parties = (head, observer)
    for user in parties:
        draws.commit(session, draw, user, algorithm.commitment(draw.id, f"user:{user.id}", SECRETS[user.username]))
    draws.freeze(session, draw, head)
    draws.set_public_value(session, draw, f"福彩3D {window[0]:%Y}{window[0].timetuple().tm_yday:03d}期（演示）517")
    for user in parties:
        draws.reveal(session, draw, user, SECRETS[user.username])
    return draws.run(session, draw, head)


def _visit(session: Session, drawn: list[Inspection], findings: dict[str, tuple[str, Outcome]]) -> None:
    """Each lead's tablet pushes its visits: check-in on site, the on-site record, completed."""
    by_lead: dict[int, list[Inspection]] = {}
    for inspection in drawn:
        lead = next(m.user_id for m in inspection.members if m.team_role is TeamRole.LEAD)
        by_lead.setdefault(lead, []).append(inspection)
    for lead_id, mine in by_lead.items():
        device = _tablet(session, session.get(User, lead_id))
        ops: list[dict[str, Any]] = []
        for n, inspection in enumerate(mine):
            ops += _visit_ops(inspection, *findings[inspection.id], first_seq=3 * n + 1)
        results = sync.push(session, device, ops)["results"]
        refused = [r for r in results if r["status"] != "applied"]
        if refused:
            raise RuntimeError(f"demo visit refused: {refused}")


def _tablet(session: Session, user: User) -> Device:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    # Only the public half is kept: the demo signs no captures with it.
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return devices.register(session, user=user, public_key_b64=base64.b64encode(public).decode(),
                            label=f"演示平板 {user.username}", platform="android", app_version="1.0.0")


def _visit_ops(inspection: Inspection, finding: str, outcome: Outcome, *, first_seq: int) -> list[dict[str, Any]]:
    now = utcnow()
    stamp = now.isoformat()
    target = inspection.target
    problem = outcome is Outcome.RECTIFICATION_ORDERED
    record: dict[str, Any] = {
        "party_name": target.name, "place": target.address, "identity_shown": True, "recusal_requested": False,
        "started_at": (now - dt.timedelta(hours=2)).isoformat(), "ended_at": now.isoformat(),
        "production_status": "正常生产", "pollution_facilities": "污染防治设施正常运行，运行台账齐全",
        "findings": finding, "party_statement": "对检查情况无异议",
        "checklist": {item: "不符合" if problem and item == "solid_waste" else "符合" for item in CHECKLIST}}
    if problem:
        record["measures"] = "当场责令改正，规范危险废物贮存场所标识"
    bodies = [
        ("check_in", "append", {"id": str(uuid.uuid4()), "lat": target.lat, "lon": target.lon, "accuracy_m": 8.0}),
        ("inspection_record", "edit", {"template": "on_site_record", "base_version": 0, "fields": record}),
        ("inspection", "set_status", {"status": "completed"}),
    ]
    return [{"op_id": str(uuid.uuid4()), "seq": first_seq + i, "entity": entity, "action": action,
             "data": {"inspection_id": inspection.id, **data}, "device_time": stamp}
            for i, (entity, action, data) in enumerate(bodies)]
