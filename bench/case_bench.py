"""Case benchmark: review queue, case detail and reviewer screen latency at 50,000 cases and
1,000,000 audit entries on PostgreSQL, and the pure discretion calculator's throughput.

Run: .venv/bin/python bench/case_bench.py   (needs PostgreSQL at postgresql://postgres@127.0.0.1:5432,
trust auth; creates and drops its own scratch database). Prints ``name: number unit`` lines.
Cases, handlers, history and clocks are bulk-loaded with COPY; the audit log is bulk-built by
``bench/audit_bench.py``'s builder. Requests go through the Flask test client with a real bearer
token, so authentication, the policy table, scope checks and serialisation are all measured.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PG = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
CASES = int(os.environ.get("BENCH_CASES", 50_000))
AUDIT = int(os.environ.get("BENCH_AUDIT", 1_000_000))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", 300))
TMP = Path(tempfile.mkdtemp(prefix="case-bench-"))
os.environ.setdefault("ENFORCE_INSTANCE_PATH", str(TMP))

STATES = ["lead", "filed", "investigating", "notified", "in_review", "reviewed", "decided", "served", "paid",
          "closed", "archived"]
WEIGHTS = [5, 5, 25, 10, 4, 2, 8, 8, 10, 10, 13]


def say(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:.{2 if value < 100 else 0}f} {unit}", flush=True)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[94]


def people(app):  # type: ignore[no-untyped-def]
    """Seven county brigades with a head and 20 certified inspectors each, an admin and a reviewer."""
    from server.core.access import Role
    from server.extensions import db
    from server.modules.discretion import operations as discretion
    from server.modules.users import operations as users
    from server.modules.users.models import Agency, AgencyKind, Certificate, Unit, UnitKind, User

    with app.app_context():
        agency = Agency(kind=AgencyKind.ECOLOGY_BUREAU, name_zh="商洛市生态环境局", name_en="Shangluo", region_code="611000")
        db.session.add(agency)
        db.session.flush()
        units, inspectors = [], []
        for n, code in enumerate(["611002", "611021", "611022", "611023", "611024", "611025", "611026"]):
            unit = Unit(agency_id=agency.id, kind=UnitKind.BRIGADE, name_zh=f"执法大队{n}", name_en=f"Brigade {n}",
                        region_code=code)
            db.session.add(unit)
            db.session.flush()
            units.append(unit.id)
            for i in range(21):
                user = User(username=f"u{n}_{i}", display_name=f"人员{n}-{i}", unit_id=unit.id, region_code=code,
                            role=Role.SUPERVISOR if i == 0 else Role.INSPECTOR)
                db.session.add(user)
                db.session.flush()
                db.session.add(Certificate(user_id=user.id, number=f"C{n:02d}{i:04d}", issuer="陕西省人民政府",
                                           scope="生态环境", valid_from=dt.date(2025, 1, 1), valid_until=dt.date(2028, 1, 1)))
                inspectors.append((unit.id, user.id, f"C{n:02d}{i:04d}"))
        admin = User(username="admin", display_name="管理员", unit_id=units[0], region_code="611002", role=Role.ADMIN)
        reviewer = User(username="reviewer", display_name="法制审核员", unit_id=units[0], region_code="611002",
                        role=Role.LEGAL_REVIEWER)
        db.session.add_all([admin, reviewer])
        db.session.flush()
        users.add_legal_qualification(db.session, reviewer, kind="法律职业资格证书", number="A2019000001",
                                      obtained_on=dt.date(2019, 9, 1))
        discretion.load_shipped(db.session)
        db.session.commit()
        return units, inspectors, admin.id, reviewer.id


def bulk_cases(app, units, inspectors, submitter_id) -> list[str]:  # type: ignore[no-untyped-def]
    from server.extensions import db

    rng = random.Random(7)
    by_unit: dict[int, list[tuple[int, str]]] = {}
    for unit_id, user_id, cert in inspectors:
        by_unit.setdefault(unit_id, []).append((user_id, cert))
    now = "2026-09-01 08:00:00+00"
    ids, reviews = [], 0
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            case_cols = ("id, number, unit_id, state, title, party_name, party_kind, facts, crime_facts, violation_code, "
                         "legal_basis, measures, filed_on, limitation_warning, special_case, joint, major_public_interest, "
                         "complex_case, notified_fine, hearing_rights, statement_made, statement_reviewed, statement_waived, "
                         "hearing_held, suspected_crime, crime_hits, e_service_consent, decision_date, decided_fine, "
                         "archived_at, version, created_at, updated_at")
            with cur.copy(f"COPY penalty_case ({case_cols}) FROM STDIN") as copy, \
                    open(TMP / "handlers.tsv", "w") as handlers, open(TMP / "events.tsv", "w") as events, \
                    open(TMP / "deadlines.tsv", "w") as clocks, open(TMP / "reviews.tsv", "w") as review_rows:
                for n in range(CASES):
                    case_id = str(uuid.UUID(int=rng.getrandbits(128)))
                    unit_id = units[n % len(units)]
                    state = rng.choices(STATES, WEIGHTS)[0]
                    filed = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(240))
                    fine = rng.randrange(100, 1000) * 1000
                    decided = state in ("decided", "served", "paid", "closed", "archived")
                    copy.write_row((case_id, None if state == "lead" else f"商环立〔2026〕{unit_id:02d}-{n:06d}号", unit_id,
                                    state, f"超标排放案 {n}", f"商洛测试企业{n}有限公司", "organisation", "超标排放",
                                    "{}", "air_99_2", "大气污染防治法 第99条", "[]", None if state == "lead" else filed,
                                    False, n % 97 == 0, False, False, False, fine, fine >= 50000, False, False, False,
                                    False, False, "[]", False, filed + dt.timedelta(days=40) if decided else None,
                                    fine if decided else None, now if state == "archived" else None, 1, now, now))
                    ids.append(case_id)
                    team = rng.sample(by_unit[unit_id][1:], 2)
                    for position, (user_id, cert) in enumerate(team):
                        handlers.write(f"{case_id}\t{user_id}\t{'t' if position == 0 else 'f'}\t{cert}\t{now}\n")
                    if state != "lead":
                        events.write(f"{case_id}\tfile\tlead\tfiled\t行政处罚法 第54条\t{filed}\t{now}\t{team[0][0]}\t{{}}\n")
                        events.write(f"{case_id}\tstart_investigation\tfiled\tinvestigating\t行政处罚法 第54、55条\t{filed}"
                                     f"\t{now}\t{team[0][0]}\t{{}}\n")
                        due = filed + dt.timedelta(days=90)
                        status = "met" if decided else "open"
                        met = (filed + dt.timedelta(days=40)) if decided else "\\N"
                        clocks.write(f"{case_id}\tdecision\t{filed}\t{due}\t{team[0][0]}\t{unit_id}\t{status}\t{met}\t1\n")
                    if state == "in_review":
                        reviews += 1
                        submitted = filed + dt.timedelta(days=30)
                        hits = json.dumps([{"code": "fine_threshold", "name_zh": "罚款数额达到目录清单标准",
                                            "source": "行政处罚法 第58条"}], ensure_ascii=False)
                        proposal = json.dumps({"fine": fine, "measures": [], "discretion_record": None,
                                               "deadline_id": None})
                        review_rows.write(f"{case_id}\t1\tdecision\t{hits}\t{proposal}\t{submitted}\t{submitter_id}\t{now}"
                                          f"\tpending\t{submitted + dt.timedelta(days=7)}\tf\n")
            for table, cols, path in (
                    ("case_handler", "case_id, user_id, lead, certificate_number, assigned_at", "handlers.tsv"),
                    ("case_event", "case_id, action, from_state, to_state, rule, \"on\", at, by_user_id, payload", "events.tsv"),
                    ("deadline", "case_id, type_code, started_on, due_on, assignee_id, unit_id, status, met_on, version",
                     "deadlines.tsv"),
                    ("legal_review", "case_id, round_no, subject, scope_hits, proposal, submitted_on, submitted_by, "
                                     "submitted_at, status, due_on, extended", "reviews.tsv")):
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy, open(TMP / path, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        copy.write(chunk)
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    return ids


def measure(client, url: str, headers: dict[str, str], n: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.get(url() if callable(url) else url, headers=headers)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return samples


def discretion_rate() -> float:
    from server.modules.discretion import calculator as calc

    data = json.loads((Path(calc.__file__).with_name("benchmarks") / "air-99-2.two-dim.json").read_text("utf-8"))
    bench = calc.parse(data)
    inputs = {"location": {"level": 3, "evidence": "e"}, "gas_type": {"level": 3, "evidence": "e"},
              "exceedance": {"value": 60, "evidence": "e"}, "flow": {"value": 30000, "evidence": "e"},
              "period": {"level": 1, "evidence": "e"}, "violations_2y": {"value": 2, "evidence": "e"},
              "regional_impact": {"level": 1, "evidence": "e"}}
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        for _ in range(200):
            calc.calculate(bench, inputs)
        count += 200
    return count / (time.perf_counter() - t0)


def main() -> None:
    from bench.audit_bench import bulk_build, drop_database, make_app, pg_database
    from server.extensions import db
    from server.modules.auth.operations import staff_token
    from server.modules.reviews.models import LegalReview
    from server.modules.users.models import User

    say("discretion_calcs_per_s", discretion_rate(), "calcs/s")
    name = f"case_bench_{os.getpid()}"
    url = pg_database(name)
    try:
        app = make_app(url)
        t0 = time.perf_counter()
        bulk_build(app, AUDIT)  # first: the audit log must be empty for the bulk builder
        units, inspectors, admin_id, reviewer_id = people(app)
        ids = bulk_cases(app, units, inspectors, inspectors[1][1])
        say("case_bench_load_s", time.perf_counter() - t0, "s")
        client = app.test_client()
        rng = random.Random(11)
        with app.app_context():
            admin = db.session.get(User, admin_id)
            reviewer = db.session.get(User, reviewer_id)
            admin_h = {"Authorization": f"Bearer {staff_token(admin)['access_token']}"}
            reviewer_h = {"Authorization": f"Bearer {staff_token(reviewer)['access_token']}"}
            review_ids = list(db.session.scalars(sa.select(LegalReview.id).limit(500)))
            pending = db.session.scalar(sa.select(sa.func.count(LegalReview.id)))
        measure(client, "/api/v1/legal-reviews", reviewer_h, 20)  # warm-up
        say("review_queue_p95_ms", p95(measure(client, "/api/v1/legal-reviews?limit=50", reviewer_h, REQUESTS)), "ms")
        say("case_detail_p95_ms", p95(measure(client, lambda: f"/api/v1/cases/{rng.choice(ids)}", admin_h, REQUESTS)),
            "ms")
        say("review_screen_p95_ms", p95(measure(
            client, lambda: f"/api/v1/legal-reviews/{rng.choice(review_ids)}/screen", reviewer_h, REQUESTS)), "ms")
        say("case_bench_pending_reviews", pending, "reviews")
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
