"""Parallel writers (threads and processes) on a real PostgreSQL database: the log stays gap-free,
one index per committed entry, nothing from rolled-back transactions, and the tree verifies."""
from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from server.extensions import db
from server.modules.audit import merkle
from server.modules.audit import operations as audit
from server.modules.audit.integrity import verify_log
from server.modules.audit.models import AuditEntry
from tests import db as testdb

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(testdb.postgres_url() is None, reason="needs ENFORCE_DATABASE_URL=postgresql://…")]

TRANSACTIONS = 30
PER_TRANSACTION = 4


def write(app, writer: str) -> list[tuple[str, int, int]]:
    """Run TRANSACTIONS transactions of PER_TRANSACTION entries; every fifth one is rolled back."""
    committed = []
    with app.app_context():
        for txn in range(TRANSACTIONS):
            keys = [(writer, txn, k) for k in range(PER_TRANSACTION)]
            for key in keys:
                audit.record(db.session, "test:writer:wrote", subjects={"writer": writer},
                             payload={"key": list(key)}, actor=audit.system(writer))
            if txn % 5 == 4:
                db.session.rollback()
            else:
                db.session.commit()
                committed.extend(keys)
        db.session.remove()
    return committed


def _process(url: str, instance: str, writer: str) -> list[tuple[str, int, int]]:
    app = testdb.make_app(url, Path(instance))
    try:
        return write(app, writer)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_parallel_writers_get_gap_free_commit_ordered_indices(live_app, tmp_path):
    url = live_app.config["DATABASE_URL"]
    committed: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def thread_writer(name: str) -> None:
        keys = write(live_app, name)
        with lock:
            committed.extend(keys)

    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pending = [pool.apply_async(_process, (url, str(tmp_path), f"process-{i}")) for i in range(4)]
        threads = [threading.Thread(target=thread_writer, args=(f"thread-{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for result in pending:
            committed.extend(tuple(key) for key in result.get(timeout=240))

    with live_app.app_context():
        rows = db.session.execute(sa.select(AuditEntry.idx, AuditEntry.body, AuditEntry.leaf_hash)
                                  .order_by(AuditEntry.idx)).all()
        size, root = audit.head(db.session)
        assert [r.idx for r in rows] == list(range(len(rows))) == list(range(size))
        logged = [tuple(json.loads(r.body)["payload"]["key"]) for r in rows]
        assert len(logged) == len(set(logged)), "an entry was logged twice"
        assert set(logged) == set(committed), "rolled-back entries present or committed ones lost"
        assert len(committed) == 8 * TRANSACTIONS * PER_TRANSACTION * 4 // 5
        # per writer, transactions appear in the order that writer committed them
        for writer in {k[0] for k in logged}:
            mine = [k[1:] for k in logged if k[0] == writer]
            assert mine == sorted(mine)
        assert merkle.root([r.leaf_hash for r in rows]) == root
        report = verify_log(db.session, live_app.config)
        assert report.ok, [str(p) for p in report.problems]
        assert report.size == size
