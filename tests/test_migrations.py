"""The migrations are the only way the schema is made: one head, and no drift from the models.

Runs on the suite's database kind: SQLite by default, PostgreSQL when ``ENFORCE_DATABASE_URL``
points at it (``.ci/run``).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from server.extensions import db

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _scripts() -> ScriptDirectory:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_exactly_one_head():
    heads = _scripts().get_heads()
    assert len(heads) == 1, f"several Alembic heads, merge them: {heads}"


def test_every_revision_has_a_down_revision_chain_to_the_base():
    scripts = _scripts()
    bases = scripts.get_bases()
    assert len(bases) == 1, bases
    chain = list(scripts.walk_revisions())
    assert chain[-1].revision == bases[0]


# SQLite's reflection cannot read the expression index on lower(username) (PostgreSQL's can, and compares it)
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index:UserWarning")
def test_models_and_migrations_do_not_drift(fresh_app):
    app = fresh_app("drift")
    with app.app_context():
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                                   "compare_server_default": True})
            diffs = compare_metadata(context, db.metadata)
            dialect = connection.dialect.name
    assert not diffs, f"models and migrations differ on {dialect}; run `enforce db migrate`:\n" + \
        "\n".join(map(str, diffs))


def test_migrated_database_is_at_head(fresh_app):
    app = fresh_app("head")
    with app.app_context():
        with db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    assert set(current) == set(_scripts().get_heads())
