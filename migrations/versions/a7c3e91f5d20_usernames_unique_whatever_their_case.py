"""usernames unique whatever their case (issue 14 #8)

A unique index on ``lower(username)``, on SQLite and PostgreSQL alike, so that ``Inspector01``
cannot be created beside ``inspector01`` by any path (API, console, CLI, import). Sign-in looks the
name up the same way. The exact-case unique constraint stays.

A database that already holds two names differing only in case cannot take the index: the
upgrade stops and names them, for an administrator to rename one (``PATCH /api/v1/users/{id}``
cannot rename; use SQL) before running it again.

Revision ID: a7c3e91f5d20
Revises: 642199579eb8
Create Date: 2026-12-08 01:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7c3e91f5d20'
down_revision = '642199579eb8'
branch_labels = None
depends_on = None


def upgrade():
    clashes = op.get_bind().execute(sa.text(
        "SELECT lower(username), count(*) FROM user_account GROUP BY lower(username) HAVING count(*) > 1"
    )).all()
    if clashes:
        names = ", ".join(f"{name} ({count})" for name, count in clashes)
        raise RuntimeError(f"usernames that differ only in case must be renamed first: {names}")
    op.create_index('uq_user_account_username_lower', 'user_account', [sa.text('lower(username)')], unique=True)


def downgrade():
    op.drop_index('uq_user_account_username_lower', table_name='user_account')
