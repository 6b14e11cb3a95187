"""Issue 14 item 1: every path that returns audit entry content reads through the one sealed read.

With a secret draw run (its revealed secrets and seed sealed until publication) and its secret
inspections (sealed until the visit), every route of the app that returns entry content is walked
for every role that is not entitled to the secret, and the raw response bytes, and anything
base64 in them, must not hold a drawn target, its credit code, an inspection id, the seed or a
secret. The same walk for the drawing unit's supervisor finds them, so the search can fail."""
from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa

from server.core.access import Role
from server.modules.audit import checkpoints
from server.modules.audit.models import AuditCheckpoint, AuditHead, AuditSubject
from server.modules.draws.models import Draw
from server.modules.inspections.models import Inspection
from server.modules.users.models import AgencyKind
from tests import factories
from tests.draws.test_draws import SECRETS, World, _ceremony
from tests.cases.conftest import world  # noqa: F401  (fixtures of the transfer scene)
from tests.helpers import device_headers, staff_headers
from tests.transfers.conftest import scene  # noqa: F401

AUDIT_BLUEPRINTS = ("audit", "audit_public")
B64 = re.compile(rb"[A-Za-z0-9+/=_-]{16,}")
ROOT = Path(__file__).resolve().parents[2]


def _decoded(raw: bytes) -> bytes:
    """The response and every base64 run in it, decoded (a proof file carries the entry in base64)."""
    parts = [raw]
    for token in B64.findall(raw):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                parts.append(decode(token + b"=" * (-len(token) % 4)))
            except (binascii.Error, ValueError):
                continue
    return b"\n".join(parts)


def _urls(app: Any, db_session: Any) -> Iterator[str]:
    """Every GET URL of the audit routes, each parameter filled with every value the log holds."""
    size = db_session.scalar(sa.select(AuditHead.size))
    subjects = db_session.execute(sa.select(AuditSubject.subject_type, AuditSubject.subject_id).distinct()).all()
    checkpoint_ids = db_session.scalars(sa.select(AuditCheckpoint.id)).all()
    fillers = {"idx": [{"idx": i} for i in range(size)],
               "checkpoint_id": [{"checkpoint_id": c} for c in checkpoint_ids],
               "subject_type": [{"subject_type": t, "subject_id": v} for t, v in subjects]}
    seen = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in AUDIT_BLUEPRINTS or "GET" not in rule.methods:
            continue
        seen += 1
        arguments = set(rule.arguments)
        if not arguments:
            if rule.endpoint == "audit.Entries":
                yield from (f"{rule.rule}?order=asc&page_size=100&page={p}" for p in range(1, size // 100 + 2))
            else:
                yield rule.rule
            continue
        key = next(k for k in ("idx", "subject_type", "checkpoint_id") if k in arguments)
        assert arguments <= set(fillers[key][0]), f"a new audit route to fill in: {rule.rule} {arguments}"
        for values in fillers[key]:
            url = rule.rule
            for name, value in values.items():
                url = re.sub(rf"<(?:\w+:)?{name}>", str(value), url)
            yield url
    assert seen >= 7  # entries, detail, history, proof, checkpoint, checkpoint note, consistency


def _walk(client: Any, urls: list[str], headers: dict[str, str], secrets: dict[str, bytes]) -> set[str]:
    found = set()
    for url in urls:
        raw = _decoded(client.get(url, headers=headers).get_data())
        found |= {name for name, secret in secrets.items() if secret in raw}
    return found


def test_no_route_returns_a_sealed_entry_to_anyone_not_entitled(app, client, db_session):
    world = World()
    result = _ceremony(client, world)
    inspections = db_session.scalars(sa.select(Inspection).where(Inspection.draw_id == result["id"])).all()
    seed = db_session.get(Draw, result["id"]).seed
    secrets: dict[str, bytes] = {"seed": seed.encode(), **{f"secret:{k}": v.encode() for k, v in SECRETS.items()}}
    for inspection in inspections:
        secrets[f"inspection:{inspection.id}"] = inspection.id.encode()
        secrets[f"target:{inspection.target_id}"] = f"target:{inspection.target_id}".encode()
        secrets[f"uscc:{inspection.target.uscc}"] = inspection.target.uscc.encode()
    checkpoints.publish(db_session, app.config)
    db_session.commit()
    urls = list(_urls(app, db_session))

    on_team = {m.user_id for i in inspections for m in i.members}
    outsider = next(u for people in world.inspectors.values() for u in people if u.id not in on_team)
    other_unit = world.brigades["611002"]
    police_unit = factories.UnitFactory(agency=factories.AgencyFactory(kind=AgencyKind.PUBLIC_SECURITY))
    procuratorate = factories.UnitFactory(agency=factories.AgencyFactory(kind=AgencyKind.PROCURATORATE))
    readers = {
        "inspector": factories.UserFactory(role=Role.INSPECTOR, unit=world.detachment),
        "inspector (drawn pool, not on a team)": outsider,
        "auxiliary": factories.UserFactory(role=Role.AUXILIARY, unit=world.detachment),
        "supervisor of another unit": factories.UserFactory(role=Role.SUPERVISOR, unit=other_unit),
        "legal reviewer (a party to the draw)": world.observer,
        "legal reviewer": factories.UserFactory(role=Role.LEGAL_REVIEWER, unit=world.detachment),
        "police": factories.UserFactory(role=Role.POLICE, unit=police_unit),
        "prosecutor": factories.UserFactory(role=Role.PROSECUTOR, unit=procuratorate),
    }
    db_session.flush()
    headers = {name: staff_headers(user) for name, user in readers.items()}
    headers["device"] = device_headers(factories.DeviceFactory(user=outsider))
    headers["anonymous"] = {}
    leaks = {name: _walk(client, urls, h, secrets) for name, h in headers.items()}
    assert leaks == {name: set() for name in headers}

    # the drawing unit's supervisor may read them all, so the walk does find what it looks for
    # (the log names targets by id; a credit code would only be there if an entry copied it)
    assert _walk(client, urls, staff_headers(world.chief), secrets) == {n for n in secrets if not n.startswith("uscc:")}


def test_entry_content_is_read_only_through_the_sealed_read():
    """A new path cannot forget the seals: outside the audit module's sealed read, no code selects
    whole entries or their bodies (integrity.py re-hashes the whole log and returns only verdicts)."""
    allowed = {"server/modules/audit/operations.py", "server/modules/audit/integrity.py",
               "server/modules/audit/models.py"}
    reads = re.compile(r"select\(\s*AuditEntry\s*[,)]|get\(\s*AuditEntry\b|AuditEntry\.body")
    offenders = []
    for folder in ("server", "mobile_api", "sync"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in allowed:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if reads.search(line) and "read_entries(" not in line:
                    offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


def test_a_transfer_package_carries_no_sealed_entry(app, db_session, scene, tmp_path):
    """What a package exports is read as by no one in particular: an entry about the case that also
    names a secret inspection not yet visited stays out, and the package still verifies."""
    import datetime as dt
    import json
    import zipfile

    from server.modules.audit import operations as audit
    from server.modules.inspections import operations as inspections
    from server.modules.inspections.models import InspectionKind, OutsidePlanReason
    from server.modules.transfers import verify as package_verify
    from tests.transfers.test_package import _build

    supervisor = factories.UserFactory(role=Role.SUPERVISOR)
    lead, member = factories.inspector(unit=supervisor.unit), factories.inspector(unit=supervisor.unit)
    today = dt.date.today()
    secret = inspections.create(db_session, target_id=factories.TargetFactory().id, lead_id=lead.id,
                                member_ids=[member.id], window_start=today, window_end=today + dt.timedelta(days=7),
                                kind=InspectionKind.ROUTINE, created_by=supervisor, secret=True,
                                outside_plan_reason=OutsidePlanReason.SUPERIOR_ASSIGNMENT)
    marker = "sealed-marker-5f0c2e"
    audit.record(db_session, "inspection:inspection:linked", subjects={"case": scene.case.id, "inspection": secret.id},
                 payload={"note": marker})
    audit.record(db_session, "web:case:noted", subjects={"case": scene.case.id}, payload={"note": "open-marker-77a1"})
    db_session.commit()

    package, volumes = _build(app, db_session, scene)
    raw = b""
    for volume in volumes:
        with zipfile.ZipFile(volume) as zf:
            raw += b"".join(_decoded(zf.read(name)) for name in zf.namelist())
    assert b"open-marker-77a1" in raw  # the case's entries are there, read the same way
    assert marker.encode() not in raw and secret.id.encode() not in raw
    folder = tmp_path / "package"
    with zipfile.ZipFile(volumes[0]) as zf:
        zf.extractall(folder)
    report = package_verify.verify(package_verify.open_source([str(folder)]))
    assert not report.failures, report.failures
    assert json.loads((folder / "seal.json").read_text())["seal_idx"] == package.seal_idx
