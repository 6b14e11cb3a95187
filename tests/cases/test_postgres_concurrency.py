"""Real concurrency on PostgreSQL (fresh database, real commits): document numbers stay gap-free
and unique under parallel allocation, and the case version stops a lost update."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy.orm.exc import StaleDataError

from server.extensions import db
from server.modules.cases import documents
from server.modules.cases import operations as cases
from server.modules.cases.models import Case
from tests import db as testdb
from tests import factories

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(testdb.postgres_url() is None, reason="needs ENFORCE_DATABASE_URL=postgresql://…")]


@pytest.fixture()
def live(tmp_path):
    app = testdb.fresh_app(tmp_path)
    with app.app_context():
        unit = factories.UnitFactory()
        head = factories.UserFactory(unit=unit)
        case = cases.create_lead(db.session, by=head, title="并发测试", party_name="某公司")
        db.session.commit()
        ids = (unit.id, head.id, case.id)
        db.session.remove()
    yield app, ids
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_parallel_allocation_is_unique_and_gap_free(live):
    app, (unit_id, _, _) = live
    barrier = threading.Barrier(6)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def allocate() -> None:
        with app.app_context():
            try:
                barrier.wait(10)
                numbers.append(documents.allocate(db.session, unit_id=unit_id, year=2026, doc_type="notice"))
                db.session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=allocate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors
    assert sorted(int(n[-5:-1]) for n in numbers) == [1, 2, 3, 4, 5, 6]


def test_the_version_column_stops_a_lost_update(live):
    app, (_, head_id, case_id) = live
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def edit(level: str) -> None:
        with app.app_context():
            try:
                case = db.session.get(Case, case_id)
                barrier.wait(10)
                case.supervised_level, case.supervised_on = level, dt.date(2026, 8, 1)
                db.session.commit()
                outcomes.append("won")
            except StaleDataError:
                db.session.rollback()
                outcomes.append("stale")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=edit, args=(level,)) for level in ("province", "city")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(outcomes) == ["stale", "won"]
    with app.app_context():
        assert db.session.get(Case, case_id).version == 2
