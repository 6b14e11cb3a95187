"""The draw ceremony: create → commit → freeze → (public value) → reveal → run → publish.

DOMAIN-RULES §A rules 6–7: pools are frozen and hashed before the seed exists; the seed comes from
secrets committed by at least two parties (one an observer) and an optional public value; the
algorithm (``algorithm.py``) is deterministic and public; a re-draw needs a reason and a second
approver and is shown publicly. Operations flush; the request commits once.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import zlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import MANAGERS, Principal, Role
from server.core.calendar import local_today
from server.core.canonical import canonical_json, canonical_object
from server.core.db import plain_rows, utcnow
from server.modules.audit import operations as audit
from server.modules.directory.models import RiskClass, Target
from server.modules.draws import algorithm, rules
from server.modules.draws.models import (AnnualPlan, Draw, DrawParty, DrawStatus, Level, PlanStatus, RedrawReason,
                                         RedrawRequest, SamplingRule)
from server.modules.inspections import operations as inspections
from server.modules.inspections.models import Inspection, InspectionKind, InspectionMember, InspectionStatus
from server.modules.roster import operations as roster
from server.modules.users.models import Certificate, CertificateStatus, Region, Unit, User

DrawNotFound = errors.error_code("draw.not_found", 404, "抽取记录不存在", "No such draw")
InvalidState = errors.error_code("draw.invalid_state", 409, "抽取当前所处阶段不允许该操作",
                                 "The draw's current stage does not allow this")
AlreadyCommitted = errors.error_code("draw.already_committed", 409, "该人员已提交承诺值",
                                     "This person has already committed")
NotAParty = errors.error_code("draw.not_a_party", 403, "该人员未参与本次抽取的种子承诺",
                              "This person did not commit to this draw's seed")
AlreadyRevealed = errors.error_code("draw.already_revealed", 409, "秘密值已公开", "The secret was already revealed")
NeedObserver = errors.error_code("draw.observer_required", 409, "冻结前至少需要两方承诺，其中一方为法制或纪检监督人员",
                                 "Freezing needs commitments from at least two people, one of them a legal or discipline observer")
RevealMismatch = errors.error_code("draw.reveal_mismatch", 422, "公开的秘密值与承诺值不符",
                                   "The revealed secret does not match its commitment")
RevealsIncomplete = errors.error_code("draw.reveals_incomplete", 409, "尚有参与方未公开秘密值",
                                      "Some parties have not revealed their secrets")
TooFewParties = errors.error_code("draw.too_few_parties", 409, "种子至少需要两方参与", "At least two parties must contribute to the seed")
NotEnoughTargets = errors.error_code("draw.not_enough_targets", 422, "计划抽取数量超过名录库中符合条件的检查对象数",
                                     "The plan asks for more targets than are eligible")
NotEnoughInspectors = errors.error_code("draw.not_enough_inspectors", 422, "符合条件的执法人员不足以组成至少两人的检查组",
                                        "Too few eligible inspectors to form teams of two")
RuleInvalid = errors.error_code("draw.rule_invalid", 422, "抽查规则无效", "Invalid sampling rule")
NoRules = errors.error_code("draw.no_rules", 422, "抽取范围内没有生效的抽查规则", "No sampling rule is in force for this draw")
PublicValueLate = errors.error_code("draw.public_value_late", 409, "公开随机值须在任何秘密值公开之前录入",
                                    "The public value must be entered before any secret is revealed")
NotYetVisited = errors.error_code("draw.not_yet_visited", 409, "检查尚未结束，抽取结果须保密至检查之后",
                                  "The inspections are not over; the draw stays secret until after the visits")
SecondApproverRequired = errors.error_code("draw.second_approver_required", 403, "重新抽取须由另一名负责人批准",
                                           "A re-draw must be approved by a second manager")
RedrawNotFound = errors.error_code("draw.redraw_not_found", 404, "重新抽取申请不存在", "No such re-draw request")
RedrawPending = errors.error_code("draw.redraw_pending", 409, "已有待批准的重新抽取申请", "A re-draw request is already pending")
NotPublished = errors.error_code("draw.not_published", 404, "抽取尚未公开", "The draw has not been published")
PeriodAlreadyDrawn = errors.error_code(
    "draw.period_already_drawn", 409, "本周期内这些检查对象类别已经抽取过；如需重新抽取，须说明理由并经另一名负责人批准",
    "These categories were already drawn in this period; drawing again needs a re-draw request with a reason and a second approver")
RedrawOtherUnit = errors.error_code("draw.redraw_other_unit", 403, "重新抽取须由本单位的另一名负责人批准",
                                    "A re-draw is approved by another manager of the unit that runs the draw")
WindowPast = errors.error_code("draw.window_past", 422, "检查时段不得早于今天", "The visit window must not start in the past")
PlanNotFound = errors.error_code("plan.not_found", 404, "年度计划不存在", "No such annual plan")
PlanNotApproved = errors.error_code("plan.not_approved", 409, "年度计划尚未批准，不能用于抽取",
                                    "The annual plan is not approved yet and cannot be used by a draw")
PlanOverSupply = errors.error_code("plan.more_than_exist", 422, "计划检查数量超过名录库中该类检查对象的数量",
                                   "The plan asks for more inspections of a category than the directory has targets")
PlanApproval = errors.error_code("plan.second_approver_required", 403, "年度计划须由编制人以外的负责人批准",
                                 "An annual plan is approved by a manager other than its author")

_ALGORITHM_ERRORS = {cls.code: cls for cls in (RevealMismatch, RevealsIncomplete, TooFewParties, NotEnoughTargets,
                                               NotEnoughInspectors, RuleInvalid)}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
PARTY_ROLES = {Role.SUPERVISOR: "supervisor", Role.ADMIN: "supervisor", Role.LEGAL_REVIEWER: "observer"}
CITY = rules.CITY


def _domain(exc: algorithm.DrawError) -> errors.DomainError:
    return _ALGORITHM_ERRORS.get(exc.code, RuleInvalid)(str(exc), **exc.context)


def get(session: Session, draw_id: str) -> Draw:
    draw = session.get(Draw, draw_id)
    if draw is None:
        raise DrawNotFound()
    return draw


def _require(draw: Draw, *states: DrawStatus) -> None:
    if draw.status not in states:
        raise InvalidState(status=draw.status.value, allowed=[s.value for s in states])


def _flush(session: Session, draw: Draw) -> None:
    """Draw.version guards each step: two supervisors freezing or running the same draw at once
    cannot both succeed; the loser's whole transaction (inspections included) is rolled back."""
    draw_id = draw.id
    try:
        session.flush()
    except sa.orm.exc.StaleDataError:
        raise InvalidState("the draw was changed concurrently; reload it", draw=draw_id) from None


def _record(session: Session, draw: Draw, action: str, payload: dict[str, Any], **subjects: Any) -> None:
    audit.record(session, f"draws:draw:{action}", subjects=[("draw", draw.id), *subjects.items()], payload=payload)


# ---- rules and plans ---------------------------------------------------------------------------

def add_rule(session: Session, by: User, **data: Any) -> SamplingRule:
    if session.get(Region, data["region_code"]) is None:
        raise errors.CATALOG["directory.region_unknown"](fields={"region_code": [data["region_code"]]})
    rule = SamplingRule(created_by=by.id, **data)
    session.add(rule)
    try:
        with session.begin_nested():
            session.flush()
    except sa.exc.IntegrityError:
        raise errors.Conflict("a rule for this level, region and category already starts on that date") from None
    audit.record(session, "draws:sampling_rule:created", subjects={"sampling_rule": rule.id},
                 payload={**rules.to_document(rule), "level": rule.level.value, "region_code": rule.region_code,
                          "category": rule.category.value, "effective_from": rule.effective_from.isoformat()})
    return rule


def create_plan(session: Session, by: User, **data: Any) -> AnnualPlan:
    plan = AnnualPlan(created_by=by.id, unit_id=data.pop("unit_id", None) or by.unit_id, **data)
    _check_plan_supply(session, plan)
    session.add(plan)
    try:
        with session.begin_nested():
            session.flush()
    except sa.exc.IntegrityError:
        raise errors.Conflict("the unit already has a plan for that year") from None
    audit.record(session, "draws:annual_plan:created", subjects={"annual_plan": plan.id},
                 payload={"year": plan.year, "unit": plan.unit_id, "planned": plan.planned,
                          "cap_per_enterprise": plan.cap_per_enterprise})
    return plan


def _check_plan_supply(session: Session, plan: AnnualPlan) -> None:
    """A plan cannot ask for more on-site inspections of a category than the unit's area has
    active targets of it (the cap per enterprise allows several a year)."""
    region = session.scalar(sa.select(Unit.region_code).where(Unit.id == plan.unit_id))
    query = sa.select(Target.risk_class, sa.func.count(Target.id)).where(Target.active.is_(True))
    if region != CITY:
        query = query.where(Target.region_code == region)
    have = {risk.value: count for risk, count in session.execute(query.group_by(Target.risk_class))}
    over = {category: {"planned": wanted, "targets": have.get(category, 0), "cap_per_enterprise": plan.cap_per_enterprise}
            for category, wanted in (plan.planned or {}).items()
            if wanted > have.get(category, 0) * plan.cap_per_enterprise}
    if over:
        raise PlanOverSupply(fields={"planned": [f"{category}: {v['planned']} > {v['targets']} × {v['cap_per_enterprise']}"
                                                 for category, v in sorted(over.items())]}, over=over)


def approve_plan(session: Session, plan_id: int, by: User) -> AnnualPlan:
    plan = session.get(AnnualPlan, plan_id)
    if plan is None:
        raise PlanNotFound()
    if plan.status is not PlanStatus.DRAFT:
        raise errors.Conflict("the plan is already approved")
    if plan.created_by == by.id:
        raise PlanApproval()
    plan.status, plan.approved_by, plan.approved_at = PlanStatus.APPROVED, by.id, utcnow()
    session.flush()
    audit.record(session, "draws:annual_plan:approved", subjects={"annual_plan": plan.id}, payload={"year": plan.year})
    return plan


# ---- ceremony ----------------------------------------------------------------------------------

def create(session: Session, by: User, *, title: str, region_codes: list[str], level: Level, period_label: str,
           window_start: dt.date, window_end: dt.date, team_size: int = 2, cross_region: bool = False,
           joint_agencies: list[str] | None = None, plan_id: int | None = None) -> Draw:
    known = set(session.scalars(sa.select(Region.code).where(Region.code.in_(region_codes))))
    if unknown := sorted(set(region_codes) - known):
        raise errors.CATALOG["directory.region_unknown"](fields={"region_codes": unknown})
    if window_start > window_end:
        raise errors.ValidationFailed(fields={"window_end": ["不得早于开始日期 / must not precede window_start"]})
    if window_start < local_today():
        raise WindowPast(fields={"window_start": [window_start.isoformat()]})
    if plan_id is not None:
        plan = session.get(AnnualPlan, plan_id)
        if plan is None:
            raise PlanNotFound()
        if plan.status is not PlanStatus.APPROVED:
            raise PlanNotApproved(plan=plan_id)
    draw = Draw(title=title, unit_id=by.unit_id, created_by=by.id, region_codes=sorted(set(region_codes)),
                level=level, period_label=period_label, window_start=window_start, window_end=window_end,
                team_size=team_size, cross_region=cross_region, joint_agencies=list(joint_agencies or []),
                plan_id=plan_id)
    session.add(draw)
    session.flush()
    _record(session, draw, "created", {"title": title, "regions": draw.region_codes, "level": level.value,
                                       "period": period_label, "window": [window_start.isoformat(), window_end.isoformat()],
                                       "team_size": team_size, "cross_region": cross_region,
                                       "joint_agencies": draw.joint_agencies, "plan": plan_id})
    return draw


def commit(session: Session, draw: Draw, user: User, commitment: str) -> DrawParty:
    """A party commits to SHA-256(draw_id|user:<id>|secret) before the pools are frozen."""
    _require(draw, DrawStatus.COMMITTING)
    if not _HEX64.match(commitment):
        raise errors.ValidationFailed(fields={"commitment": ["64 lower-case hex characters (SHA-256)"]})
    if any(p.user_id == user.id for p in draw.parties):
        raise AlreadyCommitted()
    party = DrawParty(draw=draw, user_id=user.id, party=f"user:{user.id}", role=PARTY_ROLES.get(user.role, "other"),
                      commitment=commitment)
    session.add(party)
    session.flush()
    _record(session, draw, "committed", {"party": party.party, "role": party.role, "commitment": commitment},
            user=user.id)
    return party


def freeze(session: Session, draw: Draw, by: User) -> Draw:
    """Freeze and hash the eligible pools (rule 7). Eligible targets: active, in the draw's regions,
    with a rule in force, not drawn within the rule's K periods, under the per-year cap. Eligible
    inspectors: the agency's active inspectors with certificates valid for the whole window, not on
    leave or training in it. Conflicts in force exclude (inspector, target) pairs."""
    _require(draw, DrawStatus.COMMITTING)
    if len({p.user_id for p in draw.parties}) < 2 or not any(p.role == "observer" for p in draw.parties):
        raise NeedObserver(parties=len(draw.parties))
    doc = build_document(session, draw)
    try:
        quotas = algorithm.quotas(doc)
    except algorithm.DrawError as exc:
        raise _domain(exc) from None
    _check_team_supply(doc, quotas)
    draw.exclusions = doc.pop("exclusions")
    # Each member is encoded once, for its pool hash, the stored document and the run's input.
    encoded = {key: canonical_json(value) for key, value in doc.items()}
    hashes = algorithm.pool_hashes(doc, encoded)
    doc["pool_hashes"], encoded["pool_hashes"] = hashes, canonical_json(hashes)
    draw.algorithm_version = algorithm.ALGORITHM_VERSION
    draw.target_pool_hash, draw.inspector_pool_hash = hashes["targets"], hashes["inspectors"]
    draw.conflict_pool_hash, draw.rules_hash = hashes["conflicts"], hashes["rules"]
    draw.eligible_targets, draw.eligible_inspectors = len(doc["targets"]), len(doc["inspectors"])
    draw.strata = sorted(doc["rules"])
    draw.document = zlib.compress(canonical_object(encoded), 1)
    # What the run needs, without the 200,000 target rows: the strata quotas() made of them.
    strata = {key: [members, quota] for key, (members, quota) in quotas.items()}
    draw.run_input = zlib.compress(canonical_object(
        {**{key: value for key, value in encoded.items() if key != "targets"}, "strata": canonical_json(strata)}), 1)
    draw.status, draw.frozen_at = DrawStatus.FROZEN, utcnow()
    _flush(session, draw)
    _record(session, draw, "frozen", {"pool_hashes": hashes, "eligible_targets": draw.eligible_targets,
                                      "eligible_inspectors": draw.eligible_inspectors, "exclusions": draw.exclusions,
                                      "quotas": {k: q for k, (_, q) in quotas.items()},
                                      "algorithm_version": draw.algorithm_version})
    return draw


def _check_team_supply(doc: dict[str, Any], quotas: dict[str, Any]) -> None:
    """Fail at freeze, not after the reveals, when a region cannot field a team at all."""
    size = doc["options"]["team_size"]
    local = set(doc["options"]["local_regions"])
    for key in quotas:
        region = key.split("|", 1)[0]
        if doc["options"]["cross_region"]:
            supply = sum(1 for row in doc["inspectors"] if row[2] != region)
        else:
            supply = sum(1 for row in doc["inspectors"] if row[2] == region or row[2] in local)
        if supply < size:
            raise NotEnoughInspectors(f"region {region}: {supply} eligible inspectors, teams of {size}",
                                      region=region, eligible=supply, team_size=size)


def build_document(session: Session, draw: Draw) -> dict[str, Any]:
    on = draw.window_start
    all_rules = list(session.scalars(sa.select(SamplingRule)))
    chosen: dict[tuple[str, str], SamplingRule] = {}
    for region in draw.region_codes:
        for category in RiskClass:
            rule = rules.pick(all_rules, draw.level.value, region, category.value, on)
            if rule is not None:
                chosen[(region, category.value)] = rule
    if not chosen:
        raise NoRules(level=draw.level.value, regions=draw.region_codes, on=on.isoformat())
    taken = _drawn_in_period(session, draw, chosen)
    if taken and len(taken) == len(chosen):
        raise PeriodAlreadyDrawn(strata={"|".join(key): other for key, other in sorted(taken.items())})
    for key in taken:
        del chosen[key]

    # Targets recently drawn or at their yearly cap (rules 5 and 51), from small grouped queries.
    live = Inspection.status != InspectionStatus.CANCELLED
    last_random = dict(session.execute(
        sa.select(Inspection.target_id, sa.func.max(Inspection.window_start))
        .where(live, Inspection.kind == InspectionKind.RANDOM).group_by(Inspection.target_id)).all())
    year_counts = dict(session.execute(
        sa.select(Inspection.target_id, sa.func.count(Inspection.id))
        .where(live, Inspection.window_start >= dt.date(on.year, 1, 1), Inspection.window_start <= dt.date(on.year, 12, 31))
        .group_by(Inspection.target_id)).all())
    recent_since = {key: rules.period_start(on, rule.period, rule.exclude_recent_periods)
                    for key, rule in chosen.items() if rule.exclude_recent_periods}
    plan = session.get(AnnualPlan, draw.plan_id) if draw.plan_id else None
    plan_cap = plan.cap_per_enterprise if plan else None  # rule 51: the plan's cap per enterprise per year
    caps = {key: min(filter(None, (rule.cap_per_year, plan_cap)), default=None) for key, rule in chosen.items()}
    # 200,000 rows: plain Core rows with the enum read as text (no ORM or enum objects per row).
    table = Target.__table__
    rows = plain_rows(session, sa.select(
        table.c.id, table.c.uscc, table.c.region_code, sa.type_coerce(table.c.risk_class, sa.String),
        table.c.positive_list).where(table.c.active.is_(True), table.c.region_code.in_(draw.region_codes))
        .order_by(table.c.id))
    # Rows are (id, uscc, region, risk, positive) tuples, kept as they are: 200,000 of them.
    exclusions = {"no_rule": 0, "period_already_drawn": 0, "drawn_recently": 0, "yearly_cap": 0}
    targets = [row for row in rows if (row[2], row[3]) in chosen]
    if taken:
        exclusions["period_already_drawn"] = sum(1 for row in rows if (row[2], row[3]) in taken)
    exclusions["no_rule"] = len(rows) - len(targets) - exclusions["period_already_drawn"]
    suspects = last_random.keys() | year_counts.keys()  # targets inspected before: only they can be left out below
    if suspects:
        kept = []
        for row in targets:
            tid, key = row[0], (row[2], row[3])
            if tid not in suspects:
                kept.append(row)
            elif key in recent_since and tid in last_random and last_random[tid] >= recent_since[key]:
                exclusions["drawn_recently"] += 1
            elif caps[key] and year_counts.get(tid, 0) >= caps[key]:
                exclusions["yearly_cap"] += 1
            else:
                kept.append(row)
        targets = kept

    # The agency's active inspectors with their certificates (User.certificates' order), as rows.
    agency_id = session.scalar(sa.select(Unit.agency_id).where(Unit.id == draw.unit_id))
    people: dict[int, tuple[str | None, list[Any]]] = {}
    for row in session.execute(
            sa.select(User.id, User.region_code, Certificate.number, Certificate.status, Certificate.valid_from,
                      Certificate.valid_until)
            .join(Unit, Unit.id == User.unit_id).outerjoin(Certificate, Certificate.user_id == User.id)
            .where(Unit.agency_id == agency_id, User.role == Role.INSPECTOR, User.active.is_(True))
            .order_by(User.id, Certificate.valid_from)):
        _, certificates = people.setdefault(row.id, (row.region_code, []))
        if row.number is not None:
            certificates.append(row)
    away = roster.unavailable(session, people, draw.window_start, draw.window_end)
    inspectors: list[list[Any]] = []
    exclusions.update(inspectors_uncertified=0, inspectors_unavailable=len(away))
    for user_id, (region_code, held) in people.items():
        cert = _cert_for_window(held, draw.window_start, draw.window_end)
        if cert is None:
            exclusions["inspectors_uncertified"] += 1
        elif user_id not in away:
            inspectors.append([user_id, cert.number, region_code])

    pool_users = {row[0] for row in inspectors}
    uscc_to_target = {row[1]: row[0] for row in targets}
    session.flush()  # plain Core reads below bypass autoflush
    conflict_rows = plain_rows(session, roster.active_conflicts(draw.window_start))
    conflicts = sorted({(uid, uscc_to_target[code]) for uid, code in conflict_rows
                        if uid in pool_users and code in uscc_to_target})
    return {
        "format": algorithm.FORMAT,
        "algorithm_version": algorithm.ALGORITHM_VERSION,
        "draw_id": draw.id,
        "targets": targets,
        "inspectors": inspectors,
        "conflicts": [list(pair) for pair in conflicts],
        "rules": {f"{region}|{category}": rules.to_document(rule) for (region, category), rule in sorted(chosen.items())},
        "options": {"team_size": draw.team_size, "cross_region": draw.cross_region, "local_regions": [CITY],
                    "joint_agencies": list(draw.joint_agencies)},
        "exclusions": exclusions,
    }


def _drawn_in_period(session: Session, draw: Draw, chosen: dict[tuple[str, str], SamplingRule]
                     ) -> dict[tuple[str, str], str]:
    """Strata (region, category) that another draw of the same level already froze in the rule's
    period: a rule's quota is drawn once per period. A frozen draw counts too, because once its
    secrets are revealed its result can be foreseen: doing it again takes a re-draw request with a
    reason and a second approver (rule 7), which supersedes it. Returns stratum -> that draw's id."""
    on = draw.window_start
    bounds = {key: (rules.period_start(on, rule.period), rules.period_start(on, rule.period, -1))
              for key, rule in chosen.items()}
    others = session.execute(sa.select(Draw.id, Draw.window_start, Draw.strata).where(
        Draw.id != draw.id, Draw.level == draw.level,
        Draw.status.in_([DrawStatus.FROZEN, DrawStatus.EXECUTED, DrawStatus.PUBLISHED]),
        Draw.window_start >= min(start for start, _ in bounds.values()),
        Draw.window_start < max(end for _, end in bounds.values())).order_by(Draw.window_start))
    taken: dict[tuple[str, str], str] = {}
    for other_id, start, strata in others:
        for name in strata or ():
            key = tuple(name.split("|", 1))
            if key in bounds and bounds[key][0] <= start < bounds[key][1]:
                taken.setdefault(key, other_id)  # type: ignore[arg-type]
    return taken


def _cert_for_window(certificates: list[Any], start: dt.date, end: dt.date) -> Any:
    """行政处罚法 第42条: a certificate valid on every day of the visit window."""
    return next((c for c in certificates
                 if c.status is CertificateStatus.ACTIVE and c.valid_from <= start and end <= c.valid_until), None)


def set_public_value(session: Session, draw: Draw, value: str) -> Draw:
    """A value nobody knew when committing (a lottery number, a later block hash). It must be fixed
    before any secret is revealed, or the last revealer's partner could choose among values."""
    _require(draw, DrawStatus.FROZEN)
    if any(p.secret is not None for p in draw.parties):
        raise PublicValueLate()
    before = draw.public_value
    draw.public_value = value
    _flush(session, draw)
    _record(session, draw, "public_value_set", {"public_value": value, "before": before})
    return draw


def reveal(session: Session, draw: Draw, user: User, secret: str) -> DrawParty:
    _require(draw, DrawStatus.FROZEN)
    party = next((p for p in draw.parties if p.user_id == user.id), None)
    if party is None:
        raise NotAParty()
    if party.secret is not None:
        raise AlreadyRevealed()
    if algorithm.commitment(draw.id, party.party, secret) != party.commitment:
        _record(session, draw, "reveal_refused", {"party": party.party}, user=user.id)
        raise RevealMismatch(party=party.party)
    party.secret, party.revealed_at = secret, utcnow()
    session.flush()
    _record(session, draw, "revealed", {"party": party.party, "secret": secret}, user=user.id)
    return party


def run(session: Session, draw: Draw, by: User) -> Draw:
    """Compute the draw and create the secret inspections (rule 6: confidential until the visit)."""
    _require(draw, DrawStatus.FROZEN)
    doc = _unpack(draw.run_input)
    strata = doc.pop("strata")
    if doc["pool_hashes"] != {"targets": draw.target_pool_hash, "inspectors": draw.inspector_pool_hash,
                              "conflicts": draw.conflict_pool_hash, "rules": draw.rules_hash}:
        raise InvalidState("the stored pools are not the frozen ones", draw=draw.id)
    doc["commitments"] = [{"party": p.party, "commitment": p.commitment} for p in draw.parties]
    doc["reveals"] = [{"party": p.party, "secret": p.secret} for p in draw.parties if p.secret is not None]
    doc["public_value"] = draw.public_value
    try:
        algorithm.run(doc, strata)
    except algorithm.DrawError as exc:
        raise _domain(exc) from None
    # create_many checks the targets and the whole team set in a few queries and writes with Core.
    assignments = doc["result"]["assignments"]
    purpose = f"双随机抽查：{draw.title}" + (f"（联合：{'、'.join(draw.joint_agencies)}）" if draw.joint_agencies else "")
    inspections.create_many(session, ({
        "target_id": item["target"], "lead_id": item["team"][0], "member_ids": item["team"][1:],
        "window_start": draw.window_start, "window_end": draw.window_end, "kind": InspectionKind.RANDOM,
        "unit_id": draw.unit_id, "purpose": purpose[:400], "secret": True, "draw_id": draw.id}
        for item in assignments), created_by=by, load=False)
    draw.seed, draw.result_hash = doc["seed"], doc["result_hash"]
    draw.drawn_count = len(assignments)
    draw.outcome = _pack({key: doc[key] for key in OUTCOME})
    draw.status, draw.executed_at = DrawStatus.EXECUTED, utcnow()
    _flush(session, draw)
    _record(session, draw, "executed", {"seed": draw.seed, "result_hash": draw.result_hash,
                                        "drawn": draw.drawn_count, "public_value": draw.public_value})
    return draw


def publish(session: Session, draw: Draw, today: dt.date | None = None) -> Draw:
    """Publish inputs and result once every drawn inspection is over (rule 6: secret until the visit)."""
    _require(draw, DrawStatus.EXECUTED)
    today = today or local_today()
    open_ = session.scalar(sa.select(sa.func.count(Inspection.id)).where(
        Inspection.draw_id == draw.id, Inspection.status.in_([InspectionStatus.ASSIGNED, InspectionStatus.IN_PROGRESS])))
    if open_ and draw.window_end >= today:
        raise NotYetVisited(open_inspections=open_)
    draw.document = zlib.compress(document_bytes(draw), 1)  # the whole file from now on: downloads just inflate it
    draw.status, draw.published_at = DrawStatus.PUBLISHED, utcnow()
    _flush(session, draw)
    _record(session, draw, "published", {"result_hash": draw.result_hash, "open_inspections": open_})
    return draw


def request_redraw(session: Session, draw: Draw, by: User, reason_code: RedrawReason, reason: str) -> RedrawRequest:
    _require(draw, DrawStatus.COMMITTING, DrawStatus.FROZEN, DrawStatus.EXECUTED)
    if session.scalar(sa.select(RedrawRequest.id).where(RedrawRequest.draw_id == draw.id,
                                                        RedrawRequest.approved_at.is_(None))):
        raise RedrawPending()
    request = RedrawRequest(draw_id=draw.id, reason_code=reason_code, reason=reason, requested_by=by.id)
    session.add(request)
    session.flush()
    _record(session, draw, "redraw_requested", {"request": request.id, "reason_code": reason_code.value,
                                                "reason": reason}, redraw_request=request.id)
    return request


def approve_redraw(session: Session, request_id: int, by: User) -> Draw:
    """Second signature (rule 7). The old draw is superseded and its inspections cancelled; the new
    draw starts a fresh ceremony (new commitments, new pools) and carries attempt + 1."""
    request = session.get(RedrawRequest, request_id)
    if request is None:
        raise RedrawNotFound()
    if request.approved_at is not None:
        raise errors.Conflict("the re-draw was already approved")
    if request.requested_by == by.id:
        raise SecondApproverRequired()
    old = get(session, request.draw_id)
    if by.role is not Role.ADMIN and by.unit_id != old.unit_id:
        raise RedrawOtherUnit(draw_unit=old.unit_id)
    _require(old, DrawStatus.COMMITTING, DrawStatus.FROZEN, DrawStatus.EXECUTED)
    for inspection in session.scalars(sa.select(Inspection).where(
            Inspection.draw_id == old.id, Inspection.status.in_([InspectionStatus.ASSIGNED, InspectionStatus.IN_PROGRESS]))):
        inspections.cancel(session, inspection, reason=f"重新抽取 / re-draw #{request.id}: {request.reason}"[:400])
    old.status, old.superseded_at = DrawStatus.SUPERSEDED, utcnow()
    new = Draw(title=old.title, unit_id=old.unit_id, created_by=by.id, region_codes=old.region_codes, level=old.level,
               period_label=old.period_label, window_start=old.window_start, window_end=old.window_end,
               team_size=old.team_size, cross_region=old.cross_region, joint_agencies=old.joint_agencies,
               plan_id=old.plan_id, attempt=old.attempt + 1, redraw_of=old.id)
    session.add(new)
    session.flush()
    request.approved_by, request.approved_at, request.new_draw_id = by.id, utcnow(), new.id
    session.flush()
    _record(session, old, "redraw_approved", {"request": request.id, "reason_code": request.reason_code.value,
                                              "reason": request.reason, "requested_by": request.requested_by,
                                              "new_draw": new.id, "attempt": new.attempt},
            redraw_request=request.id)
    return new


def changes_after_run(session: Session, draw: Draw) -> list[dict[str, Any]]:
    """What was changed in a drawn result after the run, with the reasons given: members removed
    or added (by certificate number) and inspections cancelled, oldest first. Shown with the
    published draw, so no drawn team or target is changed quietly (rule 7)."""
    if draw.executed_at is None:
        return []
    changes: list[dict[str, Any]] = []
    for uscc, certificate, assigned_at, removed_at, reason in session.execute(
            sa.select(Target.uscc, InspectionMember.certificate_number, InspectionMember.assigned_at,
                      InspectionMember.removed_at, InspectionMember.removed_reason)
            .join(Inspection, Inspection.id == InspectionMember.inspection_id).join(Target, Target.id == Inspection.target_id)
            .where(Inspection.draw_id == draw.id, sa.or_(InspectionMember.removed_at.is_not(None),
                                                         InspectionMember.assigned_at > draw.executed_at))):
        if assigned_at > draw.executed_at:
            changes.append({"target": uscc, "change": "member_added", "certificate": certificate, "reason": None,
                            "at": assigned_at})
        if removed_at is not None:
            changes.append({"target": uscc, "change": "member_removed", "certificate": certificate, "reason": reason,
                            "at": removed_at})
    for uscc, reason, at in session.execute(
            sa.select(Target.uscc, Inspection.cancelled_reason, Inspection.updated_at)
            .join(Target, Target.id == Inspection.target_id)
            .where(Inspection.draw_id == draw.id, Inspection.status == InspectionStatus.CANCELLED)):
        changes.append({"target": uscc, "change": "cancelled", "certificate": None, "reason": reason, "at": at})
    return sorted(changes, key=lambda change: (change["at"], change["target"], change["change"]))


def redraws_of(session: Session, draw: Draw) -> list[RedrawRequest]:
    """Approved re-draws in this draw's chain, oldest first (shown publicly)."""
    chain, current = [], draw
    while current.redraw_of:
        chain.append(current.redraw_of)
        current = get(session, current.redraw_of)
    if not chain:
        return []
    return list(session.scalars(sa.select(RedrawRequest).where(
        RedrawRequest.draw_id.in_(chain), RedrawRequest.approved_at.is_not(None)).order_by(RedrawRequest.id)))


# ---- secrecy in the audit log (rule 6) ---------------------------------------------------------
# The unit's managers (its supervisors, and administrators) see drawn targets; anyone else
# reading the log (an observer, another inspector, another unit's supervisor, police and
# prosecutors) does not see a secret inspection's entries until its visit starts, unless on its
# team, nor a draw's revealed secrets and seed (which with the frozen pools foretell the result)
# until publication.

def discloses_seed(reader: Principal, draw: Draw) -> bool:
    """The seed (with the frozen pools it foretells the result) is disclosed with publication, or
    earlier to the drawing unit's managers: its supervisors and the administrators (rule 6)."""
    if draw.published_at is not None:
        return True
    if reader.role == Role.ADMIN.value:
        return True
    return reader.role in MANAGERS and reader.unit_id == draw.unit_id


def _sealed_inspections(reader: Principal) -> Any:
    if reader.role == Role.ADMIN.value:
        return None
    mine = sa.select(InspectionMember.inspection_id).where(InspectionMember.user_id == reader.user_id,
                                                          InspectionMember.removed_at.is_(None))
    sealed = sa.select(Inspection.id).where(Inspection.secret.is_(True), Inspection.status == InspectionStatus.ASSIGNED,
                                            Inspection.id.not_in(mine))
    if reader.role in MANAGERS:  # the unit that drew (and assigned) them knows its own secret inspections
        return sealed.where(Inspection.unit_id != reader.unit_id)
    return sealed


def _sealed_draws(reader: Principal) -> Any:
    if reader.role == Role.ADMIN.value:
        return None
    unpublished = sa.select(Draw.id).where(Draw.status.in_([DrawStatus.FROZEN, DrawStatus.EXECUTED]))
    if reader.role in MANAGERS:  # the drawing unit's supervisors, as for the seed itself
        return unpublished.where(Draw.unit_id != reader.unit_id)
    return unpublished


audit.seal("inspection", _sealed_inspections)
audit.seal("draw", _sealed_draws, tags=("draws:draw:revealed", "draws:draw:executed"))


# ---- the document ------------------------------------------------------------------------------

# The frozen document (pools, rules, pool hashes) is stored as frozen; the run adds its outcome
# beside it, so neither the run nor a staff view has to decode the pools again. Publication
# stores the whole file (document with the outcome merged in), which the public downloads.
OUTCOME = ("commitments", "reveals", "public_value", "seed", "result", "result_hash")


def _pack(doc: dict[str, Any]) -> bytes:
    return zlib.compress(canonical_json(doc), 1)


def _unpack(packed: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(packed))


def outcome(draw: Draw) -> dict[str, Any]:
    """Commitments, reveals, public value, seed and result of an executed draw."""
    if draw.outcome is None:
        raise InvalidState("the draw has not been run", status=draw.status.value)
    return _unpack(draw.outcome)


def document(draw: Draw) -> dict[str, Any]:
    """The draw document: the frozen pools, and once run, the outcome."""
    if draw.document is None:
        raise InvalidState("the pools are not frozen yet", status=draw.status.value)
    doc = _unpack(draw.document)
    if draw.outcome is not None:
        doc.update(_unpack(draw.outcome))
    return doc


def document_bytes(draw: Draw) -> bytes:
    """The verifiable JSON file (canonical JSON, UTF-8). A published draw stores it whole."""
    if draw.status is DrawStatus.PUBLISHED:
        return zlib.decompress(draw.document)  # type: ignore[arg-type]
    return canonical_json(document(draw))
