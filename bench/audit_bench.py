"""Audit log benchmark: append rates through record() + commit, proofs and verify at 10^6 entries.

Run: .venv/bin/python bench/audit_bench.py   (needs PostgreSQL at postgresql://postgres@127.0.0.1:5432,
trust auth; creates and drops its own scratch databases). Prints ``name: number unit`` lines.
The 10^6-entry log is bulk-built (bodies, leaf hashes and nodes computed here, then COPY) because
appending a million entries through the ORM would take most of the time budget; the append
figures do go through ``record()`` and a real COMMIT.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PG = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
BIG = int(os.environ.get("BENCH_BIG", 1_000_000))
TMP = Path(tempfile.mkdtemp(prefix="audit-bench-"))
os.environ.setdefault("ENFORCE_INSTANCE_PATH", str(TMP))


def say(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:.{2 if value < 100 else 0}f} {unit}", flush=True)


def pg_database(name: str) -> str:
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{PG}/{name}"


def drop_database(name: str) -> None:
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def make_app(url: str, migrate: bool = True):  # type: ignore[no-untyped-def]
    from tests.db import make_app as _make_app
    from tests.db import migrate as _migrate

    app = _make_app(url, TMP, LOG_LEVEL="WARNING")
    if migrate:
        _migrate(app)
    return app


def append(app, entries: int, per_txn: int, writer: str = "bench") -> float:  # type: ignore[no-untyped-def]
    """Append through record() + commit; returns entries per second."""
    from server.extensions import db
    from server.modules.audit import operations as audit

    with app.app_context():
        started = time.perf_counter()
        for start in range(0, entries, per_txn):
            for i in range(start, min(entries, start + per_txn)):
                audit.record(db.session, "bench:entry:appended", subjects={"case": i % 1000},
                             payload={"writer": writer, "i": i}, actor=audit.system(writer))
            db.session.commit()
        elapsed = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return entries / elapsed


def _writer(url: str, entries: int, per_txn: int, writer: str, barrier) -> float:  # type: ignore[no-untyped-def]
    app = make_app(url, migrate=False)
    barrier.wait()
    return append(app, entries, per_txn, writer)


def bulk_build(app, n: int) -> None:  # type: ignore[no-untyped-def]
    """Write n entries, their nodes and the head directly (COPY), as the sequencer would have."""
    from server.extensions import db
    from server.modules.audit import merkle
    from server.modules.audit.operations import Actor, PendingEntry, entry_body

    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f+00")
    actor = Actor("system", "bench")
    frontier: list[tuple[int, bytes]] = []
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy("COPY audit_entry (idx, tag, actor_kind, actor_id, recorded_at, body, leaf_hash) "
                             "FROM STDIN") as entries, \
                    open(TMP / "nodes.tsv", "w") as nodes_file:
                for idx in range(n):
                    entry = PendingEntry("bench:entry:bulk", actor, [("case", str(idx % 1000))], {"i": idx}, None)
                    body = entry_body(entry, idx, at)
                    h = merkle.leaf_hash(body)
                    entries.write_row((idx, entry.tag, "system", "bench", stamp, body, h))
                    level, node_idx, current = 0, idx, h
                    while frontier and frontier[-1][0] == level:
                        current = merkle.node_hash(frontier.pop()[1], current)
                        level += 1
                        node_idx >>= 1
                        nodes_file.write(f"{level}\t{node_idx}\t\\\\x{current.hex()}\n")
                    frontier.append((level, current))
            root = frontier[-1][1]
            for _, left in reversed(frontier[:-1]):
                root = merkle.node_hash(left, root)
            with cursor.copy("COPY audit_node (level, idx, hash) FROM STDIN") as copy, \
                    open(TMP / "nodes.tsv", "rb") as nodes_file:
                while chunk := nodes_file.read(1 << 20):
                    copy.write(chunk)
            cursor.execute("UPDATE audit_head SET size = %s, root_hash = %s WHERE id = 1", (n, root))
            raw.commit()
            cursor.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()


def main() -> None:
    from server.extensions import db
    from server.modules.audit import operations as audit
    from server.modules.audit.integrity import verify_log

    started = time.perf_counter()
    # SQLite, 10 per transaction
    say("audit_append_per_s_sqlite", append(make_app(f"sqlite:///{TMP / 'bench.db'}"), 3000, 10), "entries/s")

    # PostgreSQL: 10 per transaction, 1 per transaction, 4 writer processes at 10 per transaction
    name = f"audit_bench_{os.getpid()}"
    url = pg_database(name)
    try:
        app = make_app(url)
        append(app, 500, 10)  # warm up
        say("audit_append_per_s_postgres", append(app, 10_000, 10), "entries/s")
        say("audit_append_per_s_postgres_single", append(app, 2_000, 1), "entries/s")
        context = multiprocessing.get_context("spawn")
        barrier = context.Manager().Barrier(4)
        with context.Pool(4) as pool:
            t0 = time.perf_counter()
            results = [pool.apply_async(_writer, (url, 5_000, 10, f"w{i}", barrier)) for i in range(4)]
            for r in results:
                r.get()
            # wall time of all four from the barrier is close to max of their own times
            rates = [r.get() for r in results]
        total = 4 * 5_000 / max(4 * 5_000 / rate for rate in rates)
        say("audit_append_per_s_postgres_4writers", total, "entries/s")
        del t0
    finally:
        drop_database(name)

    # 10^6 entries: proofs and full verification
    name = f"audit_bench_big_{os.getpid()}"
    url = pg_database(name)
    try:
        app = make_app(url)
        t0 = time.perf_counter()
        bulk_build(app, BIG)
        print(f"# bulk-built {BIG} entries in {time.perf_counter() - t0:.0f} s", flush=True)
        rng = random.Random(1)
        with app.app_context():
            session = db.session
            audit.inclusion_proof_stored(session, 0, BIG)  # warm the pool
            samples = 500
            t0 = time.perf_counter()
            for _ in range(samples):
                size = rng.randrange(BIG // 2, BIG + 1)
                audit.inclusion_proof_stored(session, rng.randrange(size), size)
            say("audit_inclusion_proof_ms_1e6", (time.perf_counter() - t0) / samples * 1000, "ms")
            t0 = time.perf_counter()
            for _ in range(samples):
                new = rng.randrange(BIG // 2, BIG + 1)
                audit.consistency_proof_stored(session, rng.randrange(1, new + 1), new)
            say("audit_consistency_proof_ms_1e6", (time.perf_counter() - t0) / samples * 1000, "ms")
            session.rollback()
            t0 = time.perf_counter()
            report = verify_log(session, app.config)
            elapsed = time.perf_counter() - t0
            if not report.ok:
                print(f"# verify found problems: {report.problems[:3]}", flush=True)
            say("audit_verify_s_1e6", elapsed, "s")
            session.remove()
            db.engine.dispose()
    finally:
        drop_database(name)
    print(f"# total {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
