"""Benchmarks of the verifiable draw. Prints ``name: number unit`` lines.

    .venv/bin/python bench/draw_bench.py [--pg postgresql://postgres@127.0.0.1:5432] [--targets 200000]

draw_s_200k         the pure algorithm (algorithm.draw): 5 % of 200,000 targets stratified by
                    7 regions x 3 risk classes, teams of 2 from 2,000 inspectors (same region),
                    1 % conflicts = 1 % of targets each conflicted with 1 % of inspectors (40,000 pairs)
draw_verify_s_200k  replay of the published document (algorithm.verify: pool hashes, commitments,
                    seed, draw, comparison)
draw_request_s_200k the freeze request (pools read from PostgreSQL, hashed, stored) plus the run
                    request (draw, document stored, one secret inspection per drawn target created
                    through server.modules.inspections.operations.create, audit entries committed);
                    draw_freeze_s_200k and draw_run_s_200k are its two parts
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.modules.draws import algorithm  # noqa: E402

REGIONS = ["611002", "611021", "611022", "611023", "611024", "611025", "611026"]
CLASSES = ["key", "general", "special"]


def median(fn, reps=3):
    times, out = [], None
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def synthetic_document(n_targets: int, n_inspectors: int) -> dict:
    gen = random.Random(1)
    targets = [[i, f"U{i:017d}", gen.choice(REGIONS), gen.choice(CLASSES), False] for i in range(1, n_targets + 1)]
    inspectors = [[100000 + j, f"C{j:08d}", REGIONS[j % 7]] for j in range(n_inspectors)]
    conflicted_targets = gen.sample(range(1, n_targets + 1), n_targets // 100)
    conflicts = sorted({(100000 + gen.randrange(n_inspectors), t) for t in conflicted_targets
                        for _ in range(n_inspectors // 100)})
    secrets = [("user:1", "supervisor-secret-0123456789"), ("user:2", "observer-secret-9876543210")]
    doc = {"format": algorithm.FORMAT, "algorithm_version": algorithm.ALGORITHM_VERSION, "draw_id": "bench",
           "targets": targets, "inspectors": inspectors, "conflicts": [list(c) for c in conflicts],
           "rules": {f"{r}|{c}": {"basis": "percent", "value": "5", "positive_list_factor": "0"}
                     for r in REGIONS for c in CLASSES},
           "options": {"team_size": 2, "cross_region": False, "local_regions": [], "joint_agencies": []},
           "commitments": [{"party": p, "commitment": algorithm.commitment("bench", p, s)} for p, s in secrets],
           "reveals": [{"party": p, "secret": s} for p, s in secrets], "public_value": "2026320"}
    return algorithm.run(doc)


def pure(n_targets: int) -> None:
    doc = synthetic_document(n_targets, 2000)
    seconds, result = median(lambda: algorithm.draw(doc))
    assert result == doc["result"]
    print(f"draw_s_200k: {seconds:.3f} s")
    seconds, (ok, _) = median(lambda: algorithm.verify(doc))
    assert ok
    print(f"draw_verify_s_200k: {seconds:.3f} s")


SPENT: dict[str, float] = {}


def _timed(module: object, name: str, label: str) -> None:
    """Wrap module.name to add its wall time to SPENT[label] (breakdown of the run request)."""
    original = getattr(module, name, None)
    if original is None:
        return

    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[label] = SPENT.get(label, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def request(pg: str, n_targets: int, profile: bool = False) -> None:
    import sqlalchemy as sa

    from server.modules.directory import uscc
    from tests import db as testdb

    tmp = Path(tempfile.mkdtemp(prefix="draw-bench-"))
    admin = sa.create_engine(pg.rstrip("/") .replace("postgresql://", "postgresql+psycopg://", 1) + "/postgres",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text('DROP DATABASE IF EXISTS "enforce_draw_bench" WITH (FORCE)'))
        conn.execute(sa.text('CREATE DATABASE "enforce_draw_bench"'))
    admin.dispose()
    app = testdb.make_app(pg.rstrip("/") + "/enforce_draw_bench", tmp, BROKER_URL="memory://")
    testdb.migrate(app)

    from server.core.access import Role
    from server.core.db import utcnow
    from server.extensions import db
    from server.modules.auth.operations import staff_token
    from server.modules.directory.models import Target
    from server.modules.draws.models import SamplingRule
    from server.modules.roster.models import ConflictDeclaration
    from server.modules.users.models import Agency, AgencyKind, Certificate, Unit, UnitKind, User

    gen = random.Random(2)
    today = dt.date.today()
    with app.app_context():
        agency = Agency(kind=AgencyKind.ECOLOGY_BUREAU, name_zh="基准测试局", name_en="Bench bureau", region_code="611000")
        city = Unit(agency=agency, kind=UnitKind.DETACHMENT, name_zh="基准支队", name_en="Bench detachment",
                    region_code="611000")
        brigades = [Unit(agency=agency, kind=UnitKind.BRIGADE, name_zh=f"基准大队{r}", name_en=f"Bench {r}",
                         region_code=r) for r in REGIONS]
        chief = User(username="chief", display_name="负责人", role=Role.SUPERVISOR, unit=city, region_code="611000")
        observer = User(username="observer", display_name="监督员", role=Role.LEGAL_REVIEWER, unit=city,
                        region_code="611000")
        db.session.add_all([agency, city, *brigades, chief, observer])
        db.session.flush()
        now = utcnow()
        codes = [uscc.complete(f"91{REGIONS[0]}MA{i:07d}") for i in range(1, n_targets + 1)]
        start = time.perf_counter()
        raw = db.session.connection().connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(
                "COPY target (uscc, name, region_code, address, risk_class, permit_class, positive_list, active, "
                "version, created_at, updated_at) FROM STDIN") as copy:
            for i, code in enumerate(codes, start=1):
                copy.write_row((code, f"基准企业{i}", gen.choice(REGIONS), "地址", gen.choice(CLASSES), "none", False,
                                True, 1, now, now))
        load_s = time.perf_counter() - start
        users = [{"username": f"insp{j}", "display_name": f"执法{j}", "role": "inspector",
                  "unit_id": brigades[j % 7].id, "region_code": REGIONS[j % 7], "active": True, "failed_logins": 0,
                  "token_generation": 1, "created_at": now, "updated_at": now} for j in range(2000)]
        db.session.execute(sa.insert(User), users)
        ids = list(db.session.scalars(sa.select(User.id).where(User.role == Role.INSPECTOR).order_by(User.id)))
        db.session.execute(sa.insert(Certificate), [
            {"user_id": uid, "number": f"BENCH{uid:08d}", "issuer": "陕西省人民政府", "scope": "生态环境保护",
             "valid_from": today - dt.timedelta(days=365), "valid_until": today + dt.timedelta(days=365),
             "status": "active", "created_at": now, "updated_at": now} for uid in ids])
        pairs = {(gen.choice(ids), codes[t]) for t in gen.sample(range(n_targets), n_targets // 100) for _ in range(20)}
        db.session.execute(sa.insert(ConflictDeclaration), [
            {"user_id": uid, "uscc": code, "relation": "relative", "detail": "基准", "recorded_by": chief.id,
             "created_at": now, "updated_at": now} for uid, code in pairs])
        for category in CLASSES:
            db.session.add(SamplingRule(level="county", region_code="611000", category=category, basis="percent",
                                        value=5, period="quarter", positive_list_factor=0, effective_from=today,
                                        source="[R] benchmark"))
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        chief_h = {"Authorization": f"Bearer {staff_token(chief)['access_token']}"}
        observer_h = {"Authorization": f"Bearer {staff_token(observer)['access_token']}"}
        parties = [(chief, chief_h, "chief-secret-0123456789ab"), (observer, observer_h, "observer-secret-0123456789")]
        assert db.session.scalar(sa.select(sa.func.count(Target.id))) == n_targets
    print(f"draw_bench_load_s_200k: {load_s:.3f} s")

    from server.modules.inspections import operations as inspection_ops

    from server.modules.draws import operations as draw_ops

    _timed(inspection_ops, "create_many", "inspections_create")
    _timed(draw_ops.algorithm, "run", "algorithm")
    from server.modules.audit import operations as audit_ops

    _timed(audit_ops, "_sequence", "audit_log_at_commit")
    try:
        from server.modules.sync import changes as sync_changes

        _timed(sync_changes, "_emit_inspection_changes", "sync_change_log_at_commit")
    except ImportError:
        pass
    client = app.test_client()
    body = {"title": "基准抽取", "region_codes": REGIONS, "level": "county", "period_label": "2026Q4",
            "window_start": (today + dt.timedelta(days=1)).isoformat(),
            "window_end": (today + dt.timedelta(days=30)).isoformat()}
    draw_id = client.post("/api/v1/draws", json=body, headers=chief_h).json["id"]
    for user, headers, secret in parties:
        digest = algorithm.commitment(draw_id, f"user:{user.id}", secret)
        assert client.post(f"/api/v1/draws/{draw_id}/commitments", json={"commitment": digest},
                           headers=headers).status_code == 201
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    frozen = client.post(f"/api/v1/draws/{draw_id}/freeze", headers=chief_h)
    freeze_s = time.perf_counter() - start
    assert frozen.status_code == 200, frozen.json
    for _user, headers, secret in parties:
        assert client.post(f"/api/v1/draws/{draw_id}/reveals", json={"secret": secret},
                           headers=headers).status_code == 201
    start = time.perf_counter()
    ran = client.post(f"/api/v1/draws/{draw_id}/run", headers=chief_h)
    run_s = time.perf_counter() - start
    if profiler:
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
    assert ran.status_code == 200, ran.json
    print(f"draw_freeze_s_200k: {freeze_s:.3f} s")
    print(f"draw_run_s_200k: {run_s:.3f} s  ({ran.json['drawn_count']} inspections created)")
    print(f"draw_request_s_200k: {freeze_s + run_s:.3f} s")
    for label, seconds in SPENT.items():
        print(f"draw_run_part_{label}_s_200k: {seconds:.3f} s")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--targets", type=int, default=200_000)
    parser.add_argument("--skip-request", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile of the freeze and run requests (stderr)")
    args = parser.parse_args()
    pure(args.targets)
    if not args.skip_request:
        request(args.pg, args.targets, args.profile)


if __name__ == "__main__":
    main()
